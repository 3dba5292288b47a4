"""JACK's cycle counter as the engine reads it: 32 bits, unwrapped."""

from __future__ import annotations

from realtime.jack_clock import WRAP, CycleClock


def test_the_counter_is_unwrapped_across_its_32_bit_wrap_and_a_read_that_goes_back_stays_signed():
    raws = iter([WRAP - 512, WRAP - 256, 0, 256, 0, 768])  # 0 after 256: a late callback's blip, undone
    clock = CycleClock(lambda: next(raws))
    assert [clock() for _ in range(6)] == [0, 256, 512, 768, 512, 1280]
