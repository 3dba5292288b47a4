"""Drive an `Engine` from a sound device (sounddevice, full duplex) or from a file.

`open_duplex` opens the device at the model's rate and refuses clearly when the device is missing or
will not run at that rate. `run_file` feeds a file through the very same callback, period by period, at
real-time pace or as fast as the model thread goes, and writes the output with the engine's latency
removed (so bypass reproduces the input sample for sample). `close_stream` stops a device stream without
hanging when its device went away mid-stream.
"""

from __future__ import annotations

import atexit
import math
import os
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from realtime.engine import Engine
from realtime.jack_clock import jack_cycle_clock
from realtime.jack_period import PeriodWatch, jack_timing
from sae.atomic import flush_standard_streams
from sae.errors import Terminated, UserError

JACK_HINT = (
    "start a JACK server on its dummy backend (Debian package jackd2: "
    "`JACK_NO_AUDIO_RESERVATION=1 jackd -d dummy -r 44100 -p 256 &`) or plug in a sound card, "
    "then run again; or use --in/--out files"
)


def _sounddevice():
    """Import sounddevice (PortAudio initialises here: a JACK server must already be running)."""
    try:
        import sounddevice as sd
    except OSError as exc:
        raise UserError(f"audio: PortAudio is not available ({exc})") from None
    return sd


def find_device(name: str | int | None) -> int | None:
    """A duplex device index by index or by (part of) its name; None = the system default."""
    sd = _sounddevice()
    devices = sd.query_devices()
    if len(devices) == 0:
        raise UserError(f"no audio devices found: {JACK_HINT}")
    if name is None or name == "":
        return None
    if isinstance(name, int) or (str(name).isascii() and str(name).isdigit()):  # not "²" nor "٠"
        index = int(name)
        if not 0 <= index < len(devices):
            raise UserError(f"audio device {name}: no such device (there are {len(devices)})")
        return index
    exact = [i for i, d in enumerate(devices) if d["name"] == name]
    exact = exact or [i for i, d in enumerate(devices) if d["name"].lower() == str(name).lower()]  # typed in full
    partial = [i for i, d in enumerate(devices) if str(name).lower() in d["name"].lower()]
    found = exact or partial
    if not found:
        names = ", ".join(repr(d["name"]) for d in devices)
        raise UserError(f"audio device {name!r}: not found (devices: {names})")
    if len(found) > 1:  # the first of two "USB Audio CODEC"s was taken without a word
        names = ", ".join(f"{i}: {devices[i]['name']!r}" for i in found)
        raise UserError(f"audio device {name!r}: matches {len(found)} devices ({names}); give its index or more of it")
    return found[0]


def check_device(device: str | int | None, channels: int, sr: int) -> int | None:
    """The device index if it runs `channels` in and out at `sr` Hz, else one clear `UserError`."""
    sd = _sounddevice()
    index = find_device(device)
    info = _device_info(sd, index)
    label = "the default device" if info is None else repr(info["name"]) + (" (the default)" if index is None else "")
    ins = _device_info(sd, index, "input")
    have = (
        int(ins.get("max_input_channels", channels)) if ins else 0,
        int(info.get("max_output_channels", channels)) if info else 0,
    )
    if min(have) < channels:  # PortAudio's own words blamed the rate ("refuses 1 channel(s) at 44100 Hz")
        hint = " (--channels 1 plays one)" if channels > 1 and min(have) >= 1 else ""
        if not min(have):  # a USB mic and the laptop's headphones: two devices, and live opens one (hunt 213)
            hint = "; live plays through one device of both: join two (a microphone and headphones) in JACK or PipeWire"
        raise UserError(
            f"audio device {label}: has {have[0]} input and {have[1]} output channel(s); live needs {channels} in and "
            f"{channels} out{hint}"
        )
    try:
        sd.check_input_settings(device=index, channels=channels, samplerate=sr, dtype="float32")
        sd.check_output_settings(device=index, channels=channels, samplerate=sr, dtype="float32")
    except (sd.PortAudioError, ValueError) as exc:
        rate = ""
        if info is not None and round(info.get("default_samplerate", sr)) != sr:
            rate = f"; it runs at {info['default_samplerate']:g} Hz"
            if _host_api(sd, info).startswith("JACK"):  # one rate for every client: the server's
                rate += f" ({jack_rate_fix(sr)})"
        raise UserError(
            f"audio device {label}: refuses {channels} channel(s) at {sr} Hz, the model's rate{rate} ({exc})"
        ) from None
    return index


