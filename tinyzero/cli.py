"""Shared command-line plumbing: ``--config FILE key=value ...`` → a validated Config."""

from __future__ import annotations

import argparse

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
