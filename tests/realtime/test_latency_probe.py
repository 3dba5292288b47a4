"""The latency probe counts on the server's clock: a JACK cycle the probe itself misses (an xrun on a busy
machine) must not make the measured latency shorter. A stand-in for the JACK client runs the probe's real code
against a device that returns what it hears a fixed number of samples later, on a clock that keeps running
through the cycles the probe's callback misses."""

from __future__ import annotations

import sys
import threading
from types import SimpleNamespace

import numpy as np
import pytest

from realtime import latency

PERIOD, SR, DELAY = 256, 8000, 3 * 256 + 37


class _Port:
    def __init__(self) -> None:
        self.buf = np.zeros(PERIOD, np.float32)

    def get_array(self) -> np.ndarray:
        return self.buf


class _Server:
    """What `jack.Client` gives the probe: ports, a clock, and cycles run in a thread once the client is active."""

    def __init__(self, missed: set[int]) -> None:
        self.missed, self.samplerate, self.blocksize = missed, SR, PERIOD
        self.last_frame_time = 1_000_000  # the server ran before the probe joined
        self.outports = SimpleNamespace(register=lambda name: self._port("out"))
        self.inports = SimpleNamespace(register=lambda name: self._port("in"))
        self.ports: dict[str, _Port] = {}

    def __call__(self, *args, **kwargs) -> _Server:  # jack.Client(name, servername=..., ...)
        return self

    def _port(self, name: str) -> _Port:
        self.ports[name] = _Port()
        return self.ports[name]

    def set_process_callback(self, callback) -> None:
        self.callback = callback

    def get_all_connections(self, port):
        return []

    def connect(self, *ports) -> None:
        pass

    def __enter__(self) -> _Server:
        self.stop = False
        self.thread = threading.Thread(target=self._cycles, daemon=True)
        self.thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.stop = True
        self.thread.join()

    def _cycles(self) -> None:
        played, start = np.zeros(40 * SR, np.float32), self.last_frame_time
        for cycle in range(len(played) // PERIOD):
            if self.stop:
                return
            t = cycle * PERIOD
            self.last_frame_time = start + t
            # the device: what the probe played DELAY samples ago (silence before the first cycle)
            heard = played[np.arange(t - DELAY, t + PERIOD - DELAY).clip(0)] * (np.arange(PERIOD) >= DELAY - t)
            if cycle in self.missed:
                continue  # the probe's callback does not run this cycle; the device and the clock go on
            self.ports["in"].buf[:] = heard
            self.callback(PERIOD)
            played[t : t + PERIOD] = self.ports["out"].buf


@pytest.mark.parametrize(
    "missed", [set(), {SR // PERIOD + 1}, {SR // PERIOD + 1, 2 * SR // PERIOD + 2}, {SR // PERIOD}, {2 * SR // PERIOD}]
)
def test_a_cycle_the_probe_misses_does_not_shorten_the_latency(monkeypatch, missed):
    """Impulses at 1 s and 2 s; the missed cycles fall between an impulse and its return, or hold the impulse itself
    (it went out in no cycle, and a probe of one impulse measured nothing: CI 36)."""
    server = _Server(missed)
    monkeypatch.setitem(sys.modules, "jack", SimpleNamespace(Client=server))
    result = latency.LatencyProbe("fake", "engine:in", "engine:out", seconds=3.0).run()
    assert result.delays == [DELAY, DELAY], missed
