"""Steering semantics: identity is bit-exact, error term kept, modes compose, ramps end on target."""

from __future__ import annotations

import math

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


def test_a_preset_switches_mode_and_strength_together_and_refuses_unknown_keys():
    state = EditState.from_concepts(32, _bank_concepts())
    state.set_mode("guitar", "clamp:2")
    state.load_dict({"concepts": {"guitar": {"mode": "on", "strength": 50}}})  # 50: an on's, not a clamp's
    assert (state.controls["guitar"].mode, state.controls["guitar"].strength) == ("on", 50.0)
    state.load_dict({"concepts": {"guitar": {"strength": 3, "mode": "clamp"}}})
    assert (state.controls["guitar"].mode, state.controls["guitar"].strength) == ("clamp", 3.0)
    before = state.as_dict()
    for spec, needle in (({"mod": "off"}, "key 'mod': expected mode, strength or gain"),
                         ({"mode": "clamp", "strength": 50}, "clamp strength 50")):  # fmt: skip
        with pytest.raises(UserError, match=needle):
            state.load_dict({"concepts": {"guitar": spec}})
        assert state.as_dict() == before


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
    """--set (ConceptControl.parse / check_sets), presets and OSC share sae.controls.STRENGTH_LIMIT."""
    from realtime import osc
    from sae.controls import STRENGTH_LIMIT
    from sae.steering import ConceptControl, check_sets

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


def test_a_colon_without_a_value_is_refused():
    """`guitar=scale:` (a value left out) was read as `scale` at gain 1: a render with no edit, exit 0."""
    from sae.steering import ConceptControl

    for mode in ("scale:", "on:", "clamp:"):
        with pytest.raises(UserError, match=f"mode '{mode}': expected a number after ':'"):
            ConceptControl.parse("guitar", mode)


def test_a_mode_is_read_without_its_blanks_and_an_unknown_one_is_named_as_such():
    """Hunt 192/194: `on :2` was refused as a mode taking no value (`on: 2` was read), and so were `ON:2`, `sacle:0.5`
    and `:2`, whose mode is what is wrong; `render rave --set g=off ` (a batch job's trailing blank) was refused."""
    from realtime.render_rave import parse_set
    from sae.steering import ConceptControl

    assert ConceptControl.parse("g", "on :2") == ConceptControl("on", 2.0, 1.0)
    assert ConceptControl.parse("g", " scale : 0.5 ") == ConceptControl("scale", 1.0, 0.5)
    for mode in ("ON:2", "sacle:0.5", ":2", "sacle:x"):
        with pytest.raises(UserError, match=f"mode '{mode}': expected one of none, off, on, clamp, scale"):
            ConceptControl.parse("g", mode)
    with pytest.raises(UserError, match="mode 'off:1': only on:S, clamp:S and scale:G take a value"):
        ConceptControl.parse("g", "off:1")
    sets = [parse_set(t) for t in ("g=off ", "g=on :2", "g= clamp: 3 ")]
    assert sets == [("g", "off"), ("g", "on:2"), ("g", "clamp:3")]


def test_a_scale_default_is_a_gain_and_leaves_on_its_own_strength():
    """A bank default `scale` at 0 (mute the concept's features) also set the strength a later bare `on` took: `on`
    at strength 0, no edit (hunt 77)."""
    from sae.steering import ConceptControl, default_control

    base = default_control({"default": {"mode": "scale", "strength": 0.0}})
    assert (base.mode, base.gain, base.strength) == ("scale", 0.0, 1.0)
    assert ConceptControl.parse("guitar", "on", base).strength == 1.0
    assert default_control({"default": {"mode": "on", "strength": 3.0}}).strength == 3.0


def test_a_bare_scale_on_a_command_line_is_refused():
    """`render rave --set guitar=scale` wrote the unedited render, exit 0: a command line has no gain apart, so bare
    `scale` was scale at gain 1 (live's OSC `scale`, with /gain set apart, keeps it)."""
    from sae.steering import ConceptControl, check_sets

    with pytest.raises(UserError, match=r"^--set guitar=scale: expected a gain, guitar=scale:GAIN"):
        check_sets([("guitar", "scale")])
    assert check_sets([("guitar", "scale:0.5")]) == [("guitar", "scale:0.5")]
    assert ConceptControl.parse("guitar", "scale").mode == "scale"  # live: gain from its own control


