"""Fault injection: a model thread that stalls (long enough to overflow the input ring too), input overwritten
while the model thread copies it, a model that raises, impossible period/block pairs.

A fake processor (output = −input, with the engine-facing attributes of `BlockProcessor`) stalls once; the engine
runs from arrays through its own audio callback at real-time pace, so the stall really happens against the clock.
"""

from __future__ import annotations

import itertools
import math
import re
import time
from collections.abc import Callable

import numpy as np
import pytest
import torch

from realtime.audio_io import run_file
from realtime.controls import Controls
from realtime.engine import Engine
from realtime.osc import OscServer, OscTelemetry
from realtime.processor import BlockProcessor
from sae.errors import UserError
from sae.steering import EditState

SR = 44100


class FakeProcessor:
    """Output = input (so alignment is checkable sample for sample); stalls `stall_s` on block `stall_at`, or
    raises from block `fail_from` up to (not including) `fail_until`."""

    def __init__(self, blocksize, stall_at=None, stall_s=0.0, fail_from=None, fail_until=None):
        self.blocksize, self.channels, self.sr, self.delay, self.first_response = blocksize, 1, SR, 0, 0
        self.stall_at, self.stall_s = stall_at, stall_s
        self.fail_from, self.fail_until = fail_from, fail_until
        self.calls = self.resyncs = 0
        self.fallback = None

    def warm_up(self, snapshots, repeats=3):
        return []

    def resync(self, history=None):
        self.resyncs += 1

    def process(self, block, snap):
        i = self.calls
        self.calls += 1
        self.fallback = block.copy()
        if i == self.stall_at:
            time.sleep(self.stall_s)
        if self.fail_from is not None and self.fail_from <= i < (self.fail_until or 1 << 60):
            raise RuntimeError(f"block {i} refused")
        return -block  # wet ≠ dry: a fallback to dry is visible


def _signal(seconds: float) -> np.ndarray:
    rng = np.random.default_rng(0)
    return (0.1 + 0.5 * rng.random((int(SR * seconds), 1))).astype(np.float32)  # never 0: silence is visible


def _engine(proc, period=256, headroom=1.0) -> Engine:
    return Engine(proc, Controls(EditState(8)), period=period, headroom=headroom)


STALLS = [(512, 0.05), (512, 0.25), (512, 1.0), (512, 5.0), (2048, 0.05), (2048, 0.25), (2048, 1.0)]


@pytest.mark.parametrize(("blocksize", "stall_s"), STALLS)
def test_a_stall_is_recovered_within_two_blocks_and_the_mapping_never_drifts(blocksize, stall_s):
    stall_at = 8
    proc = FakeProcessor(blocksize, stall_at=stall_at, stall_s=stall_s)
    data = _signal((stall_at + 1) * blocksize / SR + stall_s + 0.4)
    with _engine(proc) as engine:
        out = run_file(engine, data, realtime=True)[:, 0]
    want = -data[:, 0]
    good = out == want
    # never shifted, never garbage: every frame is in place or silent (an underrun), before and after the stall
    assert (good | (out == 0.0)).all()
    # the stall starts once block `stall_at` is complete; after it ends, output is in place again within two
    # blocks (plus 20 ms for this shared machine's scheduling) and stays so
    stall_end = (stall_at + 1) * blocksize + int(stall_s * SR)
    gap = np.flatnonzero(~good[stall_at * blocksize :]) + stall_at * blocksize
    back = int(gap[np.flatnonzero(np.diff(gap) > 1)[0]] + 1) if (len(gap) and (np.diff(gap) > 1).any()) else None
    back = back if back is not None else (int(gap[-1]) + 1 if len(gap) else stall_at * blocksize)
    assert back <= stall_end + 2 * blocksize + int(0.02 * SR), (back, stall_end)
    after = good[stall_end + 2 * blocksize + int(0.02 * SR) :]
    assert len(after) > blocksize and after.mean() > 0.98  # a rare scheduling hiccup later is an underrun, not drift
    assert good[: stall_at * blocksize].mean() > 0.98
    resyncs = [e for e in engine.events if e.kind == "resync"]
    assert not any("slower than real time" in e.message for e in resyncs), resyncs  # one slow block (hunt 209)
    if stall_s * SR > engine.budget + engine.blocksize:  # longer than the slack: skipped, counted, reported
        # (a block late after it on a busy machine resyncs once more: CI 67, a 5 s stall, one late block)
        assert 1 <= engine.model.resyncs <= 1 + engine.model.late_blocks, engine.model
        assert 1 <= len(resyncs) <= engine.model.resyncs, resyncs
        assert proc.resyncs == engine.model.resyncs
        assert engine.model.skipped_frames > 0 and "skipped" in resyncs[0].message
    if stall_s * SR > engine.inputs.capacity:  # the input ring overflowed during the stall: skipped past it
        assert engine.model.skipped_frames >= stall_s * SR - engine.inputs.capacity
    assert engine.model.errors == 0


def test_input_overwritten_while_the_model_thread_copies_it_is_skipped_not_played():
    """The model thread stalls inside the copy of a block's input (after its resync check), so the callback
    overwrites that input meanwhile: nothing torn or shifted is heard (a block copied that late would come out
    after its slot anyway, and the engine also drops it) and the output is aligned again after one resync."""
    proc = FakeProcessor(512)
    data = _signal(1.5)
    engine = _engine(proc)
    get, copies = engine.inputs.get, []

    def slow_get(pos: int, out: np.ndarray) -> None:
        copies.append(pos)
        if len(copies) == 12:
            time.sleep(0.3)  # longer than the input ring: what it copies now is newer input
        get(pos, out)

    engine.inputs.get = slow_get
    with engine:
        out = run_file(engine, data, realtime=True)[:, 0]
    good = out == -data[:, 0]
    assert (good | (out == 0.0)).all()  # nothing torn or shifted was played
    assert engine.model.resyncs == 1
    # aligned again for good: at the end, only a late block the engine counted (this shared machine's scheduling;
    # an underrun, silent) may be missing, at most two blocks of it
    missing = int((~good[-int(0.5 * SR) :]).sum())
    assert missing <= min(engine.model.late_frames, 2 * 512), (missing, engine.model.late_frames)
    assert good[: 11 * 512].mean() > 0.98


class _Computing(FakeProcessor):
    """Takes 8 ms a block, so where the model thread resumes after a stall depends on its compute."""

    def process(self, block, snap):
        time.sleep(0.008)
        return super().process(block, snap)


@pytest.mark.parametrize("stall_s", [0.3, 0.52])
def test_a_resync_resumes_at_a_block_heard_whole_and_says_when(stall_s):
    """After a stall the model thread resumes at the first block whose slot starts after its compute: that block
    and the ones after it are on time (no late block follows the resync), and the resync says when the aligned
    output is back, which is where the output is right again."""
    proc = _Computing(1024)
    data = _signal(1.0 + stall_s + 0.6)
    engine = Engine(proc, Controls(EditState(8)), period=256, budget=1024)

    def stall_once(done: int) -> None:  # a second in, once the engine has timed its blocks
        if done == 172 * 256:
            engine.inject_stall(stall_s)

    with engine:
        out = run_file(engine, data, realtime=True, on_period=stall_once)[:, 0]
    [resync] = [e for e in engine.events if e.kind == "resync"]
    late = [e for e in engine.events if e.kind == "late" and e.at_s <= resync.at_s + 0.1]
    assert not late, (resync.message, [e.message for e in late])
    recover_ms = float(re.search(r"aligned again in ([\d.]+) ms", resync.message)[1])
    assert recover_ms >= 8.0, resync.message  # at least the resumed block's compute
    good = out == -data[:, 0]
    assert (good | (out == 0.0)).all()
    back = int(resync.at_s * SR) + engine.prefill  # the resumed block's first output frame
    assert good[back : back + 2 * 1024].all()


class _TooSlow(FakeProcessor):
    """Takes twice its block's time, every block: slower than real time (a busy laptop)."""

    def process(self, block, snap):
        time.sleep(2 * len(block) / SR)
        return super().process(block, snap)


def test_a_model_slower_than_real_time_is_said_once_a_second_not_promised_back_every_block():
    """Hunt 204: a model taking twice the block resynced every few blocks, each a "resync" event (20 a second, each
    an OSC /event) saying "output aligned again in 53 ms" while none came back. Now the resyncs are said at most
    once a second, summed, as a model slower than real time, with no promise of alignment."""
    proc = _TooSlow(512)
    data = _signal(3.2)
    with _engine(proc) as engine:
        run_file(engine, data, realtime=True)
    resyncs = [e for e in engine.events if e.kind == "resync"]
    assert engine.model.resyncs >= 10, engine.model.resyncs  # the storm happened
    assert 1 <= len(resyncs) <= 4, [e.message for e in resyncs]  # 3.2 s: one a second at most (and the first)
    assert all(b.at_s - a.at_s >= 0.9 for a, b in itertools.pairwise(resyncs)), [e.at_s for e in resyncs]
    said = [int(m[1]) if (m := re.search(r"\((\d+) resyncs in the last", e.message)) else 1 for e in resyncs]
    assert sum(said) <= engine.model.resyncs and max(said) > 1  # every resync said counted once, in sums
    later = resyncs[1:]  # once its compute is measured: no promise the output comes back
    assert later and all("model slower than real time" in e.message for e in later), [e.message for e in later]
    assert not any("aligned again" in e.message for e in later)


