"""The SAE recipe on a RAVE latent, shared by the demo (`training/demo.py`) and the shipped demo assets."""

from __future__ import annotations

from sae.train import TrainConfig


def latent_sae_config(
    latent_size: int, k: int, expansion: int, steps: int, seed: int, device: str = "cpu"
) -> TrainConfig:
    """A TopK SAE for RAVE's few latent dims: at least 64 features, k at most a quarter of them.

    Decoder rows start at sample rows (on the narrow latent, random directions leave a third of the features
    dead); 20 % of the store is held out, so a rare live feature is not counted dead.
    """
    expansion = max(expansion, -(-64 // latent_size))
    k = max(1, min(k, latent_size * expansion // 4))
    return TrainConfig(
        k=k,
        expansion=expansion,
        steps=steps,
        batch_size=1024,
        seed=seed,
        checkpoint_every=0,
        shuffle_buffer=1 << 16,
        log_every=50,
        decoder_init="data",
        eval_fraction=0.2,
        device=device,
    )