def output_channels(device: str | int | None) -> int:
    """How many outputs `device` (as `find_device` takes it) has; 0 where PortAudio does not say."""
    sd = _sounddevice()
    info = _device_info(sd, find_device(device))
    return int(info.get("max_output_channels", 0)) if info else 0


def jack_rate_fix(sr: int) -> str:
    """What to do about a JACK server at another rate than the model's `sr`."""
    return f"a JACK server runs at the rate it was started with: start it with -r {sr}"


def _device_info(sd: Any, index: int | None, kind: str = "output") -> dict[str, Any] | None:
    """PortAudio's description of a device (None: the default `kind` one), or None where it has none."""
    try:
        return dict(sd.query_devices(index) if index is not None else sd.query_devices(kind=kind))
    except Exception:  # no default device: PortAudio raises
        return None


def _host_api(sd: Any, info: dict[str, Any]) -> str:
    try:
        return str(sd.query_hostapis(info["hostapi"])["name"])
    except Exception:
        return ""


MAX_DEVICE_LATENCY_S = 10.0
"""A device latency PortAudio reports at or above this (or below 0) is no latency: a JACK client whose ports report
none was read as −256 frames wrapped to 2**32 (97391 s), and /state/latency and the view repeated it."""


def open_duplex(engine: Engine, device: str | int | None = None) -> Any:
    """Open (not start) a duplex `sounddevice.Stream` calling `engine.callback` every `engine.period` frames.

    Sets the engine's device latency from what PortAudio reports for the opened stream, and on JACK its block buffer
    for JACK's period (`Engine.follow_cycle`) and the watch that follows a period changed later
    (`engine.period_watch`).
    """
    sd = _sounddevice()
    sr = engine.sr
    index = check_device(device, engine.channels, sr)
    info = _device_info(sd, index)
    label = "the default device" if index is None or info is None else repr(info["name"])
    try:
        stream = sd.Stream(
            samplerate=sr,
            blocksize=engine.period,
            device=index,
            channels=engine.channels,
            dtype="float32",
            latency="low",
            callback=engine.callback,
        )
    except (sd.PortAudioError, ValueError) as exc:
        jack = info is not None and _host_api(sd, info).startswith("JACK")
        if jack:  # a server that quit since PortAudio started: its exit handler asserts on it (SIGABRT, status 134)
            leave_stream(2)
        hint = "; did the JACK server quit?" if jack else ""
        raise UserError(f"audio device {label}: cannot open a duplex stream at {sr} Hz ({exc}){hint}") from None
    said = stream.latency
    lat_in, lat_out = (s if 0.0 <= s < MAX_DEVICE_LATENCY_S else 0.0 for s in said)
    if (lat_in, lat_out) != tuple(said):  # PortAudio's unsigned −256 frames: "latency 8589939313 samples" (hunt 213)
        engine.report(
            "device",
            f"{label}: PortAudio reported a device latency of {said[0]:.6g} s in and {said[1]:.6g} s out; "
            f"more than {MAX_DEVICE_LATENCY_S:g} s or below 0 counted as 0 (the latency printed leaves it out)",
        )
    engine.latency.device_in = round(lat_in * sr)
    engine.latency.device_out = round(lat_out * sr)
    if info is not None and _host_api(sd, info).startswith("JACK"):
        engine.device_clock = clock = jack_cycle_clock()  # PortAudio's JACK clock wanders
        if clock is not None and clock.period is not None:
            engine.follow_cycle(int(clock.period()))  # a JACK period longer than the stream's comes in bursts
        read = jack_timing(str(info["name"]))
        engine.period_watch = PeriodWatch(read, engine.latency, engine.prefill_for) if read else None
    return stream


