"""The live engine: audio callback ⇄ two rings ⇄ model thread.

The audio callback (`Engine.callback`, any period) only copies: input frames into the input ring, output
frames out of the output ring, then a one-byte wake-up on a non-blocking pipe. It takes no lock, never
waits and allocates nothing of its own. The model thread reads whole blocks, runs the `BlockProcessor`
and writes them back.

Latency: the output ring starts with `prefill` frames of silence, chosen so the model thread has a
budget of `headroom` blocks per block: budget = prefill + period − blocksize. The engine's own
input→output delay is then exactly `prefill + model delay` samples (an underrun outputs silence and the
late frames are skipped when they arrive, so the delay never drifts); the device adds its input and output
latency on top.
"""

from __future__ import annotations

import contextlib
import os
import select
import threading
import time
from dataclasses import dataclass, field

import numpy as np
import torch

from realtime.controls import Controls
from realtime.processor import BlockProcessor, BlockStats
from realtime.ring import AudioRing
from sae.errors import UserError


@dataclass
class Latency:
    """Input→output latency in samples, split by where it comes from."""

    sr: int
    block_buffer: int  # output-ring priming: blocksize − period + processing budget
    model_delay: int
    device_in: int = 0
    device_out: int = 0

    @property
    def engine(self) -> int:
        return self.block_buffer + self.model_delay

    @property
    def total(self) -> int:
        return self.engine + self.device_in + self.device_out

    def describe(self) -> str:
        ms = 1000.0 / self.sr
        return (
            f"latency {self.total} samples = {self.total * ms:.1f} ms "
            f"(device in {self.device_in} + block buffer {self.block_buffer} + model delay {self.model_delay} "
            f"+ device out {self.device_out})"
        )


@dataclass
class EngineCounters:
    """Counters written by the audio callback (callback-owned ints; readers only read)."""

    callbacks: int = 0
    device_xruns: int = 0
    underruns: int = 0
    overflows: int = 0
    max_gap_s: float = 0.0
    last_callback: float = 0.0

    @property
    def xruns(self) -> int:
        return self.device_xruns + self.underruns + self.overflows


@dataclass
class ModelCounters:
    """Counters written by the model thread."""

    blocks: int = 0
    errors: int = 0
    last_error: str = ""
    max_block_s: float = 0.0
    stats: BlockStats = field(default_factory=BlockStats)


class Engine:
    """Rings, the model thread and the audio callback around one `BlockProcessor`.

    Args:
        processor: the per-block chain (its blocksize and channels fix the engine's).
        controls: the control surface the model thread reads one snapshot from per block.
        period: frames per audio callback (the device block size).
        headroom: processing budget per block, in blocks (1.0 = a whole block of time).
        threads: torch intra-op threads on the model thread.
    """

    def __init__(
        self, processor: BlockProcessor, controls: Controls, period: int = 256, headroom: float = 1.0, threads: int = 1
    ):
        if period <= 0:
            raise UserError(f"period {period}: expected a positive number of frames")
        if not 0.0 < headroom <= 4.0:
            raise UserError(f"headroom {headroom}: expected a number of blocks in (0, 4]")
        self.processor = processor
        self.controls = controls
        self.period = period
        self.threads = threads
        self.blocksize = processor.blocksize
        self.channels = processor.channels
        budget = round(headroom * self.blocksize)
        self.prefill = max(0, self.blocksize - period + budget)
        self.sr = processor.sr
        self.latency = Latency(self.sr, self.prefill, processor.delay)
        self.in_ring = AudioRing(4 * self.blocksize + 4 * period, self.channels)
        self.out_ring = AudioRing(self.prefill + 4 * self.blocksize + 4 * period, self.channels)
        self.out_ring.write_zeros(self.prefill)
        self.counters = EngineCounters()
        self.model = ModelCounters()
        self._debt = 0
        self._rfd, self._wfd = os.pipe()
        os.set_blocking(self._rfd, False)
        os.set_blocking(self._wfd, False)
        self._running = False
        self._busy = False
        self._thread: threading.Thread | None = None

    # --- audio callback side ----------------------------------------------------------------------------
    def callback(self, indata: np.ndarray, outdata: np.ndarray, frames: int, time_info=None, status=None) -> None:
        """sounddevice duplex callback: copy in, copy out, wake the model thread. Never blocks."""
        c = self.counters
        now = time.perf_counter()
        if c.last_callback:
            gap = now - c.last_callback
            if gap > c.max_gap_s:
                c.max_gap_s = gap
        c.last_callback = now
        c.callbacks += 1
        if status:
            c.device_xruns += 1
        if self.in_ring.write(indata) < frames:
            c.overflows += 1
        if self._debt:
            self._debt -= self.out_ring.skip(self._debt)
        n = self.out_ring.read(outdata)
        if n < frames:
            outdata[n:] = 0.0
            self._debt += frames - n
            c.underruns += 1
        with contextlib.suppress(BlockingIOError):
            os.write(self._wfd, b"\0")

    # --- model thread -------------------------------------------------------------------------------------
    def warm_up(self, blocks: int = 3) -> None:
        """Run a few blocks of silence first: TorchScript optimises on its first calls, which would
        otherwise land on the first live blocks (the streams just hear a little more silence)."""
        silence = np.zeros((self.blocksize, self.channels), dtype=np.float32)
        for _ in range(blocks):
            self.processor.process(silence, self.controls.snapshot)

    def start(self, warm_up: bool = True) -> None:
        if self._thread is not None:
            return
        if warm_up:
            torch.set_num_threads(self.threads)
            self.warm_up()
        self._running = True
        self._thread = threading.Thread(target=self._run, name="musicsae-model", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._running = False
        with contextlib.suppress(BlockingIOError, OSError):
            os.write(self._wfd, b"\0")
        if self._thread is not None:
            self._thread.join(timeout=5.0)
            self._thread = None

    def close(self) -> None:
        self.stop()
        for fd in (self._rfd, self._wfd):
            with contextlib.suppress(OSError):
                os.close(fd)

    def _run(self) -> None:
        torch.set_num_threads(self.threads)
        block = np.zeros((self.blocksize, self.channels), dtype=np.float32)
        silence = np.zeros_like(block)
        while self._running:
            if self.in_ring.readable() < self.blocksize:
                select.select([self._rfd], [], [], 0.05)
                with contextlib.suppress(BlockingIOError):
                    os.read(self._rfd, 4096)
                continue
            self._busy = True
            self.in_ring.read(block)
            t0 = time.perf_counter()
            try:
                out = self.processor.process(block, self.controls.snapshot)
            except Exception as exc:  # the audio never stops: count it, output silence, keep going
                self.model.errors += 1
                self.model.last_error = f"{type(exc).__name__}: {exc}"
                out = silence
            elapsed = time.perf_counter() - t0
            self.out_ring.write(out)
            self._busy = False
            m = self.model
            m.blocks += 1
            m.stats = BlockStats(**vars(self.processor.stats))
            if m.blocks > 2 and elapsed > m.max_block_s:  # the first blocks warm caches up
                m.max_block_s = elapsed

    def wait_output(self, frames: int, timeout: float = 10.0) -> bool:
        """Wait until `frames` output frames are readable (file mode: as fast as possible)."""
        deadline = time.perf_counter() + timeout
        while self.out_ring.readable() < frames:
            if not self._busy and self.in_ring.readable() < self.blocksize:
                return True  # the model needs more input first
            if time.perf_counter() > deadline or not self._running:
                return False
            time.sleep(0.0002)
        return True

    def __enter__(self) -> Engine:
        self.start()
        return self

    def __exit__(self, *exc) -> None:
        self.close()
