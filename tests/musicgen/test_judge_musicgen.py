"""The outside judge on MusicGen renders: same prompts and seeds, no edit vs off vs on."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from realtime.musicgen import load_musicgen
from sae.bank import Concept, ConceptBank, ConceptFeature, ModelRef, edit_sha256
from sae.errors import UserError
from sae.io import sae_weights_sha256, save_sae
from sae.model import SAEConfig, SparseAutoencoder
from training.data.concept_clips import DataConfig, make_dataset
from training.musicgen.judge import MusicGenEvalConfig, evaluate_musicgen


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    out = tmp_path_factory.mktemp("judge_data")
    make_dataset(out, DataConfig(n=16, seed=0, duration=1.0, sample_rate=32000), concepts=["piano", "drums"])
    return out


def _bank(root, mg, sha=None, extra=()):
    save_sae(SparseAutoencoder(SAEConfig(d_in=mg.dim, d_sae=64, k=8)), root / "sae")
    bank = ConceptBank(root / "bank.yaml")
    ref = mg.model_ref()
    for name, feats in (("piano", [1, 2]), ("drums", [3]), *extra):
        bank.add(
            Concept(
                name,
                ModelRef(ref["name"], sha or ref["sha256"]),
                mg.hook_name(1),
                "sae",
                [ConceptFeature(i, 1.0, 8.0) for i in feats],
                sae_sha256=sae_weights_sha256(root / "sae"),
            )
        )
    return bank.save()


def test_on_strength_defaults_to_what_the_experiment_chose_for_the_rows_edited(tmp_path, data, audiocraft_dir,
                                                                               monkeypatch, capsys):  # fmt: skip
    """Hunt 191: `eval musicgen` judged `on` at strength 1 by default while its own help said edits of the conditional
    rows (the default) want about 0.25-0.5 (guidance multiplies them by 3): 0.5 there, 1 on both rows."""
    import dataclasses

    from training.cli import main
    from training.musicgen import judge

    seen = []

    def stop(cfg, *args):
        seen.append((cfg.on_strength, cfg.edit_rows))
        raise UserError("stop here")

    monkeypatch.setattr(judge, "evaluate_musicgen", stop)
    argv = ["eval", "musicgen", "--data", str(data), "--model", str(audiocraft_dir), "--bank", "b.yaml", "--out",
            str(tmp_path / "out"), "--duration", "0.5"]  # fmt: skip
    for extra in ([], ["--edit-rows", "both"], ["--strength", "2"]):
        assert main([*argv, *extra]) == 2 and "stop here" in capsys.readouterr().err
    assert seen == [(0.5, "cond"), (1.0, "both"), (2.0, "cond")]
    cfg = MusicGenEvalConfig("d", "m", "b", "o", ("rock",))  # the API as the command line
    assert (cfg.on_strength, dataclasses.replace(cfg, edit_rows="both").on_strength) == (0.5, 1.0)


@pytest.mark.slow
def test_judge_reports_detection_with_and_without_edits(tmp_path, data, audiocraft_dir, capsys):
    from training.cli import main
    from training.musicgen import experiment

    mg = load_musicgen(audiocraft_dir)
    bank = _bank(tmp_path, mg, extra=[("bright", [5])])  # bright: no manifest label
    (tmp_path / "prompts.txt").write_text("jazz piano\n")
    out = tmp_path / "out"
    argv = ["--data", str(data), "--model", str(audiocraft_dir), "--bank", str(bank), "--out", str(out)]
    assert main(["eval", "musicgen", *argv, "--prompts", str(tmp_path / "prompts.txt"), "--duration", "0.5",
                 "--strength", "0.25"]) == 0  # fmt: skip
    said = capsys.readouterr()
    assert "2 renders, on strengths 0.25" in said.out  # was "2 held-out clips, on strengths 1"
    caption = " ".join(said.out.split())  # what with / without are (it said: held-out clips with or without it)
    assert "with / without: every render (each prompt × seed, whether its prompt names the concept" in caption
    assert "held-out clips with or without" not in caption
    # hunt 167: eval musicgen held MusicGen's edits to RAVE's rise goal (50), the experiment to MusicGen's (30)
    assert "drop and rise of at least 50 / 30 points and drift under 10" in caption
    lines = said.out.splitlines()  # where the listening examples are, one whole line
    assert (
        f"wrote listening examples to {out / 'listen'} (plain | off | on per prompt and seed; the dashboard's "
        f"concept pages with --eval-dir {out})" in lines
    ), said.out
    saved = json.loads((tmp_path / "out" / "judge.json").read_text())
    assert saved["concepts"].keys() == {"piano", "drums"} and saved["goals"] == experiment.GOALS
    # a bank concept the manifest cannot judge is named, not left out without a word
    assert "not judged: bright (no label of that name in the data manifest)" in saved["notes"]
    assert "note: not judged: bright (no label of that name in the data manifest)" in lines
    assert (tmp_path / "out" / "judge.png").stat().st_size > 0
    assert saved["model"]["sha256"] == mg.model_ref()["sha256"] and saved["held_out_clips"] == 2
    # hunt 172: which guidance rows were edited and the seeds were not recorded
    assert (saved["edit_rows"], saved["seed"], saved["renders_per_prompt"]) == ("cond", 0, 2)
    for name, e in saved["concepts"].items():
        for rate in (e["none"]["with"], e["off"]["with"], e["on"]["without"]):
            assert rate in (0.0, 50.0, 100.0)  # two renders
        assert e["off_drop"] == e["none"]["with"] - e["off"]["with"]
        assert e["sae_sha256"] == sae_weights_sha256(tmp_path / "sae")  # what the dashboard matches the bank by
        assert e["edit_sha256"] == edit_sha256(ConceptBank.load(bank).get(name))  # and the edit it judged
        other = "drums" if name == "piano" else "piano"
        assert set(e["drift"]["off"]) == {other}
    _check_listening_examples(tmp_path / "out", saved, mg.sample_rate)


def _check_listening_examples(out, saved, sr):
    """Both renders per concept are kept (plain | off | on, what the judge heard), with the judge's call on each
    file: over the two rows the calls give the judge's own rates."""
    import numpy as np
    import soundfile as sf

    listen = json.loads((out / saved["listen"]).read_text())
    assert listen["concepts"].keys() == saved["concepts"].keys() and listen["sample_rate"] == sr
    for name, e in saved["concepts"].items():
        rows = listen["concepts"][name]["rows"]
        assert [(r["prompt"], r["seed"]) for r in rows] == [("jazz piano", 0), ("jazz piano", 1)]
        audio = {}
        for kind in ("plain", "off", "on"):
            audio[kind] = [sf.read(out / "listen" / r["files"][kind])[0] for r in rows]
            assert all(a.ndim == 1 and len(a) == len(audio["plain"][0]) > 0.4 * sr for a in audio[kind])
        assert not np.array_equal(audio["plain"][0], audio["on"][0])  # the edit is heard, on the same prompt/seed
        heard = {k: 100.0 * np.mean([r["heard"][k] for r in rows]) for k in ("plain", "off", "on")}
        assert (heard["plain"], heard["off"], heard["on"]) == (e["none"]["with"], e["off"]["with"], e["on"]["without"])


