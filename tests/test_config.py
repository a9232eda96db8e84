"""Config loading and validation. Run: pytest tests/test_config.py -q"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from tinyzero.config import load_config, to_yaml
from tinyzero.errors import UserError

ROOT = Path(__file__).resolve().parents[1]


def test_defaults_and_overrides() -> None:
    cfg = load_config(
        ROOT / "configs/smoke.yaml", ["task.name=countdown", "training.lr=1e-3", "num_completions=3"]
    )
    assert cfg.task.name == "countdown"
    assert cfg.training.lr == pytest.approx(1e-3)
    assert cfg.num_completions == 3
    assert cfg.model.preset == "nano"  # from the YAML file
    assert cfg.astarpo.beta == 0.5  # schema default


@pytest.mark.parametrize("path", sorted((ROOT / "configs").glob("*.yaml")))
def test_every_shipped_config_loads(path: Path) -> None:
    load_config(path)


@pytest.mark.parametrize(
    ("overrides", "fragment"),
    [
        (["training.lrr=1"], "did you mean 'training.lr'"),
        (["num_completion=4"], "did you mean 'num_completions'"),
        (["training.lr=abc"], "training.lr"),
        (["task.name=chess"], "one of countdown"),
        (["training.total_iterations=0"], "positive"),
        (["astarpo.beta=-1"], "astarpo.beta"),
        (["rollout.top_p=1.5"], "rollout.top_p"),
        (["oops"], "key=value"),
    ],
)
def test_bad_values_raise_user_error(overrides: list[str], fragment: str) -> None:
    with pytest.raises(UserError, match=None) as err:
        load_config(None, overrides)
    assert fragment in str(err.value)
    assert "\n" not in str(err.value)


def test_missing_and_malformed_files(tmp_path: Path) -> None:
    with pytest.raises(UserError, match="not found"):
        load_config(tmp_path / "nope.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("training: [1, 2\n")
    with pytest.raises(UserError, match="cannot read"):
        load_config(bad)
    unknown = tmp_path / "unknown.yaml"
    unknown.write_text("trainin:\n  lr: 1.0\n")
    with pytest.raises(UserError, match="did you mean 'training'"):
        load_config(unknown)


@pytest.mark.parametrize(
    ("text", "where", "problem"),
    [
        ("training:\n  lr: 1e-3\n  x: [1, 2\nrun: {}\n", "line 4, column 4", "expected ',' or ']'"),
        ("training:\n  lr: 1e-3\n bad: 2\n", "line 3, column 2", "did not find expected key"),
        ("run:\n\tname: x\n", "line 2, column 1", "cannot start any token"),
    ],
)
def test_yaml_errors_keep_line_column_and_reason(tmp_path: Path, text: str, where: str, problem: str) -> None:
    """One line that says where the YAML breaks and why, not just "while scanning for the next token"."""
    bad = tmp_path / "bad.yaml"
    bad.write_text(text)
    with pytest.raises(UserError) as e:
        load_config(bad)
    msg = str(e.value)
    assert "\n" not in msg and msg.startswith(f"cannot read config '{bad}': {where}: ") and problem in msg


def test_yaml_round_trip(tmp_path: Path) -> None:
    cfg = load_config(None, ["astarpo.beta2=0.2", "task.is_slippery=true"])
    saved = tmp_path / "config.yaml"
    saved.write_text(to_yaml(cfg))
    assert load_config(saved) == cfg


@pytest.mark.parametrize(
    "argv",
    [
        ["--config", "configs/smoke.yaml", "training.lrr=1"],
        ["--config", "configs/missing.yaml"],
        ["--config", "configs/smoke.yaml", "task.name=chess"],
        ["--bogus-flag"],
    ],
)
def test_cli_errors_are_one_line_exit_2(argv: list[str]) -> None:
    proc = subprocess.run(
        [sys.executable, "train.py", *argv], cwd=ROOT, capture_output=True, text=True, timeout=60
    )
    assert proc.returncode == 2, proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), proc.stderr
    assert "Traceback" not in proc.stderr


def test_settings_without_effect_are_named() -> None:
    from tinyzero.config import ineffective_settings

    notes = ineffective_settings(load_config(None, ["algorithm.name=astarpo", "num_completions=4"]))
    assert len(notes) == 1 and notes[0].startswith(
        "num_completions=4 has no effect with algorithm.name=astarpo"
    )
    assert ineffective_settings(load_config(None, ["algorithm.name=ragen", "num_completions=4"])) == []
    assert any("grpo.*" in n for n in ineffective_settings(load_config(None, ["grpo.kl_coef=0.1"])))
    rloo = ineffective_settings(load_config(ROOT / "configs" / "frozenlake.yaml", ["algorithm.name=rloo"]))
    assert rloo == [
        "astarpo.v_star_source is used by algorithm.name=ragen only",
        "astarpo.huber_delta is used by algorithm.name=astarpo and ragen only",
        "astarpo.kl_coef is used by algorithm.name=astarpo and ragen only",
    ]
    stage1 = ["algorithm.name=ragen", "astarpo.num_value_samples=16"]
    assert [n.split(" (")[0] for n in ineffective_settings(load_config(None, stage1))] == [
        "astarpo.num_value_samples"
    ]
    assert ineffective_settings(load_config(None, [*stage1, "astarpo.v_star_source=table"])) == []
    assert ineffective_settings(load_config(None, ["training.lr_final=0.5"])) == [
        "training.lr_final has no effect with training.lr_schedule=constant"
    ]
    assert (
        ineffective_settings(load_config(None, ["training.lr_final=0.5", "training.lr_schedule=linear"]))
        == []
    )
    reset = ["training.total_iterations=100", "training.ref_reset_every=100"]
    assert ineffective_settings(load_config(None, reset)) == [
        "training.ref_reset_every=100 is not below training.total_iterations=100: π_ref is never reset"
    ]
    assert ineffective_settings(load_config(None, [*reset, "training.ref_reset_every=99"])) == []
    for name in ("default", "frozenlake", "countdown", "countdown_turns", "multiplication", "reverse"):
        assert ineffective_settings(load_config(ROOT / "configs" / f"{name}.yaml")) == [], name
