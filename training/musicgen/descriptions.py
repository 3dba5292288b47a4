"""Text descriptions of labelled clips for the demo MusicGen, built from a `musicsae data make` manifest row.

A clip's phrases, in this order: its instruments (`guitar piano strings brass bass drums`), its voice
(`male voice` / `female voice`, sometimes just `voice`) and its tempo rounded to 20 bpm (`120 bpm`), e.g.
"guitar bass drums, male voice, 120 bpm". In training every phrase is dropped at random (so "drums" describes
any clip with drums), the whole description is dropped (the null condition of classifier-free guidance) or
replaced by `UNKNOWN` (the row every unknown description maps to). With `max_phrases`, a description is instead
1 to `max_phrases` of the clip's phrases (the count uniform, then the phrases): every description has its own
lookup-table row, so this keeps the rows few and each one trained often (the default draw spreads 64 000
training draws over ~850 rows, a median of 8 draws per row).

The conditioner is audiocraft's lookup table with the `noop` tokenizer: a description's row is
sha256(text) mod lut_bins. `assign_surfaces` gives every description (a set of phrases) a text whose row no
other description uses: the canonical text when it is free, else another order of its phrases, else the
canonical text with trailing dots. The demo model's `descriptions.json` lists these texts
(`realtime/musicgen/descriptions.py` maps free prompts onto them).
"""

from __future__ import annotations

import itertools
from collections.abc import Iterable
from dataclasses import asdict, dataclass

import numpy as np

from sae.errors import UserError

INSTRUMENTS = ("guitar", "piano", "strings", "brass", "bass", "drums")
TEMPOS = (80, 100, 120, 140)
UNKNOWN = "unknown"

Key = frozenset[str]  # a description: its set of phrases


def lut_row(text: str, bins: int) -> int:
    """The lookup-table row audiocraft's `noop` tokenizer gives `text` (its `hash_trick`)."""
    from audiocraft.utils.utils import hash_trick

    return int(hash_trick(text, bins))


def tempo_phrase(bpm: float) -> str:
    return f"{min(TEMPOS, key=lambda t: (abs(t - bpm), t))} bpm"


def clip_phrases(row: dict) -> list[str]:
    """All phrases of a manifest row, in canonical order (gendered voice; tempo last)."""
    out = [name for name in INSTRUMENTS if int(row.get(name, 0)) == 1]
    if row.get("voice") in ("male", "female"):
        out.append(f"{row['voice']} voice")
    out.append(tempo_phrase(float(row["tempo"])))
    return out


def _order(phrase: str) -> tuple[int, str]:
    if phrase in INSTRUMENTS:
        return (0, f"{INSTRUMENTS.index(phrase):02d}")
    if phrase.endswith(" voice") or phrase == "voice":
        return (1, phrase)
    return (2, phrase)


def canonical_text(key: Key, order: Iterable[str] | None = None) -> str:
    """Instruments joined by spaces, then `, voice`, then `, tempo` (or the phrases in `order`, same joins)."""
    phrases = list(order) if order is not None else sorted(key, key=_order)
    inst = " ".join(p for p in phrases if p in INSTRUMENTS)
    rest = [p for p in phrases if p not in INSTRUMENTS]
    return ", ".join([inst, *rest] if inst else rest)


@dataclass
class DescriptionDropout:
    """Args:
    p_keep: probability of keeping each phrase.
    p_ungender: probability that a kept voice phrase loses its gender (`voice`).
    p_null: probability of the null description (classifier-free guidance).
    p_unknown: probability of the `UNKNOWN` description.
    max_phrases: when set, a description is 1..max_phrases of the clip's phrases (count uniform) instead of
        each phrase kept with `p_keep`.
    """

    p_keep: float = 0.8
    p_ungender: float = 0.3
    p_null: float = 0.2
    p_unknown: float = 0.02
    max_phrases: int | None = None

    def identity(self) -> dict:
        """The settings that define a training run (`max_phrases` only when set, so older runs still resume)."""
        out = asdict(self)
        if self.max_phrases is None:
            del out["max_phrases"]
        return out

    def sample(self, row: dict, rng: np.random.Generator) -> Key | None:
        """A random description of the clip: a set of phrases, frozenset({UNKNOWN}) or None (null)."""
        u = rng.random()
        if u < self.p_null:
            return None
        if u < self.p_null + self.p_unknown:
            return frozenset({UNKNOWN})
        phrases = clip_phrases(row)
        if self.max_phrases is not None:
            n = int(rng.integers(1, min(self.max_phrases, len(phrases)) + 1))
            phrases = [phrases[i] for i in sorted(rng.choice(len(phrases), size=n, replace=False))]
        kept = []
        for phrase in phrases:
            if self.max_phrases is None and rng.random() >= self.p_keep:
                continue
            if phrase.endswith(" voice") and rng.random() < self.p_ungender:
                phrase = "voice"
            kept.append(phrase)
        return frozenset(kept) if kept else None

    def describe(self, row: dict) -> Key:
        """The clip's fullest description this dropout can give: all its phrases, or its first `max_phrases`
        (instruments first), for evaluation."""
        return frozenset(clip_phrases(row)[: self.max_phrases])


def reachable(rows: Iterable[dict], max_phrases: int | None = None) -> dict[Key, int]:
    """Every description dropout can give a clip of `rows` (at most `max_phrases` phrases) → how many of the
    clips it can describe."""
    counts: dict[Key, int] = {}
    for row in rows:
        phrases = clip_phrases(row)
        options = [[p, "voice"] if p.endswith(" voice") else [p] for p in phrases]
        seen: set[Key] = set()
        for r in range(1, min(len(phrases), max_phrases or len(phrases)) + 1):
            for combo in itertools.combinations(range(len(phrases)), r):
                for choice in itertools.product(*(options[i] for i in combo)):
                    seen.add(frozenset(choice))
        for key in seen:
            counts[key] = counts.get(key, 0) + 1
    return counts


def assign_surfaces(keys: Iterable[Key], bins: int) -> dict[Key, str]:
    """A text for `UNKNOWN` and every key, each on its own lookup-table row (see the module docstring).

    Deterministic: keys are placed shortest first, then by canonical text.
    """
    todo = sorted(set(keys) - {frozenset({UNKNOWN})}, key=lambda k: (len(k), canonical_text(k)))
    if len(todo) + 1 > bins // 2:
        raise UserError(f"--lut-bins {bins}: {len(todo) + 1} descriptions need at least {2 * (len(todo) + 1)} rows")
    taken: dict[int, Key] = {lut_row(UNKNOWN, bins): frozenset({UNKNOWN})}
    out: dict[Key, str] = {frozenset({UNKNOWN}): UNKNOWN}
    for key in todo:
        base = sorted(key, key=_order)
        candidates = itertools.chain(
            (canonical_text(key, order) for order in itertools.islice(itertools.permutations(base), 24)),
            (canonical_text(key) + "." * j for j in range(1, 1000)),
        )
        for text in candidates:
            row = lut_row(text, bins)
            if row not in taken:
                taken[row] = key
                out[key] = text
                break
        else:  # at most half the rows are taken, so 1000 dotted variants all colliding is ~2^-1000
            raise RuntimeError(f"no free lookup-table row for {canonical_text(key)!r} in {bins} bins")
    return out
