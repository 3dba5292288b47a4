"""Concept meters: the bank's stored probe reproduces the fitted probe's probability, packed and scripted."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
import yaml

from sae.bank import Concept, ConceptBank, ConceptFeature, ConceptProbe, ModelRef
from sae.errors import UserError
from sae.meter import MeterParams, concept_meter, ema_weight, pooled_meter, smooth
from sae.probe import concept_probe, fit_sparse_probe


def _planted(seed: int, n: int = 60, d_sae: int = 48):
    rng = np.random.default_rng(seed)
    y = np.r_[np.ones(n // 2), np.zeros(n // 2)].astype(int)
    S = np.abs(rng.normal(size=(n, d_sae))) * (rng.random((n, d_sae)) < 0.3)
    S[:, 17] += 1.5 * y
    S[:, 30] += 0.7 * y
    return S, y


def test_meter_of_a_window_is_the_probes_probability_of_its_frame_mean():
    S, y = _planted(0)
    probe = fit_sparse_probe(S, y)
    stored = concept_probe(probe)
    assert set(stored.coef) == set(probe.indices.tolist())
    params = MeterParams.from_concepts({"tone": {"probe": stored}})
    # frames whose mean is each clip's pooled row: two frames around it
    rng = np.random.default_rng(1)
    jitter = rng.normal(size=S.shape)
    frames = torch.tensor(np.stack([S + jitter, S - jitter], axis=1), dtype=torch.float32)  # [clips, 2, d_sae]
    meters = params(frames)[:, 0].double().numpy()
    expected = 1.0 / (1.0 + np.exp(-probe.score(S)))
    np.testing.assert_allclose(meters, expected, atol=1e-5)
    assert meters[y == 1].mean() > 0.7 > 0.3 > meters[y == 0].mean()  # calibrated: a probability, not a score


def test_several_concepts_pack_into_one_matmul_and_script():
    a = ConceptProbe(-1.0, {3: 2.0, 7: 0.5})
    b = ConceptProbe(0.5, {7: -1.0})
    concepts = [
        Concept("a", ModelRef("m.ts", "ab" * 32), "latent", "sae", [ConceptFeature(3)], probe=a),
        Concept("none", ModelRef("m.ts", "ab" * 32), "latent", "sae", [ConceptFeature(1)]),  # an older bank entry
        Concept("b", ModelRef("m.ts", "ab" * 32), "latent", "sae", [ConceptFeature(7)], probe=b),
    ]
    params = MeterParams.from_concepts(concepts)
    assert params.names == ["a", "b"] and params.idx.tolist() == [3, 7] and len(params) == 2
    f = torch.zeros(5, 4, 10)
    f[..., 3] = 1.0
    f[..., 7] = torch.arange(5.0).view(5, 1)
    got = params(f)
    sig = lambda v: 1 / (1 + math.exp(-v))  # noqa: E731
    want = torch.tensor([[sig(-1 + 2 + 0.5 * t), sig(0.5 - t)] for t in range(5)])
    torch.testing.assert_close(got, want)
    scripted = torch.jit.script(concept_meter)
    torch.testing.assert_close(scripted(f, params.idx, params.coef, params.intercept), got)
    torch.jit.script(pooled_meter)
    torch.jit.script(smooth)
    empty = MeterParams.from_concepts([])
    assert len(empty) == 0 and empty(f).shape == (5, 0)


def test_running_mean_has_the_asked_time_constant():
    w = ema_weight(frames=1, frame_rate=86.13, seconds=1.0)
    state = torch.zeros(2)
    for _ in range(86):  # one second of single frames of a constant input
        state = smooth(state, torch.tensor([1.0, 3.0]), w)
    torch.testing.assert_close(state, torch.tensor([1.0, 3.0]) * (1 - math.exp(-86 / 86.13)))
    assert ema_weight(4, 86.13, 0.0) == 1.0


def test_bank_round_trips_and_validates_the_probe(tmp_path):
    bank = ConceptBank(tmp_path / "b.yaml")
    probe = ConceptProbe(-2.5, {12: 1.25, 3: 0.5})
    bank.add(Concept("g", ModelRef("m.ts", "ab" * 32), "latent", "sae", [ConceptFeature(12)], probe=probe))
    bank.save()
    data = yaml.safe_load(bank.path.read_text())
    assert data["concepts"]["g"]["probe"] == {"intercept": -2.5, "coef": {12: 1.25, 3: 0.5}}
    assert ConceptBank.load(bank.path).get("g").probe == probe
    for bad, needle in (({"intercept": 1.0}, "probe must be"), ({"intercept": 1.0, "coef": {-1: 1.0}}, "coef key -1"),
                        ({"intercept": "x", "coef": {1: 1.0}}, "probe.intercept"),
                        ({"intercept": 0.0, "coef": {}}, "probe.coef is empty")):  # fmt: skip
        data["concepts"]["g"]["probe"] = bad
        bank.path.write_text(yaml.safe_dump(data))
        with pytest.raises(UserError, match=needle):
            ConceptBank.load(bank.path)


def test_a_block_of_frames_moves_the_running_mean_as_that_many_single_frames():
    """Hunt 212: only one frame at a time was tested: a weight blind to `frames` (meters a block slow) went unseen."""
    one = ema_weight(1, 86.13, 1.0)
    assert ema_weight(8, 86.13, 1.0) == pytest.approx(1 - (1 - one) ** 8)
