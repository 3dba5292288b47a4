"""The block processor's own duties: edits that follow the model's device, concept meters, warm-up of every
switchable path, and the engine's GC discipline."""

from __future__ import annotations

import gc

import numpy as np
import pytest
import torch

from realtime.controls import Controls, Snapshot
from realtime.engine import Engine
from realtime.processor import BlockProcessor, edit_tensors
from sae.bank import ConceptProbe
from sae.meter import MeterParams, concept_meter
from sae.model import SAEConfig, SparseAutoencoder
from sae.steering import EditState

CONCEPTS = {
    "a": {"features": [{"index": 3, "weight": 1.0, "typical": 2.0}], "default": {"mode": "none"}},
    "b": {"features": [{"index": 5, "weight": 0.5, "typical": 1.0}, {"index": 9}], "default": {"mode": "none"}},
}


class MetaModel:
    """The attributes BlockProcessor reads from a RAVE model, on the `meta` device (shapes only: any op that
    mixes it with a CPU tensor raises, as a GPU would)."""

    ratio, sr, channels, latent_size, device = 512, 44100, 1, 16, torch.device("meta")

    def new_stream(self):
        return self


def test_edits_follow_the_model_device_once_per_snapshot():
    torch.manual_seed(0)
    sae = SparseAutoencoder(SAEConfig(d_in=16, d_sae=32, k=4))
    meters = MeterParams.from_concepts({"a": {"probe": ConceptProbe(-1.0, {3: 2.0})}})
    proc = BlockProcessor(MetaModel(), sae, 1024, delay=0, meters=meters)
    assert proc.W_dec.device.type == "meta" and sae.W_enc.device.type == "meta"
    assert proc.meters.coef.device.type == "meta"
    state = EditState.from_concepts(32, CONCEPTS)
    edits = []
    for mode in ("on:2", "off", "clamp:1", "scale:0.5"):
        state.set_mode("a", mode)
        state.set_mode("b", mode)
        edits.append(state.edit())
    assert edits[0].gain.device.type == "cpu"  # controls live on the CPU
    z = torch.zeros(1, 16, 2, device="meta")
    gate = torch.ones(1, 2, 1, device="meta")
    for edit in (edits[0], edits[0], edits[1], edits[2], edits[2], edits[3]):  # first, cached, ramps, cached, ramp
        out, pooled = proc._steer(z, edit, gate)
        proc.prev_edit = edit
        assert out.device.type == "meta" and pooled.device.type == "meta"
    cached = proc._tensors[1]
    assert proc._tensors[0] is edits[2] and cached[3] is not None  # clamp: floors too
    assert all(t.device.type == "meta" for t in cached)
    ramped = edit_tensors(edits[1], edits[2], 2, torch.device("meta"))
    assert all(t.device.type == "meta" for t in ramped) and ramped[1].shape == ramped[3].shape == (2, 3)
    with pytest.raises(RuntimeError, match="meta"):  # the check would catch an edit left on the CPU
        z[0].T.index_select(-1, torch.tensor([0])) * edits[0].gain[:1]


def test_meters_are_the_banks_probe_on_a_running_mean_of_the_input(rave_model, latent_sae):
    block = (0.3 * np.random.default_rng(0).standard_normal((1024, 1))).astype(np.float32)
    with torch.no_grad():
        z = rave_model.new_stream().encode_mean(torch.from_numpy(block.T[None]))[0].T
        f = latent_sae.encode(z)
    hot, cold = torch.argsort(f.mean(0), descending=True)[:2].tolist()  # features this block fires
    probe = {
        "hot": {"probe": ConceptProbe(-0.5, {hot: 4.0, 7: -2.0})},
        "cold": {"probe": ConceptProbe(0.2, {cold: -3.0})},
    }
    meters = MeterParams.from_concepts(probe)
    want = concept_meter(f, meters.idx, meters.coef, meters.intercept)
    proc = BlockProcessor(rave_model, latent_sae, 1024, meters=meters)
    snap = Snapshot(EditState(64).edit(), 1.0, False, 0)
    proc.process(block, snap)
    assert proc.meter_names == ["hot", "cold"]
    np.testing.assert_allclose(proc.meter_values, want.tolist(), rtol=1e-5)
    assert all(0.0 <= v <= 1.0 for v in proc.meter_values)
    for _ in range(3):
        proc.process(np.zeros_like(block), snap)  # silence: the running mean moves, the meters follow
    assert proc.meter_values != tuple(want.tolist())
    plain = BlockProcessor(rave_model, latent_sae, 1024)
    plain.process(block, snap)
    assert plain.meter_names == [] and plain.meter_values == () and plain.stats.sae_s == 0.0  # no SAE cost


def test_warm_up_runs_every_switchable_path_then_starts_fresh(rave_model, latent_sae):
    controls = Controls(EditState.from_concepts(64, CONCEPTS))
    snaps = controls.warm_up_snapshots()
    modes = {(name, c["mode"]) for s in snaps for name, c in _modes(s, controls).items()}
    for name in CONCEPTS:
        assert {(name, m) for m in ("off", "on", "clamp", "scale")} <= modes
    assert any(s.bypass for s in snaps) and any(0 < s.mix < 1 for s in snaps)
    assert any(int(s.edit.idx.numel()) == 1 and s.edit.gain[0] == 0.5 for s in snaps)  # a raw feature gain
    proc, fresh = BlockProcessor(rave_model, latent_sae, 1024), BlockProcessor(rave_model, latent_sae, 1024)
    seen = []
    original = proc._steer
    proc._steer = lambda z, edit, gate=None, stream=0: (seen.append(edit), original(z, edit, gate, stream))[1]
    times = proc.warm_up(snaps)
    assert len(times) == 3 * len(snaps) and {id(e) for e in seen} == {id(s.edit) for s in snaps}
    block = (0.3 * np.random.default_rng(1).standard_normal((1024, 1))).astype(np.float32)
    warmed = proc.process(block, snaps[0])  # the decoder's noise comes from the global generator, seeded at reset
    fresh.reset()
    np.testing.assert_array_equal(warmed, fresh.process(block, snaps[0]))


def _modes(snap, controls):
    """Which concept modes an edit encodes (by its features), for the coverage check."""
    out = {}
    for name, spec in CONCEPTS.items():
        i = spec["features"][0]["index"]
        g, a = float(snap.edit.gain[i]), float(snap.edit.add[i])
        clamp = snap.edit.floor is not None and float(snap.edit.floor[i]) > 0
        out[name] = {"mode": "clamp" if clamp else "off" if g == 0 else "scale" if g != 1 else "on" if a else "none"}
    return out


def test_gc_is_frozen_and_off_while_an_engine_runs(rave_model):
    was = gc.isenabled()
    proc = BlockProcessor(rave_model, None, 1024)
    with Engine(proc, Controls(EditState(0)), period=256):
        assert not gc.isenabled() and gc.get_freeze_count() > 0
    assert gc.isenabled() == was and gc.get_freeze_count() == 0
