"""evaluate.py and tinyzero/evaluation/, tinyzero/plots.py: the evaluator on a base model and on a briefly
trained checkpoint (figures in range, stable JSON keys), failure reasons of constructed episodes, the
fixed-plan check, plots and the compare table, and one-line errors with exit code 2.

Run: pytest tests/test_evaluation.py -q        (~20 s on 2 CPU cores; the smoke run is trained once)
"""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from tinyzero import evaluation as E
from tinyzero.checkpoint import resolve_checkpoint
from tinyzero.config import load_config
from tinyzero.context import Turn
from tinyzero.environments import CountdownProblem, MultiplicationProblem, make_task
from tinyzero.environments.countdown import solve
from tinyzero.errors import UserError
from tinyzero.evaluation.reports import _transcript
from tinyzero.evaluation.running import _pass_ks
from tinyzero.models.tokenizer import CharTokenizer
from tinyzero.plots import plot_frozenlake_episodes, plot_learning_curves
from tinyzero.rollout import Episode
from tinyzero.trainer import TinyZeroTrainer

ROOT = Path(__file__).resolve().parents[1]
SMOKE = ROOT / "configs" / "smoke.yaml"
ENV = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(ROOT)}
MAP = ("SFFF", "FHFH", "FFFH", "HFFG")  # Gymnasium's standard 4x4 map
PNG = b"\x89PNG\r\n\x1a\n"


def evaluate_main():
    """evaluate.py's main, loaded from its file (the repository root need not be on sys.path)."""
    from script_loader import load_script

    return load_script("evaluate.py", "evaluate_cli").main


def overrides(root: Path, *extra: str) -> list[str]:
    return [
        f"run.out_dir={root / 'runs'}",
        f"pretrain.cache_dir={root / 'cache' / 'base_models'}",
        "run.device=cpu",
        "run.threads=1",
        *extra,
    ]


