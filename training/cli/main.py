"""The `musicsae` command line: one thin argparse front over the three packages.

Each command group lives in its own `training/cli/<group>.py` module exposing `register(subparsers)`; the module
adds its parsers and sets `func` to a callable taking the parsed namespace and returning an exit code.
Heavy imports (torch, audiocraft, sounddevice) happen inside those callables, so `--help` is instant.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib
import signal
import sys
import threading
from collections.abc import Iterator, Sequence

# (group, module): group None registers at top level, otherwise under `musicsae GROUP ...`.
COMMANDS: list[tuple[str | None, str]] = [
    (None, "training.cli.models"),
    (None, "training.cli.data"),
    ("collect", "training.cli.collect"),
    ("sae", "training.cli.sae"),
    ("concept", "training.cli.concept"),
    ("render", "training.cli.render"),
    ("eval", "training.cli.eval"),
    ("export", "training.cli.export"),
    (None, "training.cli.live"),
    (None, "training.cli.dashboard"),
    (None, "training.cli.demo"),
]

GROUP_HELP = {
    "collect": "collect activations into an activation store",
    "sae": "train, evaluate and export sparse autoencoders",
    "concept": "find concepts from examples and manage the concept bank",
    "render": "render audio offline with concept edits",
    "eval": "measure steering with an outside judge",
    "export": "export models for other hosts (nn~ in Max/MSP and Pure Data)",
}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="musicsae",
        description="Sparse autoencoders that find and steer musical concepts in RAVE and MusicGen.",
    )
    parser.add_argument(
        "-v",
        "--verbose",
        action="store_true",
        help="show third-party warnings, log lines and progress bars (silenced by default)",
    )
    top = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    groups: dict[str, argparse._SubParsersAction] = {}
    for group, module_name in COMMANDS:
        module = importlib.import_module(module_name)
        if group is None:
            module.register(top)
            continue
        if group not in groups:
            group_parser = top.add_parser(group, help=GROUP_HELP[group], description=GROUP_HELP[group])
            groups[group] = group_parser.add_subparsers(dest=f"{group}_command", metavar="SUBCOMMAND", required=True)
        module.register(groups[group])
    return parser


def command_parsers(parser: argparse.ArgumentParser, prefix: str = "") -> dict[str, argparse.ArgumentParser]:
    """Every leaf command's parser by its name ("render rave", "live"), e.g. for tests that check an option
    means the same in every command."""
    subs = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
    if not subs:
        return {prefix.strip(): parser}
    out = {}
    for name, sub in subs[0].choices.items():
        out.update(command_parsers(sub, f"{prefix} {name}"))
    return out


class Terminated(KeyboardInterrupt):
    """SIGTERM (a launcher, `timeout`, systemd, a DAW stopping its child) raised in the main thread: a
    KeyboardInterrupt, so every command stops on it as on Ctrl-C (temporary files removed, checkpoints kept,
    streams closed)."""


def _on_sigterm(signum: int, frame: object) -> None:
    raise Terminated


@contextlib.contextmanager
def _sigterm_stops() -> Iterator[None]:
    """SIGTERM raises `Terminated` while a command runs (left alone where it is not the default: an ignored
    SIGTERM stays ignored; outside the main thread no handler can be set)."""
    if threading.current_thread() is not threading.main_thread() or signal.getsignal(signal.SIGTERM) != signal.SIG_DFL:
        yield
        return
    signal.signal(signal.SIGTERM, _on_sigterm)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, signal.SIG_DFL)


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point: parse, dispatch, and turn `UserError` into one line on stderr; Ctrl-C and SIGTERM stop a
    command with one line (exit 130 and 143) after its cleanup ran."""
    from sae.errors import UserError
    from training.cli.quiet import quiet

    args = build_parser().parse_args(argv)
    try:
        with _sigterm_stops(), quiet(args.verbose):
            return int(args.func(args) or 0)
    except UserError as exc:
        print(f"musicsae: error: {exc}", file=sys.stderr)
        return 2
    except Terminated:
        print("musicsae: terminated", file=sys.stderr)
        return 143
    except KeyboardInterrupt:
        print("musicsae: interrupted", file=sys.stderr)
        return 130
