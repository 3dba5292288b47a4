"""Fixtures for the live engine tests: the tiny RAVE, an SAE on its latent, and a bank with two concepts."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from sae.bank import Concept, ConceptBank, ConceptDefault, ConceptFeature, ModelRef
from sae.model import SAEConfig, SparseAutoencoder


@pytest.fixture(scope="session")
def rave_model(tiny_rave_ts: Path):
    from realtime.rave import RaveModel

    torch.set_num_threads(1)
    return RaveModel.load(tiny_rave_ts)


@pytest.fixture(scope="session")
def latent_sae(rave_model) -> SparseAutoencoder:
    """A seeded TopK SAE on the tiny RAVE's latent (16 → 64, k = 4)."""
    torch.manual_seed(0)
    sae = SparseAutoencoder(SAEConfig(d_in=rave_model.latent_size, d_sae=64, k=4, hook_name="latent"))
    with torch.no_grad():
        sae.b_enc.normal_(0.0, 0.1)
    return sae.eval()


@pytest.fixture(scope="session")
def bank(tmp_path_factory: pytest.TempPathFactory, tiny_rave_ts: Path, latent_sae) -> ConceptBank:
    """A bank on the tiny RAVE: `bright` (none by default) and `noisy` (off by default); the SAE is saved
    beside it in `sae/`."""
    from sae.io import save_sae

    path = tmp_path_factory.mktemp("bank") / "concepts.yaml"
    save_sae(latent_sae, path.parent / "sae")
    ref = ModelRef.of_file(tiny_rave_ts)
    bank = ConceptBank(path)
    bank.add(
        Concept(
            "bright",
            ref,
            "latent",
            "sae",
            [ConceptFeature(3, 1.0, 2.0), ConceptFeature(7, 0.5, 1.0)],
            ConceptDefault("none", 1.0),
        )
    )
    bank.add(Concept("noisy", ref, "latent", "sae", [ConceptFeature(11, 1.0, 1.5)], ConceptDefault("off", 1.0)))
    bank.save()
    return bank
