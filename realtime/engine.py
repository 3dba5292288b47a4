"""The live engine: audio callback ⇄ two position-indexed rings ⇄ model thread.

Time is counted in frames since the stream started. Input frame t is always played at output frame
t + L (L = `latency.block_buffer`; the model's aligned delay comes on top inside the processor): the
mapping is fixed by construction and nothing can make it drift.

The audio callback (any number of frames per call) only copies: its input into `inputs` at its own
position, then whatever the model thread has published of `outputs` for the same positions (silence
anywhere else; the input itself where the output is dry alone: bypassed, at mix 0 or ramped there, `_dry_word`),
then a one-byte wake-up on a non-blocking pipe when a block is complete. It takes no lock,
never waits, never refuses input and allocates nothing of its own.

The model thread owns everything else. It turns input block [a, a + B) into output [a + L, a + L + B) and
publishes which output positions hold data as one tuple. A block that comes out a little late loses only
its late frames (the callback played silence there). After a stall (a GC pass, a file load, another
program, a debugger), when the oldest waiting block's output can no longer be heard (its slot ends before
the audio gets there, counting one block's compute) or its input was overwritten, the model thread
resyncs: it skips to the first complete block whose output can be heard whole (so the blocks after it are on
time too), the model starts from silence (the skipped input counts as silence; the dry line gets the input
before that block, so dry audio resumes in place), and the output positions in between stay silent (dry alone,
they play the input). Output is
aligned again within about one block's compute after the stall ends, and the event is counted and reported
(`events`). A block whose model call raises plays the aligned dry signal instead; failures are counted,
reported, and flagged loudly when every block fails.

Budget: L = B − period + budget, where `budget` (frames, whole periods) is the time the model thread has
from a block's last input period to its first output period: measured (`realtime.budget`) or
`headroom` blocks.
"""

from __future__ import annotations

import contextlib
import gc
import math
import os
import select
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from realtime.clock_drift import ClockDrift
from realtime.controls import Controls
from realtime.processor import BlockProcessor, BlockStats, check_period
from realtime.ring import FrameRing
from sae.errors import UserError

if TYPE_CHECKING:
    from realtime.jack_period import PeriodWatch


@dataclass
class Latency:
    """Input→output latency in samples, split by where it comes from."""

    sr: int
    block_buffer: int  # blocksize − period + the model thread's budget
    model_delay: int  # aligned: where the model's notes come out
    first_response: int | None = None  # the first output sample an impulse changes (reported beside)
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
        first = self.model_delay if self.first_response is None else self.first_response
        return (
            f"latency {self.total} samples = {self.total * ms:.1f} ms "
            f"(device in {self.device_in} + block buffer {self.block_buffer} + model delay {self.model_delay} "
            f"+ device out {self.device_out}; the model's first response comes at {first} = {first * ms:.1f} ms, "
            f"its notes at {self.model_delay} = {self.model_delay * ms:.1f} ms)"
        )


@dataclass
class EngineCounters:
    """Counters written by the audio callback (callback-owned ints; readers only read)."""

    callbacks: int = 0
    device_xruns: int = 0
    skipped_cycles: int = 0  # device periods the callback never saw (it was too late: the device went on)
    skipped_frames: int = 0  # the frames of those periods
    underruns: int = 0  # callbacks that found some of their output frames missing (played as silence)
    missing_frames: int = 0
    dry_frames: int = 0  # output frames missing while dry alone (bypassed, mix 0), played from the input instead
    max_gap_s: float = 0.0
    last_callback: float = 0.0

    @property
    def xruns(self) -> int:
        return self.device_xruns + self.underruns


@dataclass(frozen=True)
class Event:
    """Something the performer should know about, reported by the model thread.

    kind: "resync" (skipped a backlog after a stall, or a model slower than real time; at most one event per
    second, a burst summed into the next), "late" (a block came out after its first frame was due;
    at most one event per second), "error" (a model call raised), "failing" (every block fails), "stuck" (one
    block has not returned for `Engine.STUCK_S`: `watch_model`), "recovered", "device" (the device skipped cycles,
    which the engine follows, or flagged xruns; at most one event per second, a burst summed into the next).
    """

    seq: int
    kind: str
    at_s: float  # stream time (`Engine.earlier_s` + input position / sample rate)
    lost_frames: int  # output frames that played silence or dry because of it (0 where the output was dry alone)
    message: str


@dataclass
class ModelCounters:
    """Counters written by the model thread."""

    blocks: int = 0
    errors: int = 0
    consecutive_errors: int = 0
    last_error: str = ""
    late_blocks: int = 0
    late_frames: int = 0
    resyncs: int = 0
    skipped_frames: int = 0
    max_block_s: float = 0.0
    stats: BlockStats = field(default_factory=BlockStats)


class _GcGuard:
    """While any engine runs: collected garbage frozen (`gc.freeze`) and automatic collection off, so a full
    pass never holds the GIL in front of the audio callback; the model threads collect generation 0 between
    blocks instead. Restored when the last engine stops."""

    users = 0
    was_enabled = True
    lock = threading.Lock()

    @classmethod
    def acquire(cls) -> None:
        if os.environ.get("MUSICSAE_GC_FREEZE", "1") == "0":  # benches only: measure what the freeze buys
            return
        with cls.lock:
            if cls.users == 0:
                cls.was_enabled = gc.isenabled()
                gc.collect()
                gc.freeze()
                gc.disable()
            cls.users += 1

    @classmethod
    def release(cls) -> None:
        if os.environ.get("MUSICSAE_GC_FREEZE", "1") == "0":
            return
        with cls.lock:
            cls.users -= 1
            if cls.users == 0:
                gc.unfreeze()
                if cls.was_enabled:
                    gc.enable()


RT_HINT = "allow it as for JACK: the audio group with an rtprio limit, e.g. `@audio - rtprio 95` in limits.d"
MIN_CYCLE = 16  # JACK's shortest period: a counter step below it is no cycle (a server restarted under the stream)
MAX_CYCLE = 8192  # JACK2's longest period (`jack_bufsize` refuses more): the rings hold a cycle's burst of callbacks


