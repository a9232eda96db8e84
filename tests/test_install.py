"""install.sh picks the right PyTorch build: PyTorch's CPU wheel index on a machine without an NVIDIA GPU,
the default index with a one-line notice when that index cannot be reached, the default index (CUDA
build) when nvidia-smi lists a GPU. ``INSTALL_DRY_RUN=1`` prints the torch install command and installs
nothing, so these run in a second each; the probe of the index is real (a local HTTP server).

Run: pytest tests/test_install.py -q
"""

from __future__ import annotations

import http.server
import os
import socket
import subprocess
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def install(tmp_path: Path, index: str, path_prefix: Path | None = None) -> subprocess.CompletedProcess:
    env = {
        **os.environ,
        "INSTALL_DRY_RUN": "1",
        "TORCH_INDEX_URL": index,
        "VENV": str(tmp_path / "venv"),
        "PATH": f"{path_prefix}:{os.environ['PATH']}" if path_prefix else os.environ["PATH"],
    }
    return subprocess.run(
        ["bash", str(ROOT / "install.sh")], env=env, capture_output=True, text=True, timeout=60
    )


@pytest.fixture
def cpu_index(tmp_path: Path) -> Iterator[str]:
    """A reachable wheel index on the loopback interface (an empty folder with a torch/ page)."""
    root = tmp_path / "index"
    (root / "torch").mkdir(parents=True)
    (root / "torch" / "index.html").write_text("<html></html>")

    def handler(*args, **kwargs):
        return http.server.SimpleHTTPRequestHandler(*args, directory=str(root), **kwargs)

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}/"
    server.shutdown()


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]  # closed again when the socket is: nothing listens there


@pytest.fixture
def no_gpu(tmp_path: Path) -> Path:
    """A PATH entry whose nvidia-smi fails, as on a machine without an NVIDIA driver."""
    bin_dir = tmp_path / "nogpu"
    bin_dir.mkdir()
    (bin_dir / "nvidia-smi").write_text("#!/bin/sh\nexit 9\n")
    (bin_dir / "nvidia-smi").chmod(0o755)
    return bin_dir


def test_cpu_machine_uses_the_cpu_wheel_index(tmp_path: Path, cpu_index: str, no_gpu: Path) -> None:
    proc = install(tmp_path, cpu_index, no_gpu)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == f"pip install torch==2.13.0 --index-url {cpu_index}"
    assert proc.stderr == ""


def test_unreachable_index_falls_back_with_one_line(tmp_path: Path, no_gpu: Path) -> None:
    index = f"http://127.0.0.1:{closed_port()}/whl/cpu"
    proc = install(tmp_path, index, no_gpu)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "pip install torch==2.13.0"  # the default index
    notice = proc.stderr.strip().splitlines()
    assert len(notice) == 1 and index in notice[0] and "cannot be reached" in notice[0]


def test_gpu_machine_keeps_the_default_index(tmp_path: Path, cpu_index: str) -> None:
    bin_dir = tmp_path / "gpu"
    bin_dir.mkdir()
    (bin_dir / "nvidia-smi").write_text("#!/bin/sh\necho 'GPU 0: NVIDIA H100 (UUID: GPU-0)'\n")
    (bin_dir / "nvidia-smi").chmod(0o755)
    proc = install(tmp_path, cpu_index, bin_dir)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "pip install torch==2.13.0"


def test_requirements_txt_prefers_the_cpu_build_and_matches_pyproject() -> None:
    """The product description's quick start (pip install -r requirements.txt) adds the CPU index and
    lists exactly the package's runtime dependencies."""
    import tomllib

    lines = [ln.strip() for ln in (ROOT / "requirements.txt").read_text().splitlines()]
    lines = [ln for ln in lines if ln and not ln.startswith("#")]
    assert lines[0].startswith("--extra-index-url ") and lines[0].endswith("/whl/cpu")
    deps = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["dependencies"]
    assert lines[1:] == deps