def test_bank_of_another_model_writes_nothing(tmp_path, data, audiocraft_dir):
    mg = load_musicgen(audiocraft_dir)
    bank = _bank(tmp_path, mg, sha="cd" * 32)
    cfg = MusicGenEvalConfig(
        str(data), str(audiocraft_dir), str(bank), str(tmp_path / "out"), ("rock",), concepts=("piano",)
    )
    with pytest.raises(UserError, match="belongs to model"):
        evaluate_musicgen(cfg)
    assert not (tmp_path / "out").exists()


def test_a_duration_the_model_cannot_render_is_refused_before_the_judge_trains(tmp_path, data, audiocraft_dir):
    """Hunt 78: --duration 60 (or 0.001) was refused only after the judge had trained on every train clip."""
    import dataclasses

    import training.musicgen.judge as judge

    mg = load_musicgen(audiocraft_dir)
    cfg = MusicGenEvalConfig(str(data), str(audiocraft_dir), str(_bank(tmp_path, mg)), str(tmp_path / "out"),
                             ("rock",), concepts=("piano",))  # fmt: skip
    for duration, needle in ((60.0, "this model generates at most"), (0.001, "expected at least one frame"),
                             (1e308, "a finite number of seconds")):  # fmt: skip  # 1e308: OverflowError (hunt 172)
        with pytest.raises(UserError, match=needle), pytest.MonkeyPatch.context() as m:
            m.setattr(judge.Judge, "fit", lambda *a, **k: pytest.fail("the judge trained first"))
            evaluate_musicgen(dataclasses.replace(cfg, duration=duration))


