"""Measure input→output latency for real: a JACK client plays into a program's input and records its output,
counting samples on the JACK clock.

The probe connects its `out` port to the target's input and the target's output to its `in` port
(disconnecting the target from `system`). `run` fires an impulse every `spacing` samples at known frame
positions and reports the distance to the first recorded sample above `threshold` after each one (the
bypass path: an impulse stays an impulse). `play` plays any signal (music through the wet path) from a
known frame and returns the recording, aligned so that recording[i] was heard while signal[i] played;
`signal_lag` then finds the latency by matching the recording against what the model makes of the signal.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass

import numpy as np

from sae.errors import UserError


@dataclass
class ProbeResult:
    """Delays in samples, one per impulse that came back."""

    delays: list[int]
    sent: int

    @property
    def latency(self) -> int | None:
        return int(np.median(self.delays)) if self.delays else None


class LatencyProbe:
    """Args:
    server: JACK server name.
    target_in: the target's input port (e.g. "PortAudio:in_0").
    target_out: the target's output port.
    seconds: how long to record.
    """

    def __init__(self, server: str, target_in: str, target_out: str, seconds: float = 6.0):
        import jack

        try:
            self.client = jack.Client("musicsae-probe", servername=server, no_start_server=True)
        except jack.JackError as exc:
            raise UserError(f"JACK server {server}: cannot connect a probe ({exc})") from None
        self.sr = self.client.samplerate
        self.target_in, self.target_out = target_in, target_out
        self.out = self.client.outports.register("out")
        self.inp = self.client.inports.register("in")
        self.rec = np.zeros(int(seconds * self.sr), dtype=np.float32)
        self.signal = np.zeros(0, dtype=np.float32)
        self.start = 0
        self.origin: int | None = None  # the JACK frame time of the probe's first cycle
        self.impulses: list[int] = []
        self.fired: dict[int, int] = {}  # impulse -> the position it went out at (later, where its cycle was missed)
        self.done = threading.Event()
        self.client.set_process_callback(self._process)

    def _process(self, frames: int) -> None:
        out = self.out.get_array()
        out[:] = 0.0
        # positions on the server's clock, not a count of this callback's calls: a cycle the probe misses (an xrun
        # on a busy machine) leaves a gap in the recording instead of moving everything after it earlier
        now = self.client.last_frame_time
        if self.origin is None:
            self.origin = now
        pos = (now - self.origin) & 0xFFFFFFFF  # jack_nframes_t wraps at 2**32
        for at in self.impulses:
            # a cycle the probe missed (an xrun on a busy machine) held the impulse: it goes out first thing now,
            # and counts from there (lost, it left a whole probe with nothing to measure: CI 36)
            if at < pos + frames and at not in self.fired:
                self.fired[at] = max(at, pos)
                out[self.fired[at] - pos] = 1.0
        lo, hi = max(pos, self.start), min(pos + frames, self.start + len(self.signal))
        if hi > lo:
            out[lo - pos : hi - pos] = self.signal[lo - self.start : hi - self.start]
        end = min(pos + frames, len(self.rec))
        if end > pos:
            self.rec[pos:end] = self.inp.get_array()[: end - pos]
        else:
            self.done.set()

    def _record(self) -> None:
        with self.client:
            for port in self.client.get_all_connections(self.target_in):
                self.client.disconnect(port, self.target_in)
            for port in self.client.get_all_connections(self.target_out):
                self.client.disconnect(self.target_out, port)
            self.client.connect(self.out, self.target_in)
            self.client.connect(self.target_out, self.inp)
            if not self.done.wait(timeout=len(self.rec) / self.sr * 4 + 10):
                raise UserError("JACK probe: the server stopped running cycles")
            time.sleep(0.05)

    def run(self, first: float = 1.0, spacing: float = 1.0, threshold: float = 0.5) -> ProbeResult:
        """Fire impulses from `first` s every `spacing` s (both on the probe's clock) and measure."""
        n = len(self.rec)
        step = int(spacing * self.sr)
        self.impulses, self.fired = list(range(int(first * self.sr), n - step // 2, step)), {}
        self._record()
        delays = []
        sent = [self.fired[at] for at in self.impulses if at in self.fired]
        for i, at in enumerate(sent):
            stop = sent[i + 1] if i + 1 < len(sent) else n
            hits = np.nonzero(np.abs(self.rec[at:stop]) > threshold)[0]
            if len(hits):
                delays.append(int(hits[0]))
        return ProbeResult(delays, len(self.impulses))

    def play(self, signal: np.ndarray, first: float = 1.0) -> np.ndarray:
        """Play mono `signal` from the first JACK cycle at or after `first` s on the probe's clock (so it starts
        on a period boundary); the recording from that frame on."""
        period = self.client.blocksize
        self.start = -(-int(first * self.sr) // period) * period
        if self.start + len(signal) > len(self.rec):
            raise UserError(f"JACK probe: {len(signal)} samples from {first} s do not fit {len(self.rec)} recorded")
        self.signal = np.asarray(signal, np.float32)
        self._record()
        return self.rec[self.start :].copy()


def signal_lag(reference: np.ndarray, recording: np.ndarray, max_lag: int) -> tuple[int, float]:
    """The lag (samples, recording later) at which `recording` best matches `reference` (e.g. an offline render
    of the same signal), and the normalised correlation there."""
    n = len(reference)
    size = 1 << int(np.ceil(np.log2(n + max_lag + len(recording))))
    ref = np.asarray(reference, np.float64)
    rec = np.zeros(n + max_lag, np.float64)
    got = np.asarray(recording[: n + max_lag], np.float64)
    rec[: len(got)] = got
    corr = np.fft.irfft(np.conj(np.fft.rfft(ref, size)) * np.fft.rfft(rec, size), size)[: max_lag + 1]
    energy = np.concatenate([[0.0], np.cumsum(rec**2)])
    window = np.sqrt(np.maximum(energy[n : n + max_lag + 1] - energy[: max_lag + 1], 1e-300))
    norm = corr / (window[: len(corr)] * np.sqrt(ref @ ref + 1e-300))
    best = int(np.argmax(norm))
    return best, float(norm[best])


def window_lags(
    reference: np.ndarray, recording: np.ndarray, max_lag: int, window: int, lo: int = 0
) -> list[tuple[int, int, float]]:
    """`signal_lag` of each `window`-sample piece of `reference` (start, lag, correlation), searching lags in
    [lo, max_lag]: a take spoiled in places (an xrun, a late block) still shows where it is exact."""
    out = []
    for start in range(0, len(reference) - window + 1, window):
        piece = reference[start : start + window]
        if not np.any(piece):
            continue
        lag, score = signal_lag(piece, recording[start + lo :], max_lag - lo)
        out.append((start, lag + lo, score))
    return out
