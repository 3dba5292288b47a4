"""Errors that reach users as one clear line (the CLI prints them without a traceback)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any


class UserError(Exception):
    """Bad input or an impossible request: the message names the thing and what was expected."""


def differences(old: Mapping[str, Any], new: Mapping[str, Any], was: str) -> str:
    """'key: A {was}, B now; ...' for every key whose value differs (a refused resume names what changed)."""
    keys = [k for k in dict.fromkeys([*old, *new]) if old.get(k) != new.get(k)]
    return "; ".join(f"{k}: {old.get(k)!r} {was}, {new.get(k)!r} now" for k in keys)