def test_a_stereo_models_listening_examples_keep_both_channels(tmp_path, data, tiny_cfg):
    """A musicgen-stereo-like model: the listening files are its two channels (they were their mean, the judge's
    input); the judge's calls stay on that mean."""
    import numpy as np
    import soundfile as sf

    from training.musicgen.tiny_model import TinyMusicGenConfig, save_tiny_musicgen

    folder = save_tiny_musicgen(
        tmp_path / "st", "audiocraft", TinyMusicGenConfig(**{**tiny_cfg.__dict__, "channels": 2})
    )
    mg = load_musicgen(folder)
    bank = _bank(tmp_path, mg)
    cfg = MusicGenEvalConfig(str(data), str(folder), str(bank), str(tmp_path / "out"), ("rock",), renders=1,
                             duration=0.3, concepts=("piano",), listen=1)  # fmt: skip
    piano = evaluate_musicgen(cfg)["concepts"]["piano"]
    # judged alone: no other concept to drift, so no drift goal is met (it read drift 0, goal met)
    assert piano["drift_measured"] is False and piano["goals_met"]["drift"] is False and piano["drift"]["on"] == {}
    from dataclasses import replace

    watched = evaluate_musicgen(replace(cfg, out=str(tmp_path / "w"), watch=("drums",)))["concepts"]["piano"]
    assert watched["drift_measured"] is True and set(watched["drift"]["on"]) == {"drums"}
    assert (watched["off_drop"], watched["on_rise"]) == (piano["off_drop"], piano["on_rise"])
    # the watched concept's drift carries its interval, and the drift goal needs it within (as the RAVE judge's)
    drums = {edit: watched["intervals"]["drift"][edit]["drums"] for edit in ("off", "on")}
    assert {edit: d["value"] for edit, d in drums.items()} == {e: watched["drift"][e]["drums"] for e in drums}
    assert watched["drift_reach"] == max(max(abs(d["lo"]), abs(d["hi"])) for d in drums.values()) > 10
    assert {d["groups"] for d in drums.values()} == {len(cfg.prompts)}  # the prompt the unit (hunt 184)
    listen = tmp_path / "out" / "listen"
    row = json.loads((listen / "listen.json").read_text())["concepts"]["piano"]["rows"][0]
    waves = {k: sf.read(str(listen / f), dtype="float32", always_2d=True)[0] for k, f in row["files"].items()}
    assert {k: w.shape[1] for k, w in waves.items()} == {"plain": 2, "off": 2, "on": 2}
    assert all(np.abs(w).max() > 0 for w in waves.values())


def test_eval_musicgen_renders_the_lms_segment_by_default_and_says_when_it_runs_past(tmp_path, data, capsys):
    """Hunt 48: `eval musicgen` rendered 4 s on the demo MusicGen (trained on 2 s segments) without a word, where
    `render musicgen` and `collect musicgen` default to the segment and note what runs past it. Hunt 152: 2.01 s,
    which renders 2 s of whole frames, was said to run past it."""
    from training.cli import main

    model = Path(__file__).resolve().parents[2] / "training" / "assets" / "demo_musicgen"
    bank = _bank(tmp_path, load_musicgen(model))
    argv = ["eval", "musicgen", "--data", str(data), "--model", str(model), "--bank", str(bank), "--concepts", "nosuch"]
    for extra, noted in (([], False), (["--duration", "2.01"], False), (["--duration", "4"], True)):
        assert main([*argv, "--out", str(tmp_path / "o"), *extra]) == 2  # stops at the unknown concept, after the note
        said = capsys.readouterr()
        assert ("note: demo_musicgen's LM was trained on 2 s segments:" in said.out) is noted
        assert not noted or "4 s at a time runs on positions past 2 s" in said.out
        assert "nosuch" in said.err


