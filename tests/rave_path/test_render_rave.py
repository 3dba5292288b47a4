"""`musicsae render rave`: block-wise renders with bank edits; no edit equals the plain model exactly."""

from __future__ import annotations

import numpy as np
import pytest
import soundfile as sf
import torch

from realtime.render_rave import RaveStream, render_array, render_file
from sae.bank import Concept, ConceptBank, ConceptDefault, ConceptFeature, ModelRef
from sae.errors import UserError
from training.cli import main

# a live session built only for what it loads and refuses: one block size timed briefly, not each candidate for
# a second (`choose_block`)
QUICK_BLOCK = {"blocksize": 2048, "timing_s": 0.1}


@pytest.fixture
def bank(tmp_path, tiny_rave_ts, tiny_sae_dir):
    b = ConceptBank(tmp_path / "concepts.yaml")
    ref = ModelRef.of_file(tiny_rave_ts)
    b.add(
        Concept(
            "bright",
            ref,
            "latent",
            b.relative_sae(tiny_sae_dir),
            [ConceptFeature(3, 1.0, 2.0), ConceptFeature(7, 0.5, 1.0)],
            ConceptDefault("off", 1.0),
        )
    )
    b.add(
        Concept(
            "alien",
            ModelRef("other.ts", "ab" * 32),
            "latent",
            b.relative_sae(tiny_sae_dir),
            [ConceptFeature(1, 1.0, 1.0)],
        )
    )
    b.save()
    return b.path


def test_cli_edits_and_identity(tmp_path, tiny_rave_ts, tiny_model, concept_data, bank, capsys):
    model, delay = tiny_model
    clip = sorted((concept_data / "clips").iterdir())[0]
    n = sf.info(clip).frames
    out = tmp_path / "plain.wav"
    assert main(["render", "rave", "--in", str(clip), "--out", str(out), "--model", str(tiny_rave_ts)]) == 0
    plain, sr = sf.read(out, dtype="float32")
    assert sr == 44100 and len(plain) == n and np.abs(plain).max() > 0
    said = capsys.readouterr()
    lines = said.out.splitlines() + said.err.splitlines()  # not a terminal: no progress bar left behind
    assert lines and "" not in lines, said  # issue #16: the transient bar left an empty line
    assert len(lines) == 1 and lines[0].startswith(f"wrote {out}:") and lines[0].endswith("removed")  # not wrapped
    kept = tmp_path / "kept.wav"  # --no-align said "the model's delay (0 samples) removed"
    assert (
        main(["render", "rave", "--in", str(clip), "--out", str(kept), "--model", str(tiny_rave_ts), "--no-align"]) == 0
    )
    said = capsys.readouterr()
    assert (said.out + said.err).rstrip().endswith("; the model's delay kept (--no-align)"), said

    def render(sets, name):
        render_file(clip, tmp_path / name, tiny_rave_ts, bank, sets, model=model, delay=delay)
        return sf.read(tmp_path / name, dtype="float32")[0]

    assert np.array_equal(render(["bright=none"], "same.wav"), plain)  # no edit: the plain model, bit for bit
    assert np.array_equal(render(["bright=scale:1"], "sc.wav"), plain)
    on = render(["bright=on:3"], "on.wav")
    assert len(on) == n and np.abs(on - plain).max() > 1e-3


def test_a_bare_on_names_the_strength_it_used(tmp_path, tiny_rave_ts, tiny_model, concept_data, bank):
    """`--set bright=on` printed '(bright=on)' and nothing said at which strength (the bank's default)."""
    model, delay = tiny_model
    clip = sorted((concept_data / "clips").iterdir())[0]
    report = render_file(clip, tmp_path / "on.wav", tiny_rave_ts, bank, ["bright=on"], model=model, delay=delay)
    assert "bright=on: strength 1, the bank's default (stored with its off) (bright=on:S sets one)" in report.notes
    import dataclasses

    # hunt 140: a scale default's strength is a gain, and on takes 1: that 1 was called the bank's default
    b = ConceptBank.load(bank)
    for default, said in ((ConceptDefault("scale", -0.5), "strength 1; the bank's default is scale:-0.5, a gain, "
                           "with no on / clamp strength"), (ConceptDefault("on", 3.0), "strength 3, the bank's "
                           "default"), (ConceptDefault("off", 3.0), "strength 3, the bank's default (stored with "
                           "its off)")):  # fmt: skip
        b.add(dataclasses.replace(b.get("bright"), default=default))
        b.save()
        report = render_file(clip, tmp_path / "d.wav", tiny_rave_ts, bank, ["bright=on"], model=model, delay=delay)
        assert f"bright=on: {said} (bright=on:S sets one)" in report.notes, report.notes
    report = render_file(clip, tmp_path / "on2.wav", tiny_rave_ts, bank, ["bright=on:2"], model=model, delay=delay)
    assert not any("bank's default" in n for n in report.notes)


