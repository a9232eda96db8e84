"""The Dockerfile installs the package exactly as the README says (bash install.sh) and runs the smoke
test; .dockerignore keeps local venvs, runs and caches out of the build context. Docker itself is not
needed: these checks read the files.

Run: pytest tests/test_packaging.py -q        (< 1 s)
"""

from __future__ import annotations

import re
import shlex
from pathlib import Path

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


def readme_install_commands() -> list[str]:
    """The install commands of the README's quick start (what precedes ``&&`` in its bash blocks)."""
    blocks = re.findall(r"```bash\n(.*?)```", (ROOT / "README.md").read_text(), flags=re.S)
    return [line.split("&&")[0].strip() for b in blocks for line in b.splitlines() if "install" in line]


def test_dockerfile_installs_like_the_readme() -> None:
    steps = instructions()
    assert steps[0][0] == "FROM" and re.fullmatch(r"python:3\.11-slim(@sha256:\w+)?", steps[0][1])
    runs = [args for word, args in steps if word == "RUN"]
    readme = readme_install_commands()
    assert readme and set(readme) == {"bash install.sh"}
    assert runs == sorted(set(readme))  # the same install, and nothing installed behind the README's back
    # The whole source is in the image before install.sh runs (it installs the package editable).
    kinds = [w for w, _ in steps]
    assert ("COPY", ". .") in steps and kinds.index("COPY") < kinds.index("RUN")


def test_dockerfile_runs_the_smoke_test_with_install_sh_venv() -> None:
    steps = dict(instructions())
    assert shlex.split(steps["CMD"].strip("[]").replace(",", " ")) == ["python", "scripts/run_smoke.py"]
    venv = re.search(r"VENV=\$\{VENV:-([^}]+)\}", (ROOT / "install.sh").read_text()).group(1)
    workdir = steps["WORKDIR"]
    path = next(a for w, a in instructions() if w == "ENV" and "PATH=" in a)
    assert f"PATH={workdir}/{venv}/bin:" in path  # `python` in CMD is the venv install.sh created
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
