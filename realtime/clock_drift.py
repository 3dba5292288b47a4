"""How fast a device clock runs against the frames an audio callback counts.

The engine places callbacks by the device clock minus the frames counted (the offset), whose least value is the
reference: a callback only ever runs late, so whole periods above the reference were skipped. A clock that drifts
moves the offset steadily, so the reference has to rise with it; but a reference that rises by a fixed slew
(2 % of the frames: JACK's `jack_frame_time` was measured 5300 ppm fast) also absorbs a run of late callbacks
within a few callbacks (an eighth of a period in 7), and a cycle skipped just after that, with the callback
after it back on time, is not seen. Drift is a slope and lateness a step, so the rate is estimated from the
least offset of each window of frames, as the median of the differences between windows: a run of lateness,
however long, is one step up and one down among them and does not move the median. Until enough windows are in,
the fixed slew is used.
"""

from __future__ import annotations

import math
import statistics
from itertools import pairwise


class ClockDrift:
    """Args:
    window: frames per window (half a second of audio suits every period).
    windows: windows whose differences give the median (the last `windows`).
    warmup: windows needed before the estimate is used.
    fallback: the rise per frame before then.
    margin: the rise per frame allowed above the estimated rate (its noise, a rate that changes).
    """

    def __init__(self, window: int, windows: int = 9, warmup: int = 4, fallback: float = 0.02, margin: float = 0.0005):
        self.window, self.fallback, self.margin = window, fallback, margin
        self.windows, self.warmup = windows, warmup
        self._mins: list[float] = []  # least offset of each full window, oldest first
        self._least, self._frames = math.inf, 0  # of the window being filled
        self.rate: float | None = None  # frames of clock per frame counted, above 1 (None: not estimated yet)

    def rise(self, offset: float, frames: int) -> float:
        """Record a placed callback's `offset` (device clock − frames counted, in frames) and return how far the
        reference may rise for its `frames`."""
        self._least = min(self._least, offset)
        self._frames += frames
        if self._frames >= self.window:
            self._close_window()
        if self.rate is None:
            return self.fallback * frames
        return (max(self.rate, 0.0) + self.margin) * frames

    def _close_window(self) -> None:
        self._mins.append(self._least)
        del self._mins[: -self.windows]
        frames, self._least, self._frames = self._frames, math.inf, 0  # windows of whole callbacks: all alike
        if len(self._mins) >= self.warmup:
            self.rate = statistics.median(b - a for a, b in pairwise(self._mins)) / frames
