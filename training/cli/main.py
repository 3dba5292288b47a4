"""The `musicsae` command line: one thin argparse front over the three packages.

Each command group lives in its own `training/cli/<group>.py` module exposing `register(subparsers)`; the module
adds its parsers and sets `func` to a callable taking the parsed namespace and returning an exit code.
Heavy imports (torch, audiocraft, sounddevice) happen inside those callables, so `--help` is instant.
"""

from __future__ import annotations

import argparse
import atexit
import contextlib
import errno
import importlib
import os
import signal
import stat
import sys
import threading
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import ClassVar, NoReturn, Self

from sae.errors import Terminated
from training.cli.args import Parser

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
    parser = Parser(
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


# the signals that stop a command, each with its one line's word and exit code (128 + the signal); SIGHUP (the
# terminal closed, an SSH connection dropped) killed `sae train` at once, losing every step since its last
# checkpoint, where SIGTERM kept the step in progress (hunt 203)
STOPPED = {signal.SIGINT: ("interrupted", 130), signal.SIGTERM: ("terminated", 143), signal.SIGHUP: ("hung up", 129)}


def _stop_raise(signum: int) -> NoReturn:
    """What a stop signal raises: KeyboardInterrupt for Ctrl-C, `Terminated` (knowing which) for the others."""
    raise KeyboardInterrupt if signum == signal.SIGINT else Terminated(signum)


def _leave_terminal(signum: int) -> None:
    """After a hang-up every write to the terminal fails (EIO): standard output and error that were the terminal go
    to /dev/null, so the cleanup and the checkpoint's line do not end the command in a traceback, exit 1 (hunt 205)."""
    if signum != signal.SIGHUP:
        return
    for fd in (1, 2):  # (a terminal hung up is no longer a tty to `isatty`: a character device, as /dev/null is)
        with contextlib.suppress(OSError):
            if stat.S_ISCHR(os.fstat(fd).st_mode):
                os.dup2(os.open(os.devnull, os.O_WRONLY), fd)


class Stops:
    """While a command runs, Ctrl-C raises KeyboardInterrupt and SIGTERM or SIGHUP `Terminated`, and the signal is
    remembered: a library that turns the interrupt into its own error (safetensors' reader raised ValueError)
    still stops the command as interrupted. Handlers someone else set (an ignored SIGTERM, `nohup`'s SIGHUP, a
    parent's SIGINT) are left alone; outside the main thread none can be set."""

    active: ClassVar[Stops | None] = None  # the command's, while it runs (`stop_handled`)

    def __init__(self) -> None:
        self.signum: int | None = None
        self.previous: dict[int, object] = {}

    def _on_signal(self, signum: int, frame: object) -> None:
        self.signum = signum
        _leave_terminal(signum)
        _stop_raise(signum)

    def _takes(self, current: object, default: object) -> bool:
        """Whether to replace a signal's `current` handler (its Python `default` is what no one else set)."""
        return current == default

    def __enter__(self) -> Self:
        if threading.current_thread() is threading.main_thread():
            defaults = ((signal.SIGINT, signal.default_int_handler), (signal.SIGTERM, signal.SIG_DFL),
                        (signal.SIGHUP, signal.SIG_DFL))  # fmt: skip
            for sig, default in defaults:
                if self._takes(signal.getsignal(sig), default):
                    self.previous[sig] = signal.signal(sig, self._on_signal)
        self.outer, Stops.active = Stops.active, self
        return self

    def __exit__(self, *exc: object) -> None:
        Stops.active = self.outer
        for sig, handler in self.previous.items():
            signal.signal(sig, handler)


def stop_handled() -> None:
    """The running command ended its work on the stop it got (`live` on a file at real-time pace writes the take
    played): an error after it is its own (a full disk), said as such, not as the interrupt (exit 130). A second
    signal is remembered again."""
    if Stops.active is not None:
        Stops.active.signum = None


class HeldStop(Stops):
    """While a training loop runs, the first Ctrl-C or SIGTERM waits for the step in progress to end: the loop asks
    `due()` after each step, saves a checkpoint there and calls `stop()` (what `Stops` would have raised). A second
    signal stops at once. Without it an interrupt lost every step since the last periodic checkpoint (up to 500
    steps, ~8 minutes, of the demo RAVE's training), or cut an optimiser step in half. It takes over from `Stops`
    (any handler but an ignored signal's); outside the main thread nothing is held."""

    def _takes(self, current: object, default: object) -> bool:
        return current != signal.SIG_IGN

    def _on_signal(self, signum: int, frame: object) -> None:
        _leave_terminal(signum)
        if self.signum is not None:  # asked twice: stop now
            _stop_raise(signum)
        self.signum = signum

    def due(self) -> bool:
        return self.signum is not None

    def stop(self) -> NoReturn:
        _stop_raise(self.signum if self.signum is not None else signal.SIGINT)


RESUMABLE = " (a checkpoint of the last step is kept; run the same command to resume)"
"""What a training recipe's interrupt line adds (`guarded`'s `stopped`) once its checkpoint exists."""


def resumable(state: Path) -> Callable[[], str]:
    """A training recipe's `stopped`, read when it stops: `RESUMABLE` where its checkpoint `state` exists, else
    that none was written (a run stopped while reading its data kept nothing)."""
    return lambda: RESUMABLE if state.is_file() else " (no checkpoint was written yet; the same command starts over)"


# the packages `patches/install.py` builds or installs without their pins: {import name: distribution}
PATCHED = {"audiocraft": "audiocraft", "rave": "acids-rave", "cached_conv": "cached-conv", "nn_tilde": "nn-tilde"}


def broken_install(exc: BaseException) -> str:
    """The one line for an import that failed in or for a package of `patches/` (missing, or reinstalled as
    published: audiocraft 1.3.0 from PyPI imports PyAV at the top), else ""."""
    if not isinstance(exc, ImportError):
        return ""
    found = [top] if (top := (exc.name or "").split(".")[0]) in PATCHED else []
    tb = exc.__traceback__
    while tb is not None:  # the modules the import went through
        module = str(tb.tb_frame.f_globals.get("__name__", "")).split(".")[0]
        found += [module] if module in PATCHED else []
        tb = tb.tb_next
    if not found:
        return ""
    return (f"{PATCHED[found[-1]]} could not be imported ({exc}): it is not the build `just setup` installs "
            "(patches/install.py); run `just setup`")  # fmt: skip


def address_space_limit() -> str:
    """The address-space limit `ulimit -v` set, in words ("" where none): torch alone maps about a gigabyte."""
    import resource

    limit = resource.getrlimit(resource.RLIMIT_AS)[0]
    if limit == resource.RLIM_INFINITY:
        return ""
    return f"the address-space limit (ulimit -v) is {limit / 2**30:.2f} GiB; raise it (ulimit -v unlimited)"


def out_of_memory(exc: BaseException) -> str:
    """What an allocation failure asked for ("" when `exc` is none): numpy's `MemoryError`, torch's CPU and CUDA
    allocators' `RuntimeError` / `OutOfMemoryError`, C++'s `std::bad_alloc`, and a library that could not be
    mapped in (under `ulimit -v`: torch's import failed, hunt 217)."""
    import re

    text = str(exc)
    lowered = text.lower()
    if isinstance(exc, ImportError) and (
        ("failed to map segment" in text and address_space_limit())  # (on a noexec mount: no memory's)
        or ("cannot allocate memory" in lowered and "static tls" not in lowered)  # (libgomp's TLS: no memory's)
    ):
        return f"a library could not be mapped in: {text}"
    if isinstance(exc, MemoryError) or (
        isinstance(exc, RuntimeError)
        and ("can't allocate memory" in text or "out of memory" in lowered or "std::bad_alloc" in text)
    ):
        m = re.search(r"allocate (\d+) bytes|allocate ([\d.]+ [KMGTPE]i?B)", text)
        if m and m.group(1):
            return f"{int(m.group(1)) / 2**30:.1f} GiB asked for"
        return f"{m.group(2)} asked for" if m else type(exc).__name__
    return ""


def _signals_end_the_exit() -> None:
    """From here on (the interpreter's exit: atexit callbacks, module teardown) Ctrl-C and SIGTERM end the process
    at once, with their exit code: a second Ctrl-C landed in torch's atexit callbacks as a KeyboardInterrupt
    traceback after the command's one line."""

    def now(signum: int, _frame) -> None:
        os._exit(128 + signum)

    for signum in STOPPED:
        if signal.getsignal(signum) != signal.SIG_IGN:  # `nohup`'s ignored SIGHUP stays ignored (hunt 205)
            signal.signal(signum, now)


def _end_exit_on_signals() -> None:
    """Register `_signals_end_the_exit` with atexit after the libraries' own callbacks, so it runs first (again
    on each call: the latest registered runs first)."""
    atexit.unregister(_signals_end_the_exit)
    atexit.register(_signals_end_the_exit)


def guarded(
    prog: str, fn: Callable[[], int | None], stopped: str | Callable[[], str] = "", verbose: bool | None = None
) -> int:
    """Run `fn` (a command, a training recipe) and return its exit code; a `UserError`, a full disk or another
    failed file operation (an `OSError` naming its file; `verbose` keeps its traceback) becomes one line on stderr
    (exit 2, or the `UserError`'s `exit_status`), Ctrl-C and SIGTERM one line (`stopped`, or what it returns then,
    appended: what is kept, how to go on) after `fn`'s cleanup ran (exit 130 and 143), never a traceback.
    Third-party noise is silenced while `fn` runs (`training.cli.quiet`) unless `verbose` (`musicsae -v`); None, the
    recipes' default, reads Python's own switch:
    `python -W default -m training...` (or PYTHONWARNINGS) shows it."""
    try:
        return _guarded(prog, fn, stopped, verbose)
    finally:  # registered after what the command imported registered: it runs before their exit callbacks
        _end_exit_on_signals()


def tolerant_output() -> None:
    """Standard output and error that write what they cannot encode as escapes (a "—" on a Latin-1 or ASCII
    terminal, a file name's undecodable byte) instead of raising UnicodeEncodeError, after the work was done
    (hunt 156: `concept list` under LANG=en_US.ISO-8859-1, `data make --out $'bad\\xe9'`)."""
    for stream in (sys.stdout, sys.stderr):
        if stream is not None and hasattr(stream, "reconfigure"):
            stream.reconfigure(errors="backslashreplace")


def _guarded(prog: str, fn: Callable[[], int | None], stopped: str | Callable[[], str], verbose: bool | None) -> int:
    """`guarded` itself."""
    from sae.atomic import WRITE_ERRNOS
    from sae.errors import UserError
    from training.cli.launch import say
    from training.cli.quiet import quiet

    switch = "`-v`" if verbose is not None else "`python -W default -m ...`"  # what shows the traceback
    verbose = bool(sys.warnoptions) if verbose is None else verbose
    tolerant_output()
    try:
        os.getcwd()
    except FileNotFoundError:  # torch's import then fails as a broken install would ("oneMKL FATAL ERROR") (hunt 156)
        say(f"{prog}: error: the working folder no longer exists (deleted or moved); cd to an existing one")
        return 2
    stops = Stops()
    try:
        with stops, quiet(verbose):
            code = int(fn() or 0)
            if sys.stdout is not None:  # what is still buffered: its failure (a full disk, a reader gone) is said here,
                sys.stdout.flush()  # not as Python's "Exception ignored" with exit 120 at exit (hunt 156)
            return code
    except Exception as exc:
        if stops.signum is None and isinstance(exc, BrokenPipeError):  # `| head` left: what is left goes nowhere
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())  # (Python's own flush at exit too)
            return 141  # as a shell tool a pipe's reader left: 128 + SIGPIPE
        if stops.signum is None and isinstance(exc, UserError):
            say(f"{prog}: error: {exc}")
            return exc.exit_status
        if stops.signum is None and isinstance(exc, OSError) and exc.errno in WRITE_ERRNOS:  # a full disk
            # a permission refused may be a read's too (a folder of another user's beside --sae: hunt 153)
            doing = "" if exc.errno in (errno.EACCES, errno.EPERM) else "writing "
            what = "the standard output" if exc.filename is None else exc.filename  # `> /dev/full` (hunt 156)
            say(f"{prog}: error: {doing}{what}: {exc.strerror}")
            if exc.filename is None and sys.stdout is not None:  # what stays buffered goes nowhere: Python's flush at
                os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())  # exit said it again, exit 120
            return 2
        if stops.signum is None and isinstance(exc, OSError) and exc.filename and not verbose:
            # a file or folder that went away or cannot be made mid-run (`switch` for the traceback)
            say(f"{prog}: error: {exc.filename}: {exc.strerror}")
            return 2
        if stops.signum is None and not verbose and out_of_memory(exc):
            # sizes too large for this machine (numpy's MemoryError, torch's allocator RuntimeError), or a limit
            advice = address_space_limit() or "use smaller sizes or fewer items"  # set on it (`ulimit -v`)
            say(f"{prog}: error: out of memory ({out_of_memory(exc)}); {advice} ({switch} shows where)")
            return 2
        if stops.signum is None and not verbose and broken_install(exc):
            say(f"{prog}: error: {broken_install(exc)} ({switch} shows where)")
            return 2
        if stops.signum is None:
            raise
        signum = stops.signum  # the error is what a library made of the interrupt
    except KeyboardInterrupt as exc:
        signum = exc.signum if isinstance(exc, Terminated) else signal.SIGINT
    word, code = STOPPED.get(signum, STOPPED[signal.SIGTERM])
    say(f"{prog}: {word}{stopped if isinstance(stopped, str) else stopped()}")
    return code


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point: parse, dispatch, and turn `UserError` into one line on stderr; Ctrl-C and SIGTERM stop a
    command with one line (exit 130 and 143) after its cleanup ran."""
    tolerant_output()  # --help's own text too: an arrow on an ASCII terminal was a UnicodeEncodeError (hunt 217)
    try:  # the command modules load here (half a second): a Ctrl-C then was a traceback from an import
        args = build_parser().parse_args(argv)
    except KeyboardInterrupt:
        print("musicsae: interrupted", file=sys.stderr)
        return 130
    return guarded("musicsae", lambda: _run(args, sys.argv[1:] if argv is None else argv), verbose=args.verbose)


def _run(args: argparse.Namespace, argv: Sequence[str]) -> int | None:
    """The command, here or (`--nproc N`) on N local ranks (`training.cli.launch`), where a command's `launched`
    (args -> (exit code -> exit code)) checks what the ranks made together once they all ended."""
    from training.cli.launch import launch, wanted, without_nproc

    nproc = wanted(args)
    if not nproc:
        return args.func(args)
    finish = args.launched(args) if getattr(args, "launched", None) else int
    return finish(launch(nproc, without_nproc(argv), args.verbose))
