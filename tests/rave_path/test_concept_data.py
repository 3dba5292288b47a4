"""Concept data: seeded, labelled, audible clips and concept folders."""

from __future__ import annotations

import json
import shutil
import sys
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from sae.errors import UserError
from training.cli import main
from training.data.concept_clips import (
    CONCEPTS,
    DEFAULT_FONTS,
    INSTRUMENT_LABELS,
    DataConfig,
    font_slot,
    installed,
    make_dataset,
    plan_clip,
    read_manifest,
    render_clip,
    resolve_fonts,
)


def _centroid(x: np.ndarray, sr: int) -> float:
    spec = np.abs(np.fft.rfft(x))
    return float((spec * np.fft.rfftfreq(len(x), 1 / sr)).sum() / spec.sum())


def test_cli_makes_labelled_clips_and_folders(tmp_path):
    out = tmp_path / "data"
    assert (
        main(
            [
                "data",
                "make",
                "--out",
                str(out),
                "--n",
                "12",
                "--seed",
                "3",
                "--duration",
                "1",
                "--sr",
                "22050",
                "--concepts",
                "guitar,voice,guitar",  # a concept named twice is made once
                "--soundfonts",
                "timgm6mb,timgm6mb",  # one font: every clip of a split lands in its folders
            ]
        )
        == 0
    )
    rows = read_manifest(out)
    assert [r["index"] for r in rows] == list(range(12))
    assert (out / "manifest.csv").read_text().count("\n") == 13
    for r in rows:
        x, sr = sf.read(out / r["file"])
        assert sr == 22050 and x.ndim == 1 and len(x) == 22050
        assert 0.5 < np.abs(x).max() <= 0.9  # peak-normalised, never silent
        assert r["guitar"] == int(r["guitar_type"] != "none")
        assert r["split"] == ("test" if r["index"] % 5 == 4 else "train")
    with_names = sorted(p.name for p in (out / "concepts/guitar/with").iterdir())
    without_names = sorted(p.name for p in (out / "concepts/guitar/without").iterdir())
    expect = sorted(r["file"].split("/")[-1] for r in rows if r["guitar"] and r["split"] == "train")
    assert with_names == expect and not set(with_names) & set(without_names)
    assert (
        len(with_names)
        + len(without_names)
        + len(list((out / "heldout/guitar/with").iterdir()))
        + len(list((out / "heldout/guitar/without").iterdir()))
        == 12
    )
    assert sf.info(next((out / "concepts/guitar/without").iterdir())).frames == 22050  # links resolve
    assert not (out / "concepts/piano").exists()
    record = json.loads((out / "data.json").read_text())
    assert record["config"]["seed"] == 3
    assert record["concepts"] == ["guitar", "voice"] and record["config"]["soundfonts"] == ["timgm6mb"]


def test_clip_depends_only_on_seed_and_index(tmp_path):
    cfg = DataConfig(n=3, seed=7, duration=0.5, sample_rate=16000)
    make_dataset(tmp_path / "a", cfg, concepts=())
    make_dataset(tmp_path / "b", DataConfig(n=5, seed=7, duration=0.5, sample_rate=16000), jobs=2, concepts=())
    make_dataset(tmp_path / "c", DataConfig(n=3, seed=8, duration=0.5, sample_rate=16000), concepts=())
    for i in range(3):
        name = f"clips/clip_{i:05d}.wav"
        assert (tmp_path / "a" / name).read_bytes() == (tmp_path / "b" / name).read_bytes()
    assert (tmp_path / "a/clips/clip_00000.wav").read_bytes() != (tmp_path / "c/clips/clip_00000.wav").read_bytes()


def test_instruments_sound_different():
    """Bass solos sit well below piano / distorted guitar solos in spectral centroid."""
    from training.data.concept_clips import ClipPlan, _compose, default_soundfont, render_clip

    cfg = DataConfig(duration=1.5, sample_rate=22050)
    cents = {}
    for inst in ("bass", "guitar_distortion", "piano"):
        plan = ClipPlan(index=0, kind="solo", instruments=[inst], key=0)
        _compose(plan, np.random.default_rng(0), cfg.duration)
        cents[inst] = _centroid(render_clip(plan, cfg, default_soundfont()), cfg.sample_rate)
    assert cents["bass"] < 0.7 * min(cents["guitar_distortion"], cents["piano"])


def test_a_held_note_struck_again_sounds_through_the_new_note():
    """Strings are held 1.02 chords (legato), so a pitch the next chord keeps is struck again under the held note;
    the old note's note-off then ended the new note in FluidSynth, and the second chord fell silent (135 of 141
    clips with strings in the demo's 480 had such cuts). Notes struck together on one pitch play as one."""
    from training.data.concept_clips import Note, default_soundfont, render_notes, untangled

    held = [Note("strings", 60, 0.0, 1.02, 70), Note("strings", 60, 1.0, 2.02, 70), Note("strings", 60, 1.0, 1.5, 90)]
    other = Note("piano", 60, 0.5, 3.0, 70)
    assert untangled([*held, other]) == [Note("strings", 60, 0.0, 1.0, 70), other, Note("strings", 60, 1.0, 2.02, 90)]
    sr = 22050
    audio = render_notes(held[:2], 2.5, sr, default_soundfont())
    first, second = (
        float(np.sqrt(np.mean(audio[int(a * sr) : int(b * sr)] ** 2))) for a, b in ((0.3, 0.9), (1.3, 1.9))
    )
    assert second > 0.5 * first, (first, second)


def test_labels_cover_every_concept():
    rows = []
    cfg = DataConfig(n=200, seed=0)
    for i in range(cfg.n):
        plan = plan_clip(i, cfg)
        labels = plan.labels()
        rows.append(labels)
    for name, pred in CONCEPTS.items():
        hits = sum(pred(r) for r in rows)
        assert 5 <= hits <= 195, name