@pytest.fixture(scope="session")
def runs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Two tiny runs of the smoke config (ragen 2 iterations, grpo 1), sharing one base model."""
    torch.set_num_threads(1)
    root = tmp_path_factory.mktemp("evaluation")
    a = TinyZeroTrainer(load_config(SMOKE, overrides(root)), progress=False)
    a.train()
    b_cfg = load_config(
        SMOKE, overrides(root, "run.name=grpo", "algorithm.name=grpo", "training.total_iterations=1")
    )
    TinyZeroTrainer(b_cfg, progress=False).train()
    return {
        "root": root,
        "run": a.run_dir,
        "run_b": root / "runs" / "grpo",
        "base": root / "cache" / "base_models" / a.base_key,
    }


def check_figures(f: dict, samples: int) -> None:
    assert tuple(f) == E.TOP_KEYS
    for mode in ("greedy", "sampled"):
        assert tuple(f[mode]) == E.EPISODE_KEYS
        assert 0.0 <= f[mode]["success"] <= 1.0 and 0.0 <= f[mode]["format_rate"] <= 1.0
        assert f[mode]["response_length"] >= 0 and 1 <= f[mode]["turns"] <= 6
    assert list(f["pass_at_k"]) == [str(k) for k in _pass_ks(samples)]
    values = list(f["pass_at_k"].values())
    assert all(0.0 <= v <= 1.0 for v in values) and values == sorted(values)  # pass@k grows with k
    assert math.isclose(values[0], f["sampled"]["success"])  # pass@1 = mean sampled success
    assert 0.0 <= f["mean_optimum"] <= 1.0
    for g in f["groups"]:
        assert tuple(g) == E.GROUP_KEYS and 0.0 <= g["greedy_success"] <= 1.0
    assert tuple(f["reads_map"]) == E.READS_MAP_KEYS
    assert 0.0 <= f["reads_map"]["fixed_plan_share"] <= 1.0
    assert tuple(f["failures"]["greedy"]) == E.FAILURE_KINDS
    n = f["settings"]["problems"] * len(f["groups"])
    assert sum(f["failures"]["greedy"].values()) == round(n * (1 - f["greedy"]["success"]))
    assert sum(f["failures"]["sampled"].values()) == round(n * samples * (1 - f["sampled"]["success"]))
    json.dumps(f, allow_nan=False)  # JSON-ready as is


# ---------------------------------------------------------------------------------------------- the evaluator
def test_base_model(runs: dict[str, Path]) -> None:
    src = E.load_source(runs["base"], "frozenlake", str(SMOKE), overrides(runs["root"]), "cpu")
    assert src.kind == "base_model" and not src.notes  # the smoke config reproduces its key: no warning
    ev = E.evaluate_source(src, problems=5, samples=4)
    f = ev.figures
    check_figures(f, 4)
    assert f["source"]["kind"] == "base_model" and f["source"]["iteration"] is None
    assert f["kl"]["value"] == 0.0  # a base model is its own reference
    assert len(ev.records) == 5 and all(len(r.sampled) == 4 for r in ev.records)


def test_larger_maps_get_a_horizon_where_the_optimum_is_not_zero(runs: dict[str, Path]) -> None:
    """--sizes on larger maps scales max_turns with the corner-to-corner path, so value iteration's
    optimum is the maps' own (1 for a solvable non-slippery map), not 0 by a too-short horizon."""
    src = E.load_source(runs["run"], device="cpu")  # smoke config: 4×4 maps, max_turns 6
    assert src.cfg.task.size == 4 and src.cfg.task.max_turns == 6
    ev = E.evaluate_source(src, problems=3, samples=1, sizes=[3, 4, 6])
    names = [g["name"] for g in ev.figures["groups"]]
    assert names == ["3x3 not slippery", "4x4 not slippery", "6x6 not slippery, 10 turns"]  # 6·5/3
    assert ev.figures["groups"][2]["mean_optimum"] == 1.0
    # the horizon it replaces: with 6 turns no 6×6 map can be solved (its shortest path is ≥ 10 moves)
    six = make_task(load_config(None, ["task.size=6", "task.max_turns=6", "task.num_test=3"]).task)
    assert all(six.optimum(p) == 0.0 for p in six.problems("test"))


def test_checkpoint_figures_report_and_pictures(runs: dict[str, Path], tmp_path: Path) -> None:
    src = E.load_source(runs["run"], device="cpu")  # the run dir itself resolves to checkpoints/latest
    assert src.kind == "checkpoint" and src.iteration == 2 and src.path.name == "iter_000002"
    ev = E.evaluate_source(src, problems=4, samples=2, sizes=[3, 4], slippery=[False, True])
    f = ev.figures
    check_figures(f, 2)
    assert [g["name"] for g in f["groups"]] == [
        "3x3 not slippery",
        "3x3 slippery",
        "4x4 not slippery",
        "4x4 slippery",
    ]
    assert f["groups"][2]["mean_optimum"] == 1.0  # solvable non-slippery maps: value iteration says 1
    assert f["kl"]["value"] is not None and math.isfinite(f["kl"]["value"])
    assert f["kl"]["reference"].endswith(src.base_key)
    assert (
        E.evaluate_source(src, problems=4, samples=2, sizes=[3, 4], slippery=[False, True]).figures["greedy"]
        == f["greedy"]
    )  # seeded: the same figures again

    E.write_json(f, tmp_path / "e.json")
    assert tuple(json.loads((tmp_path / "e.json").read_text())) == E.TOP_KEYS
    pic = E.write_episode_pictures(ev, 3, tmp_path / "e_episodes.png")
    assert pic is not None and pic.read_bytes().startswith(PNG) and pic.stat().st_size > 10_000
    report = E.markdown_report(ev, examples=2, picture=pic.name)
    assert "## Failure cases" in report and "## Does the policy read the map?" in report
    assert "e_episodes.png" in report
    assert "turns" in E.console_table(f)


