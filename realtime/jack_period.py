"""Follow a JACK server's period (`jack_bufsize`, QjackCtl) changed while a stream plays.

PortAudio counts a JACK stream's latency once, when it opens: each side is its device port's latency less one JACK
period, plus PortAudio's own buffering. A period changed later moves the real delay (measured with bypassed impulses
on a dummy server, live at 256 frames: 256 → 1024 added 768 samples, → 512 added 256, → 128 took 128 off) while the
figure stayed. `PeriodWatch` reads the period and the ports' latencies again and sets the engine's device latency to
what PortAudio's count gives for them (measured: exactly those figures).

The reads use JACK2's shared server state (`realtime.jack_clock.jack_library`): PortAudio's own client is not
reachable from here. While `jack_bufsize` runs they can catch the new period with the old latencies (seen 1 to 12
times in 11,000 reads over 20 changes): a reading is taken only where it makes sense (no port shorter than the
period) and the next check reads the same, and the figure is set from it, not moved by it, so no reading stays.
"""

from __future__ import annotations

import ctypes
from collections.abc import Callable
from dataclasses import dataclass

from realtime.engine import Latency
from realtime.jack_clock import HANDLE, jack_library

CAPTURE, PLAYBACK = 0, 1  # jack_latency_callback_mode_t
IS_INPUT, IS_OUTPUT = 0x1, 0x2  # JackPortFlags: a device's capture ports are outputs, its playback ports inputs


class _Range(ctypes.Structure):
    _fields_ = [("min", ctypes.c_uint32), ("max", ctypes.c_uint32)]


@dataclass(frozen=True)
class Timing:
    """A JACK period and the latency PortAudio counts on each side for it, less its own buffering (frames)."""

    period: int
    device_in: int
    device_out: int


class PeriodWatch:
    """Reads `Timing` for a JACK client's ports (a PortAudio JACK device is a client: "system" for the sound card)
    and keeps a `Latency`'s device figures on it (and its block buffer, where the engine's moves with the period).
    `check` reads shared memory, but may wait 1.1 JACK periods while the server's graph changes: call it from a
    control loop, never from the audio callback."""

    def __init__(
        self,
        read: Callable[[], Timing | None],
        latency: Latency,
        block_buffer: Callable[[int], int] | None = None,
    ):
        self.read = read
        self.latency = latency
        self.block_buffer = block_buffer  # the engine's block buffer for a period (`Engine.prefill_for`), if it moves
        self._said = latency.total  # the figure as last said: the engine may move its block buffer before a check
        self.timing = _sane(read())
        at_open = self.timing or Timing(0, 0, 0)
        # PortAudio's own buffering, and whatever else its count at open holds beside the ports'
        self._base = (latency.device_in - at_open.device_in, latency.device_out - at_open.device_out)
        self._seen: Timing | None = None  # a new reading, taken once the next check reads it again

    def check(self) -> str | None:
        """A line saying how the latency moved where the period changed since the last check, else None."""
        now, was = _sane(self.read()), self.timing
        if now is None or was is None or now == was:
            self._seen = None
            return None
        if now != self._seen:  # read while it changes, maybe: taken if the next check agrees
            self._seen = now
            return None
        self.timing, self._seen = now, None
        lat = self.latency
        before = self._said
        lat.device_in, lat.device_out = self._base[0] + now.device_in, self._base[1] + now.device_out
        if self.block_buffer is not None:
            lat.block_buffer = self.block_buffer(now.period)
        self._said = lat.total
        ms = 1000.0 / lat.sr
        moved = f"latency now {lat.total} samples = {lat.total * ms:.1f} ms (was {before} = {before * ms:.1f} ms)"
        if (now.device_in, now.device_out) == (was.device_in, was.device_out):  # `jackd -S`: the delay moves anyway
            moved = "its ports report the same latency" + (
                f" ({lat.total} samples = {lat.total * ms:.1f} ms)"
                if lat.total == before
                else f"; with the engine's block buffer for the new period, {moved}"
            )
        return f"JACK's period changed from {was.period} to {now.period} frames: {moved}"


def _sane(t: Timing | None) -> Timing | None:
    """A reading whose ports are no shorter than its period (else one caught while the period changes)."""
    return t if t is not None and t.period > 0 and t.device_in >= 0 and t.device_out >= 0 else None


def jack_timing(client: str) -> Callable[[], Timing | None] | None:
    """A reader of `Timing` for `client`'s first capture and playback ports (the ports PortAudio counts), or None
    where this process's JACK library cannot read them without a client (not JACK2) or the client has none. Its
    calls release the GIL: JACK2 makes a latency read wait 1.1 periods while a graph change is pending (any
    `jack_connect` of any client), which held the audio callback and the model thread 100 ms at a period of 4096."""
    lib = jack_library(keep_gil=False)
    if lib is None:
        return None
    size = lib.jack_get_buffer_size
    try:
        ports, by_name = lib.jack_get_ports, lib.jack_port_by_name
        free, latency = lib.jack_free, lib.jack_port_get_latency_range
    except AttributeError:
        return None
    ports.restype = ctypes.POINTER(ctypes.c_char_p)
    ports.argtypes = [ctypes.c_void_p, ctypes.c_char_p, ctypes.c_char_p, ctypes.c_ulong]
    free.restype, free.argtypes = None, [ctypes.c_void_p]
    by_name.restype, by_name.argtypes = ctypes.c_void_p, [ctypes.c_void_p, ctypes.c_char_p]
    latency.restype, latency.argtypes = None, [ctypes.c_void_p, ctypes.c_int, ctypes.POINTER(_Range)]
    pattern = ("^" + "".join(c if c.isalnum() else "\\" + c for c in client) + ":").encode()

    def first_port(flags: int) -> bytes | None:
        found = ports(HANDLE, pattern, b"audio", flags)
        if not found:
            return None
        try:
            return found[0]
        finally:
            free(found)

    names = first_port(IS_OUTPUT), first_port(IS_INPUT)
    if None in names or not size(HANDLE):
        return None

    def port_latency(port_name: bytes, mode: int) -> int | None:
        port = by_name(HANDLE, port_name)
        if not port:  # the client went away (a server that quit): the stream's own checks say so
            return None
        span = _Range()
        latency(port, mode, ctypes.byref(span))
        return int(span.max)

    def read() -> Timing | None:
        period = int(size(HANDLE))
        cap, play = port_latency(names[0], CAPTURE), port_latency(names[1], PLAYBACK)
        if not period or cap is None or play is None or int(size(HANDLE)) != period:  # changed while read
            return None
        return Timing(period, cap - period, play - period)

    return read