def test_every_concept_has_clips_of_it_alone():
    """Hunt 74: a voice with no instrument was never a solo (only kind "solo" was), so the voice concepts' `alone`
    folders were always empty, though the README says each concept gets its clips of it alone."""
    from training.data.concept_clips import solo_of

    rows = [plan_clip(i, DataConfig(n=200, seed=0)).labels() for i in range(200)]
    for name in CONCEPTS:
        solos = [r for r in rows if solo_of(r, name)]
        assert solos and all(CONCEPTS[name](r) for r in solos), name
        assert all(sum(r[label] for label in INSTRUMENT_LABELS) <= 1 for r in solos), name  # nothing else plays
    band_voice = next(r for r in rows if r["kind"] == "voice" and r["guitar"] == 1)
    assert not solo_of(band_voice, "voice") and not solo_of(band_voice, "guitar")


@pytest.mark.parametrize(
    ("argv", "needle"),
    [
        (["--n", "0"], "--n 0"),
        (["--sr", "4000"], "--sr 4000"),
        (["--concepts", "kazoo"], "kazoo"),
        (["--p-solo", "0.9", "--p-voice", "0.5"], "--p-solo"),
        # hunt 193: empty voice folders and a note that said "raise --n"
        (["--p-voice", "0", "--concepts", "drums,voice_male"], "--concepts voice_male: no clip has a voice"),
    ],
)
def test_bad_input_is_one_line(tmp_path, capsys, argv, needle):
    assert main(["data", "make", "--out", str(tmp_path / "d"), *argv]) == 2
    err = capsys.readouterr().err.strip()
    assert needle in err and "\n" not in err


def test_all_concepts_with_no_voice_clips_leave_out_the_voice_folders(tmp_path, capsys):
    """`--concepts all --p-voice 0` made empty voice folders (no clip has a voice) with a note to raise --n."""
    out = tmp_path / "d"
    argv = ["--n", "6", "--duration", "0.3", "--sr", "16000", "--p-voice", "0", "--jobs", "1"]
    assert main(["data", "make", "--out", str(out), *argv]) == 0
    captured = capsys.readouterr()
    assert "--p-voice 0 makes no voice clip, so no folders for voice, voice_male, voice_female" in captured.err
    assert not [line for line in captured.err.splitlines() if "raise --n" in line and "voice" in line]
    assert "drums" in {p.name for p in (out / "concepts").iterdir()}
    assert not [p for p in (out / "concepts").iterdir() if p.name.startswith("voice")]


def test_missing_soundfont(tmp_path):
    with pytest.raises(UserError, match=r"nope\.sf2"):
        make_dataset(tmp_path, DataConfig(n=1, soundfont=str(tmp_path / "nope.sf2")))


def test_fonts_take_turns_and_folders_are_balanced(tmp_path):
    """Every clip records its font; each with / without folder holds as many clips from each font."""
    rows = make_dataset(tmp_path, DataConfig(n=45, seed=2, duration=0.5, sample_rate=16000), concepts=("drums",))
    fonts = [r["font"] for r in rows]
    assert set(fonts) - {"none"} == {"timgm6mb", "fluidr3", "csound"}
    by_index = {r["file"].split("/")[-1]: r for r in rows}
    for top in ("concepts", "heldout"):
        per_side = []
        for side in ("with", "without"):
            names = [p.name for p in (tmp_path / top / "drums" / side).iterdir()]
            counts = Counter(by_index[n]["font"] for n in names if by_index[n]["font"] != "none")
            assert len(set(counts.values())) == 1, (top, side, counts)
            per_side.append(set(counts))
        assert per_side[0] == per_side[1], top  # the same fonts on both sides
    train_with = [by_index[p.name]["font"] for p in (tmp_path / "concepts/drums/with").iterdir()]
    assert set(train_with) == {"timgm6mb", "fluidr3", "csound"}
    meta = json.loads((tmp_path / "data.json").read_text())
    assert [f["name"] for f in meta["soundfonts"]] == ["timgm6mb", "fluidr3", "csound"]


def test_same_music_sounds_different_per_font():
    """The same phrase in FluidR3 and in TimGM6mb is not the same audio (the fonts really differ)."""
    from training.data.concept_clips import ClipPlan, _compose, resolve_fonts

    fonts, skipped = resolve_fonts(["timgm6mb", "fluidr3"], note=print)
    assert not skipped
    cfg = DataConfig(duration=1.0, sample_rate=16000)
    plan = ClipPlan(index=0, kind="solo", instruments=["guitar_steel"], key=0)
    _compose(plan, np.random.default_rng(0), cfg.duration)
    a, b = (render_clip(plan, cfg, f.path) for f in fonts)
    assert abs(np.corrcoef(a, b)[0, 1]) < 0.5


def test_a_font_file_named_like_the_manifests_marks_is_refused(tmp_path):
    """Hunt 64: a file none.sf2 took the name of clips with no font (the folders then went unbalanced), and a file
    fluidr3.sf2 that is another font was re-rendered with Debian's FluidR3 by the ideal edits."""
    from training.data.concept_clips import FONTS, _candidates

    real = next(p for name in FONTS if name != "fluidr3" for p in _candidates(name) if p.is_file())
    for stem, needle in (("none", "marks clips with no font"), ("fluidr3", "is that of a known font")):
        copy = tmp_path / f"{stem}.sf2"
        copy.symlink_to(real)
        with pytest.raises(UserError, match=rf"soundfont {copy}: its name '{stem}' {needle}"):
            resolve_fonts([str(copy)], note=print)


