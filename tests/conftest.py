"""Fixtures shared by every test area: tiny models in the real formats, built once per session."""

from __future__ import annotations

from pathlib import Path

import pytest


@pytest.fixture(scope="session")
def tiny_rave_ts(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An untrained tiny causal RAVE (v2_small + causal, capacity 4, 16 latents, 44.1 kHz, ratio 512),
    exported by acids-rave's own `rave export --streaming`."""
    from training.rave.tiny_model import build_tiny_rave

    return build_tiny_rave(tmp_path_factory.mktemp("rave") / "tiny_rave.ts", seed=0)


@pytest.fixture(autouse=True)
def _grad_mode_is_left_on():
    """Commands run in-process must not switch autograd off for the rest of the session."""
    import torch

    yield
    assert torch.is_grad_enabled(), "this test left torch's grad mode disabled"
