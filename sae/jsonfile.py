"""Reading the small JSON files of stores and SAE folders, with one-line errors; trimming a run's JSON-lines log."""

from __future__ import annotations

import json
import math
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from sae.atomic import atomic_write
from sae.errors import UserError


def is_number(value: Any) -> bool:
    """A finite JSON number: an int or a float that is not NaN or infinite, and not true/false (which Python counts
    as ints)."""
    if isinstance(value, bool):
        return False
    if isinstance(value, int):  # an integer of 400 digits is finite, yet float() of it overflows
        return abs(value) <= sys.float_info.max
    return isinstance(value, float) and math.isfinite(value)


def is_integer(value: Any) -> bool:
    """A JSON integer of any sign (a time in ns, before 1970 too); true/false is not one."""
    return isinstance(value, int) and not isinstance(value, bool)


def is_count(value: Any) -> bool:
    """A JSON integer >= 0 (a count of rows, frames or clips, an index); true/false is not one."""
    return is_integer(value) and value >= 0


def read_json_object(path: Path, what: str) -> dict[str, Any]:
    """The JSON object in `path`; `what` names the file in the error (e.g. "manifest")."""
    try:
        with open(path, encoding="utf-8-sig") as fh:  # a BOM before it (Windows Notepad's) as the YAML reader takes it
            data = json.load(fh)
    except json.JSONDecodeError as exc:
        raise UserError(f"{path}: {what} is not valid JSON ({exc.msg})") from None
    except UnicodeDecodeError:  # a binary file in its place (damaged, or another file copied over it)
        raise UserError(f"{path}: {what} is not UTF-8 text; expected JSON (damaged or replaced?)") from None
    except ValueError as exc:  # an integer of more than 4300 digits (Python's limit on reading one)
        raise UserError(f"{path}: {what} is not JSON this reads ({str(exc).split(':')[0]})") from None
    except RecursionError:  # a value inside thousands of brackets (hunt 180)
        raise UserError(f"{path}: {what} is not JSON this reads (nested too deeply)") from None
    if not isinstance(data, dict):
        raise UserError(f"{path}: expected a JSON object")
    return data


def strict_json(data: Any, indent: int = 2, default: Callable[[Any], Any] | None = None) -> str:
    """`data` as strict JSON: a float that is not finite (a rate over no clips) becomes null, where `json.dumps`
    writes NaN, which JSON does not have (jq, browsers and most parsers refuse the file)."""

    def finite(x: Any) -> Any:
        if isinstance(x, float):
            return x if math.isfinite(x) else None
        if isinstance(x, dict):
            return {k: finite(v) for k, v in x.items()}
        if isinstance(x, list | tuple):
            return [finite(v) for v in x]
        return x

    made = None if default is None else (lambda o: finite(default(o)))  # a numpy float32 NaN: null too
    return json.dumps(finite(data), indent=indent, default=made, allow_nan=False)


def _logged_step(line: bytes) -> float:
    """The step of a log line; a line cut short (a kill mid-write) or damaged counts as after any step."""
    try:
        return float(json.loads(line)["step"])
    except (ValueError, KeyError, TypeError):
        return float("inf")


def trim_log(path: Path, step: int) -> None:
    """Drop the lines of a JSON-lines training log past `step`, the checkpoint a run resumes from: a run stopped
    after its last checkpoint logged steps it then trains again (two records of one step), or was killed mid-line.
    A line that is not JSON in UTF-8 (a damaged one) goes too."""
    if not path.is_file():
        return
    lines = path.read_bytes().splitlines(keepends=True)
    kept = [line for line in lines if _logged_step(line) <= step]
    if kept != lines:
        atomic_write(path, lambda tmp: Path(tmp).write_bytes(b"".join(kept)))


def measured(figures: dict[str, Any], key: str) -> float:
    """`figures[key]` as a float for a report, NaN where it was not measured (`strict_json` wrote it as null, or
    it is absent): formatted as "nan", not a TypeError."""
    value = figures.get(key)
    return float(value) if is_number(value) else math.nan
