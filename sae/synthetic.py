"""Synthetic activations with a planted sparse dictionary, for tests and benchmarks.

x = codes @ D + offset + noise, with unit-norm rows of D and `k_true` active features per row; an SAE that
works recovers the rows of D as decoder directions.

The data's generator is seeded with `data_seed(seed)`, a stream of its own: an SAE initialised with the same
integer (`torch.manual_seed(seed)`, as `sae.train` does) would otherwise draw its decoder from the very
numbers that made D, and start at the planted answer.
"""

from __future__ import annotations

import hashlib
import os

import torch
from torch import Tensor

from sae.store import ActivationWriter


def data_seed(seed: int) -> int:
    """The generator seed of the planted data made with `seed`: independent of every model seeded with `seed`."""
    return int.from_bytes(hashlib.sha256(f"musicsae.synthetic:{seed}".encode()).digest()[:8], "little") >> 1


def planted_data(
    n: int, d: int, n_features: int, k_true: int, seed: int = 0, offset: float = 0.0, noise: float = 0.01
) -> tuple[Tensor, Tensor]:
    """(x [n, d], D [n_features, d]) with magnitudes uniform in [0.5, 2.5]."""
    g = torch.Generator().manual_seed(data_seed(seed))
    D = torch.randn(n_features, d, generator=g)
    D /= D.norm(dim=1, keepdim=True)
    idx = torch.rand(n, n_features, generator=g).topk(k_true, dim=1).indices
    mag = torch.rand(n, k_true, generator=g) * 2.0 + 0.5
    codes = torch.zeros(n, n_features).scatter_(1, idx, mag)
    x = codes @ D + offset + noise * torch.randn(n, d, generator=g)
    return x, D


def planted_store(
    root: str | os.PathLike,
    hook: str = "synthetic",
    n: int = 50_000,
    d: int = 32,
    n_features: int = 128,
    k_true: int = 4,
    seed: int = 0,
    offset: float = 0.0,
    noise: float = 0.01,
    rows_per_source: int = 1000,
    shard_rows: int = 16384,
    dtype: str = "float32",
) -> Tensor:
    """Write planted activations to a store (sources "synth_00000", ...); returns the planted D."""
    x, D = planted_data(n, d, n_features, k_true, seed, offset, noise)
    with ActivationWriter(
        root,
        hook,
        d,
        dtype=dtype,
        model={"name": "synthetic"},
        frame_rate=50.0,
        sample_rate=16000,
        shard_rows=shard_rows,
    ) as w:
        for i, a in enumerate(range(0, n, rows_per_source)):
            w.add(x[a : a + rows_per_source], f"synth_{i:05d}", 0)
    return D