def test_defaults_left_out_are_those_a_set_could_add_and_a_plain_render_needs_one_sae(
    tmp_path, tiny_rave_ts, tiny_model, concept_data
):
    """Hunt 73: with a bank of concepts on two SAEs, the note about the bank's defaults suggested --set of concepts
    on the other SAE (refused by the same command), and a render with no --set was refused outright."""
    import dataclasses

    from tests.nn.conftest import make_bank

    model, delay = tiny_model
    clip = sorted((concept_data / "clips").iterdir())[0]
    path = make_bank(tmp_path / "a", tiny_rave_ts, names=("bright", "noisy-1", "voice_a"))  # voice_a: default off
    bank = ConceptBank.load(path)
    other = ConceptBank.load(make_bank(tmp_path / "b", tiny_rave_ts, seed=1, names=("dark", "calm", "voice_b")))
    bank.add(dataclasses.replace(other.get("voice_b"), sae=bank.relative_sae(tmp_path / "b" / "sae")))
    bank.save()

    def render(name: str, sets: list[str], bank_path=path) -> list[str]:
        return render_file(clip, tmp_path / name, tiny_rave_ts, bank_path, sets, model=model, delay=delay).notes

    said = " ".join(render("set.wav", ["bright=off"]))
    assert "defaults (live and nn~ start with them" in said and "voice_a=off; --set voice_a=off hears them" in said
    assert "voice_b" not in said
    said = " ".join(render("plain.wav", []))  # the plain model: was "use 2 different SAEs", nothing rendered
    assert "voice_a=off, voice_b=off (on several SAEs: --sae chooses)" in said
    assert np.array_equal(sf.read(tmp_path / "plain.wav")[0], sf.read(render_plain(tmp_path, clip, tiny_rave_ts,
                                                                                   model, delay))[0])  # fmt: skip
    elsewhere = ConceptBank(tmp_path / "elsewhere.yaml")
    elsewhere.add(dataclasses.replace(bank.get("bright"), model=ModelRef("other.ts", "ab" * 32)))
    elsewhere.save()
    assert any("no concept was found on tiny_rave.ts" in n for n in render("other.wav", [], elsewhere.path))
    with pytest.raises(UserError, match="no_such_sae: no such directory"):  # was dropped without a --set (hunt 77)
        render_file(
            clip, tmp_path / "x.wav", tiny_rave_ts, path, [], tmp_path / "no_such_sae", model=model, delay=delay
        )


def render_plain(tmp_path, clip, model_path, model, delay):
    out = tmp_path / "no_bank.wav"
    render_file(clip, out, model_path, None, [], model=model, delay=delay)
    return out