def raise_priority(thread_id: int, priority: int) -> str:
    """Put a thread (its native id) on SCHED_FIFO at `priority`; says what it got, refusals included."""
    if not hasattr(os, "sched_setscheduler"):
        return "normal priority (this OS has no SCHED_FIFO for threads)"
    try:
        os.sched_setscheduler(thread_id, os.SCHED_FIFO, os.sched_param(priority))
    except OSError as exc:
        why = (exc.strerror or type(exc).__name__).lower()
        return f"normal priority (real-time priority {priority} refused: {why}; {RT_HINT})"
    return f"real-time priority {priority} (SCHED_FIFO)"


@contextlib.contextmanager
def priority_while(priority: int) -> Iterator[None]:
    """The calling thread at SCHED_FIFO `priority` inside the block, as it was after (0, or refused: unchanged):
    the block's timing then sees the compute the model thread will get."""
    try:
        before = os.sched_getscheduler(0), os.sched_getparam(0)
        if priority:
            os.sched_setscheduler(0, os.SCHED_FIFO, os.sched_param(priority))
    except (AttributeError, OSError):  # no SCHED_FIFO here, or not allowed: time at the normal priority
        priority = 0
    try:
        yield
    finally:
        if priority:
            os.sched_setscheduler(0, *before)


class Engine:
    """Rings, the model thread and the audio callback around one `BlockProcessor`.

    Args:
        processor: the per-block chain (its blocksize and channels fix the engine's).
        controls: the control surface the model thread reads one snapshot from per block.
        period: frames per audio callback (the device block size; must divide the block).
        headroom: processing budget per block, in blocks (used when `budget` is None).
        threads: torch intra-op threads on the model thread.
        budget: the model thread's time per block in frames (rounded up to whole periods), e.g. measured.
        rt_priority: the model thread's real-time priority (SCHED_FIFO, 1..99; 0: the normal scheduler): above
            every normal thread, so a busy machine does not make its blocks late, and below the audio callback
            (JACK runs its clients' threads at its -P minus 5: 5 by default), which must preempt it. Where the
            OS refuses, normal scheduling, said in `priority`.
    """

    HOLD = 2  # callbacks held after one that seems to have skipped cycles, the next one deciding (`_follow_device`)
    RECENT = 16  # callbacks whose least offset bounds the reference (`_follow_device`)
    # how fast the device clock may run against the frames counted until its rate is estimated (`ClockDrift`): a
    # sound card against the system clock drifts tens of ppm, JACK's `jack_frame_time` (PortAudio's clock under
    # JACK) was measured 5300 ppm fast on a dummy server with a second client in the loop
    CLOCK_SLEW = 0.02
    STUCK_S = 1.0  # seconds inside one block after which `watch_model` says the model is stuck
    PAUSED_S = 0.5  # seconds between two `watch_model` calls (every 0.1 s) that say the whole process was stopped

    def __init__(
        self,
        processor: BlockProcessor,
        controls: Controls,
        period: int = 256,
        headroom: float = 1.0,
        threads: int = 1,
        budget: int | None = None,
        rt_priority: int = 0,
    ):
        check_period(period, processor.blocksize)
        if not 0 <= rt_priority <= 99:
            raise UserError(f"--rt-priority {rt_priority}: expected 0 (normal scheduling) to 99")
        if budget is None:
            if not (math.isfinite(headroom) and 0.0 < headroom <= 4.0):
                raise UserError(f"headroom {headroom}: expected a number of blocks in (0, 4]")
            budget = round(headroom * processor.blocksize)
        self.processor = processor
        self.controls = controls
        self.period = period
        self.threads = threads
        self.rt_priority = int(rt_priority)
        self.priority = "normal priority"  # what the model thread got (set by `start`)
        self.blocksize = processor.blocksize
        self.channels = processor.channels
        self.sr = processor.sr
        self.budget = max(period, -(-int(budget) // period) * period)  # the callback reads whole periods
        self.prefill = self.prefill_for(period)  # model-owned once started; the device's cycle may change it
        first = getattr(processor, "first_response", None)
        self.latency = Latency(self.sr, self.prefill, processor.delay, first)
        longest = self.prefill_for(MAX_CYCLE)
        # the callback reads input `latency.engine` frames back when it plays a bypassed block the model missed
        keep = max(4 * self.blocksize + 4 * period, longest + processor.delay) + 2 * MAX_CYCLE
        self.inputs = FrameRing(keep, self.channels)
        self.outputs = FrameRing(2 * (longest + self.blocksize + 2 * period) + MAX_CYCLE, self.channels)
        self.counters = EngineCounters()
        self.model = ModelCounters()
        self.last_block_at: float | None = None  # time.monotonic() of the model thread's last block
        self.events: deque[Event] = deque(maxlen=256)
        self.earlier_s = 0.0  # seconds streamed before this stream (`live --reconnect`'s restart counts on from them)
        self.failing_after = max(3, round(0.5 * self.sr / self.blocksize))  # consecutive failed blocks
        self.block_times = np.zeros(1 << 14)  # model compute per block (s), a ring over the last blocks
        self._pos = 0  # callback-owned: device frames since the stream started (taken in and played)
        self._clock = math.inf  # callback-owned: least (device clock − _pos) seen, in frames
        self._recent = np.full(self.RECENT, math.inf)  # callback-owned: the last callbacks' offsets (a ring)
        self._recent_at = 0
        self._drift = ClockDrift(window=self.sr // 2, fallback=self.CLOCK_SLEW)  # callback-owned: how fast it rises
        # the device's frame counter where the host API has a better one than its callback times (JACK: set by
        # `open_duplex`, `realtime.jack_clock`), read at each callback; None: `inputBufferAdcTime`
        self.device_clock: Callable[[int], int] | None = None  # called with the callback's frames
        self.period_watch: PeriodWatch | None = None  # follows a JACK period changed later (set by `open_duplex`)
        self._cycle = period  # callback-owned: skips are whole ones of it (the device's period where its clock shows)
        self._counted = period  # callback-owned: the device's period as its clock shows it, what skips are counted in
        self._follows = True  # callback-owned: False where the device's period and the stream's do not nest
        self._unfollowed = 0  # callback-owned: skipped frames not followed (less than a period at each skip)
        self._hold = np.zeros((4 * self.HOLD * period, self.channels), np.float32)  # callback-owned: held input
        self._held = self._held_calls = 0  # its frames and callbacks (0: none held)
        self._hold_starts = np.zeros(self.HOLD, np.int64)  # where each held callback starts in `_hold`
        self._hold_offsets = np.zeros(self.HOLD)  # its clock offset (as if nothing held were skipped)
        self._hold_skips = np.zeros(self.HOLD, np.int64)  # the frames skipped before it, once decided
        self._callback_stall_s = 0.0
        self._finite = np.zeros((2 * MAX_CYCLE, self.channels), bool)  # callback-owned: `_play_dry`'s scratch
        # False while `run_file` feeds it as fast as it goes: no block misses a slot, so none is skipped for time
        self.deadlines = True
        self._valid = (0, self.prefill)  # model-owned: output positions [lo, hi) that hold data
        self._prefill_want = self.prefill  # callback-owned: `prefill_for` the device's cycle, taken by the model thread
        self._next = 0  # model-owned: input position of the next block
        self._want = self.blocksize  # model-owned: the input position that completes it
        self._seq = 0
        self._events_lock = threading.Lock()  # `_event` runs on the model thread and on whoever calls `report`
        self._last_late_event = -1e9
        self._device_seen = (0, 0, 0)  # model-owned: (skipped cycles, their frames, device xruns) already reported
        self._last_device_event = -1e9
        self._last_resync_event = -1e9
        self._resyncs_unsaid: dict = {"n": 0, "skipped": 0, "lost": 0}  # model-owned: since the last "resync" event
        self._stall_s = 0.0
        self._compute = 0.0  # model-owned: running mean of the compute per block, in frames
        self.trace: list | None = None  # set to a list to record (input position, snapshot) per block (tests)
        self._rfd, self._wfd = os.pipe()
        self._fds_open: tuple[int, ...] = (self._rfd, self._wfd)
        os.set_blocking(self._rfd, False)
        os.set_blocking(self._wfd, False)
        self._running = False
        self._busy_since: float | None = None  # model-owned: when the block in hand was taken up; None: idle
        self._watched_at: float | None = None  # when `watch_model` last ran (time.monotonic())
        self._watched_calls = 0  # the audio callbacks counted then
        self._paused_at = -math.inf  # when `watch_model` last found the process had been stopped (time.monotonic())
        self._stuck_said = False  # `watch_model` said the block in hand is stuck; the model thread says it returned
        self._stuck_armed = True  # False after a stuck block until one returns within STUCK_S: said once a run
        self._stuck_lock = threading.Lock()  # `watch_model`'s check-and-say against the block's return
        self._gc = False
        self._thread: threading.Thread | None = None

    def prefill_for(self, cycle: int) -> int:
        """The block buffer (input frame t plays at output frame t + it, before the model's delay) for a device
        whose cycle is `cycle` frames: block − period + budget, where each callback comes in its own cycle. A JACK
        cycle longer than the stream's period comes as a burst of callbacks at once (JACK at 2048, block 1024: two
        blocks' input arrives together, and the output they play is wanted in the same burst), so a block's first
        output can be due no sooner than a whole cycle after the burst that completed it: the budget in whole
        cycles, and a block more where the cycle is no whole number of blocks (its grid moves from cycle to cycle).
        With block − period + budget there, every other block came out late (JACK at 2048, block 1024), or every
        block resynced (block 1536). A shorter cycle that does not divide the period (JACK at 200, period 256) gets a
        period more: its callbacks come up to `cycle − gcd(cycle, period)` frames off their grid."""
        B, p, b = self.blocksize, self.period, self.budget
        base = B - p + b
        if self.spread(cycle):  # callbacks up to that far off their grid took it from the budget: a callback more
            # (CI 67: JACK 200 under 256, 19 blocks late in 4 s that took 4.4 ms of a 5.8 ms budget)
            return base + p
        if cycle <= p or B % cycle == 0:  # a callback a cycle, or cycles that nest in the block: as before
            return base
        whole = -(-b // cycle) * cycle
        whole = -(-whole // p) * p  # PortAudio hands a cycle out in whole callbacks: JACK at 1000 under a period of
        # 256 wanted 24 frames more than whole cycles, and 33 blocks in 6 s came out that late (hunt 213)
        return max(base, whole if cycle % B == 0 else B - p + whole)

    def spread(self, cycle: int) -> int:
        """How far off their grid callbacks land with no cycle lost, for a device cycle of `cycle` frames: `cycle −
        gcd(cycle, period)` where the cycle is shorter than the stream's period and does not divide it (JACK at 200,
        `--period 256`: 192), else 0 (one callback a cycle, or cycles that nest: on their grid)."""
        p = self.period
        return cycle - math.gcd(cycle, p) if cycle < p and p % cycle else 0

    def follow_cycle(self, cycle: int) -> None:
        """Before the stream starts: the device's cycle (JACK's period at open, `open_duplex`) sets the block buffer
        (`prefill_for`) and the latency figure with it. A cycle changed while playing is taken by the model thread
        (`_take_prefill`)."""
        if cycle >= MIN_CYCLE and self._pos == 0 and self._thread is None:
            self.prefill = self._prefill_want = self.prefill_for(cycle)
            self.latency.block_buffer = self.prefill
            self._valid = (0, self.prefill)

    # --- audio callback side ----------------------------------------------------------------------------
    def callback(self, indata: np.ndarray, outdata: np.ndarray, frames: int, time_info=None, status=None) -> None:
        """sounddevice duplex callback: copy in, copy out what is ready, wake the model thread. Never blocks."""
        c = self.counters
        now = time.perf_counter()
        if c.last_callback:
            gap = now - c.last_callback
            if gap > c.max_gap_s:
                c.max_gap_s = gap
        c.last_callback = now
        c.callbacks += 1
        n = self._pos
        if status:
            c.device_xruns += 1
        if time_info is not None:
            n = self._follow_device(n, indata, frames, time_info)
            if n < 0:  # held until the next callback places it
                outdata[:] = 0.0
                c.underruns += 1
                c.missing_frames += frames
                self._stall_callback()
                return
        self.inputs.put(n, indata)
        end = n + frames
        self._pos = end  # publish the input
        lo, hi = self._valid
        a = lo if lo > n else n
        b = hi if hi < end else end
        if b > a:
            if a > n:
                outdata[: a - n] = 0.0
            self.outputs.get(a, outdata[a - n : b - n])
            if b < end:
                outdata[b - n :] = 0.0
            got = b - a
        else:
            outdata[:] = 0.0
            a = b = n  # none of it: all of it missing
            got = 0
        if got < frames:
            if self._dry_word():  # the output is the input, delayed: it needs no model (hunt 209)
                self._play_dry(n, outdata[: a - n])
                self._play_dry(b, outdata[b - n :])
                c.dry_frames += frames - got
            else:
                c.underruns += 1
                c.missing_frames += frames - got
        if end >= self._want and self._fds_open:  # a stream left behind calls on after close: not another's file
            with contextlib.suppress(BlockingIOError):
                os.write(self._wfd, b"\0")
        self._stall_callback()

    def _play_dry(self, pos: int, out: np.ndarray) -> None:
        """Dry-alone output at positions pos .. pos + len(out) − 1 the model thread has not delivered: the input
        `latency.engine` frames before each, as the processor's dry line plays it (silence before the stream's
        start, never NaN/inf). A late block on a busy machine silenced a bypassed show, the dry signal a performer
        falls back on (hunt 209); a failed block already played its dry fallback."""
        k = len(out)
        if not k:
            return
        src = pos - self.latency.engine
        if src < 0:
            z = min(k, -src)
            out[:z] = 0.0
            out, src = out[z:], 0
        if len(out):
            self.inputs.get(src, out)
            if len(out) <= len(self._finite):  # NaN/inf from another client: silence, as the processor's dry line
                bad = np.isfinite(out, out=self._finite[: len(out)])
                np.copyto(out, 0.0, where=np.logical_not(bad, out=bad))
            else:  # (a callback longer than any JACK cycle: allocating is the lesser harm)
                np.nan_to_num(out, copy=False, nan=0.0, posinf=0.0, neginf=0.0)

    def _dry_word(self) -> str:
        """Why missing output plays the input (`_play_dry`): "bypassed", "at mix 0" (the controls, or the model's
        last block ramped to dry, so its next one starts there: un-bypassed in a stall), or "" (it plays silence:
        the wet signal cannot be made up)."""
        snap = self.controls.snapshot
        if snap.bypass:
            return "bypassed"
        return "at mix 0" if snap.mix == 0.0 or getattr(self.processor, "prev_mix", 1.0) == 0.0 else ""

    def _stall_callback(self) -> None:
        if self._callback_stall_s:  # fault injection: this callback returns late, so the next one runs late
            stall, self._callback_stall_s = self._callback_stall_s, 0.0
            time.sleep(stall)

    def _follow_device(self, n: int, indata: np.ndarray, frames: int, time_info) -> int:
        """Keep `_pos` on the device's clock when the device skips the callback (a JACK client too late for
        its cycle is left out of it, and the device goes on): without this the audio in flight across a skip
        would come out whole periods late (measured on JACK: 4 and 7 periods after callbacks 30 and 50 ms late)
        and the skips would go uncounted. Returns the position of this callback's input, or -1 when it is held.

        The device clock (`device_clock`, else `inputBufferAdcTime`) minus the frames counted is constant while
        no cycle is skipped (up to clock drift), and a callback only ever runs late, so its least value is the
        reference; whole periods above it (less 1/8 of a period of lateness) were skipped: their input counts as
        silence and their output was never heard. PortAudio's JACK clock is read when the callback runs (JACK's
        cycle counter, used instead where it can be read, only reads the next cycle when the callback runs over a
        period late), so callbacks after a stall are late on top of the cycles lost (a 12 ms stall at period 256
        lost 2 cycles and read 3.5 periods; two callbacks in a row were seen 0.9 and 1.3 periods late with none
        lost), and the device's xrun flag may come a callback or more after the skip (PortAudio sets it from
        JACK's notification thread). So a callback that seems to have skipped cycles, flagged or not, is held
        with the next `HOLD - 1` (they play silence), and the one after places them (`_place_held`)."""
        if self.device_clock is not None:
            now = self.device_clock(frames)
            cycle = getattr(self.device_clock, "cycle", 0)  # JACK's period now (`jack_bufsize` changes it)
            if MIN_CYCLE <= cycle != self._counted:
                self._counted = cycle
                self._follows = self.period % cycle == 0 or cycle % self.period == 0
                self._cycle = min(cycle, self.period) if self._follows else cycle
                self._prefill_want = self.prefill_for(cycle)
        elif t := getattr(time_info, "inputBufferAdcTime", 0.0):
            now = t * self.sr
        else:  # the host API gives no clock
            return n
        held = self._held
        offset = now - (n + held + self._unfollowed)  # as if nothing held were skipped
        fits = held + frames <= len(self._hold)
        if held:
            if self._held_calls < self.HOLD and fits:
                return self._keep(indata, frames, offset)
            n = self._place_held(n, offset)
            offset -= self._hold_skips[self._held_calls - 1]
            self._held = self._held_calls = 0
        elif (skipped := self._skipped(offset)) > 0:
            if fits:
                return self._keep(indata, frames, offset)
            n += self._skip(n, skipped)  # more frames than a hold keeps: decide now
            self._pos = n
            offset -= skipped
        # the reference rises as fast as the clock drifts (`ClockDrift`): a drifting clock is followed, a skipped
        # cycle (a whole period at once, decided within `HOLD` + 1 callbacks) and a run of late callbacks are not;
        # and never above the last callbacks' least offset: until the drift is estimated it may rise 2 %, which
        # callback times jittering by a quarter period kept over P/8 above the on-time level, so a lost cycle read
        # on time counted one short and its audio came out a period early (hunt 113, simulated)
        self._recent[self._recent_at % self.RECENT] = offset
        self._recent_at += 1
        self._clock = min(self._clock + self._drift.rise(offset, frames), offset, float(self._recent.min()))
        if self._counted > self.period and self._follows and getattr(self.device_clock, "cycle_start", False):
            n = self._realign(n)
        return n

    def _realign(self, n: int) -> int:
        """Put the first callback of a JACK cycle longer than the stream's period on the block grid, as at the start.
        PortAudio then calls back several times at once per cycle; with the cycle's first callback off the grid (a
        period changed while live plays: `jack_bufsize 1024` at a stream position that is not a multiple of 1024),
        a block completed within a burst whose later callbacks want its output, and every block came out late for
        good (hunt 120: 43 a second, with a budget of half a block). The input jumps to the next grid line through
        silence, and the output with it: a glitch once, the latency as it was."""
        pad = -n % math.gcd(self._counted, self.blocksize)  # where the cycles start at open, relative to the blocks
        if pad:
            self.inputs.fill(n, pad)
            n += pad
            self._pos = n
        return n

    def _skipped(self, offset: float) -> int:
        """Frames skipped (whole device periods) by a callback at `offset` from the reference: one period from 7/8
        of one above it (callbacks run late). A device period shorter than the stream's that does not divide it
        places callbacks up to `cycle − gcd(cycle, period)` frames above the reference with no cycle lost (JACK at
        200, `--period 256`: 192, held as a skip, and 82 callbacks in 400 cycles played silence; hunt 213), so there
        a skip starts halfway between that and a period, where its callbacks' frames on JACK's counter (exact) never
        reach without one, and every callback after one does."""
        if not math.isfinite(self._clock):
            return 0
        P = self._cycle
        return int((offset - self._clock - max(7 * P / 8, (self.spread(P) + P) / 2) + P) // P) * P

    def _keep(self, indata: np.ndarray, frames: int, offset: float) -> int:
        i = self._held_calls
        self._hold_starts[i], self._hold_offsets[i] = self._held, offset
        self._hold[self._held : self._held + frames] = indata
        self._held += frames
        self._held_calls += 1
        return -1

    def _place_held(self, n: int, offset: float) -> int:
        """Put the held callbacks' input in place and return the position of this one's: each held callback after
        as many skipped periods as its own clock and every later one allow (skips only add up, lateness only
        adds), silence in the gaps; this one after as many as the last held one."""
        calls, least = self._held_calls, offset
        for i in range(calls - 1, -1, -1):
            least = min(least, self._hold_offsets[i])
            self._hold_skips[i] = max(self._skipped(least), 0)
        done = 0
        for i in range(calls):
            gap = int(self._hold_skips[i]) - done
            if gap > 0:
                n, done = n + self._skip(n, gap), done + gap
            a, b = int(self._hold_starts[i]), int(self._hold_starts[i + 1]) if i + 1 < calls else self._held
            self.inputs.put(n, self._hold[a:b])
            n += b - a
        self._pos = n
        return n

    def _skip(self, n: int, skipped: int) -> int:
        """Count `skipped` device frames at input position `n` and follow them in whole periods of the stream:
        returns the frames of silence put in. Where the device's period is shorter than the stream's (JACK at 256,
        `live --period 512`: a callback every two cycles), following a lost cycle exactly would move every later
        callback half a period off the blocks, which costs the model a period of its budget for good (measured: 56
        of 108 blocks late instead of 6); what is left over only delays the audio in flight across it, never
        advances it. Where the two periods do not nest (JACK at 256, `live --period 384`) nothing is followed (in
        live's periods a lost cycle read late came out 128 frames early); skips are counted in the device's
        periods (JACK at 1024, `--period 256`: one lost cycle, not four)."""
        if not skipped:
            return 0
        c = self.counters
        c.skipped_cycles += max(round(skipped / self._counted), 1)
        c.skipped_frames += skipped
        followed = skipped // self.period * self.period if self._follows else 0
        self._unfollowed += skipped - followed
        self.inputs.fill(n, min(followed, self.inputs.capacity))
        return followed

    # --- control side --------------------------------------------------------------------------------------
    def warm_up(self) -> list[float]:
        """Run every path a control can switch on (TorchScript optimises on its first calls, which would
        otherwise land on stage), then start the processor over from silence. Returns block times (s)."""
        torch.set_num_threads(self.threads)
        return self.processor.warm_up(self.controls.warm_up_snapshots())

    def start(self, warm_up: bool = True) -> None:
        if self._thread is not None:
            return
        if warm_up:
            self.warm_up()
        _GcGuard.acquire()
        self._gc = True
        self._running = True
        self._thread = threading.Thread(target=self._run, name="musicsae-model", daemon=True)
        self._thread.start()
        if self.rt_priority:
            self.priority = raise_priority(self._thread.native_id, self.rt_priority)

    def stop(self) -> None:
        self._running = False
        if self._fds_open:  # closed: its number may be another file's now
            with contextlib.suppress(BlockingIOError, OSError):
                os.write(self._wfd, b"\0")
        if self._thread is not None:
            self._thread.join(timeout=5.0)
            self._thread = None
        if self._gc:
            self._gc = False
            _GcGuard.release()

    def close(self) -> None:
        """Stop, and close the wake-up pipe once (a second close would close what the system gave its numbers to
        since: another socket or file)."""
        self.stop()
        fds, self._fds_open = self._fds_open, ()
        for fd in fds:
            with contextlib.suppress(OSError):
                os.close(fd)

    def inject_stall(self, seconds: float) -> None:
        """Fault injection: the model thread sleeps `seconds` before its next block (tests, benches)."""
        if not 0.0 <= float(seconds) < math.inf:
            raise ValueError(f"stall of {seconds} s: expected finite seconds >= 0")
        self._stall_s = float(seconds)

    def inject_callback_stall(self, seconds: float) -> None:
        """Fault injection: the next audio callback returns `seconds` late, as one that waited for the GIL or was
        preempted would (tests, benches): the device may skip cycles."""
        self._callback_stall_s = float(seconds)

    @property
    def stream_s(self) -> float:
        """Seconds of audio the stream has taken in since it started, after `earlier_s` (the time events are stamped
        in: a show's clock does not restart at 0 when `live --reconnect` starts again)."""
        return self.earlier_s + self._pos / self.sr

    @property
    def failing(self) -> bool:
        """True while every recent block has failed (`failing_after` in a row)."""
        return self.model.consecutive_errors >= self.failing_after

    def block_time_quantile(self, q: float) -> float:
        """The q-quantile (0..1) of the model's compute time per block over the last blocks (seconds)."""
        n = min(self.model.blocks, len(self.block_times))
        return float(np.quantile(self.block_times[:n], q)) if n else 0.0

    def watch_model(self) -> None:
        """Say once, as a "stuck" event, a block the model thread has been inside for over `STUCK_S` (a hung GPU
        call, a deadlock, a long stall): the output is silent meanwhile and nothing else reports a block that has
        not ended. Called from outside the model thread (`live`'s loop); the thread says "recovered" on return.
        A run of blocks that each take longer is said once (they are late blocks too), again after one in time.
        A call `PAUSED_S` after the last, with under half the audio callbacks that time holds between them, found
        the process stopped whole (Ctrl-Z and fg, a paused VM): the block in hand counts from now, and its time goes
        into no figure (hunt 216: "stuck for 2.0 s" sent as /error model, and a p99.9 of 439 ms against 3 for
        minutes after). A watcher late alone (a busy machine) finds the callbacks went on: a stuck model is said
        (hunt 218: it was hidden, its block's time read 0.0 ms)."""
        now, calls = time.monotonic(), self.counters.callbacks
        with self._stuck_lock:
            gap = now - self._watched_at if self._watched_at is not None else 0.0
            if gap > self.PAUSED_S and calls - self._watched_calls < 0.5 * gap * self.sr / self.period:
                self._paused_at = now
                if self._busy_since is not None:
                    self._busy_since = now
            self._watched_at, self._watched_calls = now, calls
            since = self._busy_since
            if since is None or self._stuck_said or not self._stuck_armed:
                return
            if (held := now - since) <= self.STUCK_S:
                return
            self._stuck_said, self._stuck_armed = True, False
            meanwhile = f"{dry}: the dry signal plays on" if (dry := self._dry_word()) else "output silent"
            said = f"the model has been inside one block for {held:.1f} s: {meanwhile} until it returns"
            self.report("stuck", said)  # under the lock: recorded before the block's return says "recovered"

    def report(self, kind: str, message: str) -> None:
        """An event from outside the audio path (e.g. "device": the stream stopped), at the current input frame.
        Safe from any thread, while the model thread records its own."""
        self._event(kind, self._pos, 0, message)

    # --- model thread -------------------------------------------------------------------------------------
    def _event(self, kind: str, at: int, lost: int, message: str) -> None:
        """Record an event, numbered one above the last: under a lock, so events recorded from several threads are
        each kept once and numbered in the order readers see them (the audio callback records none)."""
        with self._events_lock:
            self._seq += 1
            self.events.append(Event(self._seq, kind, self.earlier_s + at / self.sr, lost, message))

    def _report_device(self) -> None:
        """Cycles the device skipped and xruns it flagged (counted by the callback, which allocates nothing) as a
        "device" event, at most one per second: what comes within the second after one is summed into the next."""
        c = self.counters
        seen = (c.skipped_cycles, c.skipped_frames, c.device_xruns)
        skipped, lost, xruns = (a - b for a, b in zip(seen, self._device_seen, strict=True))
        now = time.perf_counter()
        if not (skipped or xruns) or now - self._last_device_event < 1.0:
            return
        self._last_device_event = now
        self._device_seen = seen
        what = []
        if skipped:
            what.append(f"skipped {skipped} cycle(s) ({1e3 * lost / self.sr:.1f} ms not heard; its clock is followed)")
        if xruns:
            what.append(f"flagged {xruns} xrun(s)")
        self._event("device", self._pos, lost, f"device {' and '.join(what)}; "
                    f"{c.skipped_cycles} cycles skipped, {c.device_xruns} device xruns so far")  # fmt: skip

    def _skip_to(self, a: int, hi: int) -> int:
        """The block to process next: `a`, unless its output can no longer be heard (its slot ends before the
        callback gets there plus one block's compute) or its input was overwritten; then the first block on the
        grid, among the complete ones, whose output can be heard whole (its slot starts after that compute), so
        the blocks after it are on time too."""
        B, L, P = self.blocksize, self.prefill, self.period
        newest = a + ((hi - a) // B - 1) * B
        if newest <= a:
            return a
        intact_from = hi - self.inputs.capacity + P
        c = int(self._compute)
        if (a + L + B > hi + c or not self.deadlines) and a >= intact_from:
            return a
        k = max(1, -(-(hi + c - L - a) // B), -(-(intact_from - a) // B))
        return min(a + k * B, newest)

    def _input_before(self, a: int, hi: int) -> np.ndarray:
        """The processor's `delay` input frames before position `a`, for its dry line after a resync: silence
        before the stream's start and where the ring no longer holds them (`_skip_to`'s intact bound)."""
        delay = int(getattr(self.processor, "delay", 0))
        out = np.zeros((delay, self.channels), np.float32)
        take = min(delay, a - max(0, hi - self.inputs.capacity + self.period))
        if take > 0:
            self.inputs.get(a - take, out[delay - take :])
        return out

    def _resync(self, a: int, new_a: int, hi: int) -> None:
        m = self.model
        self.processor.resync(self._input_before(new_a, hi))  # first: one that raises is the fault, not a resync
        m.resyncs += 1
        m.skipped_frames += new_a - a
        ms = 1000.0 / self.sr
        B, c = self.blocksize, int(self._compute)
        behind = (hi - self.period) - (a + self.prefill)  # how far the audio had gone past block a's first output
        # until the first aligned output frame is played: the new block's first output, or, when its slot has
        # begun (the newest complete block, when no later one can be heard whole), where the audio is once its
        # compute is done; the new block's first `delay` frames are the model's silence: the resync cleared the
        # input it held (its caches; the dry line resumes from `_input_before`)
        delay = int(getattr(self.processor, "delay", 0))
        first = max(new_a + self.prefill + delay, hi + c)
        lost = first - self._valid[1]
        typical = self._typical_compute()  # one slow block is no slow model (the running mean jumps with it)
        if typical >= B:  # slower than real time: no block keeps its slot, however many are skipped (hunt 204)
            why = f"model slower than real time ({typical * ms:.0f} ms for each {B * ms:.0f} ms block)"
            then = "output mostly silent until its blocks take less than that (a larger --blocksize, a quieter machine)"
        else:
            why = (f"model thread {behind * ms:.0f} ms behind" if behind >= 0  # not late yet, but its blocks take
                   else f"model thread too slow for the next block's slot ({c * ms:.0f} ms a block)")  # fmt: skip
            then = f"output aligned again in {(first - (hi - self.period)) * ms:.1f} ms"
        if dry := self._dry_word():  # the callback plays the input where the model's output is missing: none lost
            then, lost = f"{dry}: the dry signal plays on", 0
        u = self._resyncs_unsaid
        u.update(n=u["n"] + 1, skipped=u["skipped"] + new_a - a, lost=u["lost"] + lost, at=new_a, why=why, then=then)
        self._say_resyncs()

    def _typical_compute(self) -> int:
        """The median compute of the last 8 blocks, in frames (the running mean `_compute` before any)."""
        n = min(self.model.blocks, 8)
        if not n:
            return int(self._compute)
        size = len(self.block_times)
        last = [self.block_times[(self.model.blocks - 1 - k) & (size - 1)] for k in range(n)]
        return int(float(np.median(last)) * self.sr)

    def _say_resyncs(self) -> None:
        """The resyncs since the last "resync" event as one event, at most one a second: a model slower than real
        time resyncs every few blocks (20 events a second, each promising a recovery that never came: hunt 204).
        What comes within the second after one is summed into the next, said once that second is over."""
        u = self._resyncs_unsaid
        now = time.perf_counter()
        if not u["n"] or now - self._last_resync_event < 1.0:
            return
        ms = 1000.0 / self.sr
        times = f" ({u['n']} resyncs in the last {now - self._last_resync_event:.1f} s)" if u["n"] > 1 else ""
        self._event("resync", u["at"], u["lost"], f"{u['why']}: skipped {u['skipped'] * ms:.0f} ms of input{times}, "
                    f"{u['then']}")  # fmt: skip
        self._last_resync_event = now
        self._resyncs_unsaid = {"n": 0, "skipped": 0, "lost": 0}

    def _failed(self, exc: BaseException, at: int, what: str = "model failed, playing the dry signal") -> None:
        m = self.model
        m.errors += 1
        m.consecutive_errors += 1
        text = str(exc).strip().splitlines()[0][:200] if str(exc).strip() else ""
        m.last_error = f"{type(exc).__name__}: {text}" if text else type(exc).__name__
        lost = 0 if self._dry_word() else self.blocksize  # dry alone, the dry fallback is what was to be heard
        if m.consecutive_errors == 1:
            self._event("error", at, lost, f"{what}: {m.last_error}")
        elif m.consecutive_errors == self.failing_after:
            self._event("failing", at, lost, f"EVERY BLOCK FAILS, playing the dry signal: {m.last_error}")

    def _run(self) -> None:
        torch.set_num_threads(self.threads)
        while self._running:
            try:
                self._loop()
                return
            except Exception as exc:  # outside the model's call (its resync, a copy): said, and the thread goes on
                with self._stuck_lock:
                    self._busy_since, self._stuck_said = None, False
                dry = self._dry_word()
                self._failed(exc, self._next, f"model thread fault, {'dry' if dry else 'silent'} until it resyncs")
                time.sleep(self.blocksize / self.sr)  # then resyncs past what it missed, as after a stall

    def _loop(self) -> None:
        """Process blocks as their input completes, until stopped (the model thread's body; `_run` keeps it going
        through a fault outside the model's own call)."""
        B, L, P = self.blocksize, self.prefill, self.period
        cap = self.inputs.capacity
        block = np.zeros((B, self.channels), dtype=np.float32)
        silence = np.zeros_like(block)
        a = self._next
        lo = self._valid[0]
        m, c = self.model, self.counters
        resumed = -1  # the block a resync resumed at: its late start is the resync's, said and counted there
        while self._running:
            if (c.skipped_frames, c.device_xruns) != self._device_seen[1:]:  # the callback counted device trouble
                self._report_device()
            if self._resyncs_unsaid["n"]:  # resyncs within a second of the last one said
                self._say_resyncs()
            hi = self._pos
            if hi - a < B:
                self._want = a + B
                if self._pos - a < B:  # checked again after publishing what we want: no lost wake-up
                    try:
                        select.select([self._rfd], [], [], 0.05)
                        with contextlib.suppress(BlockingIOError):
                            os.read(self._rfd, 4096)
                    except OSError:  # closed under us: stopping
                        return
                continue
            if self._prefill_want != L:  # the device's cycle changed (`prefill_for`)
                L = self._take_prefill(a)
            if self._busy_since is None:  # (an injected stall keeps it across the wait that follows)
                self._busy_since = time.monotonic()
            taken_up = time.monotonic()
            if self._stall_s:
                stall, self._stall_s = self._stall_s, 0.0
                time.sleep(stall)
                continue
            new_a = self._skip_to(a, hi)
            if new_a != a:  # behind (a stall): skip what can no longer be heard
                self._resync(a, new_a, hi)
                a = resumed = new_a
                lo = a + L
            self.inputs.get(a, block)
            if self._pos - a > cap - P:  # overwritten while we copied (stalled mid-copy): resync
                continue
            snap = self.controls.snapshot
            if self.trace is not None:
                self.trace.append((a, snap))
            t0 = time.perf_counter()
            try:
                out = self.processor.process(block, snap)
                if out.shape != block.shape:  # a short block would publish the ring's old audio in its slot
                    raise ValueError(f"the processor returned {out.shape} for a block of {block.shape}")
                if m.consecutive_errors >= self.failing_after:
                    self._event("recovered", a, 0, f"model works again after {m.consecutive_errors} failed blocks")
                m.consecutive_errors = 0
            except Exception as exc:  # the audio never stops: count it, play the aligned dry signal, go on
                fallback = getattr(self.processor, "fallback", None)
                out = fallback if fallback is not None and fallback.shape == block.shape else silence
                self._failed(exc, a)
            elapsed = time.perf_counter() - t0
            self.outputs.put(a + L, out)
            self._valid = (lo, a + L + B)
            late = self._pos - (a + L)
            a += B
            self._next = a
            with self._stuck_lock:
                since, self._busy_since = self._busy_since, None
                held = time.monotonic() - (since or time.monotonic())
                said, self._stuck_said = self._stuck_said, False
                self._stuck_armed = self._stuck_armed or held <= self.STUCK_S
            if said:  # at the frame now playing, after the "stuck" it answers (not at the block's own start)
                self._event("recovered", self._pos, 0, f"the model's block returned after {held:.1f} s")
            m.blocks += 1
            self.last_block_at = time.monotonic()
            m.stats = BlockStats(**vars(self.processor.stats)) if hasattr(self.processor, "stats") else m.stats
            if self._paused_at >= taken_up:  # the process was stopped in this block: no compute time of the model's
                elapsed = min(elapsed, self._compute / self.sr)
            self.block_times[(m.blocks - 1) & (len(self.block_times) - 1)] = elapsed
            if m.blocks > 2 and elapsed > m.max_block_s:
                m.max_block_s = elapsed
            if late > 0 and a - B != resumed:
                m.late_blocks += 1
                m.late_frames += min(late, B)
                now = time.perf_counter()
                if now - self._last_late_event >= 1.0:
                    self._last_late_event = now
                    n, started_late = m.late_blocks, elapsed * self.sr <= self.budget  # its compute fit: a late start
                    lost = 0 if self._dry_word() else min(late, B)  # dry alone: the callback played the input there
                    self._event("late", a - B, lost, f"came out {1e3 * late / self.sr:.1f} ms late: the model "
                                f"took {1e3 * elapsed:.1f} ms of its {1e3 * self.budget / self.sr:.1f} ms budget"
                                + ("; it started late (the machine was busy)" if started_late else "")
                                + f"; {n} late block{'' if n == 1 else 's'} so far")  # fmt: skip
            # running estimate, in frames; one block stalled for seconds inside the model's call moves it by two blocks
            # at most (it skipped blocks it had time for until it decayed: hunt 209)
            self._compute += 0.1 * (min(elapsed * self.sr, 2 * B) - self._compute)
            if self._gc:  # automatic collection is off while engines run: young garbage goes here
                gc.collect(0)
                if m.blocks % 64 == 0:
                    gc.collect(1)
                if m.blocks % 8192 == 0:  # what survived since the freeze only: cheap, and no cycle lives forever
                    gc.collect(2)

    def _take_prefill(self, a: int) -> int:
        """Move the block buffer to what the device's cycle now wants, from block `a` on: longer, the output
        already computed plays out and silence fills up to the new slot; shorter, the next block overwrites what
        the old mapping left after its slot (a jump in the audio, once). The latency figure moves with it."""
        L, hi = self._prefill_want, self._valid[1]
        if a + L > hi:
            self.outputs.fill(hi, a + L - hi)
            self._valid = (self._valid[0], a + L)
        self.prefill = self.latency.block_buffer = L
        return L

    def wait_output(self, frames: int, timeout: float = 10.0) -> bool:
        """Wait until the next `frames` output frames are ready (file mode: as fast as possible)."""
        deadline = time.perf_counter() + timeout
        while self._valid[1] < self._pos + frames:
            if self._busy_since is None and self._pos - self._next < self.blocksize:
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


STALE_S = 0.5
"""Seconds without a block after which the meters and levels read 0 (a device gone away, a stalled model): no
audio comes in, no concept in it (a meter stuck at the last block's 0.8 read as playing)."""


def stale(engine: Any) -> bool:
    """Whether `engine` played a block once but none for `STALE_S`, or two blocks' time where that is longer (None
    of `last_block_at`: not started yet)."""
    at = getattr(engine, "last_block_at", None)
    block_s = getattr(engine, "blocksize", 0) / getattr(engine, "sr", 1)
    return at is not None and time.monotonic() - at > max(STALE_S, 2 * block_s)


def current_meters(engine: Any) -> dict[str, float]:
    """The concept meters of `engine`'s processor as /meter, /state and the live view show them: 0 when `stale`."""
    names = getattr(engine.processor, "meter_names", None) or []
    values = getattr(engine.processor, "meter_values", ())
    quiet = stale(engine)
    return {n: 0.0 if quiet else float(v) for n, v in zip(names, values, strict=False)}
