"""The `musicsae` command line: one module per command group, wired in `training/cli/main.py`."""

from training.cli.main import main

__all__ = ["main"]
