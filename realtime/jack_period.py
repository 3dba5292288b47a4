"""Follow a JACK server's period (`jack_bufsize`, QjackCtl) changed while a stream plays.

PortAudio counts a JACK stream's latency once, when it opens: each side is its device port's latency less one JACK
period, plus PortAudio's own buffering. A period changed later moves the real delay (measured with bypassed impulses
on a dummy server, live at 256 frames: 256 → 1024 added 768 samples, → 512 added 256, → 128 took 128 off) while the
figure stayed. `PeriodWatch` reads the period and the ports' latencies again and moves the engine's device latency by
what PortAudio's count would move (measured: exactly those figures).

The reads use JACK2's shared server state, as `realtime.jack_clock` does: JACK2 (1.9.x) answers
`jack_get_buffer_size` and `jack_port_by_name` from it for any non-NULL client handle without reading the handle, and
PortAudio's own client is not reachable from here.
"""

from __future__ import annotations

import ctypes
import ctypes.util
from collections.abc import Callable
from dataclasses import dataclass

from realtime.engine import Latency

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
    and follows its changes in a `Latency`. `check` is cheap (shared memory): call it from a control loop."""

    def __init__(self, read: Callable[[], Timing | None], latency: Latency):
        self.read = read
        self.latency = latency
        self.timing = read()

    def check(self) -> str | None:
        """A line saying how the latency moved where the period changed since the last check, else None."""
        now = self.read()
        was = self.timing
        if now is None or was is None or now == was:
            return None
        self.timing = now
        lat = self.latency
        before = lat.total
        lat.device_in = max(lat.device_in + now.device_in - was.device_in, 0)
        lat.device_out = max(lat.device_out + now.device_out - was.device_out, 0)
        ms = 1000.0 / lat.sr
        return (
            f"JACK's period changed from {was.period} to {now.period} frames: latency now {lat.total} samples = "
            f"{lat.total * ms:.1f} ms (was {before} = {before * ms:.1f} ms)"
        )


def jack_timing(client: str) -> Callable[[], Timing | None] | None:
    """A reader of `Timing` for `client`'s first capture and playback ports (the ports PortAudio counts), or None
    where this process's JACK library cannot read them without a client (not JACK2) or the client has none."""
    name = ctypes.util.find_library("jack") or "libjack.so.0"
    try:
        lib = ctypes.PyDLL(name)
        version, size = lib.jack_get_version_string, lib.jack_get_buffer_size
        ports, by_name, free = lib.jack_get_ports, lib.jack_port_by_name, lib.jack_free
        latency = lib.jack_port_get_latency_range
    except (OSError, AttributeError):
        return None
    version.restype, version.argtypes = ctypes.c_char_p, []
    if not (version() or b"").startswith(b"1.9."):
        return None
    handle = ctypes.create_string_buffer(16)  # never read by JACK2's calls below, only checked for NULL
    client_ref = ctypes.c_void_p(ctypes.addressof(handle))
    size.restype, size.argtypes = ctypes.c_uint32, [ctypes.c_void_p]
    ports.restype = ctypes.POINTER(ctypes.c_char_p)
    ports.argtypes = [ctypes.c_void_p, ctypes.c_char_p, ctypes.c_char_p, ctypes.c_ulong]
    free.restype, free.argtypes = None, [ctypes.c_void_p]
    by_name.restype, by_name.argtypes = ctypes.c_void_p, [ctypes.c_void_p, ctypes.c_char_p]
    latency.restype, latency.argtypes = None, [ctypes.c_void_p, ctypes.c_int, ctypes.POINTER(_Range)]
    pattern = ("^" + "".join(c if c.isalnum() else "\\" + c for c in client) + ":").encode()

    def first_port(flags: int) -> bytes | None:
        found = ports(client_ref, pattern, b"audio", flags)
        if not found:
            return None
        try:
            return found[0]
        finally:
            free(found)

    names = first_port(IS_OUTPUT), first_port(IS_INPUT)
    if None in names or not size(client_ref):
        return None

    def port_latency(port_name: bytes, mode: int) -> int | None:
        port = by_name(client_ref, port_name)
        if not port:  # the client went away (a server that quit): the stream's own checks say so
            return None
        span = _Range()
        latency(port, mode, ctypes.byref(span))
        return int(span.max)

    def read() -> Timing | None:
        period = int(size(client_ref))
        cap, play = port_latency(names[0], CAPTURE), port_latency(names[1], PLAYBACK)
        if not period or cap is None or play is None:
            return None
        return Timing(period, cap - period, play - period)

    return read