@pytest.mark.slow
def test_prompts_a_lookup_table_model_plays_as_other_words_are_noted(tmp_path, data, capsys):
    """Hunt 127: `eval musicgen` on the shipped MusicGen (a lookup-table conditioner) played "jazz piano" as "piano"
    without a word, in judge.json or on the console; render, collect and the experiment say so."""
    from training.cli import main

    model = Path(__file__).resolve().parents[2] / "training" / "assets" / "demo_musicgen"
    bank = _bank(tmp_path, load_musicgen(model))
    (tmp_path / "prompts.txt").write_text("jazz piano\n")
    argv = ["eval", "musicgen", "--data", str(data), "--model", str(model), "--bank", str(bank), "--out",
            str(tmp_path / "out"), "--prompts", str(tmp_path / "prompts.txt"), "--duration", "0.5", "--renders", "1",
            "--concepts", "piano"]  # fmt: skip
    assert main(argv) == 0
    note = "prompt 'jazz piano': unknown words jazz ignored, played as 'piano'"
    assert note in json.loads((tmp_path / "out" / "judge.json").read_text())["notes"]
    assert f"note: {note}" in capsys.readouterr().out


def test_prompts_the_model_plays_as_one_are_refused_before_the_judge_trains(tmp_path, data, monkeypatch):
    """Hunt 152: a prompt given twice (or two texts the lookup-table conditioner reads as one description) rendered
    the same seeds again, byte for byte, and each copy counted as a render of its own: in the intervals and in the
    minimum of renders a verdict needs."""
    import training.musicgen.judge as judge

    model = Path(__file__).resolve().parents[2] / "training" / "assets" / "demo_musicgen"
    bank = _bank(tmp_path, load_musicgen(model))
    monkeypatch.setattr(judge.Judge, "fit", lambda *a, **k: pytest.fail("the judge trained first"))
    cases = {
        ("guitar drums", "piano", "guitar drums"): "--prompts: 'guitar drums' is given twice: its renders would be",
        ("calm guitar with drums", "Drums and GUITAR, please"): "--prompts: 'calm guitar with drums' and 'Drums and "
        "GUITAR, please' both play as 'guitar drums' on this model",
    }
    for prompts, needle in cases.items():
        cfg = MusicGenEvalConfig(str(data), str(model), str(bank), str(tmp_path / "out"), prompts, renders=1)
        with pytest.raises(UserError, match=re.escape(needle)):
            evaluate_musicgen(cfg)


def test_a_data_folder_whose_clips_are_gone_is_one_line(tmp_path, data, audiocraft_dir):
    """Hunt 172: a data folder copied without its clips ended eval musicgen (and eval steering, eval fidelity) in
    numpy's "need at least one array to stack" traceback after the model had loaded."""
    import shutil

    bare = tmp_path / "bare"
    bare.mkdir()
    for name in ("manifest.jsonl", "manifest.csv", "data.json"):
        if (data / name).exists():
            shutil.copy(data / name, bare / name)
    mg = load_musicgen(audiocraft_dir)
    cfg = MusicGenEvalConfig(str(bare), str(audiocraft_dir), str(_bank(tmp_path, mg)), str(tmp_path / "out"),
                             ("rock",), concepts=("piano",), duration=0.1)  # fmt: skip
    with pytest.raises(UserError, match=r"data .*bare: none of its \d+ train clip\(s\) could be read \(skipped .*: "):
        evaluate_musicgen(cfg)
    assert not (tmp_path / "out").exists()
