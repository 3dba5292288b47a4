"""The commands' parser (`Parser`) and argparse `type=` checkers: a bad value is one line naming what was expected."""

from __future__ import annotations

import argparse
import itertools
import re
import sys
from collections.abc import Callable
from typing import NoReturn

from sae.controls import MAX_THREADS, plain_float, plain_int
from sae.seeds import SEED_RANGE


class Parser(argparse.ArgumentParser):
    """The parser of musicsae and the recipes: a usage error is one line, what was wrong and where the options are
    listed (argparse prints its whole usage block first: 14 lines for `live`). Subcommands inherit it."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.set_defaults(_command=self.prog)  # the deepest subcommand parsed sets it last

    def parse_known_args(self, args=None, namespace=None):
        self._argv = list(sys.argv[1:] if args is None else args)  # what `error` reads a value from
        return super().parse_known_args(args, namespace)

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: error: {message}{self._dash_hint(message)} (`{self.prog} --help` lists the "
                  "options)\n")  # fmt: skip

    def _dash_hint(self, message: str) -> str:
        """How to give a value that starts with '-' (argparse takes `--out -x.wav` for an option with no value)."""
        missing = re.fullmatch(r"argument ([^:]+): expected one argument", message)
        argv = getattr(self, "_argv", [])
        for flag, value in itertools.pairwise(argv):
            if missing and flag in missing[1].split("/") and value.startswith("-"):
                return f"; a value that starts with '-' is written {flag}={value}"
        return ""

    def parse_args(self, args=None, namespace=None) -> argparse.Namespace:
        """Unknown arguments are the subcommand's to name (argparse left them to the top parser: `musicsae render
        rave --bogus` pointed at `musicsae --help`)."""
        parsed, extras = self.parse_known_args(args, namespace)
        if extras:
            prog = getattr(parsed, "_command", self.prog)
            self.exit(2, f"{prog}: error: unrecognized arguments: {' '.join(extras)} (`{prog} --help` lists the "
                      "options)\n")  # fmt: skip
        return parsed

    def _get_value(self, action: argparse.Action, arg_string: str):
        """argparse's conversion of one value, refusing an empty one (`--model ''` read as the folder '.', `--out ''`
        as here): no option of these commands means anything by an empty string."""
        if arg_string == "" and action.option_strings:
            raise argparse.ArgumentError(action, "expected a value, got an empty string")
        return super()._get_value(action, arg_string)


def _checked(convert: Callable[[str], float], ok: Callable[[float], bool], expected: str) -> Callable[[str], float]:
    def parse(text: str):
        try:
            value = convert(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r}: expected {expected}") from None
        if not ok(value):
            raise argparse.ArgumentTypeError(f"{text!r}: expected {expected}")
        return value

    return parse


integer = _checked(plain_int, lambda v: True, "an integer")
number = _checked(plain_float, lambda v: True, "a number")  # inf and nan read: the command's range check names them
positive_int = _checked(plain_int, lambda v: v > 0, "a positive integer")
nonneg_int = _checked(plain_int, lambda v: v >= 0, "an integer >= 0")
positive_float = _checked(plain_float, lambda v: 0 < v < float("inf"), "a positive number")
nonneg_float = _checked(plain_float, lambda v: 0 <= v < float("inf"), "a number >= 0")
GUIDANCE_LIMIT = 1000.0
guidance_coef = _checked(
    plain_float, lambda v: 1 <= v <= GUIDANCE_LIMIT, f"a number in [1, {GUIDANCE_LIMIT:g}] (1: no guidance)"
)
"""MusicGen's classifier-free guidance: below 1 the backends disagree (transformers turns guidance off); far
above the limit the guided logits overflow and sampling fails mid-render (1e300: a traceback)."""
fraction = _checked(plain_float, lambda v: 0.0 <= v < 1.0, "a number in [0, 1)")
thread_count = _checked(plain_int, lambda v: 0 < v <= MAX_THREADS, f"a positive integer, at most {MAX_THREADS}")
"""`--threads`: 100000 crashed torch (libgomp cannot make the threads: a segfault, or exit 1 with no line)."""
MAX_JOBS = 256
job_count = _checked(plain_int, lambda v: 0 < v <= MAX_JOBS, f"a positive integer, at most {MAX_JOBS}")
"""`--jobs`: rendering processes, started all at once (`demo --jobs 100` launched 100 Pythons)."""
seed_int = _checked(plain_int, lambda v: SEED_RANGE[0] <= v < SEED_RANGE[1], "an integer in [0, 2**63)")
folds = _checked(plain_int, lambda v: v >= 2, "an integer >= 2")
MIN_EVAL_ROWS = 100
eval_rows = _checked(plain_int, lambda v: v >= MIN_EVAL_ROWS, f"an integer >= {MIN_EVAL_ROWS}")
"""`sae eval --max-rows`: the FVU of one row divides by its zero variance (1e23), of a few it is noise."""
MAX_TOP = 1000
top_clips = _checked(plain_int, lambda v: 0 < v <= MAX_TOP, f"a positive integer, at most {MAX_TOP}")
"""`dashboard --top`: clips per feature page (2**31 asked numpy for 2 TiB)."""
"""Cross-validation folds: one fold would train and test on the same clips."""
meter_seconds = _checked(plain_float, lambda v: 0 < v <= 60, "a time constant in seconds, > 0 and at most 60")
kept_variance = _checked(plain_float, lambda v: 0 < v <= 0.999, "a fraction of the latent variance in (0, 0.999]")


def comma_names(text: str | None) -> tuple[str, ...]:
    """Comma-separated names, blanks dropped, each once in the order given (`--concepts guitar,guitar` rendered and
    judged guitar twice); None: none."""
    return tuple(dict.fromkeys(n.strip() for n in (text or "").split(",") if n.strip()))


def comma_list(item: Callable[[str], int], expected: str) -> Callable[[str], tuple[int, ...]]:
    """An option of comma-separated `item`s (a checked type), each checked when parsed, in the order given; the
    whole list is named in the one error line (`--blocks abc` was a ValueError traceback)."""

    def parse(text: str) -> tuple[int, ...]:
        try:
            return tuple(item(v.strip()) for v in text.split(","))
        except argparse.ArgumentTypeError:
            raise argparse.ArgumentTypeError(f"{text!r}: expected {expected}") from None

    return parse


def _positive_floats(text: str) -> tuple[float, ...]:
    """Comma-separated numbers, each once in the order given; an empty item (`2,,3`: a number left out?) refused."""
    items = text.split(",")
    if any(not v.strip() for v in items):
        raise ValueError(text)
    return tuple(dict.fromkeys(plain_float(v) for v in items))


def strength(text: str) -> float:
    """One edit strength, within ±`sae.controls.STRENGTH_LIMIT` (what `--set NAME=on:S` accepts)."""
    from sae.controls import STRENGTH_LIMIT

    return _checked(
        plain_float, lambda v: abs(v) <= STRENGTH_LIMIT, f"a number in [-{STRENGTH_LIMIT:g}, {STRENGTH_LIMIT:g}]"
    )(text)


def on_strength(text: str) -> float:
    """The strength of an `on` that is judged: above 0 (`on:0` is no edit, a negative one takes the concept out),
    at most `sae.controls.STRENGTH_LIMIT`."""
    from sae.controls import STRENGTH_LIMIT

    return _checked(plain_float, lambda v: 0 < v <= STRENGTH_LIMIT, f"a number in (0, {STRENGTH_LIMIT:g}]")(text)


def on_strengths(text: str) -> tuple[float, ...]:
    """`--strength S,S,...` of `on` a judge sweeps: each as `on_strength`, checked when parsed (150 was refused after
    eval hooks had collected and trained, and the settings it stored then refused every rerun of its --out)."""
    from sae.controls import STRENGTH_LIMIT

    return _checked(
        _positive_floats,
        lambda vs: all(0 < v <= STRENGTH_LIMIT for v in vs),
        f"comma-separated numbers in (0, {STRENGTH_LIMIT:g}], e.g. 1,4,16",
    )(text)


def offline_block(text: str) -> int:
    """`render rave --block`: a positive integer up to `realtime.render_rave.MAX_OFFLINE_BLOCK`, checked when parsed
    (the model's ratio, which it must also be a multiple of, is checked once the model loads)."""
    from realtime.render_rave import MAX_OFFLINE_BLOCK

    return _checked(
        plain_int, lambda v: 0 < v <= MAX_OFFLINE_BLOCK, f"a positive integer, at most {MAX_OFFLINE_BLOCK}"
    )(text)


def clamp_strengths(text: str) -> tuple[float, ...]:
    """`--clamp S,S,...`: each in (0, `sae.controls.CLAMP_LIMIT`], checked when parsed, not after the first renders."""
    from sae.controls import CLAMP_LIMIT

    return _checked(
        _positive_floats, lambda vs: all(0 < v <= CLAMP_LIMIT for v in vs), f"numbers in (0, {CLAMP_LIMIT:g}]"
    )(text)


def gate_levels(text: str) -> tuple[float, float]:
    """`--gate-db LO,HI`, checked by the gate itself (`sae.steering.Gate`: one rule for the CLI and the API)."""
    from sae.errors import UserError
    from sae.steering import GATE_RULE, Gate

    try:
        lo, hi = (plain_float(v) for v in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r}: expected LO,HI in dBFS, e.g. -60,-45") from None
    try:
        Gate(lo, hi)
    except UserError:
        raise argparse.ArgumentTypeError(f"{text!r}: {GATE_RULE} (0 dBFS: full scale), e.g. -60,-45") from None
    return lo, hi


def torch_device(text: str) -> str:
    """`--device`: cpu, cuda or cuda:N, checked against the devices torch sees on this machine."""
    import re

    if text == "cpu":
        return text
    if text == "mps":
        import torch

        if not torch.backends.mps.is_available():
            raise argparse.ArgumentTypeError(f"{text!r}: torch sees no Apple GPU (MPS) here")
        return text
    m = re.fullmatch(r"cuda(?::(0|[1-9][0-9]*))?", text)  # torch refuses cuda:00 (hunt 155: a traceback)
    if not m:
        raise argparse.ArgumentTypeError(f"{text!r}: expected cpu, cuda, cuda:N or mps")
    import torch

    count = torch.cuda.device_count()
    if int(m.group(1) or 0) >= count:
        build = "" if torch.version.cuda else f" (torch {torch.__version__} is a CPU build)"
        raise argparse.ArgumentTypeError(f"{text!r}: torch sees {count} CUDA device(s) here{build}")
    return text


def add_device(parser: argparse.ArgumentParser, what: str = "the model", flag: str = "--device") -> None:
    """The one `--device` option of every command that runs a model (`musicsae live` names it --model-device,
    since its --device is the audio device)."""
    parser.add_argument(
        flag, type=torch_device, default="cpu", help=f"torch device for {what}: cpu, cuda or cuda:N (default cpu)"
    )


def add_threads(parser: argparse.ArgumentParser, default: int | None = 1, what: str = "torch CPU threads") -> None:
    """The one `--threads` option: a positive integer, at most `MAX_THREADS` (None: the command's own default,
    said in `what`)."""
    help_text = what if default is None else f"{what} (default {default})"
    parser.add_argument("--threads", type=thread_count, default=default, help=help_text)


def add_musicgen_model(parser: argparse.ArgumentParser) -> None:
    """`--model` and `--backend` of every command that loads a MusicGen (`realtime.musicgen.load_musicgen`)."""
    parser.add_argument("--model", required=True, help="MusicGen hub id (facebook/musicgen-small) or local folder")
    parser.add_argument(
        "--backend",
        default="auto",
        choices=["auto", "audiocraft", "transformers"],
        help="implementation (default: from the folder's files; hub ids use audiocraft)",
    )


EDIT_ROWS_DEFAULT = "cond"


def add_edit_rows(parser: argparse.ArgumentParser) -> None:
    """`--edit-rows` of the MusicGen commands that steer (render, eval); realtime/musicgen/render.py says why. Its
    default is None, so that a command can tell the option given from the default (`EDIT_ROWS_DEFAULT`)."""
    parser.add_argument(
        "--edit-rows",
        choices=("both", "cond"),
        default=None,
        help="guidance rows the edits touch: cond (default: the conditional rows only; guidance multiplies the edit "
        "by its coefficient (MusicGen's 3, or render's --cfg-coef), so `on` wants strengths of about 0.25-0.5; "
        "measured to remove concepts far better) or both (an edit reaches the output once at any guidance "
        "coefficient, so strengths mean what a teacher-forced judge measured)",
    )
