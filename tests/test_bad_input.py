"""Every user-facing input, one bad value per row: each row of the table in docs/reliability.md is a test.

CLI rows run the real entry point (train.py / evaluate.py, via runpy, in this process so that ~80 rows
take seconds): the run must exit 2 with exactly one ``error:`` line on stderr (the last line), naming the
problem, and no traceback. modal.yaml rows (M) run ``python modal_submit.py`` as a real process (~0.2 s
each: it stops before importing modal) with TINYZERO_MODAL_YAML pointing at a file the test writes.
Model-output rows feed a bad action or answer to the real environment: no exception, the documented
penalty. ``test_docs_table_matches_the_tests`` keeps the table and these rows
identical (ids and message excerpts).

Run: pytest tests/test_bad_input.py -q        (~25 s; one smoke run is trained first to damage)
"""

from __future__ import annotations

import os
import re
import runpy
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from tinyzero.config import TaskConfig
from tinyzero.environments import countdown, make_task, multiplication
from tinyzero.environments.frozenlake_env import FrozenLakeTextEnv

ROOT = Path(__file__).resolve().parents[1]
DOC = ROOT / "docs" / "reliability.md"

# Config files the rows name (written into a temp dir; the command refers to them by file name).
FILES: dict[str, bytes] = {
    "broken.yaml": b"training: [\n",
    "binary.yaml": b"\x00\xff\xfe\x01garbage",
    "list.yaml": b"- training\n- lr\n",
    "typo_section.yaml": b"trainng:\n  lr: 0.1\n",
    "typo_key.yaml": b"training:\n  learning_rate: 0.1\n",
    "wrong_type.yaml": b"training:\n  lr: fast\n",
    "scalar_section.yaml": b"training: 5\n",
    "zero_iterations.yaml": b"training:\n  total_iterations: 0\n",
    "nan_beta.yaml": b"astarpo:\n  beta: .nan\n",
    "dangling_ref.yaml": b"training:\n  lr: ${oops}\n",
}

