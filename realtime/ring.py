"""A lock-free single-producer / single-consumer ring of audio frames.

The audio callback and the model thread each own one side: the writer only moves `_write`, the reader only
moves `_read`, and both are plain Python ints (atomic under the GIL), so neither side ever waits on the
other. Storage is preallocated; `write`/`read` copy into it with at most two slice copies and allocate
nothing of their own.
"""

from __future__ import annotations

import numpy as np


class AudioRing:
    """Ring buffer of `capacity` frames × `channels` float32 samples.

    Args:
        capacity: frames it can hold (rounded up to a power of two).
        channels: samples per frame.
    """

    def __init__(self, capacity: int, channels: int):
        size = 1
        while size < capacity:
            size *= 2
        self.capacity = size
        self.channels = channels
        self._buf = np.zeros((size, channels), dtype=np.float32)
        self._write = 0  # total frames ever written (writer-owned)
        self._read = 0  # total frames ever read (reader-owned)

    def readable(self) -> int:
        return self._write - self._read

    def writable(self) -> int:
        return self.capacity - (self._write - self._read)

    def write(self, frames: np.ndarray) -> int:
        """Copy up to len(frames) frames in; returns how many fit (the rest is dropped: an overflow)."""
        n = min(len(frames), self.writable())
        if n <= 0:
            return 0
        start = self._write & (self.capacity - 1)
        first = min(n, self.capacity - start)
        self._buf[start : start + first] = frames[:first]
        if n > first:
            self._buf[: n - first] = frames[first:n]
        self._write += n
        return n

    def write_zeros(self, n: int) -> int:
        """Append `n` frames of silence (priming the output side)."""
        n = min(n, self.writable())
        start = self._write & (self.capacity - 1)
        first = min(n, self.capacity - start)
        self._buf[start : start + first] = 0.0
        if n > first:
            self._buf[: n - first] = 0.0
        self._write += n
        return n

    def read(self, out: np.ndarray) -> int:
        """Copy up to len(out) frames out into `out`; returns how many were available."""
        n = min(len(out), self.readable())
        if n <= 0:
            return 0
        start = self._read & (self.capacity - 1)
        first = min(n, self.capacity - start)
        out[:first] = self._buf[start : start + first]
        if n > first:
            out[first:n] = self._buf[: n - first]
        self._read += n
        return n

    def skip(self, n: int) -> int:
        """Drop up to `n` readable frames (catching up after an underrun); returns how many."""
        n = min(n, self.readable())
        self._read += max(n, 0)
        return max(n, 0)
