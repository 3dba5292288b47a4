"""The model thread's time budget, measured: time the model on warm-up blocks, pick the smallest block that
keeps up, and give the model thread a budget from that measurement instead of a fixed fraction of a block.

For each candidate block (multiples of the model's ratio that the callback period divides, smallest first)
the processor runs every path a control can switch on (`Controls.warm_up_snapshots`, changing every block:
the worst case, with ramps), then blocks of a musical signal are timed. A block fits when
`MARGIN × p99.9 + JITTER_S` of its compute time is within the block's own duration (the model thread keeps up
with room for the other threads), and the budget, the time from a block's last input period to its first
output period, is that figure rounded up to whole periods. Latency = block − period + budget (+ the model's
delay and the device's buffers).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from realtime.processor import block_choices
from sae.errors import UserError

MARGIN = 1.5  # measured p99.9 compute × this ...
JITTER_S = 0.002  # ... + this (thread wake-up, the GIL, other threads) must fit the budget


@dataclass
class BlockTiming:
    """Compute time per block (seconds) measured on one block size."""

    blocksize: int
    times: np.ndarray

    @property
    def p999(self) -> float:
        return float(np.quantile(self.times, 0.999))

    @property
    def median(self) -> float:
        return float(np.median(self.times))

    def need_s(self) -> float:
        """The time the model thread should be given per block."""
        return MARGIN * self.p999 + JITTER_S

    def fits(self, sr: int) -> bool:
        return self.need_s() <= self.blocksize / sr


@dataclass
class BudgetChoice:
    """The block and budget the engine runs with, and how they were chosen."""

    blocksize: int
    budget: int  # frames, whole periods
    period: int
    sr: int
    timing: BlockTiming | None
    how: str  # "measured" (auto block), "measured at --blocksize", "--headroom", "block measured, budget --headroom"
    tried: list[BlockTiming] = field(default_factory=list)

    @property
    def keeps_up(self) -> bool:
        return self.timing is None or self.timing.fits(self.sr)

    def describe(self) -> str:
        ms = 1000.0 / self.sr
        text = f"block {self.blocksize} ({self.blocksize * ms:.1f} ms), "
        text += f"budget {self.budget} = {self.budget * ms:.1f} ms"
        if self.timing is not None:
            t = self.timing
            text += (
                f" ({self.how}: compute median {1e3 * t.median:.2f} ms, p99.9 {1e3 * t.p999:.2f} ms over "
                f"{len(t.times)} blocks"
            )
            skipped = [
                f"{b.blocksize} (needs {1e3 * b.need_s():.1f} ms of {1e3 * b.blocksize / self.sr:.1f} ms)"
                for b in self.tried
                if b is not t
            ]
            if skipped:
                text += "; too slow at " + ", ".join(skipped)
            text += ")"
        else:
            text += f" ({self.how})"
        if not self.keeps_up:
            text += " — WARNING: the model does not keep up at this block; expect late blocks"
        elif self.timing is not None and self.budget / self.sr < self.timing.need_s():
            text += f" — WARNING: below the {1e3 * self.timing.need_s():.1f} ms measured need; expect late blocks"
        return text


def time_blocks(processor: Any, snapshots: list[Any], seconds: float = 1.0, min_blocks: int = 32) -> np.ndarray:
    """Warm the processor up on every snapshot, then time blocks of music for about `seconds` (at least
    `min_blocks`) while the snapshots change every block; the processor is left as fresh."""
    from realtime.alignment import music_signal

    processor.warm_up(snapshots, repeats=2)
    B, ch = processor.blocksize, processor.channels
    x, _ = music_signal(processor.sr, B)
    x = np.tile(x, 1 + (B * min_blocks) // len(x))
    times: list[float] = []
    deadline = time.perf_counter() + seconds
    i = 0
    while len(times) < min_blocks or time.perf_counter() < deadline:
        start = (i * B) % (len(x) - B)
        block = np.ascontiguousarray(np.repeat(x[start : start + B, None], ch, axis=1))
        t0 = time.perf_counter()
        processor.process(block, snapshots[i % len(snapshots)])
        times.append(time.perf_counter() - t0)
        i += 1
    processor.reset()
    return np.asarray(times)


def budget_frames(seconds: float, sr: int, period: int) -> int:
    """`seconds` of budget as whole periods (at least one)."""
    return max(period, int(np.ceil(seconds * sr / period)) * period)


def check_budget(budget: int, blocksize: int | None, period: int) -> None:
    """A budget given in frames (`choose_block(budget=...)`) is one `choose_block` could have chosen: whole periods,
    at least one, at most four blocks (`--headroom`'s limit), and for a given block."""
    if blocksize is None:
        raise UserError(f"budget {budget}: given without the block it was chosen for; give the block as well")
    if not (isinstance(budget, int) and period <= budget <= 4 * blocksize and budget % period == 0):
        raise UserError(
            f"budget {budget!r}: expected whole periods of {period} frames, from {period} to four blocks "
            f"({4 * blocksize} frames at block {blocksize})"
        )


def choose_block(
    make: Callable[[int], Any],
    ratio: int,
    period: int,
    sr: int,
    snapshots: list[Any],
    blocksize: int | None = None,
    headroom: float | None = None,
    largest: int = 8192,
    seconds: float = 1.0,
    say: Callable[[str], None] | None = None,
    budget: int | None = None,
) -> tuple[Any, BudgetChoice]:
    """The processor to run and its budget.

    Args:
        make: builds a processor for a block size.
        blocksize: a fixed block (else the smallest that fits, up to `largest`).
        headroom: a fixed budget in blocks (else measured).
        seconds: timing per candidate block.
        budget: the budget in frames, used as it is (`check_budget`; with `blocksize`; `headroom` then unused):
            one chosen before, e.g. carried across a `live --reconnect` restart, so that nothing is timed and the
            latency stays what it was.
    """
    if budget is not None:
        check_budget(budget, blocksize, period)
        return make(blocksize), BudgetChoice(blocksize, budget, period, sr, None, "budget given")
    if blocksize is not None:
        processor = make(blocksize)
        if headroom is not None:
            return processor, BudgetChoice(
                blocksize, budget_frames(headroom * blocksize / sr, sr, period), period, sr, None, "--headroom"
            )
        timing = BlockTiming(blocksize, time_blocks(processor, snapshots, seconds))
        budget = budget_frames(min(timing.need_s(), blocksize / sr), sr, period)
        return processor, BudgetChoice(blocksize, budget, period, sr, timing, "measured at --blocksize", [timing])
    tried: list[BlockTiming] = []
    processor = None
    choices = block_choices(ratio, period, largest)
    if not choices:
        valid = [p for p in (128, 256, 512, 1024, 2048) if block_choices(ratio, p, largest)][:3]
        raise UserError(
            f"period {period}: no block up to {largest} frames is a multiple of both it and the model's ratio "
            f"{ratio}; expected a period such as {', '.join(map(str, valid))}"
        )
    if say is not None:
        say("timing the model to choose the block:")
    for block in choices:
        processor = make(block)
        timing = BlockTiming(block, time_blocks(processor, snapshots, seconds))
        tried.append(timing)
        if say is not None:
            verdict = "fits" if timing.fits(sr) else "too slow"
            say(
                f"  block {block}: compute p99.9 {1e3 * timing.p999:.2f} ms, needs {1e3 * timing.need_s():.1f} ms "
                f"({MARGIN:g} × p99.9 + {1e3 * JITTER_S:g} ms) of {1e3 * block / sr:.1f} ms: {verdict}"
            )
        if timing.fits(sr):
            break
    timing = tried[-1]
    if headroom is not None:
        budget = budget_frames(headroom * timing.blocksize / sr, sr, period)
        return processor, BudgetChoice(
            timing.blocksize, budget, period, sr, timing, "block measured, budget --headroom", tried
        )
    budget = budget_frames(min(timing.need_s(), timing.blocksize / sr), sr, period)
    return processor, BudgetChoice(timing.blocksize, budget, period, sr, timing, "measured", tried)