# id -> (input, bad value as the user would write it, command, excerpt of the one error line)
CLI_ROWS: dict[str, tuple[str, str, str, str]] = {
    # --- config files
    "F1": ("config file", "missing", "train.py --config nope.yaml", "config file 'nope.yaml' not found"),
    "F2": ("config file", "a directory", "train.py --config configs", "config file 'configs' not found"),
    "F3": (
        "config file",
        "invalid YAML `training: [`",
        "train.py --config broken.yaml",
        "cannot read config",
    ),
    "F4": ("config file", "binary garbage", "train.py --config binary.yaml", "cannot read config"),
    "F5": ("config file", "a YAML list", "train.py --config list.yaml", "must be a mapping of sections"),
    "F6": (
        "config file",
        "misspelt section `trainng:`",
        "train.py --config typo_section.yaml",
        "unknown config key 'trainng'",
    ),
    "F7": (
        "config file",
        "unknown key `training.learning_rate`",
        "train.py --config typo_key.yaml",
        "unknown config key 'training.learning_rate'",
    ),
    "F8": ("config file", "`lr: fast`", "train.py --config wrong_type.yaml", "bad value for 'training.lr'"),
    "F9": ("config file", "`training: 5`", "train.py --config scalar_section.yaml", "invalid config in"),
    "F10": (
        "config file",
        "`total_iterations: 0`",
        "train.py --config zero_iterations.yaml",
        "training.total_iterations=0 is out of range",
    ),
    "F11": (
        "config file",
        "`beta: .nan`",
        "train.py --config nan_beta.yaml",
        "astarpo.beta=nan is out of range: expected a finite number",
    ),
    "F12": (
        "config file",
        "`lr: ${oops}` (names no key)",
        "train.py --config dangling_ref.yaml",
        "bad value for 'training.lr': Interpolation key 'oops' not found",
    ),
    # --- dotted overrides
    "O1": ("override", "no `=`", "train.py foo", "override 'foo' is not of the form key=value"),
    "O2": ("override", "no key", "train.py =1", "override '=1' is not of the form key=value"),
    "O3": ("override", "typo", "train.py training.lrr=1e-3", "(did you mean 'training.lr'?)"),
    "O4": ("override", "missing section", "train.py lr=1e-3", "unknown config key 'lr'"),
    "O5": ("override", "not a number", "train.py training.total_iterations=ten", "bad value for"),
    "O6": ("override", "float for an int", "train.py training.total_iterations=1e3", "bad value for"),
    "O7": ("override", "negative", "train.py training.lr=-1", "training.lr=-1.0 is out of range"),
    "O8": ("override", "infinite", "train.py training.lr=inf", "expected a finite number"),
    "O9": (
        "override",
        "absurd",
        "train.py training.lr=1000",
        "training.lr=1000.0 is out of range: expected at most 10",
    ),
    "O10": (
        "override",
        "section replaced",
        "train.py training=5",
        "invalid config in command-line overrides",
    ),
    "O11": ("override", "a list", "train.py training.lr=[1]", "bad value for 'training.lr'"),
    "O12": ("override", "null", "train.py num_completions=null", "bad value for 'num_completions'"),
    "O13": (
        "override",
        "unknown algorithm",
        "train.py algorithm.name=dpo",
        "algorithm.name='dpo' is out of range",
    ),
    "O14": ("override", "unknown task", "train.py task.name=chess", "task.name='chess' is out of range"),
    "O15": (
        "override",
        "unknown preset",
        "train.py model.preset=huge",
        "model.preset='huge' is out of range",
    ),
    "O16": ("override", "unknown device", "train.py run.device=tpu", "run.device='tpu' is out of range"),
    "O17": (
        "override",
        "CUDA on a CPU machine",
        "train.py run.device=cuda",
        "run.device=cuda but no CUDA device is available",
    ),
    "O18": ("override", "negative seed", "train.py run.seed=-1", "run.seed=-1 is out of range"),
    "O19": ("override", "negative threads", "train.py run.threads=-2", "run.threads=-2 is out of range"),
    "O20": ("override", "K=1 for a group method", "train.py num_completions=1", ">= 2 for group-based"),
    "O21": ("override", "top-p 0", "train.py rollout.top_p=0", "rollout.top_p=0.0 is out of range"),
    "O22": ("override", "temperature 0", "train.py rollout.temperature=0", "rollout.temperature=0.0 is out"),
    "O23": (
        "override",
        "more new tokens than the model sees",
        "train.py rollout.max_new_tokens=1000",
        "expected fewer than model.max_seq_len=128",
    ),
    "O24": ("override", "history < -1", "train.py rollout.history=-5", "rollout.history=-5 is out of range"),
    "O25": ("override", "β = 0", "train.py astarpo.beta=0", "astarpo.beta=0.0 is out of range"),
    "O26": ("override", "unknown V* source", "train.py astarpo.v_star_source=magic", "astarpo.v_star_source"),
    "O27": ("override", "keep > 1", "train.py algorithm.starpo_s_keep=1.5", "algorithm.starpo_s_keep=1.5"),
    "O28": ("override", "negative", "train.py training.max_bad_steps=-1", "training.max_bad_steps=-1 is out"),
    "O29": ("override", "not a bool", "train.py task.is_slippery=maybe", "bad value for 'task.is_slippery'"),
    "O30": ("override", "unknown mode", "train.py logging.wandb_mode=sometimes", "logging.wandb_mode"),
    "O31": (
        "override",
        "`${...}` naming no key",
        "train.py training.lr=${training.rate}",
        "Interpolation key 'training.rate' not found",
    ),
    "O32": ("override", "negative", "train.py training.max_kl_rise=-0.1", "training.max_kl_rise=-0.1 is out"),
    "O33": (
        "override",
        "unknown schedule",
        "train.py training.lr_schedule=step",
        "training.lr_schedule='step' is out",
    ),
    "O34": (
        "override",
        "final rate above the peak",
        "train.py training.lr_final=2",
        "training.lr_final=2.0 is out",
    ),
    "O35": (
        "override",
        "negative reset interval",
        "train.py training.ref_reset_every=-1",
        "training.ref_reset_every=-1 is out",
    ),
    "O36": (
        "override",
        "RL prompt pool larger than the training split",
        "train.py task.num_train=100 training.num_problems=200",
        "training.num_problems=200 is out of range: expected 0..task.num_train=100",
    ),
    "O37": (
        "override",
        "negative corpus pool",
        "train.py pretrain.pool=-5",
        "pretrain.pool=-5 is out",
    ),
    # --- task parameters
    "T1": (
        "task parameter",
        "1x1 map",
        "train.py task.size=1",
        "task.size=1 is out of range: expected 2..12",
    ),
    "T2": (
        "task parameter",
        "map too big for the model",
        "train.py task.size=12",
        "a frozenlake prompt (157 tokens) plus rollout.max_new_tokens=8 needs 165 tokens",
    ),
    "T3": ("task parameter", "no ice", "train.py task.p_frozen=0", "task.p_frozen=0.0 is out of range"),
    "T4": (
        "task parameter",
        "almost no ice on a big map",
        "train.py task.size=12 task.p_frozen=0.05 model.max_seq_len=256",
        "task.p_frozen=0.05 is too low for 12x12 maps",
    ),
    "T5": (
        "task parameter",
        "9 numbers",
        "train.py task.num_numbers=9",
        "task.num_numbers=9 is out of range",
    ),
    "T6": (
        "task parameter",
        "too few distinct problems",
        "train.py task.name=multiplication task.digits_a=1 task.digits_b=1",
        "the problem space is too small",
    ),
    "T7": (
        "task parameter",
        "numbers all 1",
        "train.py task.name=countdown task.max_number=1",
        "the problem space is too small",
    ),
    "T8": ("task parameter", "0 digits", "train.py task.digits_a=0", "task.digits_a=0 is out of range"),
    "T9": ("task parameter", "no problems", "train.py task.num_train=0", "task.num_train=0 is out of range"),
    "T10": ("task parameter", "no turns", "train.py task.max_turns=0", "task.max_turns=0 is out of range"),
    "T11": ("task parameter", "negative seed", "train.py task.seed=-1", "task.seed=-1 is out of range"),
    "T12": (
        "model parameter",
        "context shorter than a prompt",
        "train.py model.max_seq_len=16",
        "needs 29 tokens but model.max_seq_len=16",
    ),
    "T13": (
        "task parameter",
        "search trace over 4 numbers",
        "train.py task.name=countdown task.scratchpad=true task.num_numbers=4",
        "task.num_numbers=4 is out of range: expected 3 with task.scratchpad",
    ),
    "T14": (
        "task parameter",
        "unknown countdown trace",
        "train.py task.name=countdown task.trace=dfs",
        "task.trace='dfs' is out of range: expected attempts or backward",
    ),
    "T15": (
        "task parameter",
        "tried moves listed without restart",
        "train.py task.name=countdown_turns task.show_tried=true",
        "task.show_tried=True is out of range: expected false unless task.restart=true",
    ),
    "T16": (
        "task parameter",
        "unknown demonstrator",
        "train.py task.demos=expert",
        "task.demos='expert' is out of range: expected heuristic, optimal or search",
    ),
    "T17": (
        "task parameter",
        "search demonstrations without restarts",
        "train.py task.name=countdown_turns task.demos=search",
        "task.demos='search' is out of range: expected search only with task.name=countdown_turns "
        "task.restart=true task.show_tried=true",
    ),
    "T18": (
        "task parameter",
        "restart thinning without search demonstrations",
        "train.py task.demo_restarts=0.5",
        "task.demo_restarts=0.5 is out of range: expected 0.25 unless task.demos=search (it thins the "
        "search corpus's restarts)",
    ),
    "T19": (
        "task parameter",
        "check drills without search demonstrations",
        "train.py task.demo_checks=0.5",
        "task.demo_checks=0.5 is out of range: expected 0 unless task.demos=search",
    ),
    # --- command-line flags
    "A1": ("CLI flag", "unknown flag", "train.py --bogus", "unrecognized arguments: --bogus"),
    "A2": (
        "CLI flag",
        "flag without its value",
        "train.py --config",
        "argument --config: expected one argument",
    ),
    "A3": (
        "CLI flag",
        "`--resume` of a run that never ran",
        "train.py run.name=never --resume",
        "no checkpoint in",
    ),
    "A4": (
        "CLI flag",
        "no mode",
        "evaluate.py",
        "one of the arguments --checkpoint --plot --compare is required",
    ),
    "A5": (
        "CLI flag",
        "0 samples",
        "evaluate.py --checkpoint runs/good --samples 0",
        "need at least 1 sample",
    ),
    "A6": (
        "CLI flag",
        "0 episodes",
        "evaluate.py --checkpoint runs/good --episodes 0",
        "evaluate at least 1",
    ),
    "A7": ("CLI flag", "bad choice", "evaluate.py --checkpoint runs/good --slippery maybe", "invalid choice"),
    "A8": (
        "CLI flag",
        "not an int",
        "evaluate.py --checkpoint runs/good --sizes x",
        "invalid int value: 'x'",
    ),
    "A9": (
        "CLI flag",
        "map size 40",
        "evaluate.py --checkpoint runs/good --sizes 40",
        "map sizes must be 2..12",
    ),
    "A10": (
        "CLI flag",
        "unknown task",
        "evaluate.py --checkpoint runs/good --task chess",
        "unknown task 'chess'",
    ),
    "A11": (
        "CLI flag",
        "`--config` with a checkpoint",
        "evaluate.py --checkpoint runs/good --config configs/smoke.yaml",
        "--config applies to base-model directories only",
    ),
    "A12": (
        "CLI flag",
        "unwritable output",
        "evaluate.py --checkpoint runs/good --episodes 1 --samples 1 --json /proc/nope/e.json",
        "cannot write or read '/proc/nope'",
    ),
    "A13": ("CLI flag", "not a run dir", "evaluate.py --plot runs/empty", "has no metrics.jsonl"),
    "A14": (
        "CLI flag",
        "exact value of a policy that sees the history",
        "evaluate.py --checkpoint runs/good rollout.history=-1 --exact",
        "--exact needs rollout.history=0",
    ),
    # --- checkpoint paths
    "K1": ("checkpoint path", "missing", "evaluate.py --checkpoint runs/missing", "not found"),
    "K2": (
        "checkpoint path",
        "a file",
        "evaluate.py --checkpoint README.md",
        "checkpoint 'README.md' not found",
    ),
    "K3": (
        "checkpoint path",
        "an empty directory",
        "evaluate.py --checkpoint runs/empty",
        "is not a checkpoint",
    ),
    "K4": (
        "checkpoint path",
        "truncated weights",
        "evaluate.py --checkpoint runs/truncated",
        "is corrupt: model.safetensors has",
    ),
    "K5": (
        "checkpoint path",
        "one flipped byte",
        "evaluate.py --checkpoint runs/flipped",
        "fails its sha256 checksum",
    ),
    "K6": (
        "checkpoint path",
        "garbled manifest",
        "evaluate.py --checkpoint runs/garbled",
        "is corrupt: manifest.json is unreadable",
    ),
    "K7": (
        "checkpoint path",
        "`latest` names nothing",
        "evaluate.py --checkpoint runs/dangling",
        "not found",
    ),
    "K8": (
        "checkpoint path",
        "`--resume`, every checkpoint damaged",
        "train.py run.name=truncated --resume",
        "--resume: no intact checkpoint in",
    ),
    "K9": (
        "checkpoint path",
        "existing run without `--resume`",
        "train.py run.name=good",
        "already has checkpoints: add --resume to continue it",
    ),
    "K10": (
        "checkpoint path",
        "`--resume` with another task",
        "train.py run.name=good task.name=multiplication --resume",
        "changes what run 'good' is: task.name='multiplication' (the run has 'frozenlake')",
    ),
    "K13": (
        "checkpoint path",
        "`--resume` with another learning rate",
        "train.py run.name=good training.lr=0.1 --resume",
        "changes what run 'good' is: training.lr=0.1 (the run has 0.0005)",
    ),
    "K11": (
        "output path",
        "run.out_dir not creatable",
        "train.py run.out_dir=/proc/nope",
        "cannot write or read",
    ),
    "K12": (
        "output path",
        "pretrain.cache_dir not creatable",
        "train.py pretrain.cache_dir=/proc/nope/base_models",
        "cannot write or read '/proc/nope'",
    ),
}