def test_one_font_under_two_names_is_refused(tmp_path):
    """Hunt 193: `--soundfonts fluidr3,/usr/share/sounds/sf2/FluidR3_GM.sf2` made two fonts of one file, and the
    folders "balanced across fonts" were balanced across one; a copy under another name is the same font too."""
    import shutil

    from training.data.concept_clips import installed

    path = installed("timgm6mb")
    link = tmp_path / "gm.sf2"  # as /usr/share/sounds/sf2/FluidR3_GM.sf2 is fluidr3's file
    link.symlink_to(path)
    with pytest.raises(UserError, match=rf"soundfont {link}: the same file as timgm6mb \("):
        resolve_fonts(["timgm6mb", str(link)], note=print)
    copy = tmp_path / "mine.sf2"
    shutil.copyfile(path, copy)
    with pytest.raises(UserError, match=r"soundfont .*mine.sf2: the same file as timgm6mb"):
        resolve_fonts(["timgm6mb", str(copy)], note=print)


def test_holdout_font_gets_its_own_split_and_folders(tmp_path):
    rows = make_dataset(
        tmp_path, DataConfig(n=30, seed=4, duration=0.5, sample_rate=16000, holdout_font="fluidr3"), concepts=("bass",)
    )
    held = [r for r in rows if r["split"] == "holdout_font"]
    # the held-out font's slots, less a voice alone there (no font: the training fonts' kind of audio, hunt 87)
    slots = [r for r in rows if font_slot(r["index"], 4, 3) == DEFAULT_FONTS.index("fluidr3")]
    alone = [r for r in slots if r["font"] == "none"]
    assert held == [r for r in slots if r["font"] != "none"] and len(slots) == 10 and alone, alone
    assert {r["font"] for r in held} == {"fluidr3"} and {r["split"] for r in alone} <= {"train", "test"}
    assert all(r["font"] != "fluidr3" for r in rows if r["split"] != "holdout_font")
    held_names = {r["file"].split("/")[-1] for r in held}
    in_font = {p.name for top in ("concepts", "heldout") for p in (tmp_path / top / "bass").glob("*/*")}
    font_folders = {p.name for p in (tmp_path / "heldout_font/bass").glob("*/*")}
    assert font_folders == held_names and not in_font & held_names
    meta = json.loads((tmp_path / "data.json").read_text())
    assert meta["holdout_font"] == "fluidr3" and meta["holdout_shares_samples"] == {}


def test_the_held_out_font_is_named_as_the_soundfonts_are(tmp_path, capsys):
    """Hunt 135: `--soundfonts FluidR3` was taken and `--holdout-font FluidR3` refused ("not one of the soundfonts
    (timgm6mb, fluidr3, csound)"), as was a font file's own path: the names are the fonts' lower-cased."""
    font = tmp_path / "My Font v1.5.sf2"  # a name with a dot, given as the name (hunt 139: cut to "my font v1")
    shutil.copyfile(installed("timgm6mb"), font)
    argv = ["data", "make", "--n", "3", "--duration", "0.5", "--sr", "16000", "--concepts", "guitar"]
    cases = (("FluidR3,timgm6mb", "FluidR3", "fluidr3"), (f"{font},fluidr3", str(font), "my font v1.5"),
             (f"{font},fluidr3", "My Font v1.5", "my font v1.5"))  # fmt: skip  # (a copy of timgm6mb is timgm6mb)
    for fonts, held, name in cases:
        out = tmp_path / held.replace("/", "_")
        assert main([*argv, "--out", str(out), "--soundfonts", fonts, "--holdout-font", held]) == 0, capsys.readouterr()
        assert json.loads((out / "data.json").read_text())["holdout_font"] == name
        assert {r["font"] for r in read_manifest(out) if r["split"] == "holdout_font"} == {name}


def test_a_held_out_font_that_got_no_clip_is_said_and_the_table_printed(tmp_path, capsys):
    """Hunt 100: with too few clips for the held-out font to get one (here 2 clips, 3 fonts), the data was written,
    then the summary table read heldout_font/, which was never made: "No such file or directory", exit 2."""
    argv = ["data", "make", "--out", str(tmp_path / "d"), "--n", "2", "--seed", "0", "--duration", "0.5"]
    assert main([*argv, "--sr", "16000", "--concepts", "guitar", "--holdout-font", "fluidr3"]) == 0
    said = capsys.readouterr()
    assert "--holdout-font fluidr3: none of the 2 clips plays an instrument in it" in said.err, said.err
    assert "guitar" in said.out and (tmp_path / "d" / "data.json").is_file()
    assert not any(r["split"] == "holdout_font" for r in read_manifest(tmp_path / "d"))


def test_a_training_font_that_shares_the_held_out_fonts_samples_is_named(tmp_path):
    """The csound bank reuses TimGM6mb's samples: holding TimGM6mb out with csound among the training fonts says so
    (for the instruments it shares, not for the ones it has of its own) and data.json records it; the default
    set with FluidR3 held out shares nothing, nor does the OPL3 bank."""
    from training.data.font_overlap import SHARED, overlaps

    notes: list[str] = []
    cfg = DataConfig(n=3, seed=4, duration=0.5, sample_rate=16000, holdout_font="timgm6mb")
    make_dataset(tmp_path, cfg, concepts=(), note=notes.append)
    shared = json.loads((tmp_path / "data.json").read_text())["holdout_shares_samples"]
    assert set(shared) == {"csound"} and {"drums", "bass", "guitar_distortion"} <= set(shared["csound"])
    assert "brass" not in shared["csound"] and all(d < SHARED for d in shared["csound"].values())
    assert len(notes) == 1 and notes[0].startswith("soundfont csound: its renders of ") and "timgm6mb" in notes[0]
    fonts, skipped = resolve_fonts(["fluidr3", "timgm6mb", "csound", "opl3"], note=print)
    assert not skipped and overlaps(fonts[0], fonts[1:]) == {}  # the OPL3 FM bank is new to FluidR3 too