def test_stall_injected_through_the_engine_recovers_too():
    proc = FakeProcessor(512)
    data = _signal(1.2)
    with _engine(proc) as engine:
        engine.inject_stall(0.3)
        out = run_file(engine, data, realtime=True)[:, 0]
    # the stall needs a resync; on this shared machine the first block after it was sometimes too late again (CI:
    # 2 resyncs twice in a row, with and without a late block counted), so only the alignment below is exact
    assert engine.model.resyncs >= 1
    good = out == -data[:, 0]
    # aligned again for good: at the end only a late block the engine counted (this shared machine's scheduling: an
    # underrun, silent) may be missing, at most two blocks of it (CI missed one such block once in 27 sittings)
    assert ((good | (out == 0.0))[-int(0.5 * SR) :]).all()  # nothing shifted
    missing = int((~good[-int(0.5 * SR) :]).sum())
    assert missing <= min(engine.model.late_frames, 2 * 512), (missing, engine.model.late_frames)


def test_a_model_call_that_does_not_return_is_said_while_it_hangs_and_when_it_returns(osc_inbox):
    """A model call that hung (a GPU call, a deadlock) gave silence with no event, `errors 0` and an old yellow
    line in the view until it returned (hunt 198): `watch_model`, called by live's loop, says it once as "stuck"
    (in red, and to OSC as an /error); the model thread says "recovered" when the block returns."""
    import threading

    from realtime.live_view import problem
    from realtime.osc import encode_message

    proc = FakeProcessor(512, stall_at=20, stall_s=1.6)  # inside `process`: the model's own call hangs
    data = _signal(3.0)
    seen: list[tuple[str, str] | None] = []
    with OscServer(None, port=0) as server, _engine(proc) as engine:
        osc_inbox.sock.sendto(encode_message("/ping", []), ("127.0.0.1", server.port))  # makes it the last client
        assert osc_inbox.read(0.5) == [("/pong", ["loading"])]
        telemetry = OscTelemetry(server, engine, meter_rate=0)
        done = threading.Event()

        def watch():  # as live's loop does
            while not done.wait(0.05):
                engine.watch_model()
                telemetry.tick()
                if engine.events and engine.events[-1].kind == "stuck":
                    seen.append(problem(engine))

        watcher = threading.Thread(target=watch)
        watcher.start()
        try:
            out = run_file(engine, data, realtime=True)[:, 0]
        finally:
            done.set()
            watcher.join()
        telemetry.tick()
        replies = osc_inbox.read(0.5)
    assert [args[1] for address, args in replies if address == "/error"] == [
        next(e.message for e in engine.events if e.kind == "stuck")
    ]
    kinds = [e.kind for e in engine.events]
    assert kinds.count("stuck") == 1 and kinds.index("stuck") < kinds.index("recovered"), kinds
    stuck = next(e for e in engine.events if e.kind == "stuck")
    said = r"the model has been inside one block for 1\.\d s: output silent until it returns"
    assert re.fullmatch(said, stuck.message), stuck.message
    back = next(e for e in engine.events if e.kind == "recovered")
    assert re.fullmatch(r"the model's block returned after 1\.[5-9] s", back.message), back.message
    assert seen and seen[0][1] == "red" and seen[0][0].startswith("stuck at ")
    good = out == -data[:, 0]
    assert (good | (out == 0.0)).all() and good[-int(0.5 * SR) :].mean() > 0.98  # aligned, and back for good


class _SlowBlocks(FakeProcessor):
    """Blocks in `slow` take `seconds` inside the model's call."""

    def __init__(self, blocksize, slow, seconds):
        super().__init__(blocksize)
        self.slow, self.seconds = set(slow), seconds

    def process(self, block, snap):
        if self.calls in self.slow:
            time.sleep(self.seconds)
        return super().process(block, snap)


def _watched(proc: FakeProcessor, seconds: float, every: float, stuck_s: float = Engine.STUCK_S) -> Engine:
    """`seconds` of signal through `proc` at real-time pace, `watch_model` called every `every` seconds by a thread
    of its own (as live's loop); returns the engine."""
    import threading

    with _engine(proc) as engine:
        engine.STUCK_S = stuck_s
        done = threading.Event()
        watcher = threading.Thread(target=lambda: [engine.watch_model() for _ in iter(lambda: done.wait(every), True)])
        watcher.start()
        try:
            run_file(engine, _signal(seconds), realtime=True)
        finally:
            done.set()
            watcher.join()
    return engine


def test_a_run_of_slow_blocks_is_said_stuck_once_and_again_after_one_in_time(monkeypatch):
    """Hunt 201: blocks that each took longer than `STUCK_S` were each said "stuck" and "recovered" (an /error over
    OSC per block), and "recovered" was stamped at its block's start, before the "stuck" it answered."""
    engine = _watched(_SlowBlocks(512, slow=[10, 11, 12, 13, 40], seconds=0.35), 2.5, every=0.02, stuck_s=0.2)
    said = [e for e in engine.events if e.kind in ("stuck", "recovered")]
    assert [e.kind for e in said] == ["stuck", "recovered", "stuck", "recovered"], [(e.kind, e.message) for e in said]
    assert all(b.at_s >= a.at_s for a, b in itertools.pairwise(said))  # in the order they happened


def test_a_process_stopped_whole_in_a_block_is_no_stuck_model_and_no_slow_block():
    """Hunt 216: `live` stopped for 2 s (Ctrl-Z and fg, a paused VM) with a block in hand: on waking, its watcher
    said the model "has been inside one block for 2.0 s" (an /error model over OSC), and the block's 2 s went into
    the compute figures (p99.9 439 ms against 3, for minutes). The watcher, stopped too, knows: neither now."""
    proc = _SlowBlocks(512, slow=[10], seconds=2.0)  # the model thread's block spans the stop
    with _engine(proc) as engine:
        stopped = []

        def watch(n: int) -> None:  # the feeding thread is the device and the watcher: both stop with the process
            if not stopped and proc.calls == 10 and engine._busy_since is not None:
                stopped.append(n)
                time.sleep(1.9)
            engine.watch_model()

        run_file(engine, _signal(3.5), realtime=True, on_period=watch)
    assert stopped and proc.calls > 30
    assert not [e for e in engine.events if e.kind in ("stuck", "recovered")], [e.message for e in engine.events]
    assert engine.model.max_block_s < 0.5 and engine.block_times.max() < 0.5, engine.model.max_block_s


def test_a_watcher_late_alone_still_says_a_stuck_model():
    """Hunt 218: a watcher that ran every 0.6 s (a busy machine's live loop, late) took each call for the whole
    process stopped: a model stuck 2 s in one block was never said, and its block read 0.0 ms. The callbacks went on
    meanwhile: no stop."""
    engine = _watched(_SlowBlocks(512, slow=[10], seconds=2.0), 3.5, every=0.6)
    assert [e.kind for e in engine.events if e.kind in ("stuck", "recovered")] == ["stuck", "recovered"]
    assert engine.model.max_block_s >= 1.9, engine.model.max_block_s


class _Delaying(FakeProcessor):
    """Output = the input `delay` frames later (its line cleared by a resync, as a model's caches are)."""

    def __init__(self, blocksize, delay):
        super().__init__(blocksize)
        self.delay = delay
        self.line = np.zeros(delay, np.float32)

    def resync(self, history=None):
        super().resync()
        self.line[:] = 0.0

    def process(self, block, snap):
        joined = np.concatenate([self.line, block[:, 0]])
        self.line = joined[-self.delay :].copy()
        return joined[: len(block)][:, None].copy()


def test_a_resync_counts_the_models_delay_in_the_output_it_lost():
    """A resync clears what the model holds of the input before the gap, so the first `delay` frames after it
    are silence too: `/event` and the live view reported the output lost, and when it was aligned again, short
    by the model's delay (27.6 ms on the demo model; hunt 158)."""
    D = 700
    proc = _Delaying(512, D)
    data = _signal(1.5)
    engine = _engine(proc)

    def stall_once(done: int) -> None:  # half a second in, once output plays
        if done == 86 * 256:
            engine.inject_stall(0.3)

    with engine:
        out = run_file(engine, data, realtime=True, on_period=stall_once)[:, 0]
    [resync] = [e for e in engine.events if e.kind == "resync"]
    silent = out[int(0.4 * SR) :] == 0.0  # the output's silence after the start: the resync's
    first = int(np.argmax(silent))
    back = first + int(np.argmax(~silent[first:]))
    # (exact, but where the resumed block's slot had begun: then its silence ends at a period's start)
    assert abs(back - first - resync.lost_frames) <= engine.period, (back - first, resync.lost_frames, D)
    assert not silent[back:].any()  # aligned from there on (a late block of this shared machine would show here)


