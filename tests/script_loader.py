"""Load a repository script (bench/*.py, evaluate.py) as a module from its file, or run it as a
user does, for tests.

Why from the file: the scripts are not part of the package, and the repository root need not be on
sys.path when pytest runs.
"""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path
from types import ModuleType

ROOT = Path(__file__).resolve().parents[1]


def load_script(relative: str, name: str) -> ModuleType:
    """The module in ``ROOT / relative``, executed once per call under ``name``."""
    spec = importlib.util.spec_from_file_location(name, ROOT / relative)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def run_script(
    relative: str, *args: str, timeout: int = 600, one_thread: bool = False, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess:
    """``python <relative> <args>`` from the repository root, output captured as text.

    ``one_thread``: OMP_NUM_THREADS=1, which keeps a ``--quick`` benchmark's torch at one thread (and
    its run short) on a machine busy with other tests. ``env``: variables set on top of this process's.
    """
    env = {**os.environ, **(env or {}), **({"OMP_NUM_THREADS": "1"} if one_thread else {})}
    return subprocess.run(
        [sys.executable, relative, *args], cwd=ROOT, env=env, capture_output=True, text=True, timeout=timeout
    )


def run_bench(
    relative: str, out: Path, *args: str, timeout: int = 600, one_thread: bool = False
) -> tuple[subprocess.CompletedProcess, dict]:
    """Run a benchmark script with ``--out out`` as a user does; its output and the JSON it wrote.

    Fails the calling test, with the end of stderr, when the script exits non-zero.
    """
    proc = run_script(relative, *args, "--out", str(out), timeout=timeout, one_thread=one_thread)
    assert proc.returncode == 0, proc.stderr[-2000:]
    return proc, json.loads(out.read_text())