def device_stopped(engine: Engine, label: str, streamed_s: float, waiting: float = 0.0) -> str:
    """The one line for a stream PortAudio stopped on its own (its device went away while playing); `waiting`: the
    seconds live waits for it to come back (`--reconnect`; 0: it exits)."""
    last = engine.counters.last_callback
    silent_s = time.perf_counter() - last if last else 0.0
    quiet = f", no callback for {silent_s:.1f} s" if silent_s >= 1.0 else ""
    return (
        f"audio device {label}: the stream stopped after {streamed_s:.1f} s of playing{quiet} (a JACK server that "
        "quit? an interface unplugged?); "
        + (f"waiting up to {waiting:g} s for it to come back (Ctrl-C stops)" if waiting > 0
           else "start the device again, then musicsae live")
    )  # fmt: skip


# Run by `DeviceProbe` in a child process: this process's PortAudio may be wedged on a dead JACK server, and
# PortAudio lists devices only when it initialises. Exit 0: the device opened and ran (callbacks came); 3: not
# listed (yet); 4: opened but no callback came; 5: listed, but refuses the settings (its rate and host API printed).
PROBE = """
import sys
import sounddevice as sd

name, channels, sr, period = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
devices = sd.query_devices()
if name.isdigit():
    found = [int(name)] if int(name) < len(devices) else []
else:
    found = [i for i, d in enumerate(devices) if d["name"] == name]
    found = found or [i for i, d in enumerate(devices) if name.lower() in d["name"].lower()]
if name and not found:
    sys.exit(3)
index = found[0] if name else None
try:
    sd.check_input_settings(device=index, channels=channels, samplerate=sr, dtype="float32")
    sd.check_output_settings(device=index, channels=channels, samplerate=sr, dtype="float32")
except Exception:  # listed, but not at the model's rate (a JACK server started again with another -r)
    info = sd.query_devices(index) if index is not None else sd.query_devices(kind="output")
    print(f"{info['default_samplerate']:g}", sd.query_hostapis(info["hostapi"])["name"], flush=True)
    sys.exit(5)
calls = []


def callback(indata, outdata, frames, time, status):
    outdata.fill(0)
    calls.append(frames)


# a callback stream, as live's: a blocking one started and stopped crashes PortAudio's JACK backend at exit
with sd.Stream(samplerate=sr, blocksize=period, device=index, channels=channels,
               dtype="float32", callback=callback):
    sd.sleep(200)
sys.exit(0 if calls else 4)
"""


