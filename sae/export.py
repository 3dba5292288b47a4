"""A TorchScript SAE for the live engine: `encode(x) -> f`, `decode(f) -> x`, attributes `W_dec` etc.

Built from a `SparseAutoencoder` with its normalisation folded in, so it carries no side table.
"""

from __future__ import annotations

import os
import warnings
from pathlib import Path

import torch
from torch import Tensor, nn

from sae.atomic import atomic_write, through_handle
from sae.model import SparseAutoencoder


class ScriptSAE(nn.Module):
    """Inference-only TopK / BatchTopK SAE in raw units, scriptable.

    Args:
        sae: the trained SAE (normalisation is folded in here).
    """

    def __init__(self, sae: SparseAutoencoder) -> None:
        super().__init__()
        s = sae.folded().to("cpu", torch.float32)
        self.register_buffer("W_enc", s.W_enc.detach().clone())
        self.register_buffer("b_enc", s.b_enc.detach().clone())
        self.register_buffer("W_dec", s.W_dec.detach().clone())
        self.register_buffer("b_dec", s.b_dec.detach().clone())
        self.register_buffer("threshold", torch.tensor(float(s.threshold), dtype=torch.float32))
        self.k: int = int(s.cfg.k)
        self.batchtopk: bool = s.cfg.arch == "batchtopk"
        self.d_in: int = int(s.cfg.d_in)
        self.d_sae: int = int(s.cfg.d_sae)
        self.hook_name: str = s.cfg.hook_name
        self.model_name: str = s.cfg.model_name

    @torch.jit.export
    def encode(self, x: Tensor) -> Tensor:
        pre = (x.to(self.W_enc.dtype) - self.b_dec) @ self.W_enc + self.b_enc
        if self.batchtopk:
            return pre * (pre > self.threshold).to(pre.dtype)
        vals, idx = pre.topk(self.k, dim=-1)
        return torch.zeros_like(pre).scatter(-1, idx, vals.relu())

    @torch.jit.export
    def decode(self, f: Tensor) -> Tensor:
        return f.to(self.W_dec.dtype) @ self.W_dec + self.b_dec

    def forward(self, x: Tensor) -> Tensor:
        return self.decode(self.encode(x))


def script_sae(sae: SparseAutoencoder) -> torch.jit.ScriptModule:
    with warnings.catch_warnings():  # torch 2.13 marks jit deprecated; the engine still loads .ts files
        warnings.simplefilter("ignore", DeprecationWarning)
        return torch.jit.script(ScriptSAE(sae).eval())


def export_torchscript(sae: SparseAutoencoder, path: str | os.PathLike) -> Path:
    """Script `sae` and save it to `path` (atomically); load with `torch.jit.load`."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    scripted = script_sae(sae)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        atomic_write(path, through_handle(lambda fh: torch.jit.save(scripted, fh)))
    return path
