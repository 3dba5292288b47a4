"""Errors that reach users as one clear line (the CLI prints them without a traceback)."""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any


class UserError(Exception):
    """Bad input or an impossible request: the message names the thing and what was expected."""

    exit_status = 2
    """The exit status of a command that stops on it."""


class Terminated(KeyboardInterrupt):
    """SIGTERM (a launcher, `timeout`, systemd, a DAW stopping its child) or SIGHUP (the terminal closed, an SSH
    connection dropped) raised in the main thread: a KeyboardInterrupt, so every command stops on it as on Ctrl-C
    (temporary files removed, checkpoints kept, streams closed). `signum`: which (SIGTERM's 15 by default)."""

    def __init__(self, signum: int = 15) -> None:
        super().__init__(signum)
        self.signum = signum


def refused_number(value: float) -> str:
    """A refused number as the fewest digits that read back as it: as a float32 where it is one (an OSC `f`, a
    fader: 1.0000001, not 1.00000012), else as the double it is (100.00000001, not "100" beside a limit of 100)."""
    import numpy as np

    v = float(value)
    if not (math.isfinite(v) and abs(v) <= float(np.finfo(np.float32).max)) or float(np.float32(v)) != v:
        return repr(v).removesuffix(".0")
    if v == 0 or 1e-5 <= abs(v) < 1e7:
        return np.format_float_positional(np.float32(v), unique=True, trim="-")
    return np.format_float_scientific(np.float32(v), unique=True, trim="-")


_ABSENT = object()


def _leaves(d: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    out: dict[str, Any] = {}
    for k, v in d.items():
        key = f"{prefix}.{k}" if prefix else str(k)
        out.update(_leaves(v, key) if isinstance(v, Mapping) and v else {key: v})
    return out


def differences(old: Mapping[str, Any], new: Mapping[str, Any], was: str) -> str:
    """'key: A {was}, B now; ...' for every leaf that differs (nested keys dotted: `sizes.n_filters`), so a refused
    resume names exactly what changed."""
    a, b = _leaves(old), _leaves(new)
    keys = [k for k in dict.fromkeys([*a, *b]) if a.get(k, _ABSENT) != b.get(k, _ABSENT)]

    def show(v: Any) -> str:
        return "(absent)" if v is _ABSENT else repr(v)

    return "; ".join(f"{k}: {show(a.get(k, _ABSENT))} {was}, {show(b.get(k, _ABSENT))} now" for k in keys)


def torch_file_problem(exc: BaseException, data: bytes | None = None) -> str:
    """Why torch could not read a file, in a few words: "not a zip archive" when `data` (the file's bytes) is not
    one (a truncated copy, or another format), else the first sentence of torch's message, which is often a
    paragraph (miniz's advice, "Could this error message be improved?")."""
    if data is not None and not data.startswith(b"PK"):
        return "not a zip archive: a truncated copy, or another format"
    text = str(exc).strip()
    if not text:
        return type(exc).__name__
    first = text.splitlines()[0].split(". ")[0].split("  (Could this")[0]
    return first.rstrip(".")