def test_a_training_font_of_the_held_out_fonts_samples_at_another_level_is_named(tmp_path):
    """Hunt 165: the check compared log-mel power as rendered, so TimGM6mb's samples 12 dB down read as a font of
    their own (1.83–2.60 apart), though every clip is scaled to one peak: they sound alike."""
    from tests.rave_path.conftest import scaled_sf2
    from training.data.font_overlap import SHARED, overlaps

    (held,), _ = resolve_fonts(["timgm6mb"], note=print)
    quiet = scaled_sf2(held.path, 0.25, tmp_path / "quiet.sf2")
    (font,), _ = resolve_fonts([str(quiet)], note=print)
    found = overlaps(held, [font])
    assert set(found) == {"quiet"} and len(found["quiet"]) == 8 and max(found["quiet"].values()) < SHARED, found


def test_a_soundfont_given_as_a_file_is_found_again_for_the_ideal_edits(tmp_path):
    """`data_config` gives back every font the data was made with, a font passed as a path included (the ideal
    edits re-render its clips)."""
    from training.data.concept_clips import data_config, default_soundfont

    mine = tmp_path / "fonts" / "Mine.sf2"
    mine.parent.mkdir()
    mine.write_bytes(default_soundfont().read_bytes())
    make_dataset(tmp_path / "d", DataConfig(n=2, duration=0.5, sample_rate=16000, soundfonts=("csound", str(mine))))
    _, fonts, _ = data_config(tmp_path / "d")
    assert set(fonts) == {"csound", "mine"} and fonts["mine"] == mine.resolve()
    # a font file changed since: its re-renders would play other samples, judged as the edit (hunt 87)
    mine.write_bytes(fonts["csound"].read_bytes())
    with pytest.raises(UserError, match=r"soundfont mine: .*Mine\.sf2 is not the file the data was made with"):
        data_config(tmp_path / "d")


def test_a_broken_soundfont_is_named_and_skipped(tmp_path, capsys):
    """Fault injection: a file that is not a soundfont is skipped with one line; the other fonts render."""
    bad = tmp_path / "broken.sf2"
    bad.write_bytes(b"RIFF not really a soundfont" * 10)
    out = tmp_path / "d"
    argv = ["data", "make", "--out", str(out), "--n", "6", "--duration", "0.5", "--sr", "16000", "--concepts", "none"]
    assert main([*argv, "--soundfonts", f"timgm6mb,{bad},csound"]) == 0
    said = capsys.readouterr()
    err = said.err
    assert "soundfont broken" in err and "skipped" in err
    lines = said.out.splitlines() + err.splitlines()  # not a terminal: no progress bar, no empty line it left
    assert lines and "" not in lines and len([x for x in lines if "soundfont broken" in x]) == 1, said
    rows = read_manifest(out)
    assert len(rows) == 6 and {r["font"] for r in rows} - {"none"} <= {"timgm6mb", "csound"}
    assert json.loads((out / "data.json").read_text())["skipped_soundfonts"][0]["font"] == "broken"
    with pytest.raises(UserError, match="broken"):  # nothing usable left: one line naming what failed
        make_dataset(tmp_path / "e", DataConfig(n=1, soundfonts=(str(bad),)), note=lambda _: None)


def test_fluidsynths_own_lines_for_a_cut_soundfont_are_hushed(tmp_path, capfd):
    """A soundfont cut short made FluidSynth and libinstpatch print three lines of their own (from C, past Python's
    streams: "ipatch_container_init_iter: assertion ... failed", "Not a DLS file") before the line naming it."""
    from training.data.concept_clips import default_soundfont, font_problem

    cut = tmp_path / "cut.sf2"
    cut.write_bytes(default_soundfont().read_bytes()[:100_000])
    assert font_problem(cut) == "FluidSynth could not load it"
    print("after", file=sys.stderr)  # what Python writes afterwards still reaches stderr
    assert capfd.readouterr().err == "after\n"


def test_unknown_holdout_font_is_one_line(tmp_path, capsys):
    assert main(["data", "make", "--out", str(tmp_path / "d"), "--n", "3", "--holdout-font", "kazoofont"]) == 2
    err = capsys.readouterr().err.strip()
    assert "--holdout-font kazoofont" in err and "timgm6mb" in err and "\n" not in err


@pytest.mark.parametrize(
    ("fonts", "needle"),
    [("{bad}", "none could be used (nope: no such file)"), ("timgm6mb,{bad}", "that soundfont was skipped (no such"),
     ("{folder}", "none could be used (nope: a folder, not a soundfont file)")],
)  # fmt: skip
def test_a_soundfont_refusal_is_one_line(tmp_path, capsys, fonts, needle):
    """It said the font was skipped, then refused the run: two lines for one mistake."""
    argv = ["data", "make", "--out", str(tmp_path / "d"), "--n", "3", "--holdout-font", "nope"]
    (tmp_path / "fonts" / "nope").mkdir(parents=True)
    spec = fonts.format(bad=tmp_path / "nope.sf2", folder=tmp_path / "fonts" / "nope")
    assert main([*argv, "--soundfonts", spec]) == 2
    err = capsys.readouterr().err.strip()
    assert needle in err and "\n" not in err, err
    assert not (tmp_path / "d").exists()