class _DeviceClock:
    """What PortAudio passes the callback as `time_info` (the device clock of the input, in seconds)."""

    def __init__(self, t: float):
        self.inputBufferAdcTime = t


class ResyncFailsOnce(FakeProcessor):
    """A processor whose resync raises once (a model whose state reset fails: a sticky CUDA error, a full disk)."""

    def resync(self, history=None):
        super().resync()
        if self.resyncs == 1:
            raise RuntimeError("state reset refused")


def test_a_fault_outside_the_models_call_is_reported_and_the_audio_comes_back_aligned():
    """Only the model's own call was guarded: a resync that raised ended the model thread for good, with no event,
    no error counted, and silence until the performer restarted (hunt 80)."""
    proc = ResyncFailsOnce(512)
    data = _signal(1.6)
    with _engine(proc) as engine:
        engine.inject_stall(0.3)  # longer than the slack: the model thread resyncs after it
        out = run_file(engine, data, realtime=True)[:, 0]
    errors = [e for e in engine.events if e.kind == "error"]
    assert engine.model.errors == 1 and len(errors) == 1
    assert errors[0].message == "model thread fault, silent until it resyncs: RuntimeError: state reset refused"
    assert proc.resyncs >= 2  # it resynced again after the fault, past what it missed meanwhile
    good = out == -data[:, 0]
    assert (good | (out == 0.0)).all()  # nothing shifted, before or after
    assert good[-int(0.5 * SR) :].mean() > 0.95  # and not silent for good (hunt 198: that passed too)
    missing = int((~good[-int(0.5 * SR) :]).sum())
    assert missing <= min(engine.model.late_frames, 2 * 512), (missing, engine.model.late_frames)


def test_cycles_the_device_skipped_do_not_add_latency():
    """A JACK client too late for its cycle is left out of it and the device goes on: a 50 ms callback stall at
    period 256 skipped 7 cycles on a JACK dummy server, and the callback after it came flagged and 0.66 of a
    period late (measured through PortAudio). The engine follows the device clock, so what is heard after it is
    in place on the device's timeline, not 7 periods later for good; late or flagged callbacks with no skipped
    cycle move nothing."""
    B, P, skip_at, skipped = 512, 256, 60, 7
    rng = np.random.default_rng(1)
    engine = _engine(FakeProcessor(B), period=P)
    L = engine.latency.engine
    n = 200
    signal = _signal(n * P / SR)  # what the device captures, on its own clock
    heard = np.full(n * P, np.nan, dtype=np.float32)
    out = np.zeros((P, 1), dtype=np.float32)
    back = skip_at + skipped
    lateness = {30: (0.9 * P, None), 40: (0.5 * P, "input overflow"), back: (0.66 * P, "input overflow")}
    with engine:
        for k in [*range(skip_at), *range(back, n)]:
            assert engine.wait_output(P)
            late, status = lateness.get(k, (rng.uniform(0, 0.3 * P), None))
            engine.callback(signal[k * P : (k + 1) * P], out, P, _DeviceClock(100.0 + (k * P + late) / SR), status)
            heard[k * P : (k + 1) * P] = out[:, 0]
    t = np.arange(L, n * P)
    played, want = heard[t], -signal[t - L, 0]
    assert ((played == want) | (played == 0.0) | np.isnan(played)).all()  # in place or silent, never shifted
    assert (played[: skip_at * P - L] == want[: skip_at * P - L]).all()
    after = back * P + L + 2 * B - L  # index into t: two blocks after the first input after the gap is heard
    assert (played[after:] == want[after:]).all()
    assert engine.counters.skipped_cycles == skipped and engine.counters.device_xruns == 2


# consecutive callbacks from the 60th: (cycles the device skipped just before it, its lateness in periods, flagged)
def _through_jack(
    engine, n: int, event, drift: float | Callable[[float], float] = 0.0, counter: bool = False
) -> tuple[np.ndarray, np.ndarray]:
    """`n` callbacks of the engine as JACK makes them: `event(k)` gives callback k's (cycles the device skipped just
    before it, its lateness in periods, flagged), the clock runs `drift` fast (a number, or a function of the
    frames elapsed giving the clock's frames); `counter`: the engine also reads JACK's cycle counter, the start of
    the cycle the callback runs in (`realtime.jack_clock`). Returns (what was heard from the engine's latency on,
    the input it should be), on the device's timeline (NaN: cycles never called back)."""
    P, L = engine.period, engine.latency.engine
    events = [event(k) for k in range(n)]
    total = n + sum(e[0] for e in events)
    signal = _signal(total * P / SR)
    heard = np.full(total * P, np.nan, dtype=np.float32)
    out = np.zeros((P, 1), dtype=np.float32)
    cycle, late = 0, 0.0
    if counter:
        engine.device_clock = lambda frames: 5_000_000 + (cycle + int(late)) * P
    with engine:
        for skips, late, flagged in events:
            cycle += skips
            assert engine.wait_output(P)
            frames = (cycle + late) * P
            clock = _DeviceClock(100.0 + (drift(frames) if callable(drift) else frames * (1 + drift)) / SR)
            engine.callback(signal[cycle * P : (cycle + 1) * P], out, P, clock, "input overflow" if flagged else None)
            heard[cycle * P : (cycle + 1) * P] = out[:, 0]
            cycle += 1
    t = np.arange(L, cycle * P)
    return heard[t], -signal[t - L, 0]


LATE_CALLBACKS = {
    "12 ms stall: 2 lost, read 3.5": [(2, 1.47, True)],
    "3 lost, on time": [(3, 0.34, True)],
    "1 lost, read 1.9": [(1, 0.93, True)],
    "1 lost, flag a callback later": [(1, 0.2, False), (0, 0.1, True)],
    "late, none lost": [(0, 0.95, True)],
    "1.6 periods late, none lost": [(0, 1.6, True)],
    "late, none lost, no flag": [(0, 0.95, False)],
    "two late in a row, none lost": [(0, 0.92, False), (0, 1.3, True), (0, 0.05, False)],
    "late, then 3 lost": [(0, 0.88, False), (3, 0.44, True), (0, 0.08, False)],
    "late, late, then 2 lost": [(0, 0.92, False), (0, 1.3, True), (2, 0.8, True), (0, 0.1, False)],
}


@pytest.mark.parametrize("counter", [False, True], ids=["callback times", "cycle counter"])
@pytest.mark.parametrize("case", LATE_CALLBACKS)
def test_late_callbacks_around_skipped_cycles_are_placed_by_the_clocks_after_them(case, counter):
    """Under JACK the clock is read when the callback runs, so a callback after a stall reads the cycles lost plus
    its own lateness, which may exceed a period, two callbacks in a row, and the xrun flag may come a callback
    later than the skip (all measured through PortAudio on a JACK dummy server, period 256: a 12 ms callback stall
    lost 2 cycles and read 3.47 periods, the next callback 2.0). Counted at once, the extra period moved
    everything after it a period early for good (a JACK test once measured an impulse at 8817 samples against
    9073). Callbacks that seem to have skipped are held and placed by the clocks after them: the cycles counted
    are the cycles lost, the output is in place or silent, never shifted, and exact again two blocks on."""
    B, P, at, n = 512, 256, 60, 160
    engine = _engine(FakeProcessor(B), period=P)
    L = engine.latency.engine
    events = LATE_CALLBACKS[case]
    lost = sum(e[0] for e in events)
    played, want = _through_jack(
        engine, n, lambda k: events[k - at] if at <= k < at + len(events) else (0, (k % 3) / 80, False), counter=counter
    )
    assert ((played == want) | (played == 0.0) | np.isnan(played)).all()  # in place or silent, never shifted
    assert (played[: at * P - L] == want[: at * P - L]).all()
    after = (at + lost + len(events)) * P + 2 * B  # index into t: two blocks after the last late callback is heard
    assert (played[after:] == want[after:]).all()
    assert engine.counters.skipped_cycles == lost
    assert engine.counters.device_xruns == sum(e[2] for e in events)


