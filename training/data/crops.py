"""Where a random training crop starts: one rule for the codec's and the demo RAVE's batches."""

from __future__ import annotations

import numpy as np


def crop_start(rng: np.random.Generator, n: int, length: int) -> int:
    """A start drawn uniformly from every one at which `length` samples fit in `n` (0 when they never do): the
    last is included, so a clip's last sample is in some crops (numpy's upper bound is exclusive)."""
    return int(rng.integers(0, max(1, n - length + 1)))