def test_a_concept_set_twice_is_refused():
    from sae.steering import check_sets

    assert check_sets([("guitar", "off"), ("drums", "on:2")]) == [("guitar", "off"), ("drums", "on:2")]
    with pytest.raises(UserError, match=r"--set guitar: given twice \(guitar=off, guitar=on:2\)"):
        check_sets([("guitar", "off"), ("drums", "on"), ("guitar", "on:2")])


def test_clamp_raises_only_features_below_the_floor():
    """clamp:s → f' = max(f, s·typical) on the concept's features: a feature already above is left alone."""
    sae = _sae()
    concepts = {"g": {"features": [{"index": 3, "weight": 0.5, "typical": 2.0}], "default": {"mode": "none"}}}
    state = EditState.from_concepts(32, concepts)
    state.set_mode("g", "clamp:1.5")
    edit = state.edit()
    assert edit.idx.tolist() == [3] and float(edit.floor[3]) == 3.0 and float(edit.add.abs().sum()) == 0.0
    x = torch.randn(64, 8) * 3
    with torch.no_grad():
        f = sae.encode(x)
        out = apply_edit(x, sae, edit)
        f2 = f.clone()
        f2[:, 3] = f[:, 3].clamp_min(3.0)
        expected = sae.decode(f2) + (x - sae.decode(f))
    torch.testing.assert_close(out, expected, atol=1e-5, rtol=1e-5)
    above = f[:, 3] >= 3.0
    assert above.any() and (~above).any()
    assert torch.equal(out[above], x[above])  # already there: untouched, bit for bit
    # a feature without a floor keeps its value beside a clamp, negative (scale:-1) included
    both = EditState.from_concepts(32, concepts | {"h": {"features": [{"index": 7}], "default": {"mode": "none"}}})
    both.set_mode("g", "clamp:1.5")
    both.set_mode("h", "scale:-1")
    with torch.no_grad():
        f3 = f.clone()
        f3[:, 3] = f[:, 3].clamp_min(3.0)
        f3[:, 7] = -f[:, 7]
        expected = sae.decode(f3) + (x - sae.decode(f))
    assert (f[:, 7] > 0).any()
    torch.testing.assert_close(apply_edit(x, sae, both.edit()), expected, atol=1e-5, rtol=1e-5)
    # strengths outside (0, CLAMP_LIMIT] are refused in one line, the state unchanged
    for bad in ("clamp:0", "clamp:-1", "clamp:11", "clamp:nan"):
        with pytest.raises(UserError, match=r"clamp strength|finite number"):
            state.set_mode("g", bad)
    assert state.controls["g"].mode == "clamp" and state.controls["g"].strength == 1.5


@pytest.mark.parametrize(("lo", "hi"), [(-1e39, -45.0), (-1e-320, 0.0), (-201.0, -45.0), (-40.0, -39.95)])
def test_gate_levels_whose_weights_float32_cannot_compute_are_refused(lo, hi):
    """A low level float32 holds as -inf, or a span it rounds to 0, passed every check and gated every edited
    frame by NaN: NaN audio out of renders and the nn~ module (hunt 159)."""
    from sae.steering import Gate, energy_gate

    with pytest.raises(UserError, match=r"expected low at least -200 dBFS, high at least 0\.1 dB above it"):
        Gate(lo, hi)
    assert Gate(-200.0, -199.9).lo_db == -200.0
    # hunt 200: silence read -120 dBFS, so a gate from below it was open on digital silence (on/clamp painted it)
    for lo, hi in ((-200.0, -199.9), (-130.0, -125.0), (-150.0, -100.0)):
        assert Gate(lo, hi).weights(torch.zeros(2, 256), 64).max() == 0.0, (lo, hi)
        assert torch.jit.script(energy_gate)(torch.zeros(1, 2, 128), 64, lo, hi, True).max() == 0.0
    assert Gate(-60.3, -60.2).hi_db == -60.2  # -60.3 + 0.1 is just above -60.2 in binary: refused (hunt 163)


