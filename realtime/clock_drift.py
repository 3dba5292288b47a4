"""How fast a device clock runs against the frames an audio callback counts (callback times, as PortAudio gives
them; on JACK the engine reads JACK's cycle counter instead, `realtime.jack_clock`, which does not drift).

The engine places callbacks by the device clock minus the frames counted (the offset), whose least value is the
reference: a callback only ever runs late, so whole periods above the reference were skipped. A clock that drifts
moves the offset steadily, so the reference has to rise with it; but a reference that rises by a fixed slew
(2 % of the frames: JACK's `jack_frame_time` was measured 5300 ppm fast) also absorbs a run of late callbacks
within a few callbacks (an eighth of a period in 7), and a cycle skipped just after that, with the callback
after it back on time, is not seen. Drift is a slope and lateness a step, so the rate is estimated from the
least offset of each window of frames, as the median of the differences between windows: a run of lateness,
however long, is one step up and one down among them and does not move the median. Until enough windows are in,
the fixed slew is used. JACK's clock also changes its rate in the first seconds after a client starts (measured:
from 1.1 % slow to 0.3 % fast within about 3 s), which the median of all windows followed two seconds late while
the reference fell behind by 7/8 of a period and on-time callbacks counted as skips; a rate that rises beyond the
margin is taken from the last few windows.
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
    recent: the last differences whose median is the rate when it is above the median of all by more than
        `margin`: a clock whose rate rises is followed within about a second (the median of all windows lagged by
        two seconds, while the reference fell behind), and a run of lateness, one step up and one down, is still
        one or two of three.
    """

    def __init__(self, window: int, windows: int = 9, warmup: int = 4, fallback: float = 0.02, margin: float = 0.0005,
                 recent: int = 3):  # fmt: skip
        self.window, self.fallback, self.margin, self.recent = window, fallback, margin, recent
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
            diffs = [b - a for a, b in pairwise(self._mins)]
            rate, recent = statistics.median(diffs) / frames, statistics.median(diffs[-self.recent :]) / frames
            # a rate that rises by more than the margin (JACK's clock settling after start) is followed from the
            # last few differences; otherwise all of them, the less noisy estimate
            self.rate = recent if recent - rate > self.margin else rate
