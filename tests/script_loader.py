"""Load a repository script (bench/*.py, evaluate.py) as a module from its file, for tests.

Why from the file: the scripts are not part of the package, and the repository root need not be on
sys.path when pytest runs.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path
from types import ModuleType

ROOT = Path(__file__).resolve().parents[1]


def load_script(relative: str, name: str) -> ModuleType:
    """The module in ``ROOT / relative``, executed once per call under ``name``."""
    spec = importlib.util.spec_from_file_location(name, ROOT / relative)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module