def test_cli_end_to_end_in_process(runs: dict[str, Path], tmp_path: Path, capsys) -> None:
    main = evaluate_main()

    args = ["--checkpoint", str(runs["run"] / "checkpoints" / "latest"), "--episodes", "3", "--samples", "2"]
    out = [*args, "--json", str(tmp_path / "e.json"), "--report", str(tmp_path / "r.md"), "--pictures", "2"]
    assert main(out) == 0
    assert "greedy" in capsys.readouterr().out
    assert json.loads((tmp_path / "e.json").read_text())["settings"]["problems"] == 3
    assert (tmp_path / "r_episodes.png").read_bytes().startswith(PNG)
    assert "![evaluated episodes](r_episodes.png)" in (tmp_path / "r.md").read_text()


# ---------------------------------------------------------------------------------------------- failure kinds
def play(task, problem, actions: list[str]) -> Episode:
    """A real episode of ``task`` on ``problem`` with the given action texts (as rollout records it)."""
    tok = CharTokenizer()
    env = task.episode(problem, seed=0)
    ep, obs = Episode(problem=problem), env.prompt
    for text in actions:
        result = env.step(text)
        ep.turns.append(Turn(obs, tok.encode(text, eos=True)))
        ep.actions.append(text)
        ep.reward += result.reward
        ep.success = bool(result.info.get("success"))
        ep.format_ok = ep.format_ok and bool(result.info.get("format_ok", True))
        ep.reason, ep.done, obs = result.info.get("reason", ""), result.done, result.observation
        if result.done:
            break
    return ep


def task_of(name: str, *extra: str):
    return make_task(load_config(SMOKE, [f"task.name={name}", *extra]).task)


def test_countdown_failure_reasons() -> None:
    task = task_of("countdown")
    q = CountdownProblem((3, 7, 25), 46)
    cases = {
        "25+3*7": ("no_answer", "no complete"),
        "<answer>seven</answer>": ("no_answer", "not an arithmetic expression"),
        "<answer>3+7</answer>": ("wrong_numbers", "must use [3, 7, 25]"),
        "<answer>25+3+7</answer>": ("wrong_value", "25+3+7 = 35, the target is 46"),
        "<answer>25/(7-7)+3</answer>": ("wrong_numbers", "uses [3, 7, 7, 25]"),
    }
    for text, (kind, why) in cases.items():
        ep = play(task, q, [text])
        assert E.failure_kind(task, ep) == kind == ep.reason, text
        assert why in E.explain_failure(task, ep), (text, E.explain_failure(task, ep))
    assert E.failure_kind(task, play(task, q, [f"<answer>{solve(q.numbers, q.target)}</answer>"])) is None
    full = Episode(problem=q, reason="context_full", done=True)  # the prompt did not fit: no turn at all
    assert E.failure_kind(task, full) == "context_full"
    assert "Use 3 7 25 to make 46" in _transcript(task, full)


def test_multiplication_failure_reasons() -> None:
    task = task_of("multiplication")
    q = MultiplicationProblem(47, 89)
    ep = play(task, q, ["<answer>4180</answer>"])
    assert E.failure_kind(task, ep) == "wrong_value"
    assert E.explain_failure(task, ep) == "answered 4180, but 47*89 = 4183 (off by -3)"
    assert E.failure_kind(task, play(task, q, ["<answer>4,183</answer>"])) == "no_answer"
    assert E.failure_kind(task, play(task, q, ["<answer>4183</answer>"])) is None


