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
    `test_a_jack_period_changed_while_live_plays_moves_the_latency_figure_with_the_delay`)."""
    from realtime.engine import Latency
    from realtime.jack_period import PeriodWatch, Timing

    timings = iter([Timing(256, 0, 256), Timing(256, 0, 256), Timing(1024, 0, 1024), None, Timing(128, 0, 128)])
    latency = Latency(44100, 1792, 1219, device_out=512)
    watch = PeriodWatch(lambda: next(timings), latency)
    assert watch.check() is None and latency.total == 3523
    moved = watch.check()
    assert latency.device_out == 1280 and latency.total == 4291
    assert moved == (
        "JACK's period changed from 256 to 1024 frames: latency now 4291 samples = 97.3 ms (was 3523 = 79.9 ms)"
    )
    assert watch.check() is None and latency.total == 4291  # a read that failed changes nothing
    assert "from 1024 to 128 frames: latency now 3395" in watch.check()
