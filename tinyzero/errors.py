"""User-facing errors: one line, exit code 2, no traceback.

Why a single exception type: every entry point (train.py, evaluate.py, scripts/) wraps its main in
``run_cli``, so a wrong key, a missing file or a corrupt checkpoint always reads the same way:
``error: <what is wrong and how to fix it>``. Real bugs still raise with a full traceback.
"""

from __future__ import annotations

import errno
import importlib.util
import os
import sys
from collections.abc import Callable

# File-system failures that are the environment's, not the program's: a full disk, a read-only or
# forbidden directory, a missing parent folder of an output path.
_ENV_ERRNOS = {errno.ENOSPC, errno.EDQUOT, errno.EFBIG, errno.EACCES, errno.EPERM, errno.EROFS, errno.ENOENT}


# What the entry points need before anything else can run (import name → pip package).
REQUIRED_PACKAGES = {
    "torch": "torch",
    "numpy": "numpy",
    "gymnasium": "gymnasium",
    "omegaconf": "omegaconf",
    "safetensors": "safetensors",
    "tqdm": "tqdm",
}


def missing_packages() -> list[str]:
    """pip names of the required packages this Python cannot import (found without importing them)."""
    return [pkg for mod, pkg in REQUIRED_PACKAGES.items() if importlib.util.find_spec(mod) is None]


def require_packages() -> None:
    """Exit 2 with one line when the project's packages are missing, instead of a ModuleNotFoundError.

    Why: the usual cause is running ``python train.py`` with the system Python instead of the venv
    that ``install.sh`` made, and the traceback does not say so.
    """
    missing = missing_packages()
    if not missing:
        return
    venv = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), ".venv")
    activate = os.path.join(os.path.relpath(venv), "bin", "activate")
    hint = (
        f"this Python ({sys.executable}) is not the project's environment: run `source {activate}` first"
        if os.path.isdir(venv) and not sys.prefix.startswith(os.path.abspath(venv))
        else "install with `bash install.sh` (or `pip install -e .` in an environment that already has torch)"
    )
    print(f"error: missing package(s): {', '.join(missing)}; {hint}", file=sys.stderr)
    sys.exit(2)


class UserError(Exception):
    """A mistake the user can fix (bad config, missing file, corrupt checkpoint)."""


class Interrupted(KeyboardInterrupt):
    """Ctrl-C handled cleanly (e.g. a checkpoint was saved first); the message says what was kept."""


def run_cli(main: Callable[[], int | None]) -> None:
    """Run ``main`` and turn UserError into ``error: ...`` on stderr with exit code 2."""
    try:
        code = main()
    except UserError as e:
        print(f"error: {e}", file=sys.stderr)
        sys.exit(2)
    except OSError as e:
        if e.errno not in _ENV_ERRNOS:
            raise
        where = f" '{e.filename}'" if e.filename else ""
        print(
            f"error: cannot write or read{where}: {e.strerror} (check the path, permissions, free space)",
            file=sys.stderr,
        )
        sys.exit(2)
    except KeyboardInterrupt as e:  # 130 = 128 + SIGINT, the shell's convention for Ctrl-C
        print(f"interrupted: {e}" if str(e) else "interrupted", file=sys.stderr)
        sys.exit(130)
    sys.exit(code or 0)
