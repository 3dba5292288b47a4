"""Steering semantics: identity is bit-exact, error term kept, modes compose, ramps end on target."""

from __future__ import annotations

import pytest
import torch

from sae.errors import UserError
from sae.model import SAEConfig, SparseAutoencoder
from sae.steering import Edit, EditState, SteeredSAE, apply_edit, ramp, steer


def _sae(d_in: int = 8, d_sae: int = 32, k: int = 4, seed: int = 0) -> SparseAutoencoder:
    torch.manual_seed(seed)
    sae = SparseAutoencoder(SAEConfig(d_in=d_in, d_sae=d_sae, k=k))
    with torch.no_grad():
        sae.b_enc.normal_(0.0, 0.1)
        sae.b_dec.normal_(0.0, 0.1)
    return sae.eval()


def _bank_concepts():
    return {
        "guitar": {
            "features": [{"index": 3, "weight": 1.0, "typical": 2.0}, {"index": 5, "weight": 0.5, "typical": 1.0}],
            "default": {"mode": "none", "strength": 1.0},
        },
        "drums": {
            "features": [{"index": 5, "weight": 1.0, "typical": 4.0}],
            "default": {"mode": "off", "strength": 1.0},
        },
    }


def test_identity_edit_returns_x_bit_exact():
    sae = _sae()
    x = torch.randn(3, 10, 8)
    out = apply_edit(x, sae, Edit.identity(32))
    assert out is x
    state = EditState.from_concepts(32, {"g": {"features": [{"index": 1}], "default": {"mode": "none"}}})
    assert state.edit().is_identity
    steered = SteeredSAE(sae)
    steered.set_edit(state.edit())
    assert steered(x) is x


def test_edit_keeps_error_term_and_matches_formula():
    sae = _sae()
    x = torch.randn(4, 8)
    gain = torch.ones(32)
    add = torch.zeros(32)
    gain[3], add[7] = 0.0, 1.5
    edit = Edit.from_dense(gain, add)
    assert edit.idx.tolist() == [3, 7]
    out = apply_edit(x, sae, edit)
    with torch.no_grad():
        f = sae.encode(x)
        f2 = f * gain + add
        expected = sae.decode(f2) + (x - sae.decode(f))
    torch.testing.assert_close(out, expected, atol=1e-5, rtol=1e-5)
    assert not torch.equal(out, x)


def test_modes_compose_per_feature():
    state = EditState.from_concepts(32, _bank_concepts())
    e = state.edit()  # drums default off -> gain 0 on feature 5
    assert e.gain[5] == 0.0 and e.idx.tolist() == [5]
    state.set_mode("guitar", "on:2")
    state.set_mode("drums", "scale:3")
    state.set_feature_gain(5, 0.5)
    e = state.edit()
    assert e.add[3].item() == pytest.approx(2 * 1.0 * 2.0)
    assert e.add[5].item() == pytest.approx(2 * 0.5 * 1.0)
    assert e.gain[5].item() == pytest.approx(3 * 0.5)
    state.reset()
    assert state.edit().idx.tolist() == [5] and state.controls["guitar"].mode == "none"


def test_bad_controls_raise_user_error_and_presets_are_atomic():
    state = EditState.from_concepts(32, _bank_concepts())
    with pytest.raises(UserError, match="unknown concept"):
        state.set_mode("piano", "on")
    with pytest.raises(UserError, match="mode"):
        state.set_mode("guitar", "loud")
    with pytest.raises(UserError, match="finite"):
        state.set_gain("guitar", float("nan"))
    with pytest.raises(UserError, match="feature 99"):
        state.set_feature_gain(99, 2.0)
    before = state.as_dict()
    with pytest.raises(UserError):
        state.load_dict({"concepts": {"guitar": {"mode": "on"}, "piano": {"mode": "on"}}})
    assert state.as_dict() == before
    state.load_dict({"concepts": {"guitar": {"mode": "on", "strength": 0.5}}, "features": {"2": 4.0}})
    assert state.controls["guitar"].strength == 0.5 and state.feature_gains == {2: 4.0}
    with pytest.raises(UserError, match="index"):
        EditState.from_concepts(4, _bank_concepts())