def test_a_folder_it_did_not_write_is_refused_and_kept(tmp_path, capsys):
    """`data make --out DIR` removed DIR's `concepts/` and `heldout/` and overwrote its manifest.csv, whatever
    they were: a folder of someone else's is refused before a file is touched."""
    mine = tmp_path / "mine"
    (mine / "concepts").mkdir(parents=True)
    (mine / "concepts" / "notes.txt").write_text("keep me")
    (mine / "manifest.csv").write_text("my,table")
    argv = ["data", "make", "--n", "2", "--duration", "0.5", "--sr", "16000", "--soundfonts", "timgm6mb"]
    assert main([*argv, "--out", str(mine)]) == 2
    err = capsys.readouterr().err.strip()
    assert "--out " in err and "did not write" in err and "\n" not in err, err
    assert (mine / "concepts" / "notes.txt").read_text() == "keep me" and (
        mine / "manifest.csv"
    ).read_text() == "my,table"
    assert sorted(p.name for p in mine.iterdir()) == ["concepts", "manifest.csv"]  # no lock file left either
    other = tmp_path / "other"
    (other / "clips").mkdir(parents=True)
    (other / "clips" / "song.wav").write_bytes(b"RIFF")
    assert main([*argv, "--out", str(other)]) == 2 and "clips/song.wav" in capsys.readouterr().err
    # its own folder, complete or stopped half way (clips written, data.json not yet), is made again
    ours = tmp_path / "ours"
    assert main([*argv, "--out", str(ours)]) == 0
    (ours / "data.json").unlink()
    assert main([*argv, "--out", str(ours)]) == 0 and (ours / "data.json").is_file()
    assert main([*argv, "--out", str(ours)]) == 0
    # a complete one too, where a recording of the user's sits among the clips (it was deleted with them)
    (ours / "clips" / "my_take.wav").write_bytes(b"RIFF")
    assert main([*argv, "--out", str(ours)]) == 2 and "(clips/my_take.wav)" in capsys.readouterr().err
    assert (ours / "clips" / "my_take.wav").read_bytes() == b"RIFF"
    (ours / "clips" / "my_take.wav").unlink()
    # hunt 135: a concept or side of the user's own, laid out as this command's (clip names and depth), went too
    folders = (("concepts/my_pick/with", "concepts/my_pick"), ("heldout/guitar/my_side", "heldout/guitar/my_side"))
    for mine, named in folders:
        (ours / mine).mkdir(parents=True)
        shutil.copyfile(ours / "clips" / "clip_00000.wav", ours / mine / "clip_00000.wav")
        assert main([*argv, "--out", str(ours)]) == 2, mine
        assert f"({named})" in capsys.readouterr().err and (ours / mine / "clip_00000.wav").is_file()
        shutil.rmtree(ours / named)
    assert main([*argv, "--out", str(ours)]) == 0


@pytest.mark.parametrize(
    "files",
    [
        {"data.json": '{"my_dataset": "takes", "version": 3}', "manifest.csv": "file,label"},  # another tool's
        {"clips/clip_000.wav": "RIFF"},  # a user's recordings named clip_*: not this command's clip_NNNNN.wav
        {"clips/session1/clip_take7.wav": "RIFF"},
        {"concepts/guitar/clip_00001.wav": "RIFF"},  # not where this command puts its links
    ],
    ids=["data-json", "clip-names", "clip-folder", "concept-depth"],
)
def test_files_that_only_look_like_a_data_folders_are_refused_and_kept(tmp_path, capsys, files):
    """Hunt 100: any data.json was taken for this command's mark (the user's data.json and manifest.csv were
    replaced), and any file named clip_* in any folder under clips/ for a clip of a run stopped half way (deleted)."""
    mine = tmp_path / "mine"
    for name, text in files.items():
        (mine / name).parent.mkdir(parents=True, exist_ok=True)
        (mine / name).write_text(text)
    argv = ["data", "make", "--n", "2", "--duration", "0.5", "--sr", "16000", "--soundfonts", "timgm6mb"]
    assert main([*argv, "--out", str(mine)]) == 2
    err = capsys.readouterr().err.strip()
    named = next(iter(files)).replace("/clip_take7.wav", "")  # a folder of its own under clips/ is named itself
    assert f"({named})" in err and "did not write" in err and "\n" not in err, err
    assert all((mine / name).read_text() == text for name, text in files.items())


def test_a_data_folder_that_is_the_working_folder_is_refused(tmp_path, capsys, monkeypatch):
    """Hunt 100: `--out .` was a ValueError traceback (a path of no name to swap) leaving a .lock behind, and
    `--out "$PWD"` swapped the folder under the user's shell, which then listed the removed old one: empty."""
    here = tmp_path / "here"
    (here / "sub").mkdir(parents=True)
    argv = ["data", "make", "--n", "2", "--duration", "0.5", "--sr", "16000", "--soundfonts", "timgm6mb"]
    for cwd, out in ((here, "."), (here, str(here)), (here / "sub", "..")):
        monkeypatch.chdir(cwd)
        assert main([*argv, "--out", out]) == 2
        err = capsys.readouterr().err.strip()
        assert f"--out {out}: is the folder this runs in" in err and "\n" not in err, err
        assert [p.name for p in here.iterdir()] == ["sub"] and not list((here / "sub").iterdir())
    monkeypatch.chdir(tmp_path)  # beside it: written
    assert main([*argv, "--out", "here/data"]) == 0 and (here / "data" / "data.json").is_file()


