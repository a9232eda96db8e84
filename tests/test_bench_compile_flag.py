"""``--compile`` on a machine without a C++ compiler: the benchmarks that offer it stop at once with one
line and exit status 2 (inductor would otherwise fail deep inside the first compiled call).

Run: pytest tests/test_bench_compile_flag.py -q        (~10 s)
"""

from __future__ import annotations

import pytest
from script_loader import run_script


@pytest.mark.parametrize("script", ["bench/generation.py", "bench/train_step.py"])
def test_compile_without_a_compiler_is_one_line_and_exit_2(script: str, tmp_path) -> None:
    empty = {"PATH": str(tmp_path)}  # an empty folder: no g++, c++ or clang++ on PATH
    proc = run_script(
        script, "--quick", "--compile", "--out", str(tmp_path / "out.json"), timeout=120, env=empty
    )
    assert proc.returncode == 2, proc.stderr
    assert "Traceback" not in proc.stderr
    assert proc.stderr.strip().splitlines() == [
        "error: --compile needs a C++ compiler (g++/clang++) for torch.compile's CPU backend: "
        "install one (e.g. apt-get install g++) or leave out --compile"
    ]
    assert not (tmp_path / "out.json").exists()  # nothing measured, nothing written
