"""The Dockerfile installs PyTorch's CPU build (pinned, from the CPU wheel index install.sh uses) and
the package's runtime dependencies, then runs the smoke test; .dockerignore keeps local venvs, runs
and caches out of the build context. Docker itself is not needed: these checks read the files and run
the RUN's shell statements that need no network.

Run: pytest tests/test_packaging.py -q        (< 1 s)
"""

from __future__ import annotations

import os
import re
import shlex
import subprocess
from pathlib import Path

from tinyzero import cloud

ROOT = Path(__file__).resolve().parents[1]


def instructions() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) per Dockerfile instruction, continuation lines joined, comments dropped."""
    text = re.sub(r"\\\n", " ", (ROOT / "Dockerfile").read_text())
    out = []
    for line in text.splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            word, _, rest = line.partition(" ")
            out.append((word.upper(), rest.strip()))
    return out


def the_run() -> str:
    """The Dockerfile's single RUN (its install), continuation lines joined."""
    runs = [args for word, args in instructions() if word == "RUN"]
    assert len(runs) == 1
    return runs[0]


def index_line() -> str:
    """The RUN's statement that picks torch's wheel index (a shell assignment of ``url``)."""
    return re.search(r'url="[^;]*;', the_run()).group(0)


def shell(script: str, cwd: Path, **env: str) -> subprocess.CompletedProcess:
    base = {k: v for k, v in os.environ.items() if k != "TORCH_INDEX_URL"}
    return subprocess.run(["bash", "-c", script], cwd=cwd, env=base | env, capture_output=True, text=True)


def test_dockerfile_installs_cpu_torch_and_the_runtime_dependencies_only() -> None:
    steps = instructions()
    assert steps[0][0] == "FROM" and re.fullmatch(r"python:3\.11-slim(@sha256:\w+)?", steps[0][1])
    args = dict(a.split("=", 1) for w, a in steps if w == "ARG")
    assert args["TORCH_VERSION"] == cloud.TORCH_VERSION  # the Docker and the Modal image run one torch
    run = the_run()
    assert '"torch==${TORCH_VERSION}" --index-url "$url"' in run  # pinned, from the CPU wheel index
    assert "pip install -q ." in run and "[dev]" not in run  # runtime dependencies, no dev tools
    assert "torch.version.cuda" in run  # a CUDA build that slipped in stops the build
    # The whole source is in the image before the install runs.
    kinds = [w for w, _ in steps]
    assert ("COPY", ". .") in steps and kinds.index("COPY") < kinds.index("RUN")


def test_dockerfile_takes_the_cpu_index_install_sh_uses(tmp_path: Path) -> None:
    """One default for both installs: the RUN reads install.sh's TORCH_INDEX_URL; a build argument
    overrides it; with neither, the build stops in one line before downloading anything."""
    line = index_line()
    own = shell('eval "$(grep "^TORCH_INDEX_URL=" install.sh)"; echo "$TORCH_INDEX_URL"', ROOT).stdout.strip()
    assert own.startswith("https://")  # install.sh's own default, by its own assignment
    assert shell(f'{line} echo "$url"', ROOT).stdout.strip() == own
    assert shell(f'{line} echo "$url"', ROOT, TORCH_INDEX_URL="https://mirror/cpu").stdout.strip() == (
        "https://mirror/cpu"
    )
    (tmp_path / "install.sh").write_text("#!/usr/bin/env bash\n")  # no default to read
    guard = the_run().split("python -m venv")[0] + " echo reached"
    proc = shell(guard, tmp_path)
    assert proc.returncode == 2 and "reached" not in proc.stdout
    assert proc.stderr.startswith("error: ") and proc.stderr.count("\n") == 1


def test_dockerfile_runs_the_smoke_test_in_its_venv() -> None:
    steps = dict(instructions())
    assert shlex.split(steps["CMD"].strip("[]").replace(",", " ")) == ["python", "scripts/run_smoke.py"]
    venv = re.search(r"python -m venv (\S+);", the_run()).group(1)
    workdir = steps["WORKDIR"]
    path = next(a for w, a in instructions() if w == "ENV" and "PATH=" in a)
    assert f"PATH={workdir}/{venv}/bin:" in path  # `python` in CMD is the venv the RUN made
    assert (ROOT / "scripts" / "run_smoke.py").is_file()


def test_dockerignore_keeps_local_state_out() -> None:
    ignored = {
        line.strip()
        for line in (ROOT / ".dockerignore").read_text().splitlines()
        if line.strip() and not line.startswith("#")
    }
    assert {".git", ".venv", "runs", ".cache"} <= ignored
    for needed in ("install.sh", "pyproject.toml", "tinyzero", "scripts", "configs"):
        assert needed not in ignored
