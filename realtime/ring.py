"""Audio frames kept by absolute position: a ring the audio callback and the model thread share without locks.

Positions count frames since the stream started. A writer `put`s frames at a position, a reader `get`s any
range it knows to be written; slot `p % capacity` holds frame p. The ring itself keeps no read or write
pointer: who may read what is published by the engine as plain ints (atomic under the GIL), so neither side
ever waits on the other, the writer never refuses frames, and a reader that falls more than `capacity`
frames behind finds out from positions alone (its frames were overwritten) instead of shifting the timeline.
Storage is preallocated; `put`/`get` are at most two slice copies and allocate nothing of their own.
"""

from __future__ import annotations

import numpy as np


class FrameRing:
    """`capacity` frames × `channels` float32 samples, addressed by absolute frame position.

    Args:
        capacity: frames it holds (rounded up to a power of two).
        channels: samples per frame.
    """

    def __init__(self, capacity: int, channels: int):
        size = 1
        while size < capacity:
            size *= 2
        self.capacity = size
        self.channels = channels
        self._buf = np.zeros((size, channels), dtype=np.float32)

    def put(self, pos: int, frames: np.ndarray) -> None:
        """Copy `frames` [n, channels] into positions pos .. pos + n − 1 (n ≤ capacity)."""
        n = len(frames)
        start = pos & (self.capacity - 1)
        first = min(n, self.capacity - start)
        self._buf[start : start + first] = frames[:first]
        if n > first:
            self._buf[: n - first] = frames[first:n]

    def get(self, pos: int, out: np.ndarray) -> None:
        """Copy positions pos .. pos + len(out) − 1 into `out` (whatever the slots hold now)."""
        n = len(out)
        start = pos & (self.capacity - 1)
        first = min(n, self.capacity - start)
        out[:first] = self._buf[start : start + first]
        if n > first:
            out[first:n] = self._buf[: n - first]

    def fill(self, pos: int, n: int, value: float = 0.0) -> None:
        """Set positions pos .. pos + n − 1 to `value`."""
        start = pos & (self.capacity - 1)
        first = min(n, self.capacity - start)
        self._buf[start : start + first] = value
        if n > first:
            self._buf[: n - first] = value