def test_frozenlake_failure_reasons_and_paths() -> None:
    task = task_of("frozenlake")  # smoke: 6 turns, one move a turn, not slippery
    hole = play(task, MAP, ["Right", "Down"])
    assert E.failure_kind(task, hole) == "hole"
    assert E.episode_path(MAP, hole, task.cfg) == [(0, 0), (0, 1), (1, 1)]
    assert "hole at row 2, column 2 on turn 2" in E.explain_failure(task, hole)

    stuck = play(task, MAP, ["Left"] * 6)  # into the wall six times
    assert E.failure_kind(task, stuck) == "out_of_turns"
    assert "still on the ice at row 1, column 1 after 6 turns" in E.explain_failure(task, stuck)

    invalid = play(task, MAP, ["Down", "Jump", "Down", "Left", "Left", "Left"])
    assert E.failure_kind(task, invalid) == "invalid_action"
    assert "turn 2: 'Jump'" in E.explain_failure(task, invalid)

    solved = play(task, MAP, ["Down", "Down", "Right", "Right", "Down", "Right"])
    assert E.failure_kind(task, solved) is None and solved.success
    assert E.episode_path(MAP, solved, task.cfg)[-1] == (3, 3)


def test_countdown_turns_invalid_move_ends_the_episode_and_the_heading_says_only_that() -> None:
    """An illegal operation ends a countdown_turns episode at once: its report heading must not claim
    that the turns ran out (FrozenLake's invalid turns do run the clock down; this task's do not)."""
    task = task_of("countdown_turns", "task.restart=true", "task.max_turns=6")
    q = CountdownProblem((3, 11, 16), 49)
    ep = play(task, q, ["16/3", "11*3", "33+16"])  # 16/3 is not exact: the episode ends on turn 1
    assert E.failure_kind(task, ep) == "invalid_action" and len(ep.turns) == 1 < task.max_turns
    assert "ran out of turns" not in E.FAILURE_TITLES["invalid_action"]
    assert E.failure_kind(task, play(task, q, ["11*3", "33+16"])) is None


def test_slippery_path_ends_where_the_outcome_says(tmp_path: Path) -> None:
    task = task_of("frozenlake", "task.is_slippery=true", "task.max_turns=40")
    ep = play(task, MAP, ["Down"] * 40)
    assert ep.reason in ("hole", "solved")
    cells = E.episode_path(MAP, ep, task.cfg)
    assert MAP[cells[-1][0]][cells[-1][1]] == {"hole": "H", "solved": "G"}[ep.reason]
    assert all(abs(a[0] - b[0]) + abs(a[1] - b[1]) == 1 for a, b in zip(cells, cells[1:]))  # one cell a step
    pic = plot_frozenlake_episodes([{"desc": MAP, "path": cells, "outcome": ep.reason}], tmp_path / "s.png")
    assert pic.read_bytes().startswith(PNG)


def test_fixed_plan_tells_a_map_reader_from_a_plan_follower() -> None:
    task = task_of("frozenlake")
    plan = ["Down", "Down", "Right", "Right", "Down", "Right"]  # solves MAP
    hole_20 = ("SFFF", "FFFF", "HFFF", "FFFG")  # the plan falls in after two turns
    hole_22 = ("SFFF", "FFFF", "FFHF", "FFFG")  # ... after four turns
    assert E.replay_plan(MAP, plan, task.cfg)
    assert not E.replay_plan(hole_20, plan, task.cfg) and not E.replay_plan(hole_22, plan, task.cfg)

    def record(desc, actions):
        ep = play(task, desc, actions)
        return E.Record("g", task, desc, 1.0, ep, [ep])

    # a policy that ignores the map: episodes cut short by holes still vote for the same plan
    rm = E.reads_map([record(MAP, plan), record(hole_20, plan), record(hole_22, plan)])
    assert rm["fixed_plan"] == plan and rm["fixed_plan_share"] == 1.0
    assert rm["fixed_plan_success"] == pytest.approx(1 / 3)
    assert rm["maps_where_plan_fails"] == 2 and rm["greedy_success_where_plan_fails"] == 0.0

    # a policy that walks around the hole where the plan would fall in
    detour = ["Right", "Down", "Down", "Right", "Down", "Right"]
    rm = E.reads_map([record(MAP, plan), record(MAP, plan), record(hole_20, detour)])
    assert rm["fixed_plan"] == plan and rm["fixed_plan_share"] == pytest.approx(2 / 3)
    assert rm["maps_where_plan_fails"] == 1 and rm["greedy_success_where_plan_fails"] == 1.0