def test_gate_keeps_every_edit_off_silence():
    """energy_gate: 0 on silent frames, 1 on loud ones; gated edits leave silent frames exactly as they are."""
    from sae.steering import Gate, energy_gate

    hop = 64
    audio = torch.zeros(1, 4 * hop)
    audio[0, 2 * hop :] = 0.3 * torch.randn(2 * hop, generator=torch.Generator().manual_seed(0))
    audio[0, hop : 2 * hop] = 10 ** (-52.5 / 20) * (-1.0) ** torch.arange(hop)  # -52.5 dBFS: half open
    g = energy_gate(audio, hop)
    assert g.shape == (1, 4, 1)
    assert g[0, :, 0].tolist() == pytest.approx([0.0, 0.5, 1.0, 1.0], abs=1e-3)
    torch.testing.assert_close(torch.jit.script(energy_gate)(audio, hop), g)
    offset = energy_gate(audio + 0.05, hop)  # a DC offset (-26 dBFS) on the input opens nothing, changes nothing
    torch.testing.assert_close(offset, g, atol=1e-4, rtol=0)
    sae = _sae()
    concepts = {"g": {"features": [{"index": 3, "weight": 1.0, "typical": 2.0}], "default": {"mode": "none"}}}
    x = torch.randn(1, 4, 8)
    for mode in ("on:4", "clamp:2"):
        state = EditState.from_concepts(32, concepts)
        state.set_mode("g", mode)
        out = apply_edit(x, sae, state.edit(), gate=g)
        assert torch.equal(out[0, 0], x[0, 0])  # the silent frame: nothing painted on
        assert not torch.equal(out[0, 3], x[0, 3])
        ungated = apply_edit(x, sae, state.edit())
        assert not torch.equal(ungated[0, 0], x[0, 0])
    # off and scale are gated too (hunt 101): an SAE fires features on silence, and taking them away made sound of
    # it (the demo's `off` on digital silence played at -37 dBFS RMS)
    x = x + 6.0 * sae.W_dec[3].detach()  # the feature fires on every frame, the silent one included
    assert (sae.encode(x)[0, :, 3] > 0).all()
    for mode in ("off", "scale:0.5"):
        state.set_mode("g", mode)
        out = apply_edit(x, sae, state.edit(), gate=g)
        assert torch.equal(out[0, 0], x[0, 0]) and not torch.equal(out[0, 3], x[0, 3]), mode
        ungated = apply_edit(x, sae, state.edit())
        assert not torch.equal(ungated[0, 0], x[0, 0]), mode
        torch.testing.assert_close(out[0, 2:], ungated[0, 2:])  # an open gate: the edit as it was
    assert Gate(enabled=False).weights(audio, hop) is None
    # a model's channels: each side's power (hunt 101: two loud sides in opposite phase mixed to silence)
    sides = torch.stack([audio, -audio], 1)  # [1, 2, T]
    assert energy_gate(sides.mean(1), hop)[0, :, 0].tolist() == [0.0] * 4
    torch.testing.assert_close(energy_gate(sides, hop, channels=True), g)
    torch.testing.assert_close(torch.jit.script(energy_gate)(sides, hop, -60.0, -45.0, True), g)
    torch.testing.assert_close(Gate().weights(audio[:, None], hop, channels=True), g)  # one channel: as before
    with pytest.raises(UserError, match="gate"):
        Gate(-40.0, -60.0)
    with pytest.raises(UserError, match="at most 0 dBFS"):  # a gate that never opens
        Gate(10.0, 20.0)


def test_steer_features_are_used_when_the_bank_has_them():
    concepts = {
        "g": {
            "features": [{"index": 3, "weight": 1.0, "typical": 2.0}],
            "steer": {"threshold": 0.5, "features": [{"index": 3, "typical": 2.0}, {"index": 9, "typical": 1.0}]},
            "default": {"mode": "none"},
        }
    }
    state = EditState.from_concepts(32, concepts)
    state.set_mode("g", "off")
    assert state.edit().idx.tolist() == [3, 9]