def test_a_font_that_plays_nothing_for_an_instrument_is_named_and_skipped(tmp_path, capsys, sine_font):
    """Hunt 100: a font with every preset but a drum kit of other keys passed the check; its clips were labelled
    drums=1 with no drums in them, and its first drum solo ended the run with a RuntimeError traceback."""
    from training.data.concept_clips import ClipPlan, _compose, font_problem

    assert font_problem(sine_font()) is None  # the same font with its kit over every key plays every part
    kitless = sine_font("kitless.sf2", drum_keys=(0, 10))
    assert font_problem(kitless) == "plays nothing for drums (MIDI 36, 38, 42), notes the data plays"
    # hunt 165: the check played a phrase of its own (a crash, 49; melodic parts 55-67) where the data plays others
    assert font_problem(sine_font("crash.sf2", drum_keys=(49, 49))) == (
        "plays nothing for drums (MIDI 36, 38, 42), notes the data plays"
    )
    low = (
        "plays nothing for guitar_nylon (MIDI 84); guitar_steel (MIDI 84); guitar_distortion (MIDI 63); piano (MIDI "
        "60, 94); strings (MIDI 82); brass (MIDI 60, 87), notes the data plays"
    )
    assert font_problem(sine_font("low.sf2", keys=(0, 59))) == low
    # hunt 168: a release of 1 s, as real presets have, rang on into the next note's slot and passed it
    assert font_problem(sine_font("low_ringing.sf2", keys=(0, 59), release_s=1.0)) == low
    assert font_problem(sine_font("ringing.sf2", release_s=1.0)) is None
    argv = ["data", "make", "--out", str(tmp_path / "d"), "--n", "4", "--duration", "0.5", "--sr", "16000"]
    assert main([*argv, "--concepts", "none", "--soundfonts", f"timgm6mb,{kitless}"]) == 0
    err = capsys.readouterr().err
    assert "soundfont kitless" in err and "plays nothing for drums" in err and "skipped" in err, err
    assert {r["font"] for r in read_manifest(tmp_path / "d")} - {"none"} == {"timgm6mb"}
    # a clip that renders silent all the same is one line naming the font, not a traceback
    plan = ClipPlan(index=3, kind="solo", instruments=["drums"], key=0)
    _compose(plan, np.random.default_rng(0), 0.5)
    with pytest.raises(UserError, match=rf"soundfont {kitless}: clip 3 rendered silent \(drums\)"):
        render_clip(plan, DataConfig(duration=0.5, sample_rate=16000), kitless)


def test_the_font_check_plays_the_lowest_and_highest_notes_each_part_plays():
    """`font_problem`'s notes (`PITCH_RANGES`, `DRUM_KEYS`) are those the clips play, in either voicing."""
    from training.data.concept_clips import DRUM_KEYS, PITCH_RANGES

    seen: dict[str, set[int]] = {}
    for voicing in ("off_key", "in_key"):
        cfg = DataConfig(n=400, seed=2, duration=4.0, voicing=voicing)
        for i in range(400):
            for note in plan_clip(i, cfg).notes:
                seen.setdefault(note.instrument, set()).add(note.pitch)
    assert seen.pop("drums") == set(DRUM_KEYS)
    assert {i: (min(p), max(p)) for i, p in seen.items()} == PITCH_RANGES


def test_font_names_as_users_type_them(tmp_path, monkeypatch, sine_font):
    """Hunt 100: a misspelt name was skipped as a missing file (the data then made with fewer fonts, every clip's
    font moved), "FluidR3" was told to rename a file that is not there, and "~/fonts/x.sf2" after a comma (which
    no shell expands) was skipped."""
    with pytest.raises(UserError, match=r"soundfont 'csund': neither a known font \(timgm6mb, fluidr3, csound, opl3"):
        resolve_fonts(["timgm6mb", "csund"], note=print)
    fonts, skipped = resolve_fonts(["FluidR3", "TimGM6mb"], note=print)
    assert [f.name for f in fonts] == ["fluidr3", "timgm6mb"] and not skipped
    notes: list[str] = []
    fonts, skipped = resolve_fonts([str(tmp_path / "timgm6mb.sf2")], note=notes.append)  # not there: skipped
    assert not fonts and skipped == [{"font": "timgm6mb", "reason": "no such file"}], notes
    monkeypatch.setenv("HOME", str(tmp_path))
    mine = sine_font("Mine.sf2")
    fonts, _ = resolve_fonts(["~/Mine.sf2"], note=print)
    assert [(f.name, f.path) for f in fonts] == [("mine", mine)]


def test_a_font_given_by_a_link_or_another_known_file_is_found_again(tmp_path):
    """Hunt 100: data.json recorded a font given as a link by its target, so `data_config` named it after the
    target (default-gm became fluidr3_gm: every ideal edit of its clips was skipped); and Debian's TimGM6mb,
    recorded as timgm6mb, was compared with pretty_midi's, another file: refused as changed, for good."""
    from training.data.concept_clips import data_config

    debian = Path("/usr/share/sounds/sf2/TimGM6mb.sf2")  # `just setup` installs timgm6mb-soundfont
    link = tmp_path / "default-GM.sf2"
    link.symlink_to("/usr/share/sounds/sf2/FluidR3_GM.sf2")
    for spec, name in ((link, "default-gm"), (debian, "timgm6mb")):
        out = tmp_path / name
        make_dataset(out, DataConfig(n=2, duration=0.5, sample_rate=16000, soundfonts=(str(spec),)), concepts=())
        assert {r["font"] for r in read_manifest(out)} - {"none"} == {name}
        _, fonts, _ = data_config(out)
        assert fonts == {name: spec}


def test_a_damaged_manifest_is_one_line(tmp_path):
    """A manifest.jsonl cut short, missing a label column or with a label that is not 0/1: one line naming the
    file, the line and the field (a judge raised a JSONDecodeError / KeyError, or called every clip 'without')."""
    row = {"file": "clips/clip_00000.wav", "index": 0, "split": "train", "font": "fluidr3", "kind": "band"}
    row |= {"instruments": "drums", **dict.fromkeys(("guitar", "piano", "strings", "brass", "bass"), 0), "drums": 1}
    row |= {"guitar_type": "none", "voice": "none"}
    good = json.dumps(row)
    for text, needle in (
        (good + "\n" + good[:40] + "\n", r"manifest.jsonl line 2: not a JSON object"),
        (json.dumps({k: v for k, v in row.items() if k != "drums"}), r"line 1: missing 'drums'"),
        (json.dumps(row | {"drums": "yes"}), r"line 1: drums 'yes'; expected 0 or 1"),
        (json.dumps(row | {"index": "0"}), r"line 1: index '0'; expected an integer"),
    ):
        (tmp_path / "manifest.jsonl").write_text(text)
        with pytest.raises(UserError, match=needle):
            read_manifest(tmp_path)
    (tmp_path / "manifest.jsonl").write_text(good + "\n")
    assert read_manifest(tmp_path) == [row]