# ---------------------------------------------------------------------------------------------- runs
def test_plots_and_compare(runs: dict[str, Path], tmp_path: Path) -> None:
    written = plot_learning_curves([runs["run"], runs["run_b"]], tmp_path)
    assert [p.name for p in written] == ["learning_curves_iteration.png", "learning_curves_wallclock.png"]
    for p in written:
        assert p.read_bytes().startswith(PNG) and p.stat().st_size > 20_000
    infos, table = E.compare_runs([runs["run"], runs["run_b"]])
    assert [i["algorithm"] for i in infos] == ["ragen", "grpo"] and [i["iterations"] for i in infos] == [2, 1]
    lines = table.strip().splitlines()
    assert (
        len(lines) == 6 and "| smoke | ragen | frozenlake | 2 |" in lines[2] and "| grpo | grpo |" in lines[3]
    )
    # the labels say what was measured, and the note why evaluate.py --checkpoint differs
    assert "1 try per problem" in lines[0] and "last training batch" in lines[0]
    assert lines[4] == "" and "evaluate.py --checkpoint" in lines[5]


# ---------------------------------------------------------------------------------------------- errors
def cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "evaluate.py", *args], cwd=ROOT, env=ENV, capture_output=True, text=True, timeout=120
    )


@pytest.mark.parametrize(
    "args, needle",
    [
        (["--checkpoint", "no/such/run"], "not found"),
        (["--plot", "tests"], "no metrics.jsonl"),
    ],
)
def test_cli_errors_are_one_line_exit_2(args: list[str], needle: str) -> None:
    proc = cli(*args)
    assert proc.returncode == 2, proc.stderr
    assert proc.stderr.startswith("error:") and needle in proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1 and "Traceback" not in proc.stderr


def test_user_errors(runs: dict[str, Path], tmp_path: Path) -> None:
    main = evaluate_main()

    ckpt = runs["run"] / "checkpoints" / "latest"
    with pytest.raises(UserError, match="trained on task 'frozenlake', not 'countdown'"):
        E.load_source(ckpt, task="countdown")
    with pytest.raises(UserError, match="unknown task 'chess'"):
        E.load_source(ckpt, task="chess")
    with pytest.raises(UserError, match="trained on task 'frozenlake', not 'multiplication'"):
        E.load_source(runs["base"], task="multiplication")
    with pytest.raises(UserError, match="--episodes 0"):
        main(["--checkpoint", str(ckpt), "--episodes", "0"])
    with pytest.raises(UserError, match="--episodes 0"):
        E.evaluate_source(E.load_source(ckpt, device="cpu"), problems=0)
    with pytest.raises(UserError, match="no metrics.jsonl"):
        E.compare_runs([runs["run"], tmp_path])
    with pytest.raises(UserError, match="--config applies to base-model"):
        E.load_source(ckpt, config_file=str(SMOKE))

    bad = tmp_path / "iter_000001"  # a corrupt copy of a checkpoint
    bad.mkdir()
    real = resolve_checkpoint(ckpt)
    for name in ("model.safetensors", "model.json", "tokenizer.json"):
        (bad / name).write_bytes((real / name).read_bytes())
    with pytest.raises(UserError, match="state.json is missing"):
        E.load_source(bad)
    (bad / "state.json").write_text('{"config_yaml": ')
    with pytest.raises(UserError, match="is corrupt"):
        E.load_source(bad)
    (bad / "state.json").write_text((real / "state.json").read_text())
    (bad / "model.safetensors").write_bytes(b"not a safetensors file")
    with pytest.raises(UserError, match="corrupt weights"):
        E.load_source(bad)
