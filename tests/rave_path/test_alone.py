"""A concept's detector of playing alone: fitted by `concept find --alone`, kept in the bank, and `off` silencing
the frames it calls alone in renders (the live engine's take is in tests/realtime/test_engine.py)."""

from __future__ import annotations

import dataclasses
import os
import re
import shutil

import numpy as np
import pytest
import soundfile as sf
import torch
import yaml

from realtime.audio_files import AudioNotes, read_clip
from realtime.render_rave import RaveStream, load_steering, render_array
from sae.alone import AloneDetector, memory_rows
from sae.bank import ConceptAlone, ConceptBank
from sae.errors import UserError
from sae.steering import Gate
from training.cli import main
from training.rave.collect import activations_of


def _find(data, model, sae, bank, *extra):
    return main(
        ["concept", "find", "guitar", "--with", str(data / "concepts/guitar/with"), "--without",
         str(data / "concepts/guitar/without"), "--model", str(model), "--sae", str(sae), "--bank", str(bank), *extra]
    )  # fmt: skip


def _folder(tmp_path, name, files):
    """A folder of links to `files`, as `data make` writes them."""
    folder = tmp_path / name
    folder.mkdir()
    for p in files:
        os.symlink(p.resolve(), folder / p.name)
    return folder


@pytest.fixture(scope="module")
def found(tmp_path_factory, tiny_rave_ts, concept_data, tiny_sae_dir, noise_bursts):
    """A bank whose guitar was found with 6 clips of noise bursts as the clips of it alone."""
    tmp = tmp_path_factory.mktemp("alone")
    solos = noise_bursts(tmp / "alone", 6)
    bank = tmp / "concepts.yaml"
    assert _find(concept_data, tiny_rave_ts, tiny_sae_dir, bank, "--alone", str(solos), "--alone-memory", "0.5") == 0
    return bank


def test_find_writes_a_detector_that_tells_the_alone_clips_apart(
    tmp_path, found, concept_data, tiny_model, noise_bursts
):
    """On the tiny untrained model the detector is weak (its latents carry little), but it ranks clips it never
    heard: new bursts above held-out clips without them."""
    c = ConceptBank.load(found).get("guitar")
    a = c.alone
    assert a is not None and a.memory_s == 0.5 and 0.0 <= a.threshold <= 1.0 and 0.6 < a.auroc <= 1.0
    assert len(a.coef) == 64 and len(a.silence) == 16  # the SAE's features, the latent's width
    model, _ = tiny_model
    sae = load_steering(found, model).sae

    def p_alone(path):
        audio = read_clip(path, model.sr, AudioNotes())
        z = activations_of(model, audio, ["latent"], 1 << 30)["latent"]
        with torch.no_grad():
            m = memory_rows(sae.encode(z), model.ratio / model.sr, a.memory_s)
        return float(torch.sigmoid(a.intercept + m @ torch.tensor(a.coef, dtype=torch.float64)).mean())

    alone = [p_alone(p) for p in sorted(noise_bursts(tmp_path / "new", 4, seed=11).iterdir())]  # bursts it never heard
    others = [p_alone(p) for p in sorted((concept_data / "heldout/guitar/without").iterdir())[:6]]
    assert np.mean(alone) > np.mean(others), (alone, others)


def test_alone_refusals_leave_the_bank_untouched(tmp_path, found, concept_data, tiny_rave_ts, tiny_sae_dir, capsys):
    bank = tmp_path / "concepts.yaml"
    bank.write_text(found.read_text())  # refused before the bank is read for its SAE paths
    before = bank.read_text()
    capsys.readouterr()
    few = _folder(tmp_path, "few", sorted((concept_data / "concepts/guitar/with").iterdir())[:3])
    one = sorted((concept_data / "concepts/guitar/with").iterdir())[0]
    copies = tmp_path / "copies"  # one solo four times: not four solos, and held out it is no test
    copies.mkdir()
    for i in range(4):
        shutil.copy(one, copies / f"solo{i}.wav")
    one_source = tmp_path / "one_source"  # --groups prefix: every solo is source 'solo'
    one_source.mkdir()
    for i, p in enumerate(sorted((concept_data / "concepts/guitar/with").iterdir())[:4]):
        os.symlink(p.resolve(), one_source / f"solo_{i}.wav")
    for extra, needle in [
        (["--alone", str(few)], "--alone " + str(few) + ": 3 clips; expected at least 4"),
        (["--alone", str(copies)], f"--alone {copies}: 3 clip(s) are copies of (or links to) others there"),
        (["--alone", str(one_source), "--groups", "prefix"], "all 4 clips of it alone are one source ('solo'"),
        (["--alone", str(few), "--alone-memory", "0"], "> 0 and at most 60"),
        (["--alone", str(few), "--alone-memory", "1e308"], "> 0 and at most 60"),  # a detector that calls nothing
        (["--alone-memory", "2"], "--alone-memory: the memory of the --alone detector; pass --alone DIR too"),
    ]:
        try:
            code = _find(concept_data, tiny_rave_ts, tiny_sae_dir, bank, *extra)
        except SystemExit as stop:  # refused where the options are parsed
            code = stop.code
        err = capsys.readouterr().err.strip()
        assert code == 2, err
        assert needle in err and "\n" not in err and "Traceback" not in err
        assert bank.read_text() == before


