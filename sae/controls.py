"""The limits of a concept's control: one rule for `--set`, presets, bank defaults, OSC and the nn~ export.
Torch-free (the bank reader uses it)."""

from __future__ import annotations

import math
import re

from sae.errors import refused_number

ALL_MODES = ("none", "off", "on", "clamp", "scale")
"""Every mode a concept can be in (`sae.steering.MODES` plus `clamp`, which applies floors)."""
STRENGTH_LIMIT = 100.0
"""Largest |strength| of `on`, |gain| of `scale` and |gain| of a raw feature: one limit for the command line's
`--set`, presets, bank defaults and OSC alike (beyond it an edit only clips the output)."""
LIMIT_TEXT = f"[{-STRENGTH_LIMIT:g}, {STRENGTH_LIMIT:g}]"
CLAMP_LIMIT = 10.0
"""Largest clamp strength: the floor is s × the feature's typical activation (its mean when active), and a
feature seldom reaches ten times that."""
TYPICAL_LIMIT = 1e6
"""Largest typical activation a bank may record: strength × typical must stay a float32 the edit can add."""
PROBE_LIMIT = 1e12
"""Largest |coefficient| and |intercept| of a concept's probe: times activations up to `TYPICAL_LIMIT` the
meter's sum stays a float32."""

# a number as text (a mode's `:N`, a number quoted in a preset, YAML 1.1's `2e0`): float() also reads 1_0 as 10 and
# full-width digits; inf and nan are read, for the range check to name them
DECIMAL = re.compile(r"[+-]?(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?|[+-]?(?:inf|infinity|nan)", re.ASCII | re.I)
INTEGER = re.compile(r"[+-]?[0-9]+")
MAX_THREADS = 1024
"""The most torch threads a job may be given (`--threads`, $MUSICSAE_TRAIN_THREADS): 100000 crashed torch."""


def plain_int(text: str) -> int:
    """An integer written in plain decimal digits, blanks around it allowed; ValueError for anything else: int()
    also reads '١٢' and '２' (other scripts' digits) and '1_000' (hunt 155: `--seed ١٢` was seed 12)."""
    if not isinstance(text, str) or not INTEGER.fullmatch(text.strip()):
        raise ValueError(f"{text!r}: not an integer in plain decimal digits")
    return int(text)


def plain_float(text: str) -> float:
    """A number written as `DECIMAL` spells one (inf and nan read, for a range check to name them); ValueError for
    anything else, which float() would read: '１e-3', '1_0'."""
    if not isinstance(text, str) or not DECIMAL.fullmatch(text.strip()):
        raise ValueError(f"{text!r}: not a number in plain decimal digits")
    return float(text)


NAME_NOT_TEXT = (
    "is not text (YAML reads off, on, yes, no and null as true / false / none, and 12, 1.5 or 0x10 as numbers): "
    "quote the name"
)
"""Why a concept name read from YAML (a bank, a preset) is refused when it is not a str."""


def spelled(mode: str, value: float) -> str:
    """A control as a `--set` mode: `none`, `off`, `on:S`, `clamp:S` or `scale:G` (`value`: S or G)."""
    return mode if mode in ("none", "off") else f"{mode}:{value:g}"


def control_problem(mode: str, strength: float, gain: float) -> str | None:
    """What is wrong with a control (`mode`, `strength` of on / clamp, `gain` of scale), in words, or None."""
    if mode not in ALL_MODES:
        return f"mode {mode!r}: expected one of {', '.join(ALL_MODES)}"
    for what, value in (("strength", strength), ("gain", gain)):
        if not math.isfinite(value) or abs(value) > STRENGTH_LIMIT:
            return f"{what} {refused_number(value)}: expected a finite number in {LIMIT_TEXT}"
    if mode == "clamp" and not 0 < strength <= CLAMP_LIMIT:
        return (
            f"clamp strength {refused_number(strength)}: expected a number in (0, {CLAMP_LIMIT:g}] "
            "(the floor is strength x the feature's typical activation)"
        )
    return None
