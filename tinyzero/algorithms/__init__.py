"""The algorithms. ``tinyzero/algorithms/interface.py`` says what each module provides (``ALGORITHM``);
``tinyzero.config.ALGORITHMS`` names them; adding one is a file here and a line there
(docs/extending.md)."""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

from tinyzero.config import ALGORITHMS

if TYPE_CHECKING:
    from tinyzero.algorithms.interface import Algorithm


def get_algorithm(name: str) -> Algorithm:
    """The interface (collect, prepare, loss) of the algorithm ``algorithm.name`` names (validated by
    the config, so ``name`` is registered)."""
    return importlib.import_module(ALGORITHMS[name]).ALGORITHM
