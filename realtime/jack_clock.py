"""JACK's own count of frames at the start of the current cycle, for streams PortAudio runs on JACK.

PortAudio gives a JACK callback `jack_frame_time` as its clock: an estimate interpolated from JACK's delay-locked
loop at the moment the callback runs. It reads a late callback late, and while the loop settles after a server
(re)start it runs up to 1 % slow or fast for seconds, so the engine's reference wandered and on-time callbacks
counted as skipped cycles: impulses came back one or two periods early (CI, and 5 of 13 runs here under load).
`jack_last_frame_time` is the frame counter itself, set when the cycle starts: it moves by whole periods only
(measured: every step of 1013 callbacks with 7–20 ms stalls was a multiple of 256), so a skipped cycle is an exact
step and a late callback at most a one-cycle blip that comes back. It reads the engine's shared state, which the
JACK library PortAudio loaded into this process holds once PortAudio's client is open.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import math
from collections.abc import Callable

WRAP = 1 << 32  # jack_nframes_t is 32 bits: it wraps after 27 hours at 44.1 kHz


class CycleClock:
    """Unwrapped frames at the start of the current JACK cycle, plus the frames of the callbacks that read the same
    cycle before this one: PortAudio splits a JACK period longer than the stream's block into several callbacks
    within one cycle (JACK at 1024, `live --period 256`: four reads of one count). `read` gives the raw 32-bit
    counter; call it once per callback with the callback's frames.

    `cycle` is JACK's period: read with `period` where given (JACK's buffer size, which `jack_bufsize` changes while
    the stream plays), else as the counter shows it (the greatest common divisor of its steps so far, which never
    grows back; 0 before the first): where a callback spans two JACK cycles (JACK at 256, `live --period 512`) a
    lost JACK cycle is half a callback, which the engine must count as such."""

    def __init__(self, read: Callable[[], int], period: Callable[[], int] | None = None):
        self.read, self.period = read, period
        self.cycle = 0
        self._raw: int | None = None
        self._frames = 0  # unwrapped count of the cycle last read
        self._within = self._last = 0  # frames read in that cycle before the last callback, and the last's

    def __call__(self, frames: int) -> int:
        raw = int(self.read())
        if raw == self._raw:
            self._within += self._last
        else:
            if self._raw is not None:
                step = (raw - self._raw) % WRAP
                step = step - WRAP if step >= WRAP // 2 else step  # a read that goes back stays signed
                self._frames += step
                if step > 0 and self.period is None:
                    self.cycle = math.gcd(self.cycle, step)
            self._raw, self._within = raw, 0
            if self.period is not None:
                self.cycle = int(self.period()) or self.cycle  # read once per cycle (0: not answered)
        self._last = frames
        return self._frames + self._within

    @property
    def cycle_start(self) -> bool:
        """Whether the last read was the first callback of its JACK cycle."""
        return self._within == 0


# JACK2's calls that read the server's shared state check their client handle for NULL only (`jack_get_buffer_size`,
# `jack_port_by_name`, `jack_get_ports`), or not at all (`jack_last_frame_time`): this stands in for PortAudio's
# client, which is not reachable from here, and is never read
HANDLE = ctypes.c_void_p(ctypes.addressof(_handle := ctypes.create_string_buffer(16)))


def jack_library(keep_gil: bool = True) -> ctypes.CDLL | None:
    """The JACK library in this process where it is JACK2 (version 1.9.x), which reads the process's shared server
    state with any handle, with `jack_last_frame_time` and `jack_get_buffer_size` typed; None elsewhere: JACK1 would
    dereference the handle, PipeWire's JACK answers 0. `keep_gil` (PyDLL): the audio callback must not hand the GIL
    to another thread in these calls; a control thread's calls that may wait (`jack_port_get_latency_range` sleeps
    1.1 periods while a graph change is pending) must hand it over (CDLL), or every thread of the process waits."""
    name = ctypes.util.find_library("jack") or "libjack.so.0"
    try:
        lib = (ctypes.PyDLL if keep_gil else ctypes.CDLL)(name)
        version, last, size = lib.jack_get_version_string, lib.jack_last_frame_time, lib.jack_get_buffer_size
    except (OSError, AttributeError):
        return None
    version.restype, version.argtypes = ctypes.c_char_p, []
    for counter in (last, size):
        counter.restype, counter.argtypes = ctypes.c_uint32, [ctypes.c_void_p]
    return lib if (version() or b"").startswith(b"1.9.") else None


def jack_cycle_clock() -> CycleClock | None:
    """A `CycleClock` on the JACK library in this process (its period read from the server), or None where there is
    none that reads without PortAudio's client (PortAudio's clock is used there)."""
    lib = jack_library()
    if lib is None or not lib.jack_last_frame_time(None):
        return None
    last, size = lib.jack_last_frame_time, lib.jack_get_buffer_size
    return CycleClock(lambda: last(None), lambda: size(HANDLE))
