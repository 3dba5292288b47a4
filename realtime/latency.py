"""Measure input→output latency for real: a JACK client sends impulses into a program's inputs and records
its outputs, counting samples on the JACK clock.

The probe connects its `out` port to the target's input and the target's output to its `in` port
(disconnecting the target from `system`), fires an impulse every `spacing` samples at known frame
positions, and reports the distance to the first recorded sample above `threshold` after each one.
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
        self.pos = 0
        self.impulses: list[int] = []
        self.done = threading.Event()
        self.client.set_process_callback(self._process)

    def _process(self, frames: int) -> None:
        out = self.out.get_array()
        out[:] = 0.0
        pos = self.pos
        for at in self.impulses:
            if pos <= at < pos + frames:
                out[at - pos] = 1.0
        end = min(pos + frames, len(self.rec))
        if end > pos:
            self.rec[pos:end] = self.inp.get_array()[: end - pos]
        else:
            self.done.set()
        self.pos = pos + frames

    def run(self, first: float = 1.0, spacing: float = 1.0, threshold: float = 0.5) -> ProbeResult:
        """Fire impulses from `first` s every `spacing` s (both on the probe's clock) and measure."""
        with self.client:
            for port in self.client.get_all_connections(self.target_in):
                self.client.disconnect(port, self.target_in)
            for port in self.client.get_all_connections(self.target_out):
                self.client.disconnect(self.target_out, port)
            self.client.connect(self.out, self.target_in)
            self.client.connect(self.target_out, self.inp)
            n = len(self.rec)
            step = int(spacing * self.sr)
            self.impulses = list(range(int(first * self.sr), n - step // 2, step))
            if not self.done.wait(timeout=len(self.rec) / self.sr * 4 + 10):
                raise UserError("JACK probe: the server stopped running cycles")
            time.sleep(0.05)
        delays = []
        for i, at in enumerate(self.impulses):
            stop = self.impulses[i + 1] if i + 1 < len(self.impulses) else n
            hits = np.nonzero(np.abs(self.rec[at:stop]) > threshold)[0]
            if len(hits):
                delays.append(int(hits[0]))
        return ProbeResult(delays, len(self.impulses))
