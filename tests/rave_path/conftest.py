"""Fixtures for the RAVE path: a small generated data folder and an SAE on the tiny RAVE's latents."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch


@pytest.fixture(scope="session")
def concept_data(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """48 one-second clips at 44.1 kHz (the tiny RAVE's rate) with guitar / drums folders, one soundfont (so no
    clip is dropped to balance fonts; tests/rave_path/test_concept_data.py covers several). Train split: guitar 18
    with / 21 without, drums 12 / 27: both meet the minimum-examples rule of 12 per side."""
    from training.data.concept_clips import DataConfig, make_dataset

    root = tmp_path_factory.mktemp("data")
    cfg = DataConfig(n=48, seed=1, duration=1.0, sample_rate=44100, soundfonts=("timgm6mb",))
    make_dataset(root, cfg, concepts=("guitar", "drums"))
    return root


@pytest.fixture(scope="session")
def tiny_sae_dir(tmp_path_factory: pytest.TempPathFactory, tiny_rave_ts: Path) -> Path:
    """A seeded TopK SAE (16 -> 64, k 4) on the tiny RAVE's latent hook, saved in the SAELens layout."""
    from sae.io import save_sae
    from sae.model import SAEConfig, SparseAutoencoder

    torch.manual_seed(0)
    sae = SparseAutoencoder(SAEConfig(d_in=16, d_sae=64, k=4, hook_name="latent", model_name=tiny_rave_ts.name))
    with torch.no_grad():
        sae.b_enc.normal_(0.0, 0.1)
    return save_sae(sae, tmp_path_factory.mktemp("sae") / "latent")


@pytest.fixture(scope="session")
def tiny_model(tiny_rave_ts: Path):
    """The tiny RAVE loaded once, with the delay renders remove measured once: (RaveModel, aligned delay)."""
    from realtime.rave import RaveModel
    from realtime.render_rave import model_delay

    torch.set_num_threads(1)
    model = RaveModel.load(tiny_rave_ts)
    return model, model_delay(model)


@pytest.fixture(scope="session")
def noise_bursts():
    """Writes `n` one-second 44.1 kHz clips of noise bursts (a drum solo's shape: hits, decays, gaps), seeded, into
    a new folder: `noise_bursts(folder, n, seed=3)` → folder."""

    def write(folder: Path, n: int, seed: int = 3) -> Path:
        folder.mkdir()
        rng = np.random.default_rng(seed)
        t = np.arange(44100) / 44100
        env = np.exp(-((t * 4) % 1) * 12)  # four hits a second
        for i in range(n):
            sf.write(folder / f"solo_{i:02d}.wav", (0.5 * env * rng.standard_normal(len(t))).astype(np.float32), 44100)
        return folder

    return write
