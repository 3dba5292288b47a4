"""Quiet by default: third-party warnings, log lines and progress bars that say nothing to the user are silenced
while a command runs; `musicsae -v COMMAND` shows them. Our own warnings (sae, realtime, training) always show.

Everything is restored when the command returns, so commands run in-process (tests, notebooks) leave the
interpreter as they found it.

Our own output follows one rule (`progress_bar`, `output_console`): progress bars show on a terminal only (in a
pipe or a log they say nothing, and rich's transient bar leaves an empty line behind), and lines printed anywhere
but on a terminal are whole lines, not wrapped at 80 columns.
"""

from __future__ import annotations

import contextlib
import logging
import os
import sys
import warnings
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from rich.console import Console
    from rich.progress import Progress, ProgressColumn

OURS = r"(sae|realtime|training)(\.|$)"
OUR_CATEGORIES = (UserWarning, RuntimeWarning)  # what our code warns with (torch's FutureWarning under torchrun is not)
# read by transformers / huggingface_hub / tqdm when they are imported or log; set only when not set by the user
QUIET_ENV = {
    "TRANSFORMERS_VERBOSITY": "error",  # config validation notes ("pad_token_id must be ...") and advisories
    "TRANSFORMERS_NO_ADVISORY_WARNINGS": "1",
    "HF_HUB_DISABLE_PROGRESS_BARS": "1",  # "Writing model shards", download bars
    "TOKENIZERS_PARALLELISM": "false",  # the fork warning of the tokenizers library
}
THIRD_PARTY_LOGGERS = (
    "transformers", "huggingface_hub", "audiocraft", "lightning", "pytorch_lightning", "torch",
    "matplotlib",  # "mkdir -p failed for path ~/.config/matplotlib ..." under a read-only HOME (hunt 156)
)  # fmt: skip


@contextlib.contextmanager
def quiet(verbose: bool = False) -> Iterator[None]:
    """Silence third-party noise for the duration of a command (nothing changes with `verbose`)."""
    if verbose:
        logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
        yield
        return
    saved_env = {k: os.environ.get(k) for k in QUIET_ENV}
    for key, value in QUIET_ENV.items():
        os.environ.setdefault(key, value)
    loggers = [logging.getLogger(name) for name in THIRD_PARTY_LOGGERS]
    saved_levels = [lg.level for lg in loggers]
    for lg in loggers:
        lg.setLevel(logging.ERROR)
    transformers_level = _transformers_verbosity(logging.ERROR)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            for category in OUR_CATEGORIES:  # a library's deprecation lands on our line by its stacklevel: not ours
                warnings.filterwarnings("default", category=category, module=OURS)
            yield
    finally:
        for lg, level in zip(loggers, saved_levels, strict=True):
            lg.setLevel(level)
        if transformers_level is not None:
            _transformers_verbosity(transformers_level)
        for key, value in saved_env.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


def _transformers_verbosity(level: int) -> int | None:
    """transformers reads its env only once; when it is already imported, set its verbosity directly."""
    import sys

    module = sys.modules.get("transformers.utils.logging")
    if module is None:
        return None
    before = module.get_verbosity()
    module.set_verbosity(level)
    return before


def new_console(**options: Any) -> Console:
    """A rich `Console(**options)` whose reader leaving (`| head`, `| true`) ends the command as any other output of
    it does, status 141: rich's own raised SystemExit(1) with no word (hunt 217)."""
    from rich.console import Console

    class _Console(Console):
        def on_broken_pipe(self) -> None:
            self.quiet = True  # nothing more goes to the pipe: `guarded` points standard output at /dev/null
            raise BrokenPipeError(32, "Broken pipe")

    return _Console(**options)


def output_console(stderr: bool = False) -> Console:
    """A rich console for a command's output: on a terminal it wraps at the terminal's width; in a pipe or a log
    (where rich would wrap at 80 columns) every printed line stays whole. No markup: what it prints holds paths and
    names as users wrote them (`song [live].wav` lost its brackets, `take[/b].wav` was a MarkupError); style with
    `style=` or `rich.text.Text`."""
    out = new_console(stderr=stderr, markup=False)
    out.soft_wrap = not out.is_terminal
    return out


def print_table(console: Console, table: Any) -> None:
    """Print a rich table whole: in a pipe or a log rich draws it 80 columns wide and cuts what does not fit to
    "distorted_g…" (a name to type in the next command); there the console takes the table's natural width
    (`print(width=)` is capped at the console's)."""
    if not console.is_terminal:
        natural = console.measure(table, options=console.options.update_width(10_000)).maximum
        console.width = max(console.width, natural)
    console.print(table)


def progress_bar(
    *columns: str | ProgressColumn, console: Console, transient: bool = True, hide: bool = False
) -> Progress:
    """A rich progress bar shown only when `console` is a terminal (and not `hide`, e.g. --quiet): elsewhere it
    says nothing, and a transient bar would leave an empty line behind. Without `columns`: the task's description
    (as written, not markup: it holds file names), a bar, the share done and the time left."""
    from rich.progress import BarColumn, Progress, TaskProgressColumn, TimeRemainingColumn

    columns = columns or (description_column(), BarColumn(), TaskProgressColumn(), TimeRemainingColumn())
    return Progress(*columns, console=console, transient=transient, disable=hide or not console.is_terminal)


def description_column(style: str = "bold") -> ProgressColumn:
    """A progress column of the task's description as written (file names are not rich markup)."""
    from rich.progress import TextColumn

    return TextColumn("{task.description}", style=style, markup=False)


@contextlib.contextmanager
def spinner(console: Console, text: str) -> Iterator[Callable[[str], None]]:
    """A rich spinner saying `text` as written, and a function that says the next text: rich reads a spinner's text
    as markup whatever the console's setting (a model path `take[/b]` was a MarkupError traceback)."""
    from rich.text import Text

    with console.status(Text(text)) as status:
        yield lambda line: status.update(Text(line))


class _PipeTolerant:
    """A text stream whose reader may leave: a write or flush that meets a closed pipe sends the stream's
    descriptor to /dev/null and goes on, so the work behind the lines goes on too."""

    def __init__(self, stream) -> None:
        self._stream = stream

    def _gone(self) -> None:
        null = os.open(os.devnull, os.O_WRONLY)
        os.dup2(null, self._stream.fileno())
        os.close(null)

    def write(self, text: str) -> int:
        try:
            return self._stream.write(text)
        except BrokenPipeError:
            self._gone()
            return self._stream.write(text)

    def flush(self) -> None:
        try:
            self._stream.flush()
        except BrokenPipeError:
            self._gone()
            self._stream.flush()

    def __getattr__(self, name: str):
        return getattr(self._stream, name)


@contextlib.contextmanager
def stdout_may_close() -> Iterator[None]:
    """Standard output that outlives its reader: `live --in X --out Y | head -1` ended with exit 141 and no output
    file (hunt 156); a file render's lines are a report, not the work."""
    before = sys.stdout
    if before is None:
        yield
        return
    sys.stdout = _PipeTolerant(before)
    try:
        yield
    finally:
        sys.stdout = before
