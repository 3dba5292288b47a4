"""The one minimum-examples rule for finding a concept, on both model paths (RAVE and MusicGen).

Plain Python (no torch), so the CLI reads the limits for its options without loading a model stack.
"""

from __future__ import annotations

from sae.errors import UserError

# The 95 % interval of an AUROC of 0.8-0.9 (Hanley & McNeil) is about ±0.10-0.14 with 20 clips per side and
# ±0.13-0.18 with 12: below 12 a useful concept cannot be told from a weak one; 12-19 works but is loose.
MIN_EXAMPLES = 12
WARN_EXAMPLES = 20


def check_examples(sides: dict[str, int], minimum: int = MIN_EXAMPLES, unit: str = "usable clip(s)") -> list[str]:
    """The minimum-examples rule for finding a concept, on both model paths.

    Args:
        sides: usable clips per side, keyed by how the user names that side (e.g. "--with guitar/with").
        minimum: clips needed per side; may be raised above `MIN_EXAMPLES`, never lowered below it.
        unit: what the counts are ("audio file(s)" before the files are read, "usable clip(s)" after).

    Raises `UserError` naming the first side with fewer than `minimum` clips; returns a note for every side
    with fewer than `WARN_EXAMPLES` (the held-out AUROC is loose there).
    """
    if minimum < MIN_EXAMPLES:
        raise UserError(f"--min-examples {minimum}: expected at least {MIN_EXAMPLES} (clips per side)")
    for side, n in sides.items():
        if n < minimum:
            raise UserError(f"{side}: {n} {unit}; need at least {minimum} usable clips per side to find a concept")
    return [
        f"{side}: only {n} clips; with fewer than {WARN_EXAMPLES} per side the held-out AUROC is loose"
        for side, n in sides.items()
        if n < WARN_EXAMPLES
    ]