def test_steered_sae_with_clamp_and_gate_scripts_and_follows_the_device():
    from sae.export import script_sae
    from sae.steering import energy_gate

    sae = _sae()
    steered = SteeredSAE(script_sae(sae))
    concepts = _bank_concepts()
    state = EditState.from_concepts(32, concepts)
    state.set_mode("guitar", "clamp:2")
    edit = state.edit()
    steered.set_edit(edit)
    scripted = torch.jit.script(steered)
    x = torch.randn(2, 5, 8)
    gate = energy_gate(torch.randn(2, 5 * 16), 16)
    with torch.no_grad():
        torch.testing.assert_close(scripted(x, gate), apply_edit(x, sae, edit, gate=gate), atol=1e-5, rtol=1e-5)
        torch.testing.assert_close(scripted(x), apply_edit(x, sae, edit), atol=1e-5, rtol=1e-5)
    assert steered.floor.device == steered.sae.W_dec.device


def test_ramp_floor_moves_to_the_new_clamp():
    from sae.steering import ramp_floor

    d = 16
    prev = Edit.identity(d)
    floor = torch.zeros(d)
    floor[4] = 2.0
    cur = Edit.from_dense(torch.ones(d), torch.zeros(d), floor)
    idx = ramp(prev, cur, 4)[0]
    assert idx.tolist() == [4]
    fl = ramp_floor(prev, cur, idx, 4)
    assert fl[:, 0].tolist() == pytest.approx([0.5, 1.0, 1.5, 2.0])
    assert ramp_floor(prev, prev, prev.idx, 4) is None
    with pytest.raises(UserError, match="floor"):
        Edit.from_dense(torch.ones(d), torch.zeros(d), -floor)


def test_preset_mistakes_are_named_for_what_they_are():
    """Hunt 52: a preset key YAML reads as a number ('unknown concept 12: expected one of 1.5, 12'); `{mode: scale,
    strength: 0.5}`, a bank default's gain 0.5, loaded as gain 1 (no edit) without a word; a bare `clamp` over an `on`
    default of -2 blamed a strength nobody typed."""
    from sae.steering import ConceptControl

    state = EditState.from_concepts(32, {**_bank_concepts(), "12": {"features": [{"index": 7}]}})
    before = state.as_dict()
    for concepts, needle in (
        ({12: {"mode": "off"}}, r"preset concept 12 is not text \(YAML reads .* 12, 1.5 or 0x10 as numbers\): quote"),
        ({"guitar": {"mode": "scale", "strength": 0.5}}, r"mode scale takes its factor as gain \(gain: G or mode: "),
    ):
        with pytest.raises(UserError, match=needle):
            state.load_dict({"concepts": concepts})
        assert state.as_dict() == before
    state.load_dict({"concepts": {"guitar": {"mode": "scale", "gain": 0.5, "strength": 2}}})  # as /preset/save writes
    assert state.controls["guitar"].spelled() == "scale:0.5"
    # hunt 117: a value in the mode and another beside it: the beside one was dropped without a word
    now = state.as_dict()
    for spec, needle in (
        ({"mode": "on:2", "strength": 5}, "mode 'on:2' and strength 5 both give its strength"),
        ({"mode": "scale:0.5", "gain": 3}, "mode 'scale:0.5' and gain 3 both give its gain"),
    ):
        with pytest.raises(UserError, match=f"^preset concept 'guitar': {needle}; give one"):
            state.load_dict({"concepts": {"guitar": spec}})
        assert state.as_dict() == now
    state.load_dict({"concepts": {"guitar": {"mode": "on:2", "strength": 2}}})  # the same twice: no conflict
    assert state.controls["guitar"].spelled() == "on:2"
    with pytest.raises(UserError, match="preset: expected 'concepts' and 'features' to be mappings"):
        state.load_dict({"features": False})  # `features: off`: it cleared every feature gain
    on = ConceptControl.parse("guitar", "on:-2")
    with pytest.raises(UserError, match=r"clamp strength -2: .*\(-2 is the concept's strength so far, from its bank "
                       r"default or an earlier setting: give clamp:S\)"):  # fmt: skip
        ConceptControl.parse("guitar", "clamp", on)
    now = state.as_dict()
    for strength in (float("nan"), 1000.0):  # a preset's own strength is named as the preset's, not the bank's
        with pytest.raises(UserError, match=r"^preset concept 'guitar' strength (nan|1000): expected") as bad:
            state.load_dict({"concepts": {"guitar": {"mode": "on", "strength": strength}}})
        assert "so far" not in str(bad.value) and state.as_dict() == now
    with pytest.raises(UserError, match=r"clamp strength 20: expected") as given:  # a strength given: no hint
        ConceptControl.parse("guitar", "clamp:20", on)
    assert "so far" not in str(given.value)
    assert [ConceptControl.parse("g", m).spelled() for m in ("none", "off", "on:3", "clamp:2.5", "scale:-1")] == [
        "none", "off", "on:3", "clamp:2.5", "scale:-1"]  # fmt: skip