class DeviceProbe:
    """Is a device that went away back? One short child process at a time (`poll` never blocks): it opens,
    runs and closes a duplex stream at the engine's settings, and is killed after `timeout` s (a server that
    dies again while it is opened would hold it forever); one starts at most every `interval` s."""

    def __init__(
        self,
        device: str | int | None,
        channels: int,
        sr: int,
        period: int,
        timeout: float = 10.0,
        interval: float = 1.0,
    ):
        self.argv = [sys.executable, "-c", PROBE, "" if device is None else str(device), str(channels), str(sr),
                     str(period)]  # fmt: skip
        self.timeout, self.interval = timeout, interval
        self.proc: subprocess.Popen | None = None
        self.started = -math.inf
        self.tries = 0
        self.refused = ""  # why the last probe found the device back but unusable ("" : not so)
        self.sr = sr

    def poll(self) -> bool:
        """Start a probe when none runs; True once one found the device working."""
        if self.proc is None:
            if time.monotonic() - self.started < self.interval:
                return False
            self.proc = subprocess.Popen(self.argv, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
            self.started = time.monotonic()
            self.tries += 1
            return False
        code = self.proc.poll()
        if code is None:
            if time.monotonic() - self.started < self.timeout:
                return False
            self.stop()
            return False
        said = (self.proc.stdout.read() if self.proc.stdout else "").strip()
        self.proc = None
        if code == 5:  # a device back at another rate was "not back" until the timeout, then said so on a rerun
            rate, _, host = said.partition(" ")
            self.refused = f"back, but at {rate + ' Hz' if rate else 'another rate'}, not the model's {self.sr} Hz"
            if host.startswith("JACK"):  # as check_device: only a JACK server has the one rate it was started with
                self.refused += f" ({jack_rate_fix(self.sr)})"
        elif code is not None:
            self.refused = ""
        return code == 0

    def stop(self) -> None:
        if self.proc is not None:
            self.proc.kill()
            self.proc.wait()
            self.proc = None


class DeviceGone(UserError):
    """The audio device went away and `live` does not wait for it (any more): exit status 1, so that a launcher
    starts it again (2 is for bad input)."""

    exit_status = 1


def leave_stream(status: int) -> None:
    """End the process with `status` at exit without PortAudio's own exit handler, which would wait for good on a
    stream whose JACK server died (see `close_stream`)."""
    atexit.register(_exit_skipping_portaudio, status)  # after sounddevice's own handler, so it runs first


def close_stream(stream: Any, timeout: float = 2.0, left: int = 1) -> bool:
    """Stop and close a device stream; False when PortAudio did not return within `timeout` s.

    A JACK server that quits mid-stream leaves PortAudio's JACK backend waiting for it forever in
    Pa_StopStream, Pa_CloseStream and Pa_Terminate (seen with jackd2 1.9 and PortAudio 19.6): the stream is
    then left behind, and the process ends without sounddevice's exit handler (which would wait as well):
    its output flushed, exit status `left` (1: the device failed; 0 where the show was stopped as asked).
    """
    done = threading.Event()

    def stop() -> None:
        stream.stop()
        stream.close()
        done.set()

    threading.Thread(target=stop, name="musicsae-close-stream", daemon=True).start()
    try:
        if done.wait(timeout):
            return True
    except KeyboardInterrupt as exc:  # stopped while PortAudio may wait for a dead server: it is left behind too
        leave_stream(128 + exc.signum if isinstance(exc, Terminated) else 130)
        raise
    leave_stream(left)
    return False


def _exit_skipping_portaudio(status: int) -> None:
    flush_standard_streams()
    os._exit(status)


def read_audio(path: Path, sr: int, channels: int) -> np.ndarray:
    """Read a file as float32 [frames, channels] at `sr` (the project's one reader, `realtime.audio_files`)."""
    from realtime.audio_files import read_audio as read_file

    return read_file(path, sr, channels, what="input")[0]


def run_file(
    engine: Engine,
    data: np.ndarray,
    realtime: bool = False,
    on_period: Callable[[int], None] | None = None,
) -> np.ndarray:
    """Feed [frames, channels] through `engine.callback`; returns the output aligned with the input.

    Args:
        engine: a started engine (device latency is 0 here).
        data: input frames.
        realtime: pace periods at the wall clock (as a device would) instead of as fast as possible. A take
            then ends on Ctrl-C or SIGTERM as a show does: the output of the input played so far comes back
            (shorter than `data`; as fast as possible, or before any output, the interrupt propagates, as any
            command's).
        on_period: called with the number of frames done after each period (progress, live view).
    """
    period, lag = engine.period, engine.latency.engine
    frames = len(data)
    # the input goes in period by period, then `lag + period` frames of silence; only the aligned output is kept
    # (a padded copy of the input and a padded output were two more copies of an hour's take: hunt 210)
    out = np.zeros((frames, engine.channels), dtype=np.float32)
    chunk_in = np.zeros((period, engine.channels), dtype=np.float32)
    chunk_out = np.zeros((period, engine.channels), dtype=np.float32)
    t_start = time.perf_counter()
    engine.deadlines = realtime  # as fast as it goes, every block is waited for: none is skipped for time
    stored = 0  # input positions whose output has been played (into `out` where it is aligned)
    try:
        for i, start in enumerate(range(0, frames + lag + 1, period)):
            if realtime:
                due = t_start + i * period / engine.sr
                delay = due - time.perf_counter()
                if delay > 0:
                    time.sleep(delay)
            elif not engine.wait_output(period):
                raise UserError("engine: the model thread stopped producing output")
            end = start + period
            if end <= frames:
                block = data[start:end]
            else:  # the input's last part, then silence while the output of the rest comes out
                block = chunk_in
                block[:] = 0.0
                if start < frames:
                    block[: frames - start] = data[start:]
            engine.callback(block, chunk_out, period)
            lo, hi = max(start, lag), min(end, lag + frames)
            if hi > lo:
                out[lo - lag : hi - lag] = chunk_out[lo - start : hi - start]
            stored = end
            if on_period is not None:
                on_period(min(end, frames))
    except KeyboardInterrupt:
        if not realtime or stored <= lag:  # as fast as it goes, or stopped before any output: an interrupted command
            raise
        return out[: min(frames, stored - lag)]
    finally:
        engine.deadlines = True
    return out