def test_ramp_moves_linearly_and_ends_on_target():
    d = 16
    prev = Edit.identity(d)
    g = torch.ones(d)
    g[2] = 0.0
    cur = Edit.from_dense(g, torch.zeros(d))
    idx, gain, add = ramp(prev, cur, 4)
    assert idx.tolist() == [2]
    assert gain[:, 0].tolist() == pytest.approx([0.75, 0.5, 0.25, 0.0])
    assert add.abs().sum() == 0
    sae = _sae(d_sae=d)
    x = torch.randn(4, 8)
    last = apply_edit(x, sae, (idx, gain, add))[-1]
    torch.testing.assert_close(last, apply_edit(x[-1:], sae, cur)[0])


def test_scripted_steer_matches_module():
    sae = _sae()
    steered = SteeredSAE(sae)
    edit = EditState.from_concepts(32, _bank_concepts()).edit()
    steered.set_edit(edit)
    x = torch.randn(5, 8)
    with torch.no_grad():
        expected = steered(x)
        torch.testing.assert_close(steer(x, sae.encode(x), sae.W_dec, *edit.compact()), expected)
        scripted = torch.jit.script(steer)
        torch.testing.assert_close(scripted(x, sae.encode(x), sae.W_dec, *edit.compact()), expected)


def test_steered_exported_sae_scripts():
    from sae.export import script_sae

    sae = _sae()
    exported = script_sae(sae)
    steered = SteeredSAE(exported)
    edit = EditState.from_concepts(32, _bank_concepts()).edit()
    steered.set_edit(edit)
    scripted = torch.jit.script(steered)
    x = torch.randn(2, 5, 8)
    with torch.no_grad():
        torch.testing.assert_close(scripted(x), apply_edit(x, sae, edit), atol=1e-5, rtol=1e-5)


def test_one_strength_limit_for_every_way_in():
    """--set (ConceptControl.parse / check_sets), presets and OSC share sae.steering.STRENGTH_LIMIT."""
    from realtime import osc
    from sae.steering import STRENGTH_LIMIT, ConceptControl, check_sets

    assert osc.LIMIT is STRENGTH_LIMIT or osc.LIMIT == STRENGTH_LIMIT
    state = EditState.from_concepts(32, _bank_concepts())
    state.set_mode("guitar", f"on:{STRENGTH_LIMIT:g}")  # the limit itself is allowed
    for bad in ("on:1e9", f"on:{STRENGTH_LIMIT * 1.01:g}", "scale:-1000", "on:nan", "on:inf"):
        with pytest.raises(UserError, match=r"expected a finite number in \[-100, 100\]") as err:
            state.set_mode("guitar", bad)
        assert "\n" not in str(err.value)
        with pytest.raises(UserError):
            check_sets([("guitar", bad)])
    with pytest.raises(UserError, match="expected a finite number in"):
        state.set_strength("guitar", -101)
    with pytest.raises(UserError, match="expected a finite number in"):
        state.set_feature_gain(3, 1e4)
    with pytest.raises(UserError, match="expected a finite number in"):
        state.load_dict({"concepts": {"guitar": {"mode": "on", "strength": 1e9}}})
    assert ConceptControl.parse("guitar", "scale:0.5").gain == 0.5


def test_a_concept_set_twice_is_refused():
    from sae.steering import check_sets

    assert check_sets([("guitar", "off"), ("drums", "on:2")]) == [("guitar", "off"), ("drums", "on:2")]
    with pytest.raises(UserError, match=r"--set guitar: given twice \(guitar=off, guitar=on:2\)"):
        check_sets([("guitar", "off"), ("drums", "on"), ("guitar", "on:2")])
