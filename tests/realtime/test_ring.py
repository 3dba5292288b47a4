"""The position-indexed ring: wrap-around, reading what a concurrent writer published, overwrite by position."""

from __future__ import annotations

import threading

import numpy as np

from realtime.ring import FrameRing


def test_frames_live_at_their_position_across_the_wrap():
    ring = FrameRing(10, 2)  # rounded up to 16
    assert ring.capacity == 16
    data = np.arange(24, dtype=np.float32).reshape(12, 2)
    out = np.zeros((12, 2), dtype=np.float32)
    for pos in (0, 12, 24, 36, 100):  # 12 frames at positions that cross slot 15 → 0
        ring.put(pos, data)
        ring.get(pos, out)
        np.testing.assert_array_equal(out, data)
    ring.put(1000, data)
    part = np.zeros((4, 2), dtype=np.float32)
    ring.get(1006, part)
    np.testing.assert_array_equal(part, data[6:10])
    ring.fill(1004, 4)
    ring.get(1002, out[:6])
    np.testing.assert_array_equal(out[:6], np.r_[data[2:4], np.zeros((4, 2), np.float32)])
    ring.put(1000 + 16, data[:2])  # one lap later: the slot of position 1000 now holds position 1016
    ring.get(1000, part[:2])
    np.testing.assert_array_equal(part[:2], data[:2])


def test_reader_sees_exactly_what_the_writer_published():
    ring = FrameRing(256, 1)
    total, published = 40_000, [0]
    got = []

    def consume():
        pos, buf = 0, np.zeros((64, 1), dtype=np.float32)
        while pos < total:
            n = min(64, published[0] - pos)
            if n <= 0:
                continue
            ring.get(pos, buf[:n])
            got.append(buf[:n, 0].copy())
            pos += n

    thread = threading.Thread(target=consume)
    thread.start()
    src = np.arange(total, dtype=np.float32).reshape(-1, 1)
    pos = 0
    while pos < total:
        n = min(48, total - pos, 128 - (pos - sum(len(g) for g in got)))  # never lap the reader
        if n > 0:
            ring.put(pos, src[pos : pos + n])
            pos += n
            published[0] = pos
    thread.join(timeout=30)
    np.testing.assert_array_equal(np.concatenate(got), src[:, 0])


def test_fill_across_the_wrap_silences_both_ends():
    """Hunt 212: `fill` (silence for skipped cycles, a realignment) across the ring's end could leave a lap-old
    audio in place unseen."""
    ring = FrameRing(16, 1)
    ring.put(0, np.ones((16, 1), np.float32))
    ring.fill(14, 4)
    out = np.full((4, 1), 7.0, np.float32)
    ring.get(14, out)
    assert (out == 0).all()
