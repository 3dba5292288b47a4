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