@pytest.fixture(scope="module")
def runs(cache_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A finished smoke run ("good") and damaged copies of it, plus the config files of the F rows."""
    from tinyzero.config import load_config
    from tinyzero.trainer import TinyZeroTrainer

    root = tmp_path_factory.mktemp("bad_input")
    out = root / "runs"
    cfg = load_config(
        ROOT / "configs" / "smoke.yaml",
        [f"run.out_dir={out}", f"pretrain.cache_dir={cache_dir}", "run.name=good", "algorithm.name=grpo"],
    )
    TinyZeroTrainer(cfg, progress=False).train()
    good = out / "good"
    for name in ("truncated", "flipped", "garbled", "dangling"):
        shutil.copytree(good, out / name)
    shutil.rmtree(out / "truncated" / "checkpoints" / "iter_000001")
    weights = out / "truncated" / "checkpoints" / "iter_000002" / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[:1000])
    flipped = out / "flipped" / "checkpoints" / "iter_000002" / "optimizer.pt"
    data = bytearray(flipped.read_bytes())
    data[len(data) // 2] ^= 1
    flipped.write_bytes(bytes(data))
    (out / "garbled" / "checkpoints" / "iter_000002" / "manifest.json").write_text('{"files": ')
    (out / "dangling" / "checkpoints" / "latest").write_text("iter_999999")
    (out / "empty").mkdir()
    for name, content in FILES.items():
        (root / name).write_bytes(content)
    return root


def argv(command: str, root: Path, cache: Path, row: str) -> tuple[Path, list[str]]:
    """The entry point and its arguments; train.py gets the smoke config and temp dirs *before* the row's
    own arguments, so that a row's --config or run.out_dir wins."""
    script, *args = command.split()
    args = [str(root / a) if a in FILES else str(root / a) if a.startswith("runs/") else a for a in args]
    if script == "train.py":
        base = ["--config", str(ROOT / "configs" / "smoke.yaml"), f"run.out_dir={root / 'runs'}"]
        base += [f"pretrain.cache_dir={cache}", f"run.name=row_{row}", "--no-progress", "run.threads=1"]
        args = base + args
    elif args[:1] == ["--checkpoint"] or "--checkpoint" in args:
        args += ["--device", "cpu"]
    return ROOT / script, args


@pytest.mark.parametrize("row", sorted(CLI_ROWS, key=lambda r: (r[0], int(r[1:]))))
def test_bad_cli_input_is_one_error_line_and_exit_2(
    row: str, runs: Path, cache_dir: Path, capsys: pytest.CaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    _, _, command, excerpt = CLI_ROWS[row]
    if row == "O17" and torch.cuda.is_available():
        pytest.skip("this machine has CUDA")
    script, args = argv(command, runs, cache_dir, row)
    monkeypatch.setattr(sys, "argv", [str(script), *args])
    monkeypatch.chdir(ROOT)
    with pytest.raises(SystemExit) as exc:
        runpy.run_path(str(script), run_name="__main__")
    err = capsys.readouterr().err
    lines = err.strip().splitlines()
    assert exc.value.code == 2, err
    assert "Traceback" not in err
    assert [ln for ln in lines if ln.startswith("error:")] == [lines[-1]], err
    assert excerpt in lines[-1], lines[-1]


# ----------------------------------------------------------------------------- modal.yaml (modal_submit.py)

# modal.yaml files the M rows name (written into a temp dir; TINYZERO_MODAL_YAML points at one of them).
MODAL_FILES: dict[str, bytes] = {
    "m_broken.yaml": b"gpu: [\n",
    "m_binary.yaml": b"\x00\xff\xfe\x01garbage",
    "m_list.yaml": b"- gpu\n- L4\n",
    "m_typo_key.yaml": b"gpus: H100\n",
    "m_gpu.yaml": b"gpu: H1000\n",
    "m_gpu_null.yaml": b"gpu: null\n",
    "m_timeout_0.yaml": b"timeout_minutes: 0\n",
    "m_timeout_neg.yaml": b"timeout_minutes: -5\n",
    "m_timeout_word.yaml": b"timeout_minutes: soon\n",
    "m_timeout_2d.yaml": b"timeout_minutes: 2880\n",
    "m_count_0.yaml": b"gpu_count: 0\n",
    "m_count_9.yaml": b"gpu_count: 9\n",
    "m_count_half.yaml": b"gpu_count: 1.5\n",
    "m_cpu_count.yaml": b"gpu: none\ngpu_count: 2\n",
    "m_volume.yaml": b"volume: my volume\n",
    "m_app.yaml": b"app_name: my/app\n",
    "m_python.yaml": b"python_version: 3.10\n",
    "m_price_gpu.yaml": b"price_per_hour: {H1000: 3.0}\n",
    "m_price_0.yaml": b"price_per_hour: {H100: 0}\n",
    "m_price_list.yaml": b"price_per_hour: [3.95]\n",
    "m_price_nested.yaml": b"price_per_hour: {H100: [3.95]}\n",
    "m_dangling_ref.yaml": b"gpu: ${oops}\n",
}

# id -> (input, bad value, command, excerpt of the one error line); the command's first word is the
# environment variable, the file name in it is the temp file above.
MODAL_ROWS: dict[str, tuple[str, str, str, str]] = {
    "M1": (
        "modal.yaml",
        "missing",
        "TINYZERO_MODAL_YAML=nope.yaml modal_submit.py",
        "Modal settings 'nope.yaml' not found (copy modal.yaml from the repository root)",
    ),
    "M2": (
        "modal.yaml",
        "a directory",
        "TINYZERO_MODAL_YAML=configs modal_submit.py",
        "Modal settings 'configs' not found",
    ),
    "M3": (
        "modal.yaml",
        "variable set but empty",
        "TINYZERO_MODAL_YAML= modal_submit.py",
        "Modal settings '' not found",
    ),
    "M4": (
        "modal.yaml",
        "invalid YAML `gpu: [`",
        "TINYZERO_MODAL_YAML=m_broken.yaml modal_submit.py",
        "cannot read",
    ),
    "M5": (
        "modal.yaml",
        "binary garbage",
        "TINYZERO_MODAL_YAML=m_binary.yaml modal_submit.py",
        "cannot read",
    ),
    "M6": (
        "modal.yaml",
        "a YAML list",
        "TINYZERO_MODAL_YAML=m_list.yaml modal_submit.py",
        "must be a mapping of settings",
    ),
    "M7": (
        "modal.yaml",
        "unknown key `gpus:`",
        "TINYZERO_MODAL_YAML=m_typo_key.yaml modal_submit.py",
        "(did you mean 'gpu'?)",
    ),
    "M8": (
        "modal.yaml",
        "`gpu: H1000`",
        "TINYZERO_MODAL_YAML=m_gpu.yaml modal_submit.py",
        "gpu 'H1000' is not a Modal GPU type (did you mean 'H100'?)",
    ),
    "M9": (
        "modal.yaml",
        "`gpu: null`",
        "TINYZERO_MODAL_YAML=m_gpu_null.yaml modal_submit.py",
        "bad value for 'gpu'",
    ),
    "M10": (
        "modal.yaml",
        "`timeout_minutes: 0`",
        "TINYZERO_MODAL_YAML=m_timeout_0.yaml modal_submit.py",
        "timeout_minutes=0 is out of range: expected 1..1440",
    ),
    "M11": (
        "modal.yaml",
        "`timeout_minutes: -5`",
        "TINYZERO_MODAL_YAML=m_timeout_neg.yaml modal_submit.py",
        "timeout_minutes=-5 is out of range",
    ),
    "M12": (
        "modal.yaml",
        "`timeout_minutes: soon`",
        "TINYZERO_MODAL_YAML=m_timeout_word.yaml modal_submit.py",
        "bad value for 'timeout_minutes'",
    ),
    "M13": (
        "modal.yaml",
        "two days, over Modal's limit",
        "TINYZERO_MODAL_YAML=m_timeout_2d.yaml modal_submit.py",
        "timeout_minutes=2880 is out of range: expected 1..1440",
    ),
    "M14": (
        "modal.yaml",
        "`gpu_count: 0`",
        "TINYZERO_MODAL_YAML=m_count_0.yaml modal_submit.py",
        "gpu_count=0 is out of range: expected 1..8",
    ),
    "M15": (
        "modal.yaml",
        "`gpu_count: 9`",
        "TINYZERO_MODAL_YAML=m_count_9.yaml modal_submit.py",
        "gpu_count=9 is out of range: expected 1..8",
    ),
    "M16": (
        "modal.yaml",
        "`gpu_count: 1.5`",
        "TINYZERO_MODAL_YAML=m_count_half.yaml modal_submit.py",
        "bad value for 'gpu_count'",
    ),
    "M17": (
        "modal.yaml",
        "2 GPUs of type `none`",
        "TINYZERO_MODAL_YAML=m_cpu_count.yaml modal_submit.py",
        "gpu_count=2 needs a GPU type",
    ),
    "M18": (
        "modal.yaml",
        "`volume: my volume`",
        "TINYZERO_MODAL_YAML=m_volume.yaml modal_submit.py",
        "volume 'my volume' must be 1-64 letters, digits",
    ),
    "M19": (
        "modal.yaml",
        "`app_name: my/app`",
        "TINYZERO_MODAL_YAML=m_app.yaml modal_submit.py",
        "app_name 'my/app' must be 1-64 letters, digits",
    ),
    "M20": (
        "modal.yaml",
        "`python_version: 3.10` (a number)",
        "TINYZERO_MODAL_YAML=m_python.yaml modal_submit.py",
        "python_version '3.1' must be 3.11 or newer, quoted",
    ),
    "M21": (
        "modal.yaml",
        "price of an unknown GPU",
        "TINYZERO_MODAL_YAML=m_price_gpu.yaml modal_submit.py",
        "price_per_hour has unknown GPU 'H1000' (did you mean 'H100'?)",
    ),
    "M22": (
        "modal.yaml",
        "price 0",
        "TINYZERO_MODAL_YAML=m_price_0.yaml modal_submit.py",
        "price_per_hour.H100=0.0 must be a finite number > 0",
    ),
    "M23": (
        "modal.yaml",
        "prices as a list",
        "TINYZERO_MODAL_YAML=m_price_list.yaml modal_submit.py",
        "price_per_hour must be a mapping of GPU type to USD",
    ),
    "M24": (
        "modal.yaml",
        "a price that is a list",
        "TINYZERO_MODAL_YAML=m_price_nested.yaml modal_submit.py",
        "price_per_hour.H100=[3.95] must be a finite number > 0",
    ),
    "M25": (
        "modal.yaml",
        "`gpu: ${oops}` (names no key)",
        "TINYZERO_MODAL_YAML=m_dangling_ref.yaml modal_submit.py",
        "Interpolation key 'oops' not found",
    ),
}


@pytest.fixture(scope="module")
def modal_files(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("bad_modal_yaml")
    for name, content in MODAL_FILES.items():
        (root / name).write_bytes(content)
    return root


@pytest.mark.parametrize("row", sorted(MODAL_ROWS, key=lambda r: int(r[1:])))
def test_bad_modal_yaml_is_one_error_line_and_exit_2(row: str, modal_files: Path) -> None:
    """A real `python modal_submit.py` process: `modal run` imports the file the same way, and a bad
    modal.yaml must stop it there, before the modal package or the service is touched."""
    _, _, command, excerpt = MODAL_ROWS[row]
    variable, script, *args = command.split()
    name, value = variable.split("=", 1)
    env = {**os.environ, name: str(modal_files / value) if value in MODAL_FILES else value}
    env["PYTHONPATH"] = str(ROOT)
    proc = subprocess.run(
        [sys.executable, script, *args], cwd=ROOT, env=env, capture_output=True, text=True, timeout=120
    )
    lines = proc.stderr.strip().splitlines()
    assert proc.returncode == 2, proc.stderr
    assert "Traceback" not in proc.stderr
    assert [ln for ln in lines if ln.startswith("error:")] == [lines[-1]], proc.stderr
    assert excerpt in lines[-1], lines[-1]
    assert proc.stdout == ""  # stopped before the cost estimate


# ----------------------------------------------------------------------------- model output (environment)

NUMS, TARGET = [3, 7, 25], 46
ANSWERS: dict[str, tuple[str, str, str, float, str]] = {
    # id -> (task, bad value, text, reward, reason)
    "E1": ("frozenlake", "empty turn", "", -0.1, "invalid_action"),
    "E2": ("frozenlake", "two moves when one is allowed", "Left Left", -0.1, "invalid_action"),
    "E3": ("frozenlake", "not a move", "Jump", -0.1, "invalid_action"),
    "E4": ("frozenlake", "over 100 characters", "Left " * 30, -0.1, "invalid_action"),
    "E5": ("frozenlake", "right-to-left override", "\u202eLeft", -0.1, "invalid_action"),
    "E6": ("frozenlake", "code", "__import__('os').system('id')", -0.1, "invalid_action"),
    "E7": ("frozenlake", "1 MB of moves", "Down " * 200_000, -0.1, "invalid_action"),
    "E8": (
        "countdown",
        "code in the answer",
        "<answer>__import__('os').system('id')</answer>",
        0.0,
        "no_answer",
    ),
    "E9": ("countdown", "huge exponent", "<answer>9**9**9**9</answer>", 0.0, "no_answer"),
    "E10": (
        "countdown",
        "100,000-deep nesting",
        "<answer>" + "(" * 100_000 + "1" + ")" * 100_000 + "</answer>",
        0.0,
        "no_answer",
    ),
    "E11": ("countdown", "division by zero", "<answer>25/(7-7)+3</answer>", 0.1, "wrong_numbers"),
    "E12": ("countdown", "no closing tag", "<answer>25+3*7", 0.0, "no_answer"),
    "E13": ("countdown", "a float", "<answer>46.0</answer>", 0.0, "no_answer"),
    "E14": ("multiplication", "scientific notation", "<answer>4.183e3</answer>", 0.0, "no_answer"),
    "E15": ("multiplication", "1 MB of digits", "<answer>" + "9" * 2**20 + "</answer>", 0.0, "no_answer"),
    "E16": (
        "multiplication",
        "fullwidth digits",
        "<answer>\uff14\uff11\uff18\uff13</answer>",
        0.0,
        "no_answer",
    ),
    "E17": ("multiplication", "an expression", "<answer>47*89</answer>", 0.0, "no_answer"),
}


@pytest.mark.parametrize("row", sorted(ANSWERS, key=lambda r: int(r[1:])))
def test_bad_model_output_gets_the_documented_penalty(row: str) -> None:
    task, _, text, reward, reason = ANSWERS[row]
    if task == "frozenlake":
        env = FrozenLakeTextEnv(desc=("SFFF", "FHFH", "FFFH", "HFFG"), max_actions_per_turn=1)
        env.reset(seed=0)
        _, got, terminated, _, info = env.step(text)
        assert (got, info["reason"], terminated) == (reward, reason, False)
        assert env.state == 0  # an invalid turn does not move the player
    elif task == "countdown":
        assert countdown.score_and_reason(text, TARGET, NUMS) == (reward, reason)
    else:
        assert multiplication.score_and_reason(text, 47, 89) == (reward, reason)
    assert make_task(TaskConfig(name=task))  # the task exists under the name the table uses


# ----------------------------------------------------------------------------- the table is the tests


def doc_rows() -> dict[str, list[str]]:
    rows = {}
    for line in DOC.read_text().splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) >= 4 and re.fullmatch(r"[FOTAKME]\d+", cells[0]):
            rows[cells[0]] = cells
    return rows


def test_docs_table_matches_the_tests() -> None:
    rows = doc_rows()
    assert set(rows) == set(CLI_ROWS) | set(MODAL_ROWS) | set(ANSWERS)
    for row, (_, _, command, excerpt) in {**CLI_ROWS, **MODAL_ROWS}.items():
        assert f"`{command}`" == rows[row][3], row
        assert f"`{excerpt}`" == rows[row][4], row
    for row, (task, _, _, reward, reason) in ANSWERS.items():
        assert rows[row][1] == task and rows[row][3] == f"{reward:g}, `{reason}`", row


def markdown_tables() -> str:
    """The two tables of docs/reliability.md (python tests/test_bad_input.py prints them)."""
    out = ["| id | input | bad value | command | the `error:` line contains |", "|---|---|---|---|---|"]
    for row, (what, bad, command, excerpt) in {**CLI_ROWS, **MODAL_ROWS}.items():
        out.append(f"| {row} | {what} | {bad} | `{command}` | `{excerpt}` |")
    out += ["", "| id | task | bad value | reward, reason |", "|---|---|---|---|"]
    for row, (task, bad, _, reward, reason) in ANSWERS.items():
        out.append(f"| {row} | {task} | {bad} | {reward:g}, `{reason}` |")
    return "\n".join(out)


if __name__ == "__main__":
    print(markdown_tables())
