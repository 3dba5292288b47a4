"""The random streams a training saves with its checkpoints."""

import numpy as np
import torch

from sae.streams import RandomStreams


def _draws(streams: RandomStreams) -> tuple:
    return (
        streams.data.random(3).tolist(),
        torch.rand(3).tolist(),
        [torch.rand(2, generator=g).tolist() for g in streams.gens],
    )


def test_restored_streams_draw_what_the_saved_ones_would():
    streams = RandomStreams(np.random.default_rng(1), torch.Generator().manual_seed(2))
    torch.manual_seed(3)
    saved = streams.state()
    expected = _draws(streams)
    _draws(streams)  # the run goes on past its checkpoint
    streams.restore(saved)
    assert _draws(streams) == expected


def test_cuda_states_saved_on_more_gpus_restore_on_the_devices_there_are(monkeypatch):
    restored = []
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 1)
    monkeypatch.setattr(torch.cuda, "set_rng_state", lambda state, device: restored.append((device, state.tolist())))
    streams = RandomStreams(np.random.default_rng(0))
    saved = {
        **streams.state(),
        "cuda": [torch.tensor([1, 2], dtype=torch.uint8), torch.tensor([3, 4], dtype=torch.uint8)],
    }
    streams.restore(saved)
    assert restored == [(0, [1, 2])]


def test_kept_streams_keeps_the_gpu_stream_of_a_model_on_one(monkeypatch):
    """hook_shape, check_split and collect reseed or draw under it: with `fork_rng(devices=[])` a model on a GPU
    left the caller's CUDA stream reseeded. The CPU stream is kept on any device."""
    from sae.streams import kept_streams

    forked: list[list[int]] = []
    real = torch.random.fork_rng
    monkeypatch.setattr(torch.random, "fork_rng", lambda devices: (forked.append(devices), real(devices=[]))[1])
    monkeypatch.setattr(torch.cuda, "current_device", lambda: 3)
    for device in ("cpu", "cuda:1", torch.device("cuda"), "meta"):
        before = torch.get_rng_state()
        with kept_streams(device):
            torch.manual_seed(7)
            torch.rand(3)
        assert torch.equal(torch.get_rng_state(), before)
    assert forked == [[], [1], [3], []]


def test_a_seed_past_2_32_draws_its_own_stream_and_smaller_seeds_keep_theirs():
    """numpy read (2**32 + 5, 0) as (5, 1): `data make --seed 4294967301` rendered seed 5's clip 1 as its clip 0
    (hunt 148), and the recipes' batches of such a seed were another seed's one step on."""
    import numpy as np

    from sae.streams import seeded
    from training.data.concept_clips import DataConfig, plan_clip

    def draws(rng):
        return rng.integers(0, 2**62, 4).tolist()

    assert draws(seeded(5, 3)) == draws(np.random.default_rng([5, 3]))  # the data of seeds below 2**32 is unchanged
    assert draws(seeded(2**32 + 5, 0)) != draws(seeded(5, 1))
    assert draws(seeded(2**33 + 7, 0)) != draws(seeded(7, 2))
    assert draws(seeded(2**32 + 5, 0)) != draws(seeded(2**32 + 5, 1))
    big, small = (plan_clip(i, DataConfig(n=4, seed=s)) for i, s in ((0, 2**32 + 5), (1, 5)))
    assert (big.instruments, big.tempo, big.key) != (small.instruments, small.tempo, small.key)


def test_a_seed_past_2_32_runs_the_probes_folds_and_solo_detector():
    """scikit-learn refuses a random_state of 2**32 and above: `eval hooks --seed 4294967296` trained its SAE, then
    ended in a traceback in the probe's folds (hunt 149). Seeds below keep their folds."""
    import numpy as np

    from sae.alone import fit_alone
    from sae.probe import _folds
    from sae.streams import sklearn_seed

    y = np.r_[np.ones(10), np.zeros(10)].astype(int)
    assert sklearn_seed(7) == 7 and 0 <= sklearn_seed(2**32) < 2**32 and sklearn_seed(2**32) != sklearn_seed(2**33)
    folds = _folds(y, 5, 2**32)
    assert len(folds) == 5 and sorted(np.concatenate([te for _, te in folds]).tolist()) == list(range(20))
    assert [te.tolist() for _, te in _folds(y, 5, 7)] != [te.tolist() for _, te in folds]
    rng = np.random.default_rng(0)
    X, Xv = rng.standard_normal((40, 3)), rng.standard_normal((20, 3))
    yx, yv = np.r_[np.ones(20), np.zeros(20)], np.r_[np.ones(10), np.zeros(10)]
    assert len(fit_alone(X + yx[:, None], yx, Xv + yv[:, None], yv, 2**40)) == 4