@pytest.mark.parametrize("lost", [[1, 1], [1, 3, 2, 1]], ids=["two single cycles", "1, 3, 2 and 1 cycles"])
def test_cycles_of_a_device_period_shorter_than_the_streams_are_followed_in_whole_periods_never_early(lost):
    """JACK at 128 under a stream of 256: PortAudio calls back every other cycle and a lost cycle is half a
    callback. Following it exactly would put every later callback half a period off the blocks (a period of the
    model's budget lost for good: 56 of 108 blocks late on JACK at 256 / 512), so the engine follows whole periods
    and leaves the rest unfollowed: audio in flight across a skip comes out silent or at most a period late, never
    early, and every cycle lost is counted as the device's. (Counted in the stream's periods, the first lost cycle
    went unfollowed and the second was followed as a whole period: 3.5 % of the audio came out a cycle late here,
    and on CI at 256 / 512 an impulse came out a cycle early.)"""

    from realtime.jack_clock import CycleClock

    B, P, C, at = 512, 256, 128, 60
    engine = _engine(FakeProcessor(B), period=P)
    L = engine.latency.engine
    skips = {at + 40 * i: n for i, n in enumerate(lost)}
    n = at + 40 * len(lost) + 40
    total = n * P + C * sum(lost)
    signal = _signal(total / SR)
    heard = np.full(total, np.nan, dtype=np.float32)
    out = np.zeros((P, 1), dtype=np.float32)
    t = 0
    engine.device_clock = CycleClock(lambda: t)
    with engine:
        for k in range(n):
            t += C * skips.get(k, 0)
            assert engine.wait_output(P)
            engine.callback(signal[t : t + P], out, P, _DeviceClock(t / SR))
            heard[t : t + P] = out[:, 0]
            t += P
    i = np.arange(L + 4 * P, t)
    late = np.full(len(i), -1)  # how late each sample came out, in frames (-1: silent or never called back)
    for r in range(-2 * P, 2 * P + 1, C):
        late[heard[i] == -signal[i - L - r, 0]] = r
    silent = (heard[i] == 0.0) | np.isnan(heard[i])
    assert ((late >= 0) | silent).all() and (late < P).all(), sorted(set(late[~silent] // C))
    assert ((late > 0) & ~silent).sum() <= len(lost) * (L + P)  # only audio in flight across a skip
    after = (at + 40 * (len(lost) - 1) + 1) * P + C * sum(lost) + 2 * B  # two blocks after the last skip
    assert (late[i >= after] == 0).all()
    assert engine.counters.skipped_cycles == sum(lost) and engine.counters.skipped_frames == C * sum(lost)


def _buffered_on_jack(engine: Engine, C: int | list[int], cycles: int, lost: dict[int, int], late_read: int = 0):
    """Run `engine` as PortAudio runs a stream of `engine.period` frames on JACK cycles of `C` (or `C[k]` for cycle
    k: `jack_bufsize` while it plays): input buffered until a callback's worth is in, output buffered until a cycle
    takes it, every callback of a cycle reading that cycle's count and period (`lost`: cycles left out at a cycle
    index, neither read nor played). `late_read`: the callbacks of the first cycle after a loss read the next
    cycle's count, as a late one does. Returns (input, heard) per device frame (NaN: never played)."""
    from collections import deque

    from realtime.jack_clock import CycleClock

    P = engine.period
    sizes = C if isinstance(C, list) else [C] * cycles
    starts = np.concatenate([[0], np.cumsum(sizes)]).astype(int)
    raw, size = 0, sizes[0]
    engine.device_clock = CycleClock(lambda: raw, lambda: size)
    signal = _signal(starts[-1] / SR + 0.01)[: starts[-1], 0]
    heard = np.full(starts[-1], np.nan, np.float32)
    fin, fout = deque(), deque([0.0] * (2 * max(P, *sizes)))
    out = np.zeros((P, 1), np.float32)
    skip_until = -1
    with engine:
        for k, (a, b) in enumerate(itertools.pairwise(starts)):
            if k in lost:
                skip_until = k + lost[k]
            if k < skip_until:
                continue
            raw, size = 5_000_000 + a, b - a
            fin.extend(signal[a:b])
            while len(fin) >= P:
                x = np.array([fin.popleft() for _ in range(P)], np.float32)[:, None]
                assert engine.wait_output(P)
                if late_read and k == skip_until:
                    raw = 5_000_000 + b
                engine.callback(x, out, P, _DeviceClock(1.0))
                fout.extend(out[:, 0])
            heard[a:b] = [fout.popleft() for _ in range(b - a)]
    return signal, heard


def _never_early(period: int, block: int, C, lost: dict[int, int], late_read: int) -> Engine:
    """`_buffered_on_jack` with and without `lost`: no sample of the run with them comes out before the delay the
    run without them has as it ends; most come out at it. Returns the engine of the run with them."""
    engine = _engine(FakeProcessor(block), period=period)
    cycles = len(C) if isinstance(C, list) else 600
    _, plain = _buffered_on_jack(_engine(FakeProcessor(block), period=period), C, cycles, {})
    signal, heard = _buffered_on_jack(engine, C, cycles, lost, late_read)
    # the delay as the run without losses ends (a JACK period changed while playing may move it, `prefill_for`),
    # checked from the change on
    n = len(plain)
    end = plain[n - 6000 : n - 2000]
    D = next(d for d in range(20000) if np.array_equal(end, -signal[n - 6000 - d : n - 2000 - d]))
    changed = sum(itertools.takewhile(lambda c: c == C[0], C)) % n if isinstance(C, list) else 0
    T = np.arange(changed + D + 512, len(heard))
    played = ~np.isnan(heard[T]) & (heard[T] != 0.0)
    for r in range(-768, 0, 64):  # a sample heard r frames early: its input from D + r before
        assert not (played & (heard[T] == -signal[T - D - r])).any(), f"heard {-r} frames early"
    assert (heard[T][played] == -signal[T - D][played]).mean() > 0.95
    return engine


@pytest.mark.parametrize(("lost", "late_read"), [(1, 0), (1, 1), (2, 0), (3, 1)])
def test_a_stream_period_that_jacks_neither_divides_nor_nests_in_never_comes_out_early(lost, late_read):
    """JACK at 256 and `live --period 384` (block 1536 allows it): PortAudio buffers 384-frame callbacks out of
    256-frame cycles. Lost cycles were found and followed in the stream's periods: one lost cycle read late came
    out 128 frames early (on a real dummy server, 5 of 6 runs with callback stalls had an impulse early) and two
    were counted as one. Now they are counted in JACK's cycles and not followed: late or silent, never early."""
    engine = _never_early(384, 1536, 256, {301: lost}, late_read)
    assert engine.counters.skipped_cycles == lost and engine.counters.skipped_frames == 256 * lost


@pytest.mark.parametrize("late_read", [0, 1])
@pytest.mark.parametrize(("period", "sizes"), [(256, (256, 384)), (384, (128, 256)), (256, (256, 1024))])
def test_a_jack_period_changed_while_playing_is_followed_as_one_it_started_at(period, sizes, late_read):
    """`jack_bufsize` while live plays: the cycle was the greatest common divisor of the counter's steps, which never
    grows back, so after 256 → 384 (live at 256) or 128 → 256 (live at 384) the periods were taken to nest and a lost
    cycle read late came out 128 to 512 frames early, and after 256 → 1024 one lost cycle was counted as three (hunt
    116). The cycle is now JACK's period, read from the server."""
    after = 600 * 256 // sizes[1]
    C = [sizes[0]] * 100 + [sizes[1]] * after
    engine = _never_early(period, 1536, C, {100 + after // 2: 1}, late_read)
    if not late_read:  # (read late, the cycle after a loss may count as lost until the next one places it)
        assert engine.counters.skipped_cycles == 1 and engine.counters.skipped_frames == sizes[1], engine.counters


@pytest.mark.parametrize(
    ("block", "period", "budget", "cycle", "prefill"),
    [
        (1024, 256, 1024, 256, 1792),  # a callback a cycle: block − period + budget
        (1024, 256, 1024, 512, 1792),  # cycles that nest in the block: the same
        (1024, 256, 512, 2048, 2048),  # a cycle of two blocks comes at once: a whole cycle
        (1024, 256, 3072, 2048, 4096),  # a budget over a cycle: whole cycles
        (1536, 512, 1024, 2048, 3072),  # a cycle that is no whole number of blocks: a block more
        (2048, 256, 256, 1000, 2816),  # whole cycles in whole callbacks: 2792 left every block 24 frames late
        (2048, 256, 256, 200, 2304),  # callbacks up to 192 frames off their grid: a period more (CI 67)
        (1536, 384, 384, 256, 1920),  # JACK at 256 under a period of 384 (128 off): the same
    ],
)
def test_the_block_buffer_is_a_whole_cycle_at_least_where_a_cycle_is_longer_than_the_block(
    block, period, budget, cycle, prefill
):
    engine = Engine(FakeProcessor(block), Controls(EditState(8)), period=period, budget=budget)
    engine.follow_cycle(cycle)
    assert engine.prefill == engine.latency.block_buffer == prefill


@pytest.mark.parametrize("lost", [0, 1, 2])
@pytest.mark.parametrize("C", [200, 120])
def test_a_jack_period_shorter_than_the_streams_that_does_not_divide_it_plays_on_without_gaps(C, lost):
    """JACK at 200 (or 120), `live --period 256`: PortAudio's callbacks land up to `C − gcd(C, 256)` frames after
    the cycle that starts them with no cycle lost, and the engine held such a callback as a skip, silent: 82
    callbacks in 400 cycles, 4.8 s of silence in 20 s on a real server (hunt 213). None now; a lost cycle is
    counted as one and what follows it is never early."""
    engine = _never_early(256, 2048, [C] * (120_000 // C), {301: lost} if lost else {}, 0)  # 2.7 s at any C
    c = engine.counters
    assert c.skipped_cycles == lost and c.skipped_frames == C * lost, c
    assert c.underruns <= 3 * lost, c  # the callbacks held around a loss alone


def test_a_jack_cycle_longer_than_the_streams_period_is_counted_as_one():
    """JACK at 1024, `live --period 256`: four callbacks per cycle. One lost cycle was counted as 4 (the status
    line and `/event device` said "skipped 4 cycle(s)")."""
    engine = _engine(FakeProcessor(2048), period=256)
    _buffered_on_jack(engine, 1024, 200, {100: 1})
    assert engine.counters.skipped_cycles == 1 and engine.counters.skipped_frames == 1024, engine.counters


def test_a_counter_step_that_is_no_device_period_leaves_the_cycle_as_it_was():
    """A counter that jumps by an odd number of frames (a JACK server restarted under the stream) would make its
    greatest common divisor 1 frame: every frame of lateness would count as a cycle lost."""
    from realtime.jack_clock import CycleClock

    P = 256
    engine = _engine(FakeProcessor(512), period=P)
    raws = iter([0, 256, 512, *(768 + 77 + 256 * i for i in range(7))])
    engine.device_clock = CycleClock(lambda: next(raws))
    out = np.zeros((P, 1), dtype=np.float32)
    signal = _signal(0.1)
    for k in range(10):
        engine.callback(signal[k * P : (k + 1) * P], out, P, _DeviceClock(k * P / SR))
    assert engine.device_clock.cycle == 1 and engine.counters.skipped_cycles == 0, engine.counters


def test_a_drifting_device_clock_and_xruns_without_skipped_cycles_move_nothing():
    """A sound card's clock drifts against the system clock (500 ppm here, ten times a cheap card's) and the
    device flags xruns that skipped nothing (another JACK client's): after 2000 periods the drift is 1.5 periods,
    and nothing is skipped or shifted."""
    B, P, n = 512, 256, 2000
    rng = np.random.default_rng(2)
    engine = _engine(FakeProcessor(B), period=P)
    L = engine.latency.engine
    signal = _signal(n * P / SR)
    heard = np.zeros(n * P, dtype=np.float32)
    out = np.zeros((P, 1), dtype=np.float32)
    with engine:
        for k in range(n):
            assert engine.wait_output(P)
            t = 100.0 + (k * P * (1 + 500e-6) + rng.uniform(0, 0.3 * P)) / SR
            status = "output underflow" if k % 50 == 49 else None
            engine.callback(signal[k * P : (k + 1) * P], out, P, _DeviceClock(t), status)
            heard[k * P : (k + 1) * P] = out[:, 0]
    assert (heard[L:] == -signal[: n * P - L, 0]).all()
    assert engine.counters.skipped_cycles == 0 and engine.counters.device_xruns == n // 50


@pytest.mark.parametrize("ppm", [5300, -5300])
def test_a_jack_frame_clock_that_runs_fast_or_slow_counts_only_the_cycles_really_skipped(ppm):
    """PortAudio's JACK clock is `jack_frame_time`, the server's filtered estimate of the current frame. On a JACK
    dummy server with a second client in the loop (the latency probe) it advanced 257.37 frames per 256-frame
    cycle while the system clock advanced 256.02 (5300 ppm): counted against a reference that rose only 1000 ppm,
    its lateness crept up to 7/8 of a period every ~170 callbacks and a cycle nobody skipped was counted, a
    period of silence in the model's input and an impulse in flight a period early (1 of 8 runs of the JACK
    late-callback test). Here: that drift, both ways, with the cycles a late callback really loses every quarter
    second; only those are counted, and the output is in place or silent, never shifted."""
    B, P, n = 512, 256, 2400
    rng = np.random.default_rng(3)
    engine = _engine(FakeProcessor(B), period=P)

    def event(k: int) -> tuple[int, float, bool]:
        skips = 1 + k % 3 if k % 43 == 42 else 0  # a late callback loses 1 to 3 cycles every quarter second
        return skips, 0.45 + 0.5 * rng.random() if skips else rng.uniform(0, 0.15), skips > 0

    lost = sum(1 + k % 3 for k in range(n) if k % 43 == 42)
    played, want = _through_jack(engine, n, event, drift=ppm * 1e-6)
    assert ((played == want) | (played == 0.0) | np.isnan(played)).all()  # in place or silent, never shifted
    assert engine.counters.skipped_cycles == lost, (engine.counters.skipped_cycles, lost)


def _settling_clock(frames: float, r0: float = -0.03, r_end: float = 0.003, tau: float = 0.88) -> float:
    """JACK's `jack_frame_time` as measured through PortAudio in the first seconds of a client on a dummy server
    (period 256): its rate against the frames counted went from 1.1 % slow (in the first half second) to 0.3 %
    fast within about 3 s (fitted: an exponential from `r0` to `r_end`, time constant `tau` seconds); the clock's
    frames after `frames` counted."""
    t = frames / SR
    return frames * (1 + r_end) + (r0 - r_end) * tau * SR * (1 - np.exp(-t / tau))


def test_a_jack_clock_whose_rate_settles_after_start_counts_only_the_cycles_really_skipped():
    """In the first seconds after `live` starts, JACK's clock went from 2 % slow to 0.2 % fast (measured,
    `_settling_clock`). The rate estimated from the last 4.5 s of half-second windows was still near 0 while the
    clock ran 1900 ppm fast, so the reference fell behind by 7/8 of a period within a few seconds and on-time
    callbacks were counted as skips: an impulse in flight came out a period early (the JACK late-callback test
    failed in 1 of 6 and 1 of 10 runs, and once in CI). Here: that clock, with the cycles a late callback really
    loses every quarter second; only those are counted, and the output is in place or silent, never shifted."""
    B, P, n = 512, 256, 2400
    rng = np.random.default_rng(5)
    engine = _engine(FakeProcessor(B), period=P)

    def event(k: int) -> tuple[int, float, bool]:
        skips = 1 + k % 3 if k % 43 == 42 else 0
        return skips, 0.45 + 0.5 * rng.random() if skips else rng.uniform(0, 0.02), skips > 0

    lost = sum(1 + k % 3 for k in range(n) if k % 43 == 42)
    played, want = _through_jack(engine, n, event, drift=_settling_clock)
    assert ((played == want) | (played == 0.0) | np.isnan(played)).all()  # in place or silent, never shifted
    assert engine.counters.skipped_cycles == lost, (engine.counters.skipped_cycles, lost)


@pytest.mark.parametrize("ppm", [0, 5300])
@pytest.mark.parametrize("case", ["half a period late for 0.7 s, 1 lost, on time", "0.3 late for 1 s, 3 lost, 0.34"])
def test_a_cycle_skipped_right_after_a_run_of_late_callbacks_is_still_counted(case, ppm):
    """A run of late callbacks (a busy plug-in ahead in the JACK graph, a loaded laptop) raises every offset by
    the same step. A reference that rose by a fixed 2 % of the frames absorbed it within a few callbacks, and a
    cycle skipped just after, the callback after it back on time, was not seen (counted 0 of 1, and the audio
    in flight was played a period late). The reference now rises only as fast as the clock drifts, estimated
    from the least offset per half second (`ClockDrift`), so the skip is counted and nothing is shifted, with the
    clock 5300 ppm fast too."""
    B, P, at, n = 512, 256, 600, 1200
    run, late, lost, back = {
        "half a period late for 0.7 s, 1 lost, on time": (120, 0.5, 1, 0.05),
        "0.3 late for 1 s, 3 lost, 0.34": (172, 0.3, 3, 0.34),
    }[case]
    engine = _engine(FakeProcessor(B), period=P)

    def event(k: int) -> tuple[int, float, bool]:
        if at <= k < at + run:
            return 0, late, False
        return (lost, back, True) if k == at + run else (0, (k % 3) / 80, False)

    played, want = _through_jack(engine, n, event, drift=ppm * 1e-6)
    assert ((played == want) | (played == 0.0) | np.isnan(played)).all()  # in place or silent, never shifted
    assert engine.counters.skipped_cycles == lost


def test_impossible_period_block_pairs_are_refused_in_one_line():
    cases = [(4096, 2048, "period 4096 with block 2048"), (1024, 1536, "period 1024 with block 1536"),
             (0, 512, "period 0"), (384, 512, r"period 384 with block 512: .*\(e\.g\. 128, 256, 512\)")]  # fmt: skip
    for period, block, needle in cases:
        with pytest.raises(UserError, match=needle) as info:
            _engine(FakeProcessor(block), period=period)
        assert "\n" not in str(info.value)
    engine = _engine(FakeProcessor(2048), period=512, headroom=0.3)
    assert engine.budget == 1024 and engine.prefill == 2048 - 512 + 1024  # budget rounded up to whole periods


def _fault_in_blocks_4_to_8(rave_model, method: str, fault):
    """The real processor with `streams[0].<method>` wrapped so that streamed blocks 4..8 (after the warm-up) go
    through `fault(result)`: a 1 s sine through the engine. Returns (engine, input, output, a, b), where [a, b) is
    where those blocks' dry fallback lands once the latency is removed (block k's input comes out the model's
    aligned delay D later: [k·B − D, (k + 1)·B − D))."""
    data = (0.3 * np.sin(2 * np.pi * 220 * np.arange(SR) / SR)).astype(np.float32)[:, None]
    proc = BlockProcessor(rave_model, None, 1024)
    inner, calls = getattr(proc.streams[0], method), []

    def wrapped(x):
        out = inner(x)
        if calls:
            calls.append(calls[-1] + 1)
            if 4 <= calls[-1] <= 8:
                out = fault(out)
        return out

    setattr(proc.streams[0], method, wrapped)
    engine = _engine(proc)
    engine.start()
    calls.append(-1)
    out = run_file(engine, data)[:, 0]
    engine.close()
    a, b = 4 * 1024 - engine.latency.model_delay, 9 * 1024 - engine.latency.model_delay
    return engine, data[:, 0], out, a, b


def _comes_back(rave_model, out: np.ndarray, b: int) -> None:
    """The wet output after the faulty blocks is the fault-free run's, in place: not silent, not shifted (the tiny
    model's output is quiet, so `out != input` alone held for silence too: hunt 198)."""
    torch.manual_seed(0)
    *_, clean, _, _ = _fault_in_blocks_4_to_8(rave_model, "decode", lambda y: y)
    tail = slice(b + 4096, None)
    assert np.sqrt(np.mean(out[tail] ** 2)) > 0.9 * np.sqrt(np.mean(clean[tail] ** 2)) > 0
    assert np.corrcoef(out[tail], clean[tail])[0, 1] > 0.99


def test_a_failing_rave_plays_its_input_in_place_and_comes_back(rave_model):
    """The real processor: blocks whose model call raises play the dry signal delayed by the model's aligned
    delay (so, with the latency removed, exactly the input), and the wet output comes back after them."""

    def oom(_):
        raise RuntimeError("out of memory (injected)")

    torch.manual_seed(0)
    engine, x, out, a, b = _fault_in_blocks_4_to_8(rave_model, "encode_mean", oom)
    assert engine.model.errors == 5 and [e.kind for e in engine.events] == ["error"]
    assert a > 0
    np.testing.assert_array_equal(out[a:b], x[a:b])  # dry, in place
    assert np.abs(out[:a] - x[:a]).max() > 1e-6
    _comes_back(rave_model, out, b)


def test_a_rave_output_of_the_wrong_length_plays_dry_and_comes_back(rave_model):
    """A decode that returned half a block went out as it was at mix 1: the block's slot kept what the output ring
    held a whole ring earlier, with no error counted (hunt 198). It is a failed block now: dry, in place."""
    torch.manual_seed(0)
    engine, x, out, a, b = _fault_in_blocks_4_to_8(rave_model, "decode", lambda y: y[..., : y.shape[-1] // 2])
    assert engine.model.errors == 5 and [e.kind for e in engine.events] == ["error"]
    assert "returned 512 samples for a block of 1024" in engine.events[0].message
    np.testing.assert_array_equal(out[a:b], x[a:b])
    _comes_back(rave_model, out, b)


def test_model_errors_play_dry_are_shouted_and_reach_the_last_osc_client(osc_inbox):
    from rich.console import Console

    from realtime.live_view import render, status_line
    from realtime.osc import encode_message

    proc = FakeProcessor(512, fail_from=10, fail_until=70)
    data = _signal(1.2)
    client = osc_inbox
    with OscServer(None, port=0) as server:
        client.sock.sendto(encode_message("/ping", []), ("127.0.0.1", server.port))  # makes it the last client
        assert client.read(0.5) == [("/pong", ["loading"])]
        with _engine(proc) as engine:
            telemetry = OscTelemetry(server, engine, meter_rate=0)
            seen = []

            def on_period(n):
                if 61 * 512 <= n < 62 * 512 and not seen:  # every block failing since block 10
                    seen.append((engine.failing, status_line(engine)))
                    console = Console(record=True, width=200)
                    console.print(render(engine))
                    seen.append(console.export_text())
                    telemetry.tick()

            out = run_file(engine, data, on_period=on_period)[:, 0]
            telemetry.tick()
        replies = client.read(0.5)
    failing, line = seen[0]
    assert failing and line.startswith("MODEL FAILING") and "RuntimeError: block" in line
    assert "MODEL FAILING" in seen[1] and "RuntimeError" in seen[1]
    kinds = [e.kind for e in engine.events]
    assert kinds == ["error", "failing", "recovered"], kinds
    assert engine.model.errors == 60 and not engine.failing
    np.testing.assert_array_equal(out[: 10 * 512], -data[: 10 * 512, 0])
    np.testing.assert_array_equal(out[10 * 512 : 70 * 512], data[10 * 512 : 70 * 512, 0])  # dry, in place
    np.testing.assert_array_equal(out[70 * 512 :], -data[70 * 512 :, 0])
    errors = [args for address, args in replies if address == "/error"]
    events = [args[0] for address, args in replies if address == "/event"]
    assert events == ["error", "failing", "recovered"]
    assert errors[0][0] == "model" and "RuntimeError: block 10 refused" in errors[0][1]
    assert any("EVERY BLOCK FAILS" in e[1] for e in errors)


def test_cycles_the_device_skipped_reach_the_last_osc_client_at_most_once_a_second(osc_inbox):
    """A device in trouble skips cycles in bursts (and flags xruns): each is an `/event device` to the last OSC
    client, the first at once, what follows within a second summed into the next, so a burst cannot flood OSC and
    no skipped cycle goes unreported."""
    from realtime.osc import encode_message

    B, P, n = 512, 256, 80
    skips = {k: 1 for k in range(20, 60, 2)}  # a burst: one cycle skipped before every other callback
    engine = _engine(FakeProcessor(B), period=P)
    signal = _signal(n * P / SR)
    out = np.zeros((P, 1), dtype=np.float32)
    with OscServer(None, port=0) as server:
        osc_inbox.sock.sendto(encode_message("/ping", []), ("127.0.0.1", server.port))  # the last client
        osc_inbox.expect("/pong")
        with engine:
            telemetry = OscTelemetry(server, engine, meter_rate=0)
            t0, cycle = time.monotonic(), 0
            for k in range(n):
                cycle += skips.get(k, 0)
                assert engine.wait_output(P)
                clock = _DeviceClock(100.0 + (cycle * P + 20) / SR)
                engine.callback(signal[k * P : (k + 1) * P], out, P, clock, "output underflow" if k in skips else None)
                cycle += 1
                telemetry.tick()
            burst_s = time.monotonic() - t0
            time.sleep(1.3)  # the model thread reports what the last second summed
            telemetry.tick()
        replies = osc_inbox.read(0.5)
    events = [args for address, args in replies if address == "/event" and args[0] == "device"]
    assert engine.counters.skipped_cycles == len(skips) and engine.counters.device_xruns == len(skips)
    assert events, replies
    cycles = [round(lost_ms * SR / 1000 / P) for _, lost_ms, _ in events]
    assert cycles[0] == 1 and "skipped 1 cycle(s)" in events[0][2] and re.search(r"flagged \d xrun\(s\)", events[0][2])
    assert sum(cycles) == len(skips)  # every skipped cycle reported
    assert 2 <= len(events) <= 2 + int(burst_s)  # one a second at most
    assert f"{len(skips)} cycles skipped, {len(skips)} device xruns so far" in events[-1][2]


def test_a_rave_that_returns_nan_plays_dry_is_reported_and_comes_back(rave_model):
    """A model whose output turns NaN/inf (weights gone bad, an overflow on the GPU) never reaches the speakers:
    those blocks play the aligned dry signal, the event says what happened, and the streams start over, so the
    wet signal comes back once the model does."""

    def poisoned(y):
        y = y.clone()
        y[..., 100] = float("nan")
        return y

    torch.manual_seed(0)
    engine, x, out, a, b = _fault_in_blocks_4_to_8(rave_model, "decode", poisoned)
    assert np.isfinite(out).all()
    assert engine.model.errors == 5 and [e.kind for e in engine.events] == ["error"]
    assert "NaN" in engine.events[0].message
    np.testing.assert_array_equal(out[a:b], x[a:b])  # dry, in place
    _comes_back(rave_model, out, b)  # wet again


FAULTS = {
    "nan": lambda y: y.clone().fill_(float("nan")),
    "raise": lambda y: (_ for _ in ()).throw(RuntimeError("CUDA error (injected)")),
    "short": lambda y: y[..., : y.shape[-1] // 2],
}


@pytest.mark.parametrize("resync", [False, True])
@pytest.mark.parametrize("fault", list(FAULTS))
@pytest.mark.parametrize("mix", [None, 1.0, 0.5])
def test_the_block_after_a_failed_one_goes_on_from_its_dry_fallback_without_a_dip(rave_model, mix, fault, resync):
    """After a block whose output was NaN (played as its dry fallback), the next block faded its whole output in
    from silence, dry part included: bypassed, the input dipped to nothing for a block, and at mix 1 the dry
    fallback dropped to silence at once (hunt 158). It now fades from the dry signal to its mix, also after a
    model call that raised (it jumped from dry to the wet mix: a click) or a block after a resync (its fade from
    silence outlived the failure: the dip again; hunt 198). Wet is loud and inverted, so any jump is heard; the
    block is longer than the model's delay, so the dry signal is back within the block after a resync."""
    B = 4096
    proc = BlockProcessor(rave_model, None, B)
    inner, calls = proc.streams[0].decode, [0]

    def decode(z):
        y = inner(z)
        calls[0] += 1
        return FAULTS[fault](y) if calls[0] == 5 else y

    proc.streams[0].decode = decode
    proc._from_model = lambda parts, f=proc._from_model: -20 * f(parts)  # a loud wet signal, far from dry
    snap = Controls(EditState(0), mix=1.0 if mix is None else mix, bypass=mix is None).snapshot
    peak = np.pi / 2 - 2 * np.pi * 220 * (5 * B - proc.delay) / rave_model.sr  # the dry signal's peak at 5 B
    x = (0.3 * np.sin(2 * np.pi * 220 * np.arange(8 * B) / rave_model.sr + peak)).astype(np.float32)[:, None]
    out = []
    for k in range(8):
        if resync and k == 4:
            proc.resync()  # the engine skipped a backlog just before the failing block
        try:
            out.append(proc.process(x[k * B : (k + 1) * B], snap))
        except (FloatingPointError, RuntimeError, ValueError):
            assert k == 4
            out.append(proc.fallback)
    out = np.concatenate(out)[:, 0]
    dry = np.concatenate([np.zeros(proc.delay, np.float32), x[:, 0]])[: 8 * B]
    if resync:  # the resync cleared the dry delay line: the fallback starts from silence
        dry[4 * B : 4 * B + proc.delay] = 0.0
    if mix is None:  # bypassed: the input, delayed, every sample
        np.testing.assert_array_equal(out, dry)
    else:  # the block after the fallback starts where the dry signal is and ramps to the mix
        assert abs(dry[5 * B]) > 0.1
        assert abs(out[5 * B] - dry[5 * B]) < 0.01 * np.abs(dry).max(), (out[5 * B], dry[5 * B])
        np.testing.assert_array_equal(out[4 * B : 5 * B], dry[4 * B : 5 * B])
        assert np.abs(out[6 * B :] - dry[6 * B :]).max() > 0.1  # wet again


class AlternatingFailure(FakeProcessor):
    """Every other block raises, so the model thread records an "error" event every second block."""

    def process(self, block, snap):
        i = self.calls
        self.calls += 1
        self.fallback = block.copy()
        if i % 2:
            raise RuntimeError(f"block {i} refused")
        return -block


def test_events_reported_from_other_threads_while_the_model_thread_records_are_all_kept_in_order():
    """`Engine.report` from several threads at once, while the model thread records its own events: every event is
    kept once, numbered 1, 2, 3, ... in the order readers see them (the live view and OSC send what is above the last
    number they saw, so a repeated or out-of-order number would drop an event)."""
    import sys
    import threading
    from collections import deque

    proc = AlternatingFailure(128)
    data = _signal(0.5)
    before = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)  # switch threads as often as possible: a race shows up within the run
    try:
        with Engine(proc, Controls(EditState(8)), period=64) as engine:
            engine.events = deque()  # keep them all (the engine keeps the last 256)
            done = threading.Event()
            sent = [0] * 4

            def hammer(k: int) -> None:
                while not done.is_set() or sent[k] < 200:
                    engine.report("device", f"reporter {k} line {sent[k]}")
                    sent[k] += 1

            reporters = [threading.Thread(target=hammer, args=(k,)) for k in range(4)]
            for t in reporters:
                t.start()
            run_file(engine, data)
            done.set()
            for t in reporters:
                t.join()
    finally:
        sys.setswitchinterval(before)
    events = list(engine.events)
    assert [e.seq for e in events] == list(range(1, len(events) + 1))
    lines = [e.message for e in events if e.kind == "device"]
    assert len(lines) == len(set(lines)) == sum(sent)
    assert sum(e.kind == "error" for e in events) == engine.model.errors > 50


def test_a_late_block_says_what_the_model_took_against_its_budget():
    """The late event read `block 8.1 ms: came out 11.6 ms late (1 late blocks so far)` (seen live on the demo
    model): `block 8.1 ms` did not say it was compute time, nor that it was within the 11.6 ms budget (the block
    started late: the machine was busy), and `1 late blocks`."""
    import re

    proc = FakeProcessor(512, stall_at=8, stall_s=0.017)  # budget 512 = 11.6 ms: late, but no resync (23.2 ms)
    data = _signal(9 * 512 / SR + 0.3)
    with _engine(proc) as engine:
        run_file(engine, data, realtime=True)
    late = [e.message for e in engine.events if e.kind == "late"]
    assert late, [(e.kind, e.message) for e in engine.events]
    pattern = (
        r"came out [\d.]+ ms late: the model took [\d.]+ ms of its 11\.6 ms budget"
        r"(; it started late \(the machine was busy\))?; (1 late block|\d+ late blocks) so far"
    )
    assert all(re.fullmatch(pattern, m) for m in late), late


def test_the_clock_rate_is_the_drift_not_the_lateness():
    """The rate comes from the least offset per window, so callbacks late at random and a three-second run of
    callbacks half a period late (a step up, then one down) leave it at the clock's drift all along."""
    from realtime.clock_drift import ClockDrift

    P, drift = 256, 5300e-6
    rng = np.random.default_rng(4)
    clock = ClockDrift(window=SR // 2)
    rates = []
    for k in range(3000):
        late = 0.5 * P if 1000 <= k < 1500 else rng.uniform(0, 0.3) * P
        clock.rise(k * P * drift + late, P)
        rates.append(clock.rate)
    assert rates[300] is None and rates[400] is not None  # four windows (two seconds) before the first estimate
    assert np.allclose(rates[400:], drift, atol=0.5 * clock.margin)  # within the margin the reference rises by


def test_jacks_cycle_counter_places_every_callback_where_portaudios_wandering_clock_would_not():
    """PortAudio's JACK clock is JACK's interpolated estimate: while JACK's loop settles after a server (re)start it
    ran 1.1 % slow then 0.3 % fast, and under load it wandered by periods (impulses came back one or two periods
    early, in CI and in 5 of 13 runs here). With JACK's own cycle counter (whole periods; a callback late by more
    than a period reads the next cycle) every lost cycle is counted and nothing is shifted, however the
    callbacks' times wander: here by up to 1.5 periods, back and forth each second, with cycles lost every 43
    callbacks (a quarter of a second)."""
    B, P, n = 1024, 256, 900
    engine = _engine(FakeProcessor(B), period=P)
    # (not "late, late, then 2 lost": a callback over a period late, then a loss, reads the next cycle's counter,
    # and the counter cannot tell that from one more cycle lost; its input is then silent or in place, above)
    stalls = [e for case, e in LATE_CALLBACKS.items() if case != "late, late, then 2 lost"]
    plan = {43 * (i + 1) + j: e for i in range(n // 43 - 1) for j, e in enumerate(stalls[i % len(stalls)])}
    lost = sum(e[0] for e in plan.values())

    def wander(frames: float) -> float:
        return frames + 1.5 * P * math.sin(2 * math.pi * frames / SR)

    played, want = _through_jack(engine, n, lambda k: plan.get(k, (0, (k % 3) / 80, False)), drift=wander, counter=True)
    assert ((played == want) | (played == 0.0) | np.isnan(played)).all()  # in place or silent, never shifted
    assert engine.counters.skipped_cycles == lost
    last = max(plan) + lost  # the cycle of the last callback around a loss
    assert (played[(last + 4) * P + 2 * B :] == want[(last + 4) * P + 2 * B :]).all()


@pytest.mark.parametrize("seed", [0, 3, 5])
def test_cycles_lost_while_the_drift_is_not_yet_estimated_never_come_out_early(seed):
    """The first two seconds on a host API's own clock (ALSA, PulseAudio, JACK1, PipeWire's JACK): the reference
    rose by the 2 % fallback, and with callback times jittering by up to 0.3 period it sat over P/8 above the on-time
    level, so a lost cycle read on time counted one short at first and a period of audio came out early (hunt 113,
    seeds 0, 3 and 5 of 8). The reference now stays at or below the last callbacks' least offset."""
    P, n = 256, 340
    rng = np.random.default_rng(seed)
    events = [((1 + k % 3) if k % 37 == 36 else 0, rng.uniform(0, 0.3)) for k in range(n)]  # (cycles lost, lateness)
    engine = _engine(FakeProcessor(1024), period=P)
    L = engine.latency.engine
    total = (n + sum(lost for lost, _ in events)) * P
    signal = _signal(total / SR)
    heard = np.full(total, np.nan, np.float32)
    out = np.zeros((P, 1), np.float32)
    cycle = 0
    with engine:
        for lost, late in events:
            cycle += lost
            assert engine.wait_output(P)
            engine.callback(signal[cycle * P : (cycle + 1) * P], out, P, _DeviceClock(100.0 + (cycle + late) * P / SR))
            heard[cycle * P : (cycle + 1) * P] = out[:, 0]
            cycle += 1
    T = np.arange(L + 4 * P, cycle * P)
    for r in (-3 * P, -2 * P, -P):  # heard[T] is the input of T - L - r: r < 0, played early
        assert not (heard[T] == -signal[T - L - r, 0]).any(), f"heard {-r} frames early"
    assert engine.counters.skipped_frames == P * sum(lost for lost, _ in events)


@pytest.mark.parametrize("mix", [None, 0.5])
def test_after_a_resync_the_dry_signal_resumes_in_place_under_the_fade(rave_model, mix):
    """Hunt 204: a resync cleared the dry delay line, so bypassed (or mixed-in) dry audio stayed silent for the
    model's delay, then came back with a step (0.95 at full scale, a click), its fade-in spent on silence. The
    engine now hands the processor the input before the resumed block: dry resumes in place (faded in where the
    model's output is mixed in)."""
    B = 1024
    proc = BlockProcessor(rave_model, None, B)
    D = proc.delay
    assert D > B  # the fade of the resumed block covered only silence
    snap = Controls(EditState(0), mix=1.0 if mix is None else mix, bypass=mix is None).snapshot
    x = (0.9 * np.sin(2 * np.pi * 330 * np.arange(12 * B) / rave_model.sr)).astype(np.float32)[:, None]
    out = {}
    for k in [0, 1, 2, 3, 7, 8, 9, 10, 11]:  # blocks 4-6 skipped: the engine resynced past them
        if k == 7:
            proc.resync(x[7 * B - D : 7 * B])
        out[k] = proc.process(x[k * B : (k + 1) * B], snap)[:, 0]
    after = np.concatenate([out[k] for k in (7, 8, 9, 10, 11)])
    dry = x[7 * B - D : 12 * B - D, 0]  # the input, `delay` frames late, from the resumed block on
    if mix is None:  # bypassed: the input in place from the resumed block on, unfaded (the engine played the
        np.testing.assert_allclose(after, dry, atol=1e-6)  # input through the gap: hunt 209)
    else:  # half dry: no step into the dry half where the model's delay ends (it came back there whole)
        assert np.abs(np.diff(after[: D + B])).max() < 0.2, np.abs(np.diff(after[: D + B])).max()
        assert np.abs(after[B:D]).max() > 0.3  # the dry half plays while the model's output is still silent


class _KeepsHistory(FakeProcessor):
    """Keeps each resync's history and the first sample of the block processed after it."""

    def __init__(self, blocksize, delay):
        super().__init__(blocksize)
        self.delay, self.histories, self.resumed = delay, [], []

    def resync(self, history=None):
        super().resync()
        self.histories.append(history.copy())

    def process(self, block, snap):
        if len(self.resumed) < len(self.histories):
            self.resumed.append(float(block[0, 0]))
        return super().process(block, snap)


def test_the_engine_hands_a_resync_the_input_before_the_block_it_resumes_at():
    """What the processor's dry line gets after a stall: the `delay` input frames just before the resumed block
    (each resync's, should this shared machine add one)."""
    D = 700
    proc = _KeepsHistory(512, D)
    data = _signal(1.5)
    engine = _engine(proc)

    def stall_once(done: int) -> None:
        if done == 86 * 256:
            engine.inject_stall(0.3)

    with engine:
        run_file(engine, data, realtime=True, on_period=stall_once)
    assert proc.histories and len(proc.resumed) == len(proc.histories)
    for history, first in zip(proc.histories, proc.resumed, strict=True):
        [new_a] = np.flatnonzero(data[:, 0] == first)  # random samples: each value once
        assert history.shape == (D, 1) and new_a > D
        np.testing.assert_array_equal(history, data[new_a - D : new_a])


@pytest.mark.parametrize("how", ["bypass", "mix 0"])
def test_a_bypassed_show_plays_its_input_through_a_stall_without_a_gap(rave_model, how):
    """Hunt 209: the dry signal a performer falls back on came from the model thread, so a busy machine's late
    blocks silenced a bypassed show (a realtime take on CI: 17 ms of silence in the input). The callback now plays
    the input itself where the model's output is missing, and the resumed block goes on from it without a fade."""
    data = (0.3 * np.sin(2 * np.pi * 220 * np.arange(int(1.5 * SR)) / SR)).astype(np.float32)[:, None]
    proc = BlockProcessor(rave_model, None, 1024)
    engine = Engine(proc, Controls(EditState(0), mix=0.0 if how == "mix 0" else 1.0, bypass=how == "bypass"))

    def stall_once(done: int) -> None:  # half a second in: longer than the slack, so the model thread resyncs
        if done == 86 * 256:
            engine.inject_stall(0.3)

    with engine:
        out = run_file(engine, data, realtime=True, on_period=stall_once)
    c = engine.counters
    assert engine.model.resyncs >= 1 and c.dry_frames >= 0.2 * SR, (engine.model.resyncs, c.dry_frames)
    assert c.underruns == c.missing_frames == 0
    np.testing.assert_array_equal(out, data)  # the input in place, every sample: no gap, no fade, no shift
    [resync] = [e for e in engine.events if e.kind == "resync"]
    word = "bypassed" if how == "bypass" else "at mix 0"
    assert resync.message.endswith(f"{word}: the dry signal plays on") and resync.lost_frames == 0, resync


@pytest.mark.parametrize("press", ["bypass", "unbypass"])
def test_bypass_pressed_or_released_in_a_stall_goes_on_from_the_dry_signal(rave_model, press):
    """Hunt 209: bypass pressed while the model thread stalled played the input at once (the callback's dry fill),
    then the block resumed after the resync faded in from silence: a full-level step (0.25 on a 0.3 sine) and a
    dip of a block. Released in a stall, the callback cut the input to silence at once, though the model's next
    block starts from the dry signal. Now the first goes on dry in place, the second plays the input until the mix
    ramps away from it."""
    data = (0.3 * np.sin(2 * np.pi * 220 * np.arange(int(1.5 * SR)) / SR)).astype(np.float32)[:, None]
    proc = BlockProcessor(rave_model, None, 1024)
    controls = Controls(EditState(0), bypass=press == "unbypass")
    engine = Engine(proc, controls)
    stall_at, pressed_at = 86 * 256, 112 * 256  # the press 0.15 s into a 0.3 s stall

    def stall_then_press(done: int) -> None:
        if done == stall_at:
            engine.inject_stall(0.3)
        if done == pressed_at:
            with controls.transaction() as draft:
                draft.bypass = press == "bypass"

    with engine:
        out = run_file(engine, data, realtime=True, on_period=stall_then_press)
    assert engine.model.resyncs >= 1
    after = slice(pressed_at + 256 - engine.latency.engine, None)  # from the callback after the press
    if press == "bypass":  # the input in place from then on, every sample
        np.testing.assert_array_equal(out[after], data[after])
    else:  # the input until the mix ramps to the wet signal: no silence, no step
        steps = np.abs(np.diff(out[after][: 4 * 1024, 0]))
        assert steps.max() < 0.03 and not (out[after][:1024] == 0.0).any(), steps.max()


@pytest.mark.parametrize("bypass", [False, True])
def test_a_failed_block_counts_output_lost_only_where_the_wet_signal_was_to_be_heard(bypass):
    """Hunt 211: bypassed, a block whose model call raised plays its dry fallback, the very output bypass asked for,
    yet the `error` event (and `/event`) said a block of output lost."""
    proc = FakeProcessor(512, fail_from=5, fail_until=6)
    with Engine(proc, Controls(EditState(8), bypass=bypass)) as engine:
        run_file(engine, _signal(0.2))
    [error] = [e for e in engine.events if e.kind == "error"]
    assert error.lost_frames == (0 if bypass else 512), error


def test_a_nan_the_callback_plays_dry_through_a_stall_is_silence(rave_model):
    """Hunt 212: the callback's own dry fill (bypassed, the model stalled) could pass NaN from another client to
    the speakers unseen: the NaN tests ran with the model on time."""
    data = (0.3 * np.sin(2 * np.pi * 220 * np.arange(int(1.5 * SR)) / SR)).astype(np.float32)[:, None]
    data[int(0.6 * SR), 0] = np.nan  # inside the stall: the callback plays it itself
    proc = BlockProcessor(rave_model, None, 1024)
    engine = Engine(proc, Controls(EditState(0), mix=1.0, bypass=True))

    def stall_once(done: int) -> None:
        if done == 86 * 256:
            engine.inject_stall(0.3)

    with engine:
        out = run_file(engine, data, realtime=True, on_period=stall_once)
    assert engine.model.resyncs >= 1 and engine.counters.dry_frames >= 0.2 * SR
    assert np.isfinite(out).all()
    np.testing.assert_array_equal(out, np.nan_to_num(data))