@pytest.mark.parametrize(
    "extra, said",
    [
        (["--no-gate", "--gate-db=-50,-40"], "--gate-db: sets the gate's levels, and --no-gate turns the gate off"),
        (["--set", " =off"], "--set ' =off': expected NAME=off"),  # was "concept '': not in ..." after loading
        (["--set", "dr ums=off"], "--set 'dr ums=off': expected NAME=off"),  # a name no bank can hold (hunt 201)
        (["--gate-db=-50,-40"], "--gate-db: the gate is where edits act, and no --set edits a concept"),
        (["--no-gate", "--set", "x=none"], "--no-gate: the gate is where edits act"),  # a plain render, no word
    ],
)
def test_contradictions_and_blank_names_are_refused_before_loading(tmp_path, capsys, extra, said):
    """--gate-db with --no-gate was ignored without a word; a blank concept name was looked up in the bank."""
    argv = ["render", "rave", "--in", "a.wav", "--out", str(tmp_path / "o.wav"), "--model", str(tmp_path / "m.ts")]
    assert main([*argv, "--bank", "b.yaml", *extra]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and said in err[0], err
    assert not (tmp_path / "o.wav").exists()


def test_output_is_aligned_and_blocks_do_not_matter(tiny_model, concept_data):
    model, delay = tiny_model
    x = sf.read(sorted((concept_data / "clips").iterdir())[1], dtype="float32")[0]
    stream = RaveStream(model)
    aligned = render_array(stream, x, delay=delay)
    raw = render_array(stream, x, delay=0)
    assert delay > 0 and np.allclose(aligned[: len(x) - delay], raw[delay:], atol=1e-6)
    small = render_array(stream, x, block=2048, delay=delay)  # streaming: block size changes nothing
    assert np.allclose(small, aligned, atol=1e-4)
    with pytest.raises(UserError, match="block 1000"):
        render_array(stream, x, block=1000)
    # 0 silently became the default block, a negative one a torch.cat traceback, 2**40 padded the input and hung
    for bad in (0, -2048, 2**40):
        with pytest.raises(UserError, match=f"block {bad}: expected a positive multiple"):
            render_array(stream, x, block=bad)


def test_latent_shift_moves_every_frame(tiny_model, concept_data):
    """The judge's mean-difference baseline: a zero shift is the plain render, a real one changes it."""
    model, delay = tiny_model
    x = sf.read(sorted((concept_data / "clips").iterdir())[2], dtype="float32")[0]
    stream = RaveStream(model)
    plain = render_array(stream, x, delay=delay)
    assert np.array_equal(render_array(stream, x, delay=delay, shift=torch.zeros(model.latent_size)), plain)
    moved = render_array(stream, x, delay=delay, shift=torch.full((model.latent_size,), 2.0))
    assert moved.shape == plain.shape and np.abs(moved - plain).mean() > 1e-3


def test_resampled_input_and_refusals(tmp_path, tiny_rave_ts, tiny_model, concept_data, bank):
    model, delay = tiny_model
    clip = sorted((concept_data / "clips").iterdir())[2]
    x, _ = sf.read(clip, dtype="float32")
    low = tmp_path / "low.wav"
    sf.write(low, x[::2], 22050)
    report = render_file(low, tmp_path / "low_out.wav", tiny_rave_ts, None, [], model=model, delay=delay)
    y, sr = sf.read(tmp_path / "low_out.wav")
    assert sr == 44100 and len(y) == 2 * len(x[::2])
    assert any("resampled" in n for n in report.notes)
    for bank_arg, sets, needle in [
        (bank, ["alien=off"], "belongs to model other.ts"),
        (None, ["bright=off"], "--set needs --bank"),
        (None, [], "--sae needs --bank"),  # was ignored: the plain render, exit 0
        (bank, ["bright=loud"], "--set 'bright=loud'"),
        (bank, ["nobody=off"], "'nobody'"),
    ]:
        with pytest.raises(UserError) as err:
            render_file(clip, tmp_path / "x.wav", tiny_rave_ts, bank_arg, sets, "sae", model=model, delay=delay)
        assert needle in str(err.value) and "\n" not in str(err.value)
    assert not (tmp_path / "x.wav").exists()
    own = tmp_path / "own.wav"  # --out naming --in: the recording was replaced by its render
    sf.write(own, x, 44100)
    with pytest.raises(UserError, match="it is --in"):
        render_file(own, own, tiny_rave_ts, None, [], model=model, delay=delay)
    assert np.array_equal(sf.read(own, dtype="float32")[0], x)
    # an input with no samples was written as a 0-second file, exit 0; one shorter than a model frame, without a word
    sf.write(tmp_path / "empty.wav", np.zeros(0, np.float32), 44100)
    with pytest.raises(UserError, match=r"empty\.wav: no samples"):
        render_file(tmp_path / "empty.wav", tmp_path / "x.wav", tiny_rave_ts, None, [], model=model, delay=delay)
    assert not (tmp_path / "x.wav").exists()
    sf.write(tmp_path / "one.wav", np.full(1, 0.5, np.float32), 44100)
    report = render_file(tmp_path / "one.wav", tmp_path / "one_out.wav", tiny_rave_ts, None, [], model=model)
    assert any(f"shorter than one model frame ({model.ratio} samples)" in n for n in report.notes)
    # a stereo take with one channel phase-inverted plays loud but mixes to nothing: 'is silent' said only that
    sf.write(tmp_path / "inverted.wav", np.stack([x[:4096], -x[:4096]], axis=1), 44100)
    report = render_file(tmp_path / "inverted.wav", tmp_path / "inv_out.wav", tiny_rave_ts, None, [], model=model)
    assert any("silent once its 2 channels are mixed to mono: they cancel" in n for n in report.notes), report.notes


def test_inner_hook_concepts_render_and_refusals(tmp_path, tiny_rave_ts, tiny_model, concept_data):
    """A concept on a decoder layer: the model runs in two parts around it; no edit is the plain model, an
    edit changes the output; an SAE of another hook or a hook the model lacks is refused in one line."""
    from realtime.rave_split import hook_shape
    from sae.io import save_sae
    from sae.model import SAEConfig, SparseAutoencoder

    model, delay = tiny_model
    hook = "decoder.net.2"
    width = hook_shape(model, hook)[0]
    torch.manual_seed(1)
    sae_dir = save_sae(SparseAutoencoder(SAEConfig(d_in=width, d_sae=4 * width, k=4, hook_name=hook)), tmp_path / "s")
    ref = ModelRef.of_file(tiny_rave_ts)
    b = ConceptBank(tmp_path / "inner.yaml")
    b.add(Concept("warm", ref, hook, b.relative_sae(sae_dir), [ConceptFeature(2, 1.0, 3.0)], ConceptDefault("none")))
    b.add(Concept("cold", ref, "decoder.net.999", b.relative_sae(sae_dir), [ConceptFeature(1, 1.0, 1.0)]))
    b.add(Concept("wrong", ref, "decoder.net.4", b.relative_sae(sae_dir), [ConceptFeature(1, 1.0, 1.0)]))
    b.save()
    clip = sorted((concept_data / "clips").iterdir())[3]

    def render(sets, name):
        render_file(clip, tmp_path / name, tiny_rave_ts, b.path, sets, model=model, delay=delay)
        return sf.read(tmp_path / name, dtype="float32")[0]

    render_file(clip, tmp_path / "plain.wav", tiny_rave_ts, None, [], model=model, delay=delay)
    plain = sf.read(tmp_path / "plain.wav", dtype="float32")[0]
    assert np.allclose(render(["warm=none"], "none.wav"), plain, atol=1e-6)
    assert np.abs(render(["warm=on:4"], "on.wav") - plain).max() > 1e-4
    for sets, needle in [
        (["cold=off"], "hook 'decoder.net.999': not a hook of tiny_rave.ts"),
        (["wrong=off"], "was trained on hook 'decoder.net.2'; the concepts are on hook 'decoder.net.4'"),
        (["warm=off", "wrong=off"], "sit on 2 hooks"),
    ]:
        with pytest.raises(UserError) as err:
            render(sets, "x.wav")
        assert needle in str(err.value) and "\n" not in str(err.value)
    assert not (tmp_path / "x.wav").exists()


def test_an_sae_trained_on_another_model_is_refused_as_live_and_export_nn_refuse_it(
    tmp_path, tiny_rave_ts, tiny_model, tiny_sae_dir
):
    """A bank that pins no SAE sha256 (an older one) whose SAE folder now holds an SAE trained on another model's
    latents of the same width: `live` and `export nn` refused it, `render rave` steered with it (hunt 77)."""
    import json
    import shutil

    from realtime.render_rave import load_steering

    other = tmp_path / "other_sae"
    shutil.copytree(tiny_sae_dir, other)
    cfg = json.loads((other / "cfg.json").read_text())
    cfg["musicsae"] = {**cfg.get("musicsae", {}), "model": {"name": "other.ts", "sha256": "ab" * 32}}
    (other / "cfg.json").write_text(json.dumps(cfg))
    b = ConceptBank(tmp_path / "old.yaml")
    b.add(
        Concept(
            "bright", ModelRef.of_file(tiny_rave_ts), "latent", b.relative_sae(other), [ConceptFeature(3, 1.0, 2.0)]
        )
    )
    b.save()
    with pytest.raises(UserError) as err:
        load_steering(b.path, tiny_model[0])
    assert "was trained on other.ts (abababababab), not tiny_rave.ts" in str(err.value) and "\n" not in str(err.value)


def test_gated_edits_leave_silence_silent(tmp_path, tiny_rave_ts, tiny_model, concept_data, bank):
    """Every mode with the gate: a silent stretch renders exactly as with no edit (hunt 101: `off` and `scale` were
    ungated, and made sound of digital silence, tests/sae/test_steering.py); ungated, `on` paints onto it; over the
    music `on` and `clamp` move the output."""
    from sae.steering import Gate

    model, delay = tiny_model
    x = sf.read(sorted((concept_data / "clips").iterdir())[0], dtype="float32")[0][:16384]
    audio = np.concatenate([np.zeros(32768, np.float32), x])
    quiet = slice(0, 32768 - 4096)  # the silent part, away from where the music's first frames leak back
    path = tmp_path / "half_silent.wav"
    sf.write(path, audio, 44100)

    def render(sets, gate=None):
        render_file(path, tmp_path / "o.wav", tiny_rave_ts, bank, sets, model=model, delay=delay, gate=gate)
        return sf.read(tmp_path / "o.wav", dtype="float32")[0]

    plain = render(["bright=none"])
    for mode in ("bright=on:3", "bright=clamp:3", "bright=off", "bright=scale:3"):
        gated = render([mode])
        assert np.array_equal(gated[quiet], plain[quiet]), mode
        if mode.startswith(("bright=on", "bright=clamp")):  # bright's features fire little here: off/scale move little
            assert np.abs(gated[32768:] - plain[32768:]).max() > 1e-4, mode
    ungated = render(["bright=on:3"], Gate(enabled=False))
    assert np.abs(ungated[quiet] - plain[quiet]).max() > 1e-4
    # a quiet recording: `on` changed nothing (bit-identical to the plain render, exit 0) without a word
    sf.write(tmp_path / "quiet.wav", 1e-4 * x, 44100)
    for src, sets, gate, needle in [
        (path, ["bright=on:3"], None, "67 % of half_silent.wav's frames are quieter"),
        (tmp_path / "quiet.wav", ["bright=clamp:3"], None, "100 % of quiet.wav's frames are quieter"),
        (tmp_path / "quiet.wav", ["bright=off"], None, "100 % of quiet.wav's frames are quieter"),
        (tmp_path / "quiet.wav", ["bright=none"], None, None),
        (tmp_path / "quiet.wav", ["bright=on:3"], Gate(enabled=False), None),
    ]:
        report = render_file(src, tmp_path / "o.wav", tiny_rave_ts, bank, sets, model=model, delay=delay, gate=gate)
        notes = report.notes
        said = [n for n in notes if "--gate-db" in n]
        assert (said == []) if needle is None else (len(said) == 1 and needle in said[0]), (sets, notes)
    argv = ["render", "rave", "--in", str(path), "--out", str(tmp_path / "g.wav"), "--model", str(tiny_rave_ts)]
    with pytest.raises(SystemExit):
        main([*argv, "--gate-db=-40,-60"])  # low above high: argparse's one line, exit 2
    assert not (tmp_path / "g.wav").exists()


def test_render_report_times_the_audio_work_apart_from_start_up(tmp_path, tiny_rave_ts, concept_data):
    """RTF divides the block work only; loading the model and measuring its delay are start-up."""
    clip = sorted((concept_data / "clips").iterdir())[0]
    report = render_file(clip, tmp_path / "out.wav", tiny_rave_ts, None, [])
    assert report.seconds_audio == pytest.approx(1.0, abs=0.01)
    assert report.rtf == pytest.approx(report.seconds_wall / report.seconds_audio)
    assert report.seconds_wall > 0 and report.seconds_startup > 0


def test_an_sae_retrained_in_place_is_refused_by_render_judge_and_live(
    tmp_path, tiny_rave_ts, tiny_model, tiny_sae_dir
):
    """The bank records the SAE's weights per concept: every path that steers with it refuses other weights."""
    import shutil

    from realtime.session import LiveConfig, build_live
    from sae.io import load_sae, sae_weights_sha256, save_sae

    model, delay = tiny_model
    sae_dir = tmp_path / "sae"
    shutil.copytree(tiny_sae_dir, sae_dir)
    b = ConceptBank(tmp_path / "concepts.yaml")
    concept = Concept(
        "bright", ModelRef.of_file(tiny_rave_ts), "latent", "sae", [ConceptFeature(3, 1.0, 2.0)], ConceptDefault()
    )
    concept.sae_sha256 = sae_weights_sha256(sae_dir)
    b.add(concept)
    b.save()
    wav = tmp_path / "in.wav"
    sf.write(wav, (0.1 * np.random.default_rng(0).standard_normal(8192)).astype(np.float32), model.sr)
    render_file(wav, tmp_path / "ok.wav", tiny_rave_ts, b.path, ["bright=off"], model=model, delay=delay)
    build_live(LiveConfig(tiny_rave_ts, bank=b.path, **QUICK_BLOCK), model).engine.close()
    other = tmp_path / "other_sae"  # an SAE the bank's concepts were not found with: nothing left to play
    different = load_sae(tiny_sae_dir)
    with torch.no_grad():
        different.W_dec.mul_(0.5)
    save_sae(different, other)
    with pytest.raises(UserError, match=r"--sae .*other_sae: no concept of the bank .* \(skipped bright \(SAE sae\)\)"):
        build_live(LiveConfig(tiny_rave_ts, sae=other, bank=b.path), model)
    (tmp_path / "empty.yaml").write_text("")  # a bank with nothing to play is no bank to play
    with pytest.raises(UserError, match=r"empty\.yaml: holds no concepts"):
        build_live(LiveConfig(tiny_rave_ts, bank=tmp_path / "empty.yaml"), model)
    retrained = load_sae(sae_dir)
    with torch.no_grad():
        retrained.W_enc.mul_(1.01)
    save_sae(retrained, sae_dir)
    for run in (
        lambda: render_file(wav, tmp_path / "x.wav", tiny_rave_ts, b.path, ["bright=off"], model=model, delay=delay),
        lambda: build_live(LiveConfig(tiny_rave_ts, bank=b.path), model),
    ):
        with pytest.raises(UserError, match="now holds"):
            run()
    assert not (tmp_path / "x.wav").exists()


def test_a_model_that_returns_nan_is_refused_not_rendered(tiny_model, concept_data):
    """A render whose model output turns NaN stops with one line naming where, instead of handing NaN on (a
    WAV writer turns it into full-scale noise, a judge into a traceback)."""
    stream = RaveStream(tiny_model[0])
    x = sf.read(sorted((concept_data / "clips").iterdir())[1], dtype="float32")[0]
    decode = stream.decode

    def poisoned(z):
        out = decode(z).clone()
        out[..., 5] = float("inf")
        return out

    stream.decode = poisoned
    with pytest.raises(UserError, match=r"render: \d+ NaN/inf sample\(s\) in the model.s output \(the first at 0\.00"):
        render_array(stream, x, delay=0)


def test_a_model_with_broken_weights_is_named_so_not_as_one_that_never_responds(tmp_path, tiny_rave_ts, capsys):
    """Decoder weights of NaN: every aligned render and every `live` start said 'output never responds to an
    impulse within 64 blocks' (NaN never compares as changed), sending the user after the export (hunt 158)."""
    m = torch.jit.load(str(tiny_rave_ts))
    with torch.no_grad():
        [p for n, p in m.named_parameters() if n.startswith("decoder") and p.numel() > 1][-1].fill_(float("nan"))
    torch.jit.save(m, str(tmp_path / "nan.ts"))
    sf.write(tmp_path / "tone.wav", 0.3 * np.sin(np.arange(22050) / 20), 44100)
    assert main(["render", "rave", "--model", str(tmp_path / "nan.ts"), "--in", str(tmp_path / "tone.wav"), "--out",
                 str(tmp_path / "o.wav")]) == 2  # fmt: skip
    err = capsys.readouterr().err
    assert "nan.ts: NaN/inf in its output (measuring its delay); the model weights are broken" in err, err
    assert not (tmp_path / "o.wav").exists()


@pytest.mark.parametrize("where", ["features", "probe"])
def test_a_bank_reading_features_its_sae_lacks_is_refused_by_render_and_live(
    tmp_path, tiny_rave_ts, tiny_model, tiny_sae_dir, where
):
    """A concept whose detector or meter probe names a feature beyond the SAE's d_sae (a hand-edited or mixed-up
    bank): render and live refuse it in one line (live crashed on its first block with an index error)."""
    from realtime.session import LiveConfig, build_live
    from sae.bank import ConceptProbe, ConceptSteer
    from sae.io import read_sae_cfg

    model, delay = tiny_model
    d_sae = int(read_sae_cfg(tiny_sae_dir)["d_sae"])
    b = ConceptBank(tmp_path / "concepts.yaml")
    detector = [ConceptFeature(d_sae if where == "features" else 3, 1.0, 2.0)]
    concept = Concept("bright", ModelRef.of_file(tiny_rave_ts), "latent", b.relative_sae(tiny_sae_dir), detector)
    concept.steer = ConceptSteer(0.02, [ConceptFeature(3, 1.0, 2.0)])
    concept.probe = ConceptProbe(-1.0, {3: 1.0, **({d_sae + 5: 2.0} if where == "probe" else {})})
    b.add(concept)
    b.save()
    wav = tmp_path / "in.wav"
    sf.write(wav, (0.1 * np.random.default_rng(0).standard_normal(8192)).astype(np.float32), model.sr)
    bad = d_sae if where == "features" else d_sae + 5
    for run in (
        lambda: render_file(wav, tmp_path / "x.wav", tiny_rave_ts, b.path, ["bright=off"], model=model, delay=delay),
        lambda: build_live(LiveConfig(tiny_rave_ts, bank=b.path, blocksize=2048, timing_s=0.1), model),
    ):
        with pytest.raises(
            UserError, match=rf"concept 'bright' feature {bad}: expected an index in \[0, {d_sae}\)"
        ) as e:
            run()
        assert str(e.value).startswith(f"concept bank {b.path}: ")  # which file to fix (hunt 77)
    assert not (tmp_path / "x.wav").exists()


def test_a_stereo_model_renders_stereo(tmp_path, tiny_stereo_rave_ts):
    """A two-channel RAVE: a stereo file renders stereo (it was mixed to mono and the model's two outputs averaged),
    a mono file plays on both sides (said in a note); a mono array (the judge, fidelity and listening renders) still
    comes back mono, the mean of the two sides, as before."""
    from realtime.rave import RaveModel
    from realtime.render_rave import model_delay

    torch.set_num_threads(1)
    model = RaveModel.load(tiny_stereo_rave_ts)
    delay = model_delay(model)
    t = np.arange(44100) / 44100
    x = np.stack([0.3 * np.sin(2 * np.pi * 220 * t), 0.2 * np.sin(2 * np.pi * 330 * t)], axis=1).astype(np.float32)
    wide = tmp_path / "wide.wav"
    sf.write(wide, x, 44100, subtype="FLOAT")
    report = render_file(wide, tmp_path / "out.wav", tiny_stereo_rave_ts, None, [], model=model, delay=delay)
    assert report.notes == []
    y = sf.read(tmp_path / "out.wav", dtype="float32")[0]
    assert y.shape == x.shape
    stream = RaveStream(model)
    both = render_array(stream, x, delay=delay)
    assert both.shape == x.shape and np.abs(both[:, 0] - both[:, 1]).max() > 1e-2 * np.abs(both).max()
    swapped = render_array(stream, x[:, ::-1], delay=delay)
    assert not np.array_equal(swapped, both)  # the model heard each side (a mono mix is the same both ways round)
    narrow = tmp_path / "narrow.wav"
    sf.write(narrow, x[:, 0], 44100, subtype="FLOAT")
    report = render_file(narrow, tmp_path / "out1.wav", tiny_stereo_rave_ts, None, [], model=model, delay=delay)
    assert report.notes == [f"played mono {narrow} on both channels of the stereo model"]
    assert sf.read(tmp_path / "out1.wav", dtype="float32")[0].shape == x.shape
    mono = render_array(stream, x[:, 0], delay=delay)
    assert mono.shape == (len(x),)
    np.testing.assert_allclose(mono, render_array(stream, np.repeat(x[:, :1], 2, 1), delay=delay).mean(1), atol=1e-7)


def test_a_bank_of_two_saes_says_which_concepts_use_which_and_how_each_command_picks(
    tmp_path, tiny_rave_ts, tiny_model, tiny_sae_dir
):
    """`eval steering` told the user to pass --sae, an option it does not have; `render rave --sae X` then refused
    the other SAE's concepts; a concept whose SAE folder was gone got the same hint instead of the cause."""
    import shutil

    from realtime.render_rave import load_steering

    model, _ = tiny_model
    for name in ("a", "b"):
        shutil.copytree(tiny_sae_dir, tmp_path / name)
    b = ConceptBank(tmp_path / "two.yaml")
    for name, sae in (("bright", "a"), ("dark", "b")):
        b.add(Concept(name, ModelRef.of_file(tiny_rave_ts), "latent", sae, [ConceptFeature(3, 1.0, 2.0)]))
    b.save()
    with pytest.raises(UserError, match=r"use 2 different SAEs \(bright with .*/a; dark with .*/b\); choose one with"):
        load_steering(b.path, model)
    with pytest.raises(UserError, match=r"; judge the concepts of one with --concepts$"):
        load_steering(b.path, model, choose="judge the concepts of one with --concepts")
    assert list(load_steering(b.path, model, tmp_path / "b").concepts) == ["dark"]  # --sae: that SAE's concepts
    shutil.copytree(tiny_sae_dir, tmp_path / "c")
    with pytest.raises(UserError, match=r"--sae .*/c: no concept of .*two\.yaml was found with it \(bright with"):
        load_steering(b.path, model, tmp_path / "c")
    assert list(load_steering(b.path, model, names=["bright"]).concepts) == ["bright"]
    shutil.rmtree(tmp_path / "b")
    with pytest.raises(UserError, match=r"concept 'dark' in .*two\.yaml: its SAE .*/b \(sae: .*\) does not exist; "):
        load_steering(b.path, model)


def test_a_copy_of_the_sae_or_a_moved_bank_still_finds_its_concepts(tmp_path, tiny_rave_ts, tiny_model, tiny_sae_dir):
    """`live --sae COPY` and `export nn --sae COPY` refused a byte-identical copy ('no concept of the bank was found
    with this SAE'), and a bank moved away from its SAE said 'no sae_weights.safetensors' of a folder that is not
    there, with --sae refused as well: every route was a dead end but editing the YAML."""
    import shutil

    from realtime.render_rave import load_steering
    from realtime.session import LiveConfig, build_live
    from sae.io import sae_weights_sha256

    model, _ = tiny_model
    shutil.copytree(tiny_sae_dir, tmp_path / "sae")
    b = ConceptBank(tmp_path / "concepts.yaml")
    c = Concept("bright", ModelRef.of_file(tiny_rave_ts), "latent", "sae", [ConceptFeature(3, 1.0, 2.0)])
    c.sae_sha256 = sae_weights_sha256(tmp_path / "sae")
    b.add(c)
    b.save()
    shutil.copytree(tmp_path / "sae", tmp_path / "copy")
    assert list(load_steering(b.path, model, tmp_path / "copy").concepts) == ["bright"]
    build_live(LiveConfig(tiny_rave_ts, bank=b.path, sae=tmp_path / "copy", **QUICK_BLOCK), model).engine.close()
    (tmp_path / "moved").mkdir()
    shutil.copy(b.path, tmp_path / "moved" / "concepts.yaml")
    # the bank names its concept, what its sae: line says and the ways out (hunt 214: "SAE .../sae: no such folder")
    moved = tmp_path / "moved"
    said = (f"concept 'bright' in {moved / 'concepts.yaml'}: its SAE {moved / 'sae'} (sae: sae) does not exist; "
            "pass --sae DIR (a folder of the same weights), or fix the bank's sae: line")  # fmt: skip
    with pytest.raises(UserError) as refused:
        build_live(LiveConfig(tiny_rave_ts, bank=tmp_path / "moved" / "concepts.yaml"), model)
    assert str(refused.value) == said
    with pytest.raises(UserError) as refused:  # render rave and export nn, as live
        load_steering(tmp_path / "moved" / "concepts.yaml", model)
    assert str(refused.value) == said
    build_live(
        LiveConfig(tiny_rave_ts, bank=tmp_path / "moved" / "concepts.yaml", sae=tmp_path / "sae", **QUICK_BLOCK), model
    ).engine.close()


def test_a_render_the_writer_had_to_clip_says_how_much(tmp_path, tiny_rave_ts, tiny_model, concept_data, bank):
    """`--set bright=on:100` clipped a large share of the render at full scale, with no word."""
    from realtime.audio_files import clipping_note

    model, delay = tiny_model
    clip = sorted((concept_data / "clips").iterdir())[0]
    report = render_file(clip, tmp_path / "loud.wav", tiny_rave_ts, bank, ["bright=on:100"], model=model, delay=delay)
    said = [n for n in report.notes if "past full scale and clipped" in n]
    assert len(said) == 1 and said[0].startswith("loud.wav: "), report.notes
    report = render_file(clip, tmp_path / "plain.wav", tiny_rave_ts, None, [], model=model, delay=delay)
    assert not any("clipped" in n for n in report.notes)
    assert clipping_note("x.wav", np.array([0.5, -1.0, 1.5, -2.0])) == (
        "x.wav: 50.0 % of its samples were past full scale and clipped (lower the strength or gain)"
    )
    assert clipping_note("x.wav", np.full(2000, 0.9)) is None and clipping_note("x.wav", np.zeros(0)) is None
    # hunt 92: a bypassed float file peaking at 1.5 was told to lower a strength it never had
    loud = clipping_note("x.wav", np.array([0.5, -1.0, 1.5, -2.0]), source_peak=1.5)
    assert loud is not None and loud.endswith("(the input is past full scale too: normalise it)"), loud


def test_a_render_names_the_bank_defaults_it_does_not_apply(tmp_path, tiny_rave_ts, tiny_model, concept_data, bank):
    """`bright` starts `off` in live and the nn~ export (its bank default); a render without `--set bright=...` played
    it unedited without a word, so the 'same bank' gave other audio."""
    model, delay = tiny_model
    clip = sorted((concept_data / "clips").iterdir())[0]
    report = render_file(clip, tmp_path / "plain.wav", tiny_rave_ts, bank, [], model=model, delay=delay)
    assert ("not applied, the bank's defaults (live and nn~ start with them; a render edits only what --set names): "
            "bright=off; --set bright=off hears them") in report.notes  # fmt: skip
    report = render_file(clip, tmp_path / "on.wav", tiny_rave_ts, bank, ["bright=on:2"], model=model, delay=delay)
    assert not any("not applied" in n for n in report.notes)


def test_paths_with_square_brackets_are_printed_as_they_are(tmp_path, tiny_rave_ts, concept_data, capsys):
    """rich read them as markup: `song [live].wav` was said as `song .wav`, and a `take[/b].wav` ended in a
    MarkupError traceback after the render was written (`render rave`, `collect rave`)."""
    x, _ = sf.read(sorted((concept_data / "clips").iterdir())[2], dtype="float32")
    (tmp_path / "take[").mkdir()
    for name in ("song [live].wav", "take[/b].wav"):
        sf.write(tmp_path / name, x[::2], 22050)  # resampled: a note names the file
        out = tmp_path / f"out {name.replace('/', '_')}"
        assert (
            main(["render", "rave", "--in", str(tmp_path / name), "--out", str(out), "--model", str(tiny_rave_ts)]) == 0
        )
        said = " ".join("".join(capsys.readouterr()).split())
        assert f"resampled {tmp_path / name}" in said and str(out) in said, said
    folder = tmp_path / "clips"
    (folder / "intro [dry]" / "a[").mkdir(parents=True)
    sf.write(folder / "intro [dry]" / "a[/i].wav", np.zeros(44100, np.float32), 44100)  # silent: skipped, named
    sf.write(folder / "good.wav", x, 44100)
    argv = ["collect", "rave", "--model", str(tiny_rave_ts), "--audio", str(folder), "--out", str(tmp_path / "store")]
    assert main(argv) == 0
    assert "intro [dry]/a[/i].wav" in " ".join("".join(capsys.readouterr()).split())


def test_notes_and_spinners_show_bracketed_names_as_written(tmp_path, capsys):
    """The dashboard's notes came out as `[yellow]… take \\[live].wav` on the markup-free console, and a spinner read
    its text as markup whatever the console: `collect musicgen --model 'take[/b]'` was a MarkupError traceback."""
    import io

    from training.cli.quiet import output_console
    from training.dashboard.site import DashboardBuilder

    builder = object.__new__(DashboardBuilder)
    builder.warnings, builder.console = [], output_console()
    builder.console.file = io.StringIO()
    builder._note("audio clips/take [live].wav: missing; its snippets are skipped")
    assert builder.console.file.getvalue() == "audio clips/take [live].wav: missing; its snippets are skipped\n"
    model = tmp_path / "take[" / "b]"
    model.mkdir(parents=True)
    (tmp_path / "clips").mkdir()
    sf.write(tmp_path / "clips" / "a.wav", np.zeros(32000, np.float32), 32000)
    argv = [
        "collect",
        "musicgen",
        "--model",
        str(model),
        "--audio",
        str(tmp_path / "clips"),
        "--out",
        str(tmp_path / "s"),
    ]
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert str(model) in err and "Traceback" not in err and "\n" not in err, err


def test_a_long_render_holds_its_audio_about_twice_not_ten_times():
    """Hunt 170: `render rave` held a file several times over (its input padded, every output block in a list and
    their concatenation): about 2.4 MB per second of audio, 9 GB for an hour. Measured in a fresh process as the
    growth of its peak memory over a render of two minutes, against the input's own size."""
    import subprocess
    import sys
    import textwrap
    from pathlib import Path

    root = Path(__file__).resolve().parents[2]
    script = textwrap.dedent(
        f"""
        import resource
        import numpy as np
        import torch
        from realtime.rave import RaveModel
        from realtime.render_rave import RaveStream, model_delay, render_array
        torch.set_num_threads(1)
        m = RaveModel.load({str(root / "training/assets/demo_rave.ts")!r})
        delay = model_delay(m)
        x = (0.2 * np.sin(2 * np.pi * 220 * np.arange(120 * m.sr) / m.sr)).astype(np.float32)
        stream = RaveStream(m)
        render_array(stream, x[: 5 * m.sr], delay=delay)  # the allocator's own pools, before the measure
        before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        y = render_array(stream, x, delay=delay)
        print((resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before) * 1024 / x.nbytes, y.shape == x.shape)
        """
    )
    run = subprocess.run([sys.executable, "-c", script], cwd=root, capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stderr
    growth, same = run.stdout.split()
    assert same == "True" and float(growth) < 4.0, f"peak memory grew {float(growth):.1f} times the input's size"


def test_the_latent_shift_baseline_is_gated_as_the_edits_are(tiny_model, concept_data):
    """Hunt 212: the judge's raw-latent baseline could paint sound onto silence unseen while the SAE edits it is
    compared with were gated: unequal terms."""
    model, delay = tiny_model
    x = sf.read(sorted((concept_data / "clips").iterdir())[0], dtype="float32")[0][:16384]
    audio = np.concatenate([np.zeros(32768, np.float32), x])
    quiet = slice(0, 32768 - 4096)
    stream = RaveStream(model)
    plain = render_array(stream, audio, delay=delay)
    moved = render_array(stream, audio, delay=delay, shift=torch.full((model.latent_size,), 2.0))
    assert np.array_equal(moved[quiet], plain[quiet])  # no sound painted onto silence
    assert np.abs(moved[32768:] - plain[32768:]).max() > 1e-3
