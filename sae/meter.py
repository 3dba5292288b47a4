"""Concept meters: how strongly each concept is present in some audio, as a calibrated 0–1 figure.

`concept find` fits a logistic probe on a clip's frame-mean SAE features (`sae/probe.py`) and stores it in
the bank in raw units (`probe: {intercept: b, coef: {index: c}}`, `sae.bank.ConceptProbe`), so

    meter = sigmoid(b + Σ_i c_i · mean_t f[t, i])

is the probe's own probability that the audio holds the concept (calibrated on the balance of the
examples it was fitted on). Several concepts are packed into one `MeterParams`: `idx` [M] (every feature
any meter reads), `coef` [M, C], `intercept` [C], so all meters cost one gather and one small matmul.

`concept_meter` pools a window of frames itself; a stream keeps a running mean instead (`smooth` with the
weight of `ema_weight`) and calls `pooled_meter`. All three tensor functions are plain torch and
TorchScript-able (`torch.jit.script(concept_meter)`), for the live engine and for nn~ methods alike.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor


def pooled_meter(pooled: Tensor, coef: Tensor, intercept: Tensor) -> Tensor:
    """Meters from already pooled features of the meter indices.

    Args:
        pooled: [.., M] frame-mean SAE activations of the features `idx` (in that order).
        coef: [M, C] probe coefficients (raw units: per unit of pooled activation); zero where a concept
            does not read a feature.
        intercept: [C] probe intercepts.

    Returns:
        [.., C] values in [0, 1].
    """
    return torch.sigmoid(pooled.to(coef.dtype) @ coef + intercept)


def concept_meter(features: Tensor, idx: Tensor, coef: Tensor, intercept: Tensor) -> Tensor:
    """Meters of a window of frames: pool (mean over frames) the meter features, then `pooled_meter`.

    Args:
        features: [.., T, d_sae] SAE activations (`sae.encode` of T latent frames).
        idx: [M] long, the features the meters read.
        coef, intercept: as in `pooled_meter`.

    Returns:
        [.., C] values in [0, 1]: the probability each concept is present in those T frames.
    """
    return pooled_meter(features.index_select(-1, idx).mean(-2), coef, intercept)


def smooth(state: Tensor, pooled: Tensor, weight: float) -> Tensor:
    """One step of an exponential moving average: state + weight · (pooled − state) (new tensor)."""
    return state + weight * (pooled.to(state.dtype) - state)


def ema_weight(frames: int, frame_rate: float, seconds: float) -> float:
    """The `smooth` weight for a block of `frames` frames so the running mean has time constant `seconds`
    (seconds ≤ 0: no memory, weight 1)."""
    if seconds <= 0:
        return 1.0
    return 1.0 - math.exp(-frames / (seconds * frame_rate))


@dataclass
class MeterParams:
    """The meters of several concepts packed for `concept_meter` / `pooled_meter`.

    Args:
        names: concept names, one per meter (column of `coef`).
        idx: [M] long, sorted union of the features they read.
        coef: [M, C] float32.
        intercept: [C] float32.
    """

    names: list[str]
    idx: Tensor
    coef: Tensor
    intercept: Tensor

    @classmethod
    def from_concepts(cls, concepts: Mapping[str, Any] | Iterable[Any]) -> MeterParams:
        """Pack the concepts that carry a probe (`concept.probe`, a `sae.bank.ConceptProbe` or a mapping with
        `intercept` and `coef`); the others get no meter."""
        items = concepts.items() if isinstance(concepts, Mapping) else ((c.name, c) for c in concepts)
        probes: list[tuple[str, float, dict[int, float]]] = []
        for name, concept in items:
            probe = concept.get("probe") if isinstance(concept, Mapping) else getattr(concept, "probe", None)
            if probe is None:
                continue
            intercept = probe["intercept"] if isinstance(probe, Mapping) else probe.intercept
            coef = probe["coef"] if isinstance(probe, Mapping) else probe.coef
            probes.append((name, float(intercept), {int(i): float(c) for i, c in coef.items()}))
        index = sorted({i for _, _, coef in probes for i in coef})
        row = {i: r for r, i in enumerate(index)}
        coef = torch.zeros(len(index), len(probes))
        for col, (_, _, weights) in enumerate(probes):
            for i, c in weights.items():
                coef[row[i], col] = c
        intercept = torch.tensor([b for _, b, _ in probes], dtype=torch.float32)
        return cls([n for n, _, _ in probes], torch.tensor(index, dtype=torch.long), coef, intercept)

    def __len__(self) -> int:
        return len(self.names)

    def to(self, device: torch.device | str) -> MeterParams:
        return MeterParams(self.names, self.idx.to(device), self.coef.to(device), self.intercept.to(device))

    def __call__(self, features: Tensor) -> Tensor:
        """`concept_meter` of [.., T, d_sae] features → [.., C]."""
        return concept_meter(features, self.idx, self.coef, self.intercept)
