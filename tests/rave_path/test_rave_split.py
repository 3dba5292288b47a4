"""`realtime.rave_split`: a streaming RAVE export cut at an inner layer equals the whole model, block by block."""

from __future__ import annotations

import pytest
import torch

from realtime import rave_split
from realtime.rave_split import RaveSplit, check_split, hook_shape, pool, split_hooks, spread, trace
from sae.errors import UserError


def _blocks(model, n=4, seed=3):
    g = torch.Generator().manual_seed(seed)
    return [0.3 * torch.randn(1, model.channels, 4 * model.ratio, generator=g) for _ in range(n)]


def test_hooks_cover_encoder_and_decoder(tiny_model):
    model, _ = tiny_model
    hooks = split_hooks(model)
    assert hooks[0] == "latent"
    assert any(h.startswith("encoder.net.") for h in hooks) and any(h.startswith("decoder.net.") for h in hooks)
    assert hook_shape(model, "latent") == (model.latent_size, 1)
    width, steps = hook_shape(model, "decoder.net.0")
    assert width > model.latent_size and steps == 1  # the decoder's first conv widens at the latent rate
    assert hook_shape(model, "decoder.net.2")[1] > 1  # after an upsampling layer: several steps per frame


@pytest.mark.parametrize("hook", ["encoder.net.5", "decoder.net.1", "decoder.net.2", "decoder.net.9"])
def test_pieces_equal_the_whole_streamed(tiny_model, hook):
    """rest(upto(x)) == decode(encode_mean(x)) on every block of a stream (cached convolutions carried)."""
    model, _ = tiny_model
    whole, split = model.new_stream(), RaveSplit(model.new_stream(), hook)
    for i, x in enumerate(_blocks(model)):
        torch.manual_seed(i)
        a = whole.decode(whole.encode_mean(x))
        torch.manual_seed(i)
        b = split(x)
        assert a.shape == b.shape and torch.allclose(a, b, atol=1e-6), (hook, i, float((a - b).abs().max()))
    assert check_split(model, hook) <= 1e-6


def test_identity_edit_is_bit_exact_and_a_real_edit_changes_the_output(tiny_model):
    model, _ = tiny_model
    xs = _blocks(model, 3)
    plain, same, moved = (RaveSplit(model.new_stream(), "decoder.net.2") for _ in range(3))
    width = plain.width
    direction = torch.randn(width, generator=torch.Generator().manual_seed(0))
    for i, x in enumerate(xs):
        torch.manual_seed(i)
        a = plain(x)
        torch.manual_seed(i)
        b = same(x, lambda rows: rows)  # the identity edit returns its input: nothing is added
        torch.manual_seed(i)
        c = moved(x, lambda rows: rows + direction)
        assert torch.equal(a, b)
        assert (a - c).abs().max() > 1e-4


def test_pool_and_spread_keep_the_frame_mean():
    h = torch.randn(2, 5, 12)
    rows = pool(h, 4)
    assert rows.shape == (2, 3, 5) and torch.allclose(rows[0, 1], h[0, :, 4:8].mean(-1))
    delta = torch.randn(2, 3, 5)
    assert torch.allclose(pool(h + spread(delta, 4), 4), rows + delta, atol=1e-6)


def test_trace_matches_the_parts(tiny_model):
    model, _ = tiny_model
    x = _blocks(model, 1)[0]
    hooks = ["latent", "encoder.net.3", "decoder.net.4"]
    got = trace(model.new_stream(), x, hooks)
    assert torch.allclose(got["latent"], model.new_stream().encode_mean(x), atol=1e-6)
    for hook in hooks[1:]:
        assert torch.allclose(got[hook], RaveSplit(model.new_stream(), hook).upto(x), atol=1e-6)


def test_unknown_hook_lists_the_ones_the_model_has(tiny_model):
    model, _ = tiny_model
    with pytest.raises(UserError, match=r"hook 'decoder\.net\.999'.*it has latent, encoder\.net\.0\.\.\d+, decoder"):
        RaveSplit(model.new_stream(), "decoder.net.999")
    with pytest.raises(UserError, match=r"hook 'mlp\.3'"):
        hook_shape(model, "mlp.3")


def test_a_split_that_does_not_reproduce_the_model_is_refused(tiny_model, monkeypatch):
    """Fault injection: a decoder tail that is not the model's own → the split is measured and refused."""
    model, _ = tiny_model
    real = rave_split.decoder_tail
    monkeypatch.setattr(rave_split, "decoder_tail", lambda m, h, frames: real(m, h, frames) * 1.01)
    monkeypatch.setattr(rave_split, "_CHECKS", {})
    with pytest.raises(UserError, match=r"hook 'decoder\.net\.3'.*differs from the whole model"):
        RaveSplit(model.new_stream(), "decoder.net.3")


def test_a_decoder_of_another_kind_has_no_decoder_hooks(tiny_model, monkeypatch):
    """A decoder that is not acids-rave's GeneratorV2 (e.g. v1's Generator) offers no decoder hook."""
    model, _ = tiny_model

    class Other:  # stands in for a scripted decoder of another class
        original_name = "Generator"

    class Module:
        def __init__(self, real):
            self._real = real

        def __getattr__(self, name):
            return Other() if name == "decoder" else getattr(self._real, name)

    stand_in = model.new_stream()
    stand_in.module = Module(stand_in.module)
    hooks = split_hooks(stand_in)
    assert "latent" in hooks and not any(h.startswith("decoder.") for h in hooks)
    with pytest.raises(UserError, match=r"not a GeneratorV2.*no decoder hook\); it has latent, encoder"):
        rave_split.parse_hook(stand_in, "decoder.net.0")


def test_measuring_a_hooks_shape_leaves_the_callers_random_stream_alone(tiny_cropped_rave_ts, monkeypatch):
    """The decoder probe ran the model's noise fill of cropped latents on the global generator, inside the first
    seeded render at that hook: that render came out unlike the next one with the same seed."""
    from realtime.rave import RaveModel

    model, hook = RaveModel.load(tiny_cropped_rave_ts), "decoder.net.2"
    assert model.latent_size == 1  # 15 of 16 dimensions filled with noise
    monkeypatch.setattr(rave_split, "_SHAPES", {})  # measured afresh
    torch.manual_seed(0)
    hook_shape(model, hook)
    after = torch.rand(4)
    torch.manual_seed(0)
    assert torch.equal(after, torch.rand(4))