def test_gains_of_concepts_sharing_a_feature_compose_within_one_controls_range():
    """Twenty concepts at `scale 100` on one feature composed a gain of 1e40, past float32: the edit was refused with
    a numpy overflow warning, and in the nn~ export it played NaN that RAVE's caches kept (hunt 179). Gains multiply
    and are held within ±STRENGTH_LIMIT, the range one control has."""
    import warnings

    from sae.controls import STRENGTH_LIMIT

    concepts = {f"c{i}": {"features": [{"index": 3, "weight": 1.0, "typical": 1.0}]} for i in range(20)}
    state = EditState.from_concepts(8, concepts)
    for i in range(20):
        state.set_mode(f"c{i}", "scale:100" if i % 2 else "scale:-100")
    state.set_mode("c0", "scale:0.5")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        edit = state.edit()
    assert edit.gain[3].item() == -STRENGTH_LIMIT  # (-100)^9 · 100^10 · 0.5, held at -100
    state.set_mode("c0", "scale:-0.5")
    assert state.edit().gain[3].item() == STRENGTH_LIMIT
    for i in range(1, 20):
        state.set_mode(f"c{i}", "none")
    state.set_feature_gain(3, 3.0)
    assert state.edit().gain[3].item() == -1.5  # -0.5 · 3 within the range: the plain product
    # hunt 182: a product past float64 (inf) times an `off` was NaN, refused; a gain of 0 zeroes the feature
    many = {f"c{i}": {"features": [{"index": 0, "weight": 1.0, "typical": 1.0}]} for i in range(161)}
    state = EditState.from_concepts(2, many)
    for i in range(160):
        state.set_mode(f"c{i}", "scale:100")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert state.edit().gain[0].item() == STRENGTH_LIMIT
        for zero in ("off", "scale:0"):
            state.set_mode("c160", zero)
            assert state.edit().gain[0].item() == 0.0
        state.set_mode("c160", "none")
        state.set_feature_gain(0, 0.0)
        assert state.edit().gain.tolist() == [0.0, 1.0]


def test_a_preset_with_features_replaces_the_raw_gains_it_does_not_merge_with_them():
    """Hunt 212: a preset's `features:` merged into the gains set before went unseen: a preset would not sound as
    it was saved."""
    state = EditState(32)
    state.set_feature_gain(2, 4.0)
    state.load_dict({"features": {3: 2.0}})
    assert state.feature_gains == {3: 2.0}
    state.load_dict({"features": {}})
    assert state.feature_gains == {}


def test_two_clamps_on_one_feature_take_the_larger_floor():
    """Hunt 212: with two concepts clamping one feature, the last one set won unseen (its floor, not the larger)."""
    concepts = {n: {"features": [{"index": 5, "weight": 1.0, "typical": t}]} for n, t in (("a", 4.0), ("b", 1.0))}
    for order in (("a", "b"), ("b", "a")):
        state = EditState.from_concepts(32, concepts)
        for name in order:
            state.set_mode(name, "clamp:1")
        assert state.edit().floor[5].item() == 4.0, order


def test_a_stereo_frames_gate_weight_is_the_mean_of_its_channels_powers():
    """Hunt 212: the channels' largest power in place of their mean went unseen (the tests' two sides were equally
    loud): one side at −40 dBFS and the other silent is −43 dBFS, not −40."""
    from sae.steering import energy_gate

    t = torch.arange(256, dtype=torch.float32)
    loud = 0.01 * math.sqrt(2) * torch.sin(2 * math.pi * t / 16)  # an RMS of 0.01: −40 dBFS
    audio = torch.stack([loud, torch.zeros(256)])[None]
    w = energy_gate(audio, 256, -50.0, -30.0, channels=True)
    assert w.item() == pytest.approx((-43.0103 + 50.0) / 20.0, abs=1e-3)