def test_oracle_edits_take_the_first_renderable_clips_per_side_in_order():
    """Both oracle reports (RAVE fidelity, MusicGen judge-shift) pick their ideal edits here: the first `per_side`
    clips with and without the concept whose re-render exists, skipping the ones that have none, in clip order."""
    from training.data.concept_clips import oracle_edits

    has = [True, False, True, True, False, False, True, False]
    renderable = {0, 1, 3, 5, 6, 7}  # 2 and 4: fonts not installed
    asked = []

    def ideal(i: int):
        asked.append(i)
        return np.full(4, i, np.float32) if i in renderable else None

    edits = oracle_edits(enumerate(has), 2, ideal)
    assert list(edits) == [0, 1, 3, 5]
    assert all((edits[i] == i).all() for i in edits)
    assert asked == [0, 1, 2, 3, 4, 5]  # nothing rendered once both sides are full
    assert list(oracle_edits(enumerate(has), 0, ideal)) == sorted(renderable)


def test_a_remake_stopped_half_way_leaves_no_labels_of_the_last_run(tmp_path, monkeypatch):
    """A second `data make` into a folder, stopped after some clips, left the first run's manifest, data.json and
    concept folders describing clips that were partly the second run's (later: removed them, so a stopped remake
    destroyed a complete dataset); and two at once mixed their clips. Now the earlier data stays as it was."""
    import training.data.concept_clips as cc
    from sae.atomic import sole_writer

    def files() -> dict[str, bytes]:
        found = sorted(p for p in tmp_path.rglob("*") if p.is_file() and p.name != ".lock")
        return {str(p.relative_to(tmp_path)): p.read_bytes() for p in found}

    make_dataset(tmp_path, DataConfig(n=4, seed=1, duration=0.5, sample_rate=16000), concepts=("guitar",))
    before = files()
    real, made = cc._make_one, []

    def stop_after_two(item):
        if len(made) == 2:
            raise KeyboardInterrupt
        made.append(item[0])
        return real(item)

    monkeypatch.setattr(cc, "_make_one", stop_after_two)
    with pytest.raises(KeyboardInterrupt):
        make_dataset(tmp_path, DataConfig(n=4, seed=2, duration=0.5, sample_rate=16000), concepts=("guitar",))
    assert made == [0, 1]
    assert files() == before and len(read_manifest(tmp_path)) == 4  # the earlier data, whole
    assert [p.name for p in tmp_path.parent.iterdir() if p.name.startswith(f".{tmp_path.name}.")] == []
    monkeypatch.setattr(cc, "_make_one", real)
    (tmp_path / "bank.yaml").write_text("concepts: {}\n")  # a user's files beside the data: they were deleted
    (tmp_path / "store").mkdir()
    (tmp_path / "store" / "store.json").write_text("{}")
    make_dataset(tmp_path, DataConfig(n=2, seed=2, duration=0.5, sample_rate=16000), concepts=())
    assert len(list((tmp_path / "clips").iterdir())) == 2  # a smaller run leaves none of the earlier clips
    assert not (tmp_path / "concepts").exists()  # nor the earlier run's concept folders
    assert (tmp_path / "bank.yaml").read_text() == "concepts: {}\n" and (tmp_path / "store" / "store.json").is_file()
    with sole_writer(tmp_path, "data make"), pytest.raises(UserError, match="another data make is writing there"):
        make_dataset(tmp_path, DataConfig(n=4, seed=2, duration=0.5, sample_rate=16000), concepts=())


def test_every_part_plays_in_the_clips_key_in_key():
    """Guitar voicings counted from E and strings from G, so in a clip labelled C major the guitar played E G# B over
    the piano's C E G (hunt 148): `in_key`, every pitched part plays the scale of the key its manifest names, in the
    register it had."""
    from training.data.concept_clips import MAJOR, MINOR, DataConfig, plan_clip

    cfg, heard = DataConfig(n=80, seed=3, voicing="in_key"), set()
    for index in range(cfg.n):
        plan = plan_clip(index, cfg)
        scale = set(MAJOR if plan.mode == "major" else MINOR)
        for note in plan.notes:
            if note.instrument != "drums":
                heard.add(note.instrument)
                assert (note.pitch - plan.key) % 12 in scale, (index, plan.key, plan.mode, note)
            if note.instrument.startswith("guitar_") and note.instrument != "guitar_distortion":
                assert 52 <= note.pitch < 52 + 12 + 12 + 12, note
    assert {"guitar_nylon", "guitar_steel", "guitar_distortion", "strings", "piano", "bass", "brass"} <= heard, heard


