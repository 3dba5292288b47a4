"""Tiny MusicGen checkpoints (both real formats), written once per test session."""

from __future__ import annotations

import pytest
import torch

from training.musicgen.tiny_model import TinyMusicGenConfig, save_tiny_musicgen


@pytest.fixture(autouse=True)
def _one_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="session")
def tiny_cfg() -> TinyMusicGenConfig:
    return TinyMusicGenConfig(dim=32, num_heads=4, num_layers=3, seed=0)


@pytest.fixture(scope="session")
def audiocraft_dir(tmp_path_factory, tiny_cfg):
    return save_tiny_musicgen(tmp_path_factory.mktemp("ac") / "tiny_ac", "audiocraft", tiny_cfg)


@pytest.fixture(scope="session")
def transformers_dir(tmp_path_factory, tiny_cfg):
    return save_tiny_musicgen(tmp_path_factory.mktemp("tf") / "tiny_tf", "transformers", tiny_cfg)
