"""Random training crops reach every start, the last included (hunt 87: numpy's upper bound is exclusive, so a
clip's last sample was never in a crop of the codec's or the demo RAVE's batches)."""

from __future__ import annotations

import numpy as np

from training.musicgen.clips import ClipSet
from training.musicgen.train_codec import random_batch
from training.rave.demo_model import batches


def test_codec_and_demo_rave_crops_start_anywhere_a_crop_fits():
    n, length = 10, 8  # starts 0, 1 and 2 fit
    audio = np.arange(1, n + 1, dtype=np.int16)
    clips = ClipSet([{}], [audio], 16000, {}, [])
    codec = random_batch(clips, 200, length, np.random.default_rng(0))[:, 0].numpy()
    starts = {round(float(c[0]) * 32767) - 1 for c in codec}
    demo = next(batches([audio.astype(np.float32)], 200, length, np.random.default_rng(0)))[:, 0].numpy()
    assert starts == {int(c[0]) - 1 for c in demo} == {0, 1, 2}
    # a clip shorter than the crop starts at 0, zero-padded
    short = next(batches([np.ones(5, np.float32)], 4, length, np.random.default_rng(0)))[:, 0].numpy()
    assert (short[:, :5] == 1).all() and (short[:, 5:] == 0).all()
