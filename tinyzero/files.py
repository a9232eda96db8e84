"""File helpers shared by every layer that writes weights: model directories, checkpoints, exports.

They sit at the bottom, beside ``errors``, so that ``models.io``, ``models.hf`` and ``checkpoint`` can
all use them without importing one another (which is how an import cycle between them once began).
"""

from __future__ import annotations

import os
from pathlib import Path


def readable_by_all(path: str | Path) -> None:
    """Give a file the mode ``open()`` would (0666 minus the umask): safetensors writes its files 0600,
    which hides weights from the other users of a shared run or cache directory, unlike their JSON."""
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(path, 0o666 & ~umask)
