"""JACK's cycle counter as the engine reads it: 32 bits, unwrapped, and split like PortAudio splits a period."""

from __future__ import annotations

from realtime.jack_clock import WRAP, CycleClock


def test_the_counter_is_unwrapped_across_its_32_bit_wrap_and_a_read_that_goes_back_stays_signed():
    raws = iter([WRAP - 512, WRAP - 256, 0, 256, 0, 768])  # 0 after 256: a late callback's blip, undone
    clock = CycleClock(lambda: next(raws))
    assert [clock(256) for _ in range(6)] == [0, 256, 512, 768, 512, 1280]


def test_callbacks_within_one_cycle_count_on_from_its_start():
    """A JACK period of 1024 and callbacks of 256: PortAudio calls back four times in each cycle (one count)."""
    raws = iter([1024] * 4 + [2048] * 4 + [4096] * 2)  # a cycle lost before 4096
    clock = CycleClock(lambda: next(raws))
    assert [clock(256) for _ in range(10)] == [0, 256, 512, 768, 1024, 1280, 1536, 1792, 3072, 3328]


def test_the_cycle_is_what_the_counter_steps_by():
    """Callbacks of 512 on JACK at 256 read every other cycle (steps of 512) until a cycle is lost (768): from then
    the clock shows JACK's period, which the engine counts skips in."""
    raws = iter([0, 512, 1024, 1792, 2304])
    clock = CycleClock(lambda: next(raws))
    cycles = []
    for _ in range(5):
        clock(512)
        cycles.append(clock.cycle)
    assert cycles == [0, 512, 512, 256, 256]


def test_a_period_watch_moves_the_device_latency_by_what_portaudio_would_count():
    """PortAudio counts each side as its port's latency less one JACK period: on a dummy server capture is one period
    and playback two, so 256 → 1024 adds 768 to the output side (measured so with impulses,
    `test_a_jack_period_changed_while_live_plays_moves_the_latency_figure_with_the_delay`). A reading is taken when
    the next check reads it again, and one caught mid-change (the new period with the old ports' latencies: hunt 116
    saw 1 to 12 in 11,000 reads) is not taken: they had moved the figure for good."""
    from realtime.engine import Latency
    from realtime.jack_period import PeriodWatch, Timing

    at = {p: Timing(p, 0, p) for p in (128, 256, 1024)}
    torn = [Timing(1024, -768, -512), Timing(256, 768, 1792)]
    reads = iter(
        [at[256], at[256], torn[0], at[1024], at[1024], None, at[1024], torn[1], *[at[128]] * 2, *[at[256]] * 2]
    )
    latency = Latency(44100, 1792, 1219, device_out=512)
    watch = PeriodWatch(lambda: next(reads), latency)
    said, totals = zip(*[(watch.check(), latency.total) for _ in range(11)], strict=True)
    assert totals == (3523,) * 3 + (4291,) * 5 + (3395,) * 2 + (3523,)
    assert (
        said[3]
        == "JACK's period changed from 256 to 1024 frames: latency now 4291 samples = 97.3 ms (was 3523 = 79.9 ms)"
    )
    assert "from 1024 to 128 frames: latency now 3395" in said[8] and "from 128 to 256 frames" in said[10]
    assert sum(x is not None for x in said) == 3
    sync = iter([Timing(256, 0, 0), Timing(1024, 0, 0), Timing(1024, 0, 0)])  # `jackd -S`: ports of one period
    moved = PeriodWatch(sync.__next__, Latency(44100, 1, 1, None, 0, 9))
    assert moved.check() is None and moved.check() == (  # no figure moves, and that is what is said
        "JACK's period changed from 256 to 1024 frames: its ports report the same latency (11 samples = 0.2 ms)"
    )
    # hunt 125: above a block of 1024 the engine's block buffer moves too (1280 → 2048, `Engine.prefill_for`), and
    # the same ports were said as "latency now" the block buffer's change alone, as if the ports' figure were right
    sync = iter([Timing(256, 0, 0), Timing(2048, 0, 0), Timing(2048, 0, 0)])
    moved = PeriodWatch(sync.__next__, Latency(44100, 1280, 1219), lambda p: 2048 if p > 1024 else 1280)
    assert moved.check() is None and moved.check() == (
        "JACK's period changed from 256 to 2048 frames: its ports report the same latency; with the engine's block "
        "buffer for the new period, latency now 3267 samples = 74.1 ms (was 2499 = 56.7 ms)"
    )


def test_the_cycle_is_jacks_period_where_it_can_be_read():
    """The greatest common divisor of the counter's steps never grows back: after `jack_bufsize 1024` on a server
    at 256 lost cycles were counted in 256s (three where one was lost) and after 256 → 384 (live at 256) the periods
    were taken to nest and a lost cycle came out early. Read from the server, the cycle is its period now."""
    period, raw = 256, 0
    clock = CycleClock(lambda: raw, lambda: period)
    for period, steps in ((256, 3), (1024, 3), (384, 2)):
        for _ in range(steps):
            raw += period
            clock(256)
        assert clock.cycle == period