def test_off_silences_what_the_detector_calls_alone_and_nothing_else(found, concept_data, tiny_model):
    """A detector that calls every frame alone makes `off` the model's silence, whatever the clip; one that calls
    none leaves `off` as it was, bit for bit; neither touches a render where the concept is not off."""
    model, delay = tiny_model
    steering = load_steering(found, model)
    a = steering.state.alone["guitar"]
    always = dataclasses.replace(a, intercept=50.0, coef=(0.0,) * len(a.coef))
    never = dataclasses.replace(a, intercept=-50.0, coef=(0.0,) * len(a.coef))
    off = steering.edit_for([("guitar", "off")])
    assert set(off.alone) == {"guitar"} and steering.edit_for([("guitar", "none")]).alone == {}
    clips = [sf.read(p, dtype="float32")[0] for p in sorted((concept_data / "concepts/guitar/with").iterdir())[:2]]

    def render(audio, edit):  # ungated: the gate's own weighting of the silence is the next test's
        return render_array(RaveStream(model), audio, steering.sae, edit, None, delay, 0, gate=Gate(enabled=False))

    plain_off = [render(x, dataclasses.replace(off, alone={})) for x in clips]
    silenced = [render(x, dataclasses.replace(off, alone={"guitar": always})) for x in clips]
    n = min(len(x) for x in clips)
    np.testing.assert_array_equal(silenced[0][:n], silenced[1][:n])  # nothing of either clip is left
    assert not np.array_equal(plain_off[0][:n], plain_off[1][:n])
    for x, y in zip(clips, plain_off, strict=True):
        np.testing.assert_array_equal(render(x, dataclasses.replace(off, alone={"guitar": never})), y)


