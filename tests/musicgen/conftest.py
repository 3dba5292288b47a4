"""Tiny MusicGen checkpoints (both real formats), written once per test session."""

from __future__ import annotations

import pytest
import torch

from training.musicgen.arch import CodecSizes, LMSizes
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


# -- the demo MusicGen's recipe at toy sizes: one toy data folder, codec run, LM run and package per session

TOY_CODEC = CodecSizes(n_filters=4, dimension=16, lstm=1, n_q=4, bins=256)
TOY_LM = LMSizes(dim=32, num_heads=4, num_layers=2, lut_bins=2048, lut_dim=16, segment=0.5)


@pytest.fixture(scope="session")
def toy_sizes() -> tuple[CodecSizes, LMSizes]:
    return TOY_CODEC, TOY_LM


@pytest.fixture(scope="session")
def toy_data(tmp_path_factory):
    from training.data.concept_clips import DataConfig, make_dataset

    out = tmp_path_factory.mktemp("mgdata") / "data"
    cfg = DataConfig(n=30, seed=5, duration=0.6, sample_rate=16000, soundfonts=("timgm6mb",))
    make_dataset(out, cfg, concepts=("guitar", "drums"))
    return out


@pytest.fixture(scope="session")
def toy_concept_data(tmp_path_factory):
    """Concept folders for finding concepts: train split guitar 18 with / 21 without, drums 12 / 27, so the
    minimum-examples rule (12 per side) holds (`toy_data`, 30 clips, trains the toy models)."""
    from training.data.concept_clips import DataConfig, make_dataset

    out = tmp_path_factory.mktemp("mgconcepts") / "data"
    cfg = DataConfig(n=48, seed=5, duration=0.6, sample_rate=16000, soundfonts=("timgm6mb",))
    make_dataset(out, cfg, concepts=("guitar", "drums"))
    return out


@pytest.fixture(scope="session")
def toy_codec_run(toy_data, tmp_path_factory):
    from training.musicgen.train_codec import CodecTrainConfig, train_codec

    run = tmp_path_factory.mktemp("codec") / "run"
    cfg = CodecTrainConfig([str(toy_data)], run, TOY_CODEC, steps=3, batch=2, checkpoint_every=2, eval_every=2)
    train_codec(cfg, say=lambda *_: None)
    return run


@pytest.fixture(scope="session")
def toy_lm_run(toy_data, toy_codec_run, tmp_path_factory):
    from training.musicgen.train_lm import LMTrainConfig, train_lm

    run = tmp_path_factory.mktemp("lm") / "run"
    cfg = LMTrainConfig([str(toy_data)], toy_codec_run, run, TOY_LM, steps=4, batch=2, warmup=1, eval_every=2)
    train_lm(cfg, say=lambda *_: None)
    return run


@pytest.fixture(scope="session")
def toy_folders(toy_lm_run, tmp_path_factory):
    """(audiocraft folder, its transformers conversion) of the toy LM run."""
    from training.musicgen.convert import to_transformers
    from training.musicgen.package import package

    root = tmp_path_factory.mktemp("pkg")
    package(toy_lm_run, root / "ac")
    to_transformers(root / "ac", root / "tf")
    return root / "ac", root / "tf"
