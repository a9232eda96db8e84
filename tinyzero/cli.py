"""Shared command-line plumbing: ``--config FILE key=value ...`` → a validated Config."""

from __future__ import annotations

import argparse
import os
import shlex
import shutil
import sys

from tinyzero.config import Config, load_config


class _Parser(argparse.ArgumentParser):
    """argparse that reports usage errors as one ``error:`` line with exit code 2 (no usage dump)."""

    def error(self, message: str) -> None:  # type: ignore[override]
        self.exit(2, f"error: {message} (see --help)\n")

    def parse_args(self, args=None, namespace=None):  # type: ignore[override]
        """Overrides may come before, between or after the flags: ``a=1 --resume b=2``."""
        return self.parse_intermixed_args(args, namespace)


def config_parser(description: str) -> argparse.ArgumentParser:
    parser = _Parser(description=description, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument(
        "--config", default=None, help="YAML file (see configs/); defaults come from tinyzero/config.py"
    )
    parser.add_argument(
        "overrides", nargs="*", help="dotted overrides, e.g. task.name=countdown training.lr=1e-3"
    )
    return parser


def config_from_args(args: argparse.Namespace) -> Config:
    return load_config(args.config, args.overrides)


def python_command() -> str:
    """How to call this interpreter again: ``python`` when that is what PATH finds, else its path."""
    on_path = shutil.which("python")
    if on_path and os.path.abspath(on_path) == os.path.abspath(sys.executable):
        return "python"
    exe = os.path.abspath(sys.executable)
    rel = os.path.relpath(exe)
    return rel if not rel.startswith("..") else exe


def rerun_command(argv: list[str], world_size: int = 1, extra: str = "") -> str:
    """The command line that ran this process (``argv`` = ``sys.argv``), with ``extra`` appended once.

    Under torchrun (``world_size`` > 1) the launcher is named again; a single process gets the Python
    that ran it, so a command copied from the message works without guessing the environment.
    """
    args = [*argv[1:], *([extra] if extra and extra not in argv else [])]
    script = os.path.relpath(argv[0]) if os.path.isabs(argv[0]) else argv[0]
    if world_size > 1:
        launcher = ["torchrun", "--standalone", f"--nproc_per_node={world_size}"]
    else:
        launcher = [python_command()]
    return shlex.join([*launcher, script, *args])
