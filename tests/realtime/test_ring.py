"""The SPSC ring: wrap-around, overflow and underflow counts, skipping."""

from __future__ import annotations

import threading

import numpy as np

from realtime.ring import AudioRing


def test_wraps_around_and_reports_what_fits():
    ring = AudioRing(10, 2)  # rounded up to 16
    assert ring.capacity == 16
    out = np.zeros((16, 2), dtype=np.float32)
    data = np.arange(24, dtype=np.float32).reshape(12, 2)
    for _ in range(5):
        assert ring.write(data) == 12
        assert ring.read(out[:12]) == 12
        np.testing.assert_array_equal(out[:12], data)
    assert ring.write(data) == 12
    assert ring.write(data) == 4  # only 4 frames left: the rest is an overflow
    assert ring.readable() == 16 and ring.writable() == 0
    assert ring.skip(10) == 10
    assert ring.read(out) == 6
    np.testing.assert_array_equal(out[:2], data[10:12])
    np.testing.assert_array_equal(out[2:6], data[:4])
    assert ring.read(out) == 0


def test_concurrent_producer_consumer_keep_order():
    ring = AudioRing(256, 1)
    total = 20_000
    got = []

    def consume():
        buf = np.zeros((64, 1), dtype=np.float32)
        n_done = 0
        while n_done < total:
            n = ring.read(buf)
            got.append(buf[:n, 0].copy())
            n_done += n

    thread = threading.Thread(target=consume)
    thread.start()
    src = np.arange(total, dtype=np.float32).reshape(-1, 1)
    pos = 0
    while pos < total:
        pos += ring.write(src[pos : pos + 48])
    thread.join(timeout=30)
    np.testing.assert_array_equal(np.concatenate(got), src[:, 0])
    ring.write_zeros(5)
    assert ring.readable() == 5
