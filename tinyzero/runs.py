"""Reading what train.py leaves in a run directory: ``metrics.jsonl``, ``summary.json``, ``config.yaml``.

``evaluate.py --compare`` (``tinyzero.evaluation``) and ``--plot`` (``tinyzero.plots``) both read runs;
this module sits below them so that neither imports the other.
"""

from __future__ import annotations

import json
from pathlib import Path

from tinyzero.errors import UserError


def read_metrics(run_dir: str | Path) -> list[dict]:
    """The run's metrics.jsonl as a list of dicts; UserError if missing or unreadable."""
    run = Path(run_dir)
    path = run / "metrics.jsonl"
    if not path.is_file():
        raise UserError(
            f"'{run}' has no metrics.jsonl: pass a run directory written by train.py (runs/<name>)"
        )
    rows = []
    lines = path.read_text().splitlines()
    for i, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            rows.append(json.loads(line))
        except json.JSONDecodeError:
            if i == len(lines):  # the last line of a live run may be half-written: skip it
                continue
            raise UserError(f"'{path}' line {i} is not JSON: the file is corrupt") from None
    return rows


def run_info(run_dir: str | Path) -> dict:
    """algorithm / task / summary of a run dir (summary.json if finished, else config.yaml + metrics)."""
    run = Path(run_dir)
    rows = read_metrics(run)
    summary: dict = {}
    if (run / "summary.json").is_file():
        try:
            summary = json.loads((run / "summary.json").read_text())
        except json.JSONDecodeError:
            summary = {}
    cfg: dict = {}
    if (run / "config.yaml").is_file():
        from omegaconf import OmegaConf

        try:
            cfg = OmegaConf.to_container(OmegaConf.load(run / "config.yaml")) or {}  # type: ignore[assignment]
        except Exception:  # noqa: BLE001 - a broken config only costs the labels
            cfg = {}
    evals = [m for m in rows if "eval/greedy_success" in m]
    kls = [m["kl"] for m in rows if isinstance(m.get("kl"), int | float)]
    last = rows[-1] if rows else {}
    return {
        "run": run.name,
        "path": str(run),
        "algorithm": summary.get("algorithm") or cfg.get("algorithm", {}).get("name"),
        "task": summary.get("task") or cfg.get("task", {}).get("name"),
        "iterations": summary.get("iterations", last.get("iteration")),
        "base_greedy": summary.get("base/greedy_success", evals[0]["eval/greedy_success"] if evals else None),
        "final_greedy": summary.get(
            "eval/greedy_success", evals[-1]["eval/greedy_success"] if evals else None
        ),
        "final_sampled": summary.get(
            "eval/sampled_success", evals[-1].get("eval/sampled_success") if evals else None
        ),
        "elapsed_s": summary.get("elapsed_s", last.get("elapsed_s")),
        "generated_tokens": summary.get("generated_tokens", last.get("generated_tokens")),
        "kl": kls[-1] if kls else None,
        "finished": bool(summary),
    }
