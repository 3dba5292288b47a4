"""Seeds as numpy and scikit-learn take them: one stream per (seed, ...) for every seed of `--seed`'s range,
[0, 2**63). Numpy only: the CLI's parser imports it (through the data maker) without loading torch."""

from __future__ import annotations

import numpy as np

SEED_RANGE = (0, 2**63)
"""Every seed this project takes (`--seed`, job lists, the seed an SAE's cfg.json records): what both torch
(`manual_seed`) and numpy (`default_rng`) take; past it a torch traceback at the first render, below 0 numpy's
(`data make --seed -1`)."""


def seeded(seed: int, *rest: int) -> np.random.Generator:
    """numpy's generator of the stream (seed, *rest), one per tuple. numpy reads a seed past 2**32 as two 32-bit
    words and drops trailing zero words, so (2**32 + 5, 0) drew (5, 1)'s stream: another --seed, the same data.
    Such a seed is given as its two words and a tag; smaller seeds keep the streams they always had."""
    words = [seed, *rest] if seed < 2**32 else [seed & 0xFFFFFFFF, seed >> 32, *rest, 0x5EED]
    return np.random.default_rng(words)


def sklearn_seed(seed: int) -> int:
    """A `random_state` scikit-learn takes (it refuses 2**32 and above, a traceback after the SAE was trained): the
    seed itself below that, else a word drawn from `seeded(seed)`."""
    return seed if seed < 2**32 else int(seeded(seed, 0x5C1).integers(2**32))