def test_off_key_is_the_default_and_renders_the_clips_the_demo_models_were_trained_on(tmp_path):
    """The default, `off_key`, keeps the older voicings: the clips the shipped demo models were trained on (in key,
    the demo's drums `off` fell from +100 to +25). A data.json from before `voicing` reads as off key, so its oracle
    re-renders match it; a MusicGen run's data identity tells an in-key folder from one off key (same manifest)."""
    import json

    from training.data.concept_clips import DataConfig, _in_key, data_config, plan_clip
    from training.musicgen.clips import manifest_sha256

    assert all(_in_key(52, k, "off_key") == 52 + k % 12 and _in_key(55, k, "off_key") == 55 + k % 12 for k in range(24))
    assert DataConfig().voicing == "off_key"

    def steel(cfg: DataConfig) -> list[int]:
        return [n.pitch for i in range(40) for n in plan_clip(i, cfg).notes if n.instrument == "guitar_steel"]

    off, on = steel(DataConfig(n=40, seed=3)), steel(DataConfig(n=40, seed=3, voicing="in_key"))
    assert len(off) == len(on) > 0 and off != on
    (tmp_path / "data.json").write_text(json.dumps({"config": {"n": 40, "seed": 3}, "soundfonts": []}))
    (tmp_path / "manifest.jsonl").write_text("{}\n")
    assert data_config(tmp_path)[0].voicing == "off_key"
    (tmp_path / "data.json").write_text(json.dumps({"config": {"voicing": "In_Key"}, "soundfonts": []}))
    with pytest.raises(UserError, match=r"data\.json: voicing 'In_Key': expected one of in_key, off_key"):
        data_config(tmp_path)  # the file named: the user never typed --voicing (hunt 151)
    before = manifest_sha256(tmp_path)
    (tmp_path / "data.json").write_text(json.dumps({"config": {"voicing": "in_key"}, "soundfonts": []}))
    assert manifest_sha256(tmp_path) == f"{before}:in_key" and ":" not in before


def _render_workers(parent: int) -> list[int]:
    """The spawned render processes of the process `parent`."""
    kids = []
    for d in Path("/proc").iterdir():
        try:
            if d.name.isdigit() and int((d / "stat").read_text().rsplit(")", 1)[1].split()[1]) == parent:
                kids += [int(d.name)] if b"spawn_main" in (d / "cmdline").read_bytes() else []
        except OSError:
            pass
    return kids


@pytest.mark.parametrize("stop", ["a worker killed", "Ctrl-C", "Ctrl-C twice"])
def test_a_render_process_that_dies_or_ctrl_c_ends_jobs_2_in_one_line(tmp_path, stop):
    """Hunt 165: a render worker killed (the OOM killer, a FluidSynth crash) left `data make --jobs 2` waiting for
    good (multiprocessing.Pool lost its task); Ctrl-C in a terminal (to the whole process group) had each worker
    print its own KeyboardInterrupt lines beside the command's one. Hunt 168: Ctrl-C twice then hung for good (the
    workers, which ignore SIGINT, were waited for), or left them running."""
    import os
    import signal
    import subprocess
    import time

    cmd = [sys.executable, "-m", "training.cli", "data", "make", "--out", str(tmp_path / "d"), "--n", "2000",
           "--jobs", "2", "--duration", "30" if stop == "Ctrl-C twice" else "1", "--sr", "16000", "--concepts", "none",
           "--soundfonts", "timgm6mb,csound"]  # fmt: skip
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True,
                            cwd=Path(__file__).resolve().parents[2])  # fmt: skip
    try:
        deadline = time.monotonic() + 120
        while len(workers := _render_workers(proc.pid)) < 2 and time.monotonic() < deadline:
            time.sleep(0.1)
        time.sleep(2.0)  # rendering
        if stop.startswith("Ctrl-C"):
            os.killpg(proc.pid, signal.SIGINT)  # what a terminal does
            if stop == "Ctrl-C twice":
                time.sleep(0.3)
                os.killpg(proc.pid, signal.SIGINT)
        else:
            os.kill(workers[0], signal.SIGKILL)
        _, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
    gone = time.monotonic() + 1.0  # a second for the workers to go (no longer when they went at once)
    while [w for w in workers if Path(f"/proc/{w}").exists()] and time.monotonic() < gone:
        time.sleep(0.05)
    assert not [w for w in workers if Path(f"/proc/{w}").exists()], "render processes left running"
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    if stop.startswith("Ctrl-C"):
        assert proc.returncode == 130 and lines[0].startswith("musicsae: interrupted"), err
    else:
        assert proc.returncode == 2 and "a render process died after" in lines[0], err


def test_held_out_folders_left_empty_by_balancing_are_explained(tmp_path, capsys):
    """Hunt 176: with few clips every held-out folder was empty (the table read 0 / 0) and nothing said why; a run of
    --concepts none said its (no) folders were balanced across fonts."""
    argv = ["data", "make", "--n", "24", "--duration", "0.5", "--sr", "16000", "--seed", "0"]
    assert main([*argv, "--out", str(tmp_path / "d"), "--concepts", "guitar"]) == 0
    said = capsys.readouterr()
    held = [len(list((tmp_path / "d" / "heldout" / "guitar" / s).iterdir())) for s in ("with", "without")]
    assert 0 in held, held  # this seed's few test clips share no font across the sides
    assert "note: the held-out folders of guitar hold no clip on a side" in " ".join(said.err.split()), said.err
    # --concepts none: 6 clips are enough (three fonts, and a test clip that the note counts, at index 4)
    assert main([*argv[:3], "6", *argv[4:], "--out", str(tmp_path / "e"), "--concepts", "none"]) == 0
    said = capsys.readouterr()
    assert "balanced" not in said.out + said.err and "held-out folders" not in said.err
    assert said.out.count("6 clips in") == 1, said.out  # the title alone, once
    # enough clips for both sides of the held-out folders (this seed's 50 clips: 4 with and 3 without; 40 are the
    # fewest with both): no note, and the title once, as the table's (the title was printed again below the table
    # wherever no note was)
    assert main(["data", "make", "--n", "50", "--duration", "0.5", "--sr", "16000", "--seed", "0", "--out",
                 str(tmp_path / "f"), "--concepts", "guitar"]) == 0  # fmt: skip
    said = capsys.readouterr()
    held = [len(list((tmp_path / "f" / "heldout" / "guitar" / s).iterdir())) for s in ("with", "without")]
    assert 0 not in held, held
    assert "held-out folders" not in said.err and said.out.count("50 clips in") == 1, said.out