def test_a_closed_gate_keeps_the_silence_off_as_it_keeps_every_edit_off(found, concept_data, tiny_model):
    """Hunt 170: the silence where an `off` concept plays alone took no gate: a render whose gate was shut on every
    frame (and whose note said the edit did nothing) came out 35 dB down, in render, live and nn~ alike. Now it is
    weighted per frame as the edit is: shut, the render is the plain one; half open, halfway."""
    from realtime.controls import Snapshot
    from realtime.processor import BlockProcessor
    from sae.alone import AloneSilence

    model, delay = tiny_model
    steering = load_steering(found, model)
    a = steering.state.alone["guitar"]
    always = {"guitar": dataclasses.replace(a, intercept=50.0, coef=(0.0,) * len(a.coef))}
    off = dataclasses.replace(steering.edit_for([("guitar", "off")]), alone=always)
    clip = sf.read(sorted((concept_data / "concepts/guitar/with").iterdir())[0], dtype="float32")[0]
    shut = Gate(lo_db=-0.1, hi_db=0.0)  # every frame of the clip below its low level: weight 0
    plain = render_array(RaveStream(model), clip, None, None, None, delay, 0)
    np.testing.assert_array_equal(render_array(RaveStream(model), clip, steering.sae, off, None, delay, 0, gate=shut),
                                  plain)  # fmt: skip
    assert not np.array_equal(render_array(RaveStream(model), clip, steering.sae, off, None, delay, 0), plain)
    outs = []
    for edit in (off, steering.edit_for([])):  # the live processor alike
        proc = BlockProcessor(model, steering.sae, 2048, channels=model.channels, gate=shut, alone=always)
        outs.append([proc.process(clip[k : k + 2048, None], Snapshot(edit, 1.0, False, k // 2048))
                     for k in range(0, len(clip) // 2048 * 2048, 2048)])  # fmt: skip
    np.testing.assert_allclose(np.concatenate(outs[0]), np.concatenate(outs[1]), atol=1e-6)  # steer's rounding
    silence = AloneSilence({"guitar": always["guitar"]})
    rows, f = torch.zeros(4, len(a.silence)), torch.rand(4, len(a.coef))
    half = silence.apply(rows, f, 1.0, ["guitar"], torch.tensor([[0.0], [0.5], [1.0], [0.0]]))
    target = torch.tensor(a.silence, dtype=torch.float32)
    torch.testing.assert_close(half, torch.stack([0 * target, 0.5 * target, target, 0 * target]))


def test_the_silence_comes_after_a_latent_shift_too(found, concept_data, tiny_model):
    """The judge's baseline shifts the latent; where the detector calls the concept alone, what plays is silence
    whatever the shift (the silence after the edit, as for the SAE's `off`)."""
    model, delay = tiny_model
    steering = load_steering(found, model)
    a = steering.state.alone["guitar"]
    always = {"guitar": dataclasses.replace(a, intercept=50.0, coef=(0.0,) * len(a.coef))}
    silent = dataclasses.replace(steering.edit_for([]), alone=always)
    clip = sf.read(sorted((concept_data / "concepts/guitar/with").iterdir())[0], dtype="float32")[0]
    d = torch.linspace(-1, 1, model.latent_size)

    def render(edit, shift):  # ungated (quiet frames take the shift and the silence by their gate weight)
        return render_array(RaveStream(model), clip, steering.sae, edit, None, delay, 0, shift=shift,
                            gate=Gate(enabled=False))  # fmt: skip

    np.testing.assert_array_equal(render(silent, -d), render(silent, 3 * d))
    assert not np.array_equal(render(None, -d), render(None, 3 * d))


def test_the_judge_gives_the_baseline_off_the_same_detector(tmp_path, found, concept_data, tiny_rave_ts, monkeypatch):
    """The detector of playing alone is not part of the steering edit: the mean-difference baseline's `off` is
    rendered with the bank's detector as the SAE's `off` is, its `on` with none, and the report says so."""
    import realtime.render_rave as render_rave
    from training.rave.judge import EvalConfig, evaluate_steering

    calls = []

    def spy(stream, audio, sae=None, edit=None, *args, shift=None, **kw):
        calls.append(("shift" if shift is not None else "sae", sorted(edit.alone) if edit is not None else []))
        return render_array(stream, audio, sae, edit, *args, shift=shift, **kw)

    monkeypatch.setattr(render_rave, "render_array", spy)
    cfg = EvalConfig(str(concept_data), str(tiny_rave_ts), str(found), str(tmp_path / "judge"), ("guitar",), (1.0,), 2)
    e = evaluate_steering(cfg)["concepts"]["guitar"]
    assert e["baseline"]["alone"] == "the bank's"
    shifted = [alone for arm, alone in calls if arm == "shift"]
    assert shifted == [["guitar"]] * 2 + [[]] * 2  # off on the 2 clips with guitar, then on on the 2 without
    assert [alone for arm, alone in calls if arm == "sae" and alone] == [["guitar"]] * 2  # the SAE's off alike


def test_the_memory_runs_across_blocks_as_one_sequence(found, concept_data, tiny_model):
    """The detector's memory is causal and carried from block to block: any block size renders the same."""
    model, delay = tiny_model
    steering = load_steering(found, model)
    a = steering.state.alone["guitar"]
    f = torch.rand(40, len(a.coef)) * 3
    whole = AloneDetector(a)(f, 0.01)
    parts = AloneDetector(a)
    assert torch.equal(torch.cat([parts(f[i : i + 7], 0.01) for i in range(0, 40, 7)]), whole)
    m = memory_rows(f, 0.01, a.memory_s)
    assert torch.allclose(m[-1], memory_rows(f[20:], 0.01, a.memory_s, m[19])[-1])
    # a detector that flips within the clip: renders at two block sizes agree
    p = torch.sigmoid(a.intercept + memory_rows(f, 0.01, a.memory_s) @ torch.tensor(a.coef, dtype=torch.float64))
    audio = sf.read(sorted((concept_data / "clips").iterdir())[5], dtype="float32")[0]
    edit = steering.edit_for([("guitar", "off")])
    mid = dataclasses.replace(edit, alone={"guitar": dataclasses.replace(a, threshold=float(p.median()))})
    blocks = (model.ratio, 4 * model.ratio)
    outs = [render_array(RaveStream(model), audio, steering.sae, mid, b, delay, 0) for b in blocks]
    np.testing.assert_allclose(outs[0], outs[1], atol=1e-5)


def test_a_detector_that_does_not_fit_the_sae_or_the_hook_is_refused_in_one_line(tmp_path, found, tiny_model):
    model, _ = tiny_model
    spec = yaml.safe_load(found.read_text())
    bad = tmp_path / "bad.yaml"
    for key, cut, needle in [
        ("coef", 3, "alone.coef has 3 numbers; expected the SAE's 64"),
        ("silence", 5, "alone.silence has 5 numbers; expected the hook's width 16"),
    ]:
        broken = yaml.safe_load(found.read_text())
        broken["concepts"]["guitar"]["alone"][key] = broken["concepts"]["guitar"]["alone"][key][:cut]
        broken["concepts"]["guitar"]["sae"] = str((found.parent / spec["concepts"]["guitar"]["sae"]).resolve())
        bad.write_text(yaml.safe_dump(broken))
        with pytest.raises(UserError) as err:
            load_steering(bad, model)
        assert needle in str(err.value) and "\n" not in str(err.value)
        assert str(err.value).startswith(f"concept bank {bad}: ")


@pytest.mark.parametrize(
    "change, needle",
    [
        ({"memory_s": 0}, "alone.memory_s 0; expected seconds > 0"),
        ({"threshold": 2}, "alone.threshold: 2; expected a finite number in [0.0, 1.0]"),
        ({"coef": []}, "alone.coef must be a non-empty list of numbers"),
        ({"silence": None}, "alone.silence must be a non-empty list of numbers"),
        ({"extra": 1}, "alone must be {memory_s, intercept, coef, threshold, silence[, auroc]}"),
    ],
)
def test_a_bad_alone_block_is_named_in_one_line(tmp_path, found, change, needle):
    spec = yaml.safe_load(found.read_text())
    spec["concepts"]["guitar"]["alone"].update(change)
    bad = tmp_path / "bad.yaml"
    bad.write_text(yaml.safe_dump(spec))
    with pytest.raises(UserError) as err:
        ConceptBank.load(bad)
    assert needle in str(err.value) and "\n" not in str(err.value)


def test_the_bank_keeps_the_detector_as_it_was_found(tmp_path, found):
    bank = ConceptBank.load(found)
    a = bank.get("guitar").alone
    assert isinstance(a, ConceptAlone)
    copy = ConceptBank(tmp_path / "copy.yaml")
    copy.add(bank.get("guitar"))
    copy.save()
    assert ConceptBank.load(copy.path).get("guitar").alone == a


def test_the_nn_export_carries_the_detector(tmp_path, found, tiny_rave_ts):
    """The nn~ file holds the detector (its forward is checked against the engine in tests/nn/test_nn_perform.py)."""
    from training.rave.nn_export import NnExportConfig, export_nn, read_metadata

    out = export_nn(NnExportConfig(tiny_rave_ts, found, tmp_path / "x.ts"), say=lambda _: None).out
    assert [c["alone"] for c in read_metadata(out)["concepts"]] == [True]
    a = ConceptBank.load(found).get("guitar").alone
    m = torch.jit.load(str(out))
    assert torch.equal(m.alone_coef[0], torch.tensor(a.coef, dtype=torch.float64))
    assert float(m.alone_threshold[0]) == a.threshold and torch.equal(m.alone_silence[0], torch.tensor(a.silence))


def test_concept_list_says_off_silences_it_alone(found, capsys):
    assert main(["concept", "list", "--bank", str(found)]) == 0
    assert "silences" in capsys.readouterr().out  # "off silences it alone", wrapped in its table cell


def test_each_concept_switched_off_puts_its_own_silence_where_it_plays_alone():
    """Two concepts `off` with detectors whose silences differ (a hand-edited or merged bank): the engine put the
    first concept's silence on every frame any of them called alone, the nn~ module each concept's own (hunt 77:
    0.13 apart on the demo model). Both now go in bank order, a later concept's silence over an earlier one's."""
    from sae.alone import AloneSilence

    def alone(intercept: float, silence: float) -> ConceptAlone:
        return ConceptAlone(memory_s=1.0, intercept=intercept, coef=(0.0,) * 4, threshold=0.5, silence=(silence,) * 3)

    never, always = alone(-10.0, 1.0), alone(10.0, 2.0)
    rows, f = torch.zeros(5, 3), torch.rand(5, 4)
    assert torch.equal(AloneSilence({"guitar": never, "drums": always}).apply(rows, f, 1.0, ["guitar", "drums"]),
                       torch.full((5, 3), 2.0))  # fmt: skip
    both = AloneSilence({"guitar": alone(10.0, 1.0), "drums": always})
    assert torch.equal(both.apply(rows, f, 1.0, ["drums", "guitar"]), torch.full((5, 3), 2.0))  # bank order
    assert AloneSilence({"guitar": never, "drums": always}).apply(rows, f, 1.0, ["guitar"]) is rows


def test_a_render_puts_the_silences_in_bank_order_whatever_the_set_order(tmp_path, found, tiny_model):
    """`render rave --set drums=off --set guitar=off` built its edits in `--set` order, so where both play alone the
    first-named concept's silence won in the render and the last one in the bank's (live play, nn~)."""
    model, _ = tiny_model
    bank = ConceptBank.load(found)
    guitar = bank.get("guitar")
    silence = tuple(x + 1.0 for x in guitar.alone.silence)
    drums = dataclasses.replace(guitar, name="drums", alone=dataclasses.replace(guitar.alone, silence=silence))
    copy = ConceptBank(tmp_path / "two.yaml")
    copy.add(dataclasses.replace(guitar, sae=str(bank.sae_dir(guitar))))
    copy.add(dataclasses.replace(drums, sae=str(bank.sae_dir(guitar))))
    copy.save()
    steering = load_steering(copy.path, model, names=["drums", "guitar"])
    assert list(steering.edit_for([("drums", "off"), ("guitar", "off")]).alone) == ["guitar", "drums"]


def test_the_threshold_calls_at_most_its_share_of_the_other_frames_alone_as_the_detector_computes_them():
    """The threshold was read off sklearn's probabilities, which round differently from the detector's sigmoid: the
    other frame at the threshold came out above it, one more than the 1 % allowed (7 of 40 draws here; hunt 82)."""
    from sae.alone import FALSE_ALARMS, fit_alone

    over = []
    for seed in range(40):
        rng = np.random.default_rng(seed)
        X, Xv = rng.standard_normal((400, 6)), rng.standard_normal((700, 6))
        y, yv = ((v[:, 0] + 0.5 * rng.standard_normal(len(v)) > 1).astype(int) for v in (X, Xv))
        intercept, coef, threshold, _ = fit_alone(X, y, Xv, yv, 0)
        # as the bank keeps it (hunt 111: rounded to 6 digits, it called more than the fit allowed)
        kept = yaml.safe_load(yaml.safe_dump(ConceptAlone(1.0, intercept, tuple(coef), threshold, (0.0,)).to_dict()))
        for b, w, t in ((intercept, coef, threshold), (kept["intercept"], np.array(kept["coef"]), kept["threshold"])):
            p = torch.sigmoid(b + torch.from_numpy(Xv[yv == 0]) @ torch.from_numpy(w))
            if int((p > t).sum()) > int(np.floor(FALSE_ALARMS * len(p))):
                over.append(seed)
    assert over == []


def test_the_held_out_figures_count_sources_where_the_fold_kept_them_whole():
    """Hunt 196: with --groups the fold holds out whole sources, and 3 held-out solo clips of one recording were
    counted as 3 units (no "only" note, an interval too narrow)."""
    from training.rave.alone import held_out_fold, held_units

    y = np.r_[np.ones(6), np.zeros(12)].astype(int)
    groups = ["solo_a"] * 3 + ["solo_b"] * 3 + [f"other{i // 2}" for i in range(12)]
    _, val = held_out_fold(y, 0, groups)
    solo, other, unit = held_units(y, val, groups)
    assert unit == "source" and solo == 1 and int(y[val].sum()) == 3 and other == len({groups[i] for i in val} - {
        "solo_a", "solo_b"})  # fmt: skip
    assert held_units(y, val, None) == (3, len(val) - 3, "clip")


def test_the_detector_is_chosen_on_a_fold_that_holds_solos_out():
    """Sources of solos and of other clips (`--groups subfolder`) where the first fold holds no solo out: the
    validation AUROC needs both classes (it was a traceback after the whole search)."""
    from sae.probe import _folds
    from training.rave.alone import held_out_fold

    solos = [f"s{g}" for g, n in enumerate((3, 1, 1, 2)) for _ in range(n)]
    others = [f"s{g}" for g, n in enumerate((8, 4, 3, 5, 10, 11, 2)) for _ in range(n)]
    y = np.r_[np.ones(len(solos)), np.zeros(len(others))].astype(int)
    groups = np.array(solos + others)
    assert y[_folds(y, 4, 0, groups)[0][1]].sum() == 0  # the first fold: no solo held out
    fit, val = held_out_fold(y, 0, groups)
    assert set(y[fit]) == set(y[val]) == {0, 1} and not set(groups[fit]) & set(groups[val])


def test_a_folder_of_solos_counts_its_audio_files_only(tmp_path, noise_bursts):
    """`demo` and `eval hooks` pass a concept's alone folder on only where it holds enough to fit a detector: a
    .DS_Store or a text file is no solo."""
    from training.rave.alone import alone_folder

    folder = noise_bursts(tmp_path / "alone", 3)
    (folder / ".DS_Store").write_bytes(b"\0" * 64)
    (folder / "notes.txt").write_text("three solos")
    assert alone_folder(folder) is None
    noise_bursts(tmp_path / "more", 1, seed=5)
    shutil.copy(next((tmp_path / "more").iterdir()), folder / "burst_more.wav")
    assert alone_folder(folder) == str(folder)
    assert alone_folder(tmp_path / "nothing") is None


def test_a_folder_of_solos_that_cannot_be_listed_is_an_error_not_no_solos(tmp_path, monkeypatch):
    """Hunt 68: any UserError of the listing read as "no solos", so a folder of solos that could not be listed
    (permissions) left the concept without its detector of playing alone, and nothing said so."""
    from sae.errors import UserError
    from training.rave.alone import alone_folder

    folder = tmp_path / "alone"
    folder.mkdir()
    assert alone_folder(folder) is None  # no audio yet: no detector, as before

    def walk(root, onerror, followlinks):  # what os.walk does where root cannot be listed (root ignores chmod)
        onerror(PermissionError(13, "Permission denied", str(root)))
        return iter(())

    monkeypatch.setattr(os, "walk", walk)
    with pytest.raises(UserError, match=r"--alone folder .*: cannot list .* \(permission denied\)"):
        alone_folder(folder)


def test_the_detector_is_fitted_at_the_rows_rate_it_runs_at(
    tmp_path, concept_data, tiny_rave_ts, tiny_sae_dir, tiny_model, noise_bursts, monkeypatch, capsys
):
    """The fit's memory ran at 2 s / the rows of 2 s of silence, where renders and the engine run it at ratio / sr a
    latent row: 2 s of the tiny model (44.1 kHz, ratio 512) are 172.3 frames, padded to 173, so the fitted detector
    remembered 0.4 % longer than the one that plays."""
    import training.rave.alone as fitting

    rates = []
    monkeypatch.setattr(fitting, "memory_rows", lambda f, s, *a: [rates.append(s), memory_rows(f, s, *a)][1])
    solos = noise_bursts(tmp_path / "alone", 4)
    assert _find(concept_data, tiny_rave_ts, tiny_sae_dir, tmp_path / "b.yaml", "--alone", str(solos)) == 0
    model, _ = tiny_model
    assert rates and all(s == pytest.approx(model.ratio / model.sr, rel=1e-12) for s in rates), rates[:3]
    # hunt 193: its held-out figures rested on the one solo clip of 4 held out, unsaid, with no interval
    line = " ".join(next(ln for ln in capsys.readouterr().out.split("\n\n") if "alone: a detector" in ln).split())
    m = re.search(r"held-out clips \((\d+) alone\) AUROC ([\d.]+) \[([\d.]+), ([\d.]+)\] \(95 % interval over clips\)",
                  line)  # fmt: skip
    assert m and m[1] == "1" and float(m[3]) <= float(m[2]) <= float(m[4]) and float(m[4]) - float(m[3]) > 0.1, line
    assert "only 1 clip(s) of it alone held out: the figures rest on them" in line
