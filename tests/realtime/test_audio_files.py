"""The one audio reader: named files raise one line, folder files are skipped with a note, one resampler."""

from __future__ import annotations

import os
import re
import shutil
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from realtime.audio_files import (
    AUDIO_EXTENSIONS,
    AudioNotes,
    input_notes,
    list_audio,
    read_audio,
    read_clip,
    read_mono,
    resample,
)
from sae.errors import UserError

pytestmark = pytest.mark.clock_free  # no audio against a clock: runs with the rest


@pytest.fixture
def folder(tmp_path):
    rng = np.random.default_rng(0)
    root = tmp_path / "clips"
    (root / "sub").mkdir(parents=True)
    sf.write(root / "a.wav", 0.1 * rng.standard_normal((4410, 2)).astype(np.float32), 44100)
    sf.write(root / "sub" / "b.FLAC", 0.1 * rng.standard_normal(2205).astype(np.float32), 22050)
    sf.write(root / "c.ogg", 0.1 * rng.standard_normal(4410).astype(np.float32), 44100)
    sf.write(root / "quiet.wav", np.zeros(4410, np.float32), 44100)
    sf.write(root / "short.wav", 0.1 * np.ones(10, np.float32), 44100)
    bad = np.full(4410, 0.1, np.float32)
    bad[7] = np.nan
    sf.write(root / "nan.wav", bad, 44100, subtype="FLOAT")
    (root / "broken.opus").write_bytes(b"not audio at all")
    (root / "notes.txt").write_text("not an audio suffix")
    return root


def test_suffixes_are_the_same_everywhere(folder):
    assert {".wav", ".flac", ".ogg", ".opus", ".mp3", ".aif", ".aiff"} <= set(AUDIO_EXTENSIONS)
    names = [p.relative_to(folder).as_posix() for p in list_audio(folder)]
    assert names == ["a.wav", "broken.opus", "c.ogg", "nan.wav", "quiet.wav", "short.wav", "sub/b.FLAC"]
    empty = folder / "empty"
    empty.mkdir()
    with pytest.raises(UserError, match="no audio files"):
        list_audio(empty, "--audio folder")
    with pytest.raises(UserError, match="no such folder"):
        list_audio(folder / "missing")


def test_folder_files_are_skipped_with_a_note_named_files_raise(folder):
    notes = AudioNotes()
    kept = {p.name: read_mono(p, 44100, notes, min_samples=100) for p in list_audio(folder)}
    assert {n for n, a in kept.items() if a is not None} == {"a.wav", "c.ogg", "b.FLAC"}
    reasons = dict((p.rsplit("/", 1)[-1], why) for p, why in notes.skipped)
    assert reasons["quiet.wav"] == "silent" and reasons["short.wav"].startswith("too short (10 samples")
    assert reasons["nan.wav"] == "contains NaN/inf samples"
    assert reasons["broken.opus"].startswith("not a readable audio file")
    other = AudioNotes()  # resampled: the rate its samples are counted at is the model's, not the file's (hunt 197)
    assert read_mono(folder / "short.wav", 32000, other, min_samples=100) is None
    assert other.skipped[0][1].startswith("too short (8 samples at the model's 32000 Hz, from 44100 Hz, need 100)")
    assert "resampled 1 file(s) from 22050 Hz to the model's 44100 Hz" in notes.lines()
    assert kept["b.FLAC"].shape == (4410,) and kept["a.wav"].dtype == np.float32
    sf.write(folder / "void.wav", np.zeros(0, np.float32), 44100)  # live and render wrote a 0-second file, exit 0
    for name, needle in (
        ("broken.opus", "not a readable audio file"),
        ("nan.wav", "NaN/inf"),
        ("void.wav", "no samples"),
    ):
        with pytest.raises(UserError) as err:
            read_audio(folder / name, 44100, 1, what="input")
        assert str(err.value).startswith(f"input {folder / name}: ") and needle in str(err.value)
        assert "\n" not in str(err.value)


def test_one_resampler_and_one_downmix_on_every_path(folder, tmp_path):
    """The live/render reader, the folder reader, MusicGen's loader and the dashboard's give the same samples."""
    from realtime.audio_io import read_audio as live_reader
    from training.dashboard.render import read_audio as dashboard_reader
    from training.musicgen.collect import load_audio as musicgen_reader

    src = folder / "sub" / "b.FLAC"
    x, sr = sf.read(src, dtype="float32")
    expected = resample(x, sr, 32000)
    assert expected.shape == (3200,)
    notes = AudioNotes()
    np.testing.assert_array_equal(read_mono(src, 32000, notes), expected)
    np.testing.assert_array_equal(live_reader(src, 32000, 1)[:, 0], expected)
    np.testing.assert_array_equal(musicgen_reader(src, 32000, notes).numpy()[0], expected)
    y, native = dashboard_reader(str(src))
    assert native == 22050
    np.testing.assert_array_equal(resample(y, native, 32000), expected)
    stereo, _ = sf.read(folder / "a.wav", dtype="float32")
    np.testing.assert_array_equal(read_mono(folder / "a.wav", 44100, notes), stereo.mean(axis=1))
    np.testing.assert_array_equal(live_reader(folder / "a.wav", 44100, 1)[:, 0], stereo.mean(axis=1))
    np.testing.assert_array_equal(live_reader(folder / "a.wav", 44100, 2), stereo)


def _other_readers(root) -> list[str]:
    """'path:line' of every file read or resample outside realtime/audio_files.py (in-memory bytes excepted)."""
    import re

    pattern = re.compile(r"resample_poly|julius\.|torchaudio\.(load|functional\.resample)|librosa\.(load|resample)|"
                         r"\b(sf|soundfile)\.read\((?!io\.BytesIO)")  # fmt: skip
    found = []
    for folder in ("sae", "realtime", "training"):
        for path in sorted((root / folder).rglob("*.py")):
            if path.relative_to(root).as_posix() == "realtime/audio_files.py":
                continue
            for i, line in enumerate(path.read_text().splitlines(), 1):
                if pattern.search(line):
                    found.append(f"{path.relative_to(root)}:{i}")
    return found


def test_no_other_reader_or_resampler(tmp_path):
    root = Path(__file__).resolve().parents[2]
    assert _other_readers(root) == []
    (tmp_path / "training").mkdir()
    (tmp_path / "training" / "x.py").write_text("y = resample_poly(a, 2, 1)\nz, sr = sf.read(path)\n")
    (tmp_path / "training" / "ok.py").write_text("z, sr = sf.read(io.BytesIO(data))\n")
    assert _other_readers(tmp_path) == ["training/x.py:1", "training/x.py:2"]


def test_the_one_writer_refuses_nan_clips_and_follows_the_suffix(tmp_path):
    """NaN/inf is refused in one line and nothing is written (a writer would turn it into full-scale noise or
    silence without a word); peaks are clipped, not wrapped round; the format follows the suffix."""
    import soundfile as sf

    from realtime.audio_files import write_audio

    tone = 0.5 * np.sin(np.arange(16000, dtype=np.float32) / 5)
    bad = tone.copy()
    bad[8000:8010] = np.nan
    with pytest.raises(UserError, match=r"live\.wav: 10 NaN/inf sample\(s\).*0\.50 s"):
        write_audio(tmp_path / "live.wav", bad[:, None], 16000)
    with pytest.raises(UserError, match=r"x\.mp4: suffix '\.mp4'; expected one of \.wav"):
        write_audio(tmp_path / "x.mp4", tone, 16000)
    assert [p for p in tmp_path.rglob("*") if p.is_file()] == []
    for name, fmt in {"a.wav": "WAV", "b.FLAC": "FLAC", "c.ogg": "OGG", "d.aif": "AIFF"}.items():
        write_audio(tmp_path / name, 3 * tone, 16000)
        assert sf.info(str(tmp_path / name)).format == fmt
    loud, _ = sf.read(str(tmp_path / "a.wav"), dtype="float32")
    assert loud.max() > 0.99 and loud.min() < -0.99
    assert np.abs(loud - np.clip(3 * tone, -1, 1)).max() < 1e-4
    vorbis, _ = sf.read(str(tmp_path / "c.ogg"), dtype="float32")  # a float codec: only the writer's clip bounds it
    assert np.abs(vorbis).max() < 1.1


def test_folders_as_users_have_them(tmp_path):
    """macOS copies (`._x.wav` AppleDouble twins, `.Trashes`), symlinked subfolders (once, even in a loop) and
    broken links: hidden entries are not audio, a linked folder is searched, a broken link is skipped with a note."""
    import os

    tone = 0.1 * np.sin(np.arange(4410, dtype=np.float32) / 3)
    root, elsewhere = tmp_path / "clips", tmp_path / "elsewhere"
    (root / "sub").mkdir(parents=True)
    elsewhere.mkdir()
    sf.write(root / "sub" / "a.wav", tone, 44100)
    sf.write(elsewhere / "b.wav", tone, 44100)
    (root / "sub" / "._a.wav").write_bytes(b"\x00\x05\x16\x07\x00\x02\x00\x00Mac OS X        " + bytes(60))
    (root / ".Trashes" / "501").mkdir(parents=True)
    sf.write(root / ".Trashes" / "501" / "deleted.wav", tone, 44100)
    os.symlink(elsewhere, root / "linked")
    os.symlink(root, root / "sub" / "loop")  # a link back up: searched once, not forever
    os.symlink(tmp_path / "gone.wav", root / "dangling.wav")
    (root / "folder.wav").mkdir()
    names = [p.relative_to(root).as_posix() for p in list_audio(root)]
    assert names == ["dangling.wav", "linked/b.wav", "sub/a.wav"]
    notes = AudioNotes()
    assert read_mono(root / "dangling.wav", 44100, notes) is None
    assert notes.skipped == [(str(root / "dangling.wav"), "no such file (a broken link)")]


def test_a_named_file_that_is_not_there_says_so(tmp_path, monkeypatch):
    """A typo in --in, a folder or an unreadable file is named as such, not as libsndfile's 'System
    error'."""
    (tmp_path / "dir.wav").mkdir()
    for name, needle in (("typo.wav", "no such file"), ("dir.wav", "a folder, not an audio file")):
        with pytest.raises(UserError, match=f"input {tmp_path / name}: {needle}$"):
            read_audio(tmp_path / name, 44100, 1, what="input")
    locked = tmp_path / "locked.wav"  # chmod 000 (root reads it anyway: the OS error is injected)
    sf.write(locked, np.ones(10, np.float32), 44100)
    real_open = open

    def refuse(path, *args, **kwargs):
        if str(path) == str(locked):
            raise PermissionError(13, "Permission denied", str(path))
        return real_open(path, *args, **kwargs)

    monkeypatch.setattr("builtins.open", refuse)
    with pytest.raises(UserError, match=f"input {locked}: permission denied$"):
        read_audio(locked, what="input")


def test_a_clip_on_both_sides_is_refused_for_rave_and_musicgen(tmp_path):
    """`--without clips/neg` beside `--with clips` put every negative on both sides: MusicGen's finder probed a
    concept from clips labelled both ways without a word (RAVE's refused it)."""
    from realtime.audio_files import list_sides
    from training.musicgen.concepts import example_files

    clips = tmp_path / "clips"
    for k, side in enumerate(("pos", "neg")):
        (clips / side).mkdir(parents=True)
        for i in range(3):
            sf.write(
                clips / side / f"{side}{i}.wav",
                0.1 * np.sin(np.arange(4410, dtype=np.float32) / (3 + i + 3 * k)),
                44100,
            )
    for finder in (list_sides, example_files):
        with pytest.raises(UserError, match=r"^3 clip\(s\) are in both --with and --without \(e\.g\. .*neg0\.wav\)$"):
            finder(clips, clips / "neg")
    with_files, without_files = list_sides(clips / "pos", clips / "neg")
    assert [p.name for p in with_files] == ["pos0.wav", "pos1.wav", "pos2.wav"] and len(without_files) == 3
    links = tmp_path / "links"  # hunt 138: links (a `data make` concept folder) counted each clip twice: "6 clip(s)"
    links.mkdir()
    for i in range(3):
        (links / f"n{i}.wav").symlink_to(clips / "neg" / f"neg{i}.wav")
    with pytest.raises(UserError, match=r"^3 clip\(s\) are in both --with and --without \(e\.g\. .*links/n0\.wav\)$"):
        list_sides(clips / "neg", links)
    (links / "loop.wav").symlink_to("loop.wav")  # hunt 142: Path.resolve raised "Symlink loop", a traceback
    with pytest.raises(UserError, match=r"^3 clip\(s\) are in both"):
        list_sides(links, clips / "neg")
    # a copy is the same clip (`data make --copy` folders): it passed, and a probe learnt one clip as both sides
    shutil.copyfile(clips / "pos" / "pos1.wav", clips / "neg" / "copy.wav")
    with pytest.raises(UserError, match=r"^1 clip\(s\) are in both --with and --without \(e\.g\. .*copy\.wav\)$"):
        list_sides(clips / "pos", clips / "neg")
    (clips / "neg" / "copy.wav").unlink()  # copies within one side: twelve of one clip passed the twelve-clips rule
    shutil.copyfile(clips / "pos" / "pos1.wav", clips / "pos" / "pos1b.wav")
    with pytest.raises(UserError, match=r"^--with .*pos: 1 clip\(s\) are copies of \(or links to\) others there "
                                        r"\(e\.g\. pos1b\.wav of pos1\.wav\); keep one of each$"):  # fmt: skip
        list_sides(clips / "pos", clips / "neg")
    # links to one clip alike: twelve links passed, and folds tested on the clip they trained on (hunt 82)
    (clips / "pos" / "pos1b.wav").unlink()
    (clips / "pos" / "pos1b.wav").symlink_to(clips / "pos" / "pos1.wav")
    with pytest.raises(UserError, match=r"^--with .*pos: 1 clip\(s\) are copies of \(or links to\) others there"):
        list_sides(clips / "pos", clips / "neg")
    # copies that are skipped anyway are left to that: two takes of silence on each side, a file of noise in both
    (clips / "pos" / "pos1b.wav").unlink()
    for side in ("pos", "neg"):
        for name in ("quiet.wav", "quiet2.wav"):
            sf.write(clips / side / name, np.zeros(4410, np.float32), 44100)
        (clips / side / "junk.wav").write_bytes(b"not audio")
    with_files, without_files = list_sides(clips / "pos", clips / "neg")
    assert len(with_files) == len(without_files) == 6
    # the same samples saved again (FLAC, a WAV of 24-bit or float samples) are the same clip: by the file's bytes
    # they passed as a clip with and without the concept (hunt 132)
    x, sr = sf.read(clips / "pos" / "pos2.wav", dtype="float32")  # its 16-bit samples, exactly
    for name, subtype in (("again.flac", "PCM_16"), ("again.wav", "PCM_24"), ("again_f.wav", "FLOAT")):
        sf.write(clips / "neg" / name, x, sr, subtype=subtype)
        with pytest.raises(UserError, match=rf"^1 clip\(s\) are in both --with and --without .*{name}\)$"):
            list_sides(clips / "pos", clips / "neg")
        (clips / "neg" / name).rename(clips / "pos" / name)  # and within one side
        with pytest.raises(UserError, match=r"1 clip\(s\) are copies of \(or links to\) others there .*pos2"):
            list_sides(clips / "pos", clips / "neg")
        (clips / "pos" / name).unlink()
    sf.write(clips / "neg" / "louder.wav", x * 2, sr)  # another level: another clip (a dynamics concept is one)
    assert len(list_sides(clips / "pos", clips / "neg")[1]) == 7
    (clips / "neg" / "louder.wav").unlink()
    # hunt 169: one recording at another rate, in 24 bits, on two channels, passed as another clip
    x24 = resample(x, sr, 48000)
    sf.write(clips / "pos" / "swapped.wav", np.stack([x24, x24], 1), 48000, subtype="PCM_24")
    with pytest.raises(UserError, match=r"--with .*pos: 1 clip\(s\) are one recording saved another way as others"):
        list_sides(clips / "pos", clips / "neg")
    (clips / "pos" / "swapped.wav").rename(clips / "neg" / "swapped.wav")
    with pytest.raises(UserError, match=r"^1 clip\(s\) of --without are one recording .*swapped\.wav of .*pos2"):
        list_sides(clips / "pos", clips / "neg")
    (clips / "neg" / "swapped.wav").unlink()
    assert len(list_sides(clips / "pos", clips / "neg")[1]) == 6
    sf.write(clips / "neg" / "stereo.wav", np.stack([x, x], 1), sr)  # dual mono: what a mono model reads of pos2
    with pytest.raises(UserError, match=r"^1 clip\(s\) are in both --with and --without .*stereo\.wav\)$"):
        list_sides(clips / "pos", clips / "neg")
    (clips / "neg" / "stereo.wav").unlink()
    # hunt 133: a silent clip linked into both sides (skipped anyway) hid a copy shared by its samples
    sf.write(clips / "neg" / "again.flac", x, sr)
    (clips / "pos" / "silence.wav").symlink_to(clips / "neg" / "quiet.wav")
    with pytest.raises(UserError, match=r"^1 clip\(s\) are in both --with and --without .*again\.flac\)$"):
        list_sides(clips / "pos", clips / "neg")


def test_formats_libsndfile_cannot_read_are_named_not_dropped(tmp_path):
    """A phone's .m4a voice memos beside .wav files were left out of the folder without a word ('collected 1 of 1
    file(s)'); they are listed, skipped with a note that says to convert them, and refused by name as --in."""
    sf.write(tmp_path / "take.wav", 0.1 * np.sin(np.arange(4410, dtype=np.float32) / 3), 44100)
    (tmp_path / "memo.M4A").write_bytes(b"\x00\x00\x00\x20ftypM4A " + bytes(64))
    assert [p.name for p in list_audio(tmp_path)] == ["memo.M4A", "take.wav"]
    notes = AudioNotes()
    assert read_mono(tmp_path / "memo.M4A", 44100, notes) is None
    why = ".m4a is not a format libsndfile reads; convert it to .wav or .flac (e.g. ffmpeg -i IN OUT.wav)"
    assert notes.skipped == [(str(tmp_path / "memo.M4A"), why)]
    with pytest.raises(UserError, match=f"^input {tmp_path / 'memo.M4A'}: {re.escape(why)}$"):
        read_audio(tmp_path / "memo.M4A", what="input")


def test_a_file_name_that_is_not_utf8_is_read(tmp_path):
    """A take named in Latin-1 (an old archive's `café.wav`) was skipped as 'not a readable audio file ('utf-8'
    codec can't encode ...)' and a render beside it was a UnicodeEncodeError: libsndfile is given the name's own
    bytes."""
    import os

    from realtime.audio_files import write_audio

    tone = 0.1 * np.sin(np.arange(4410, dtype=np.float32) / 3)
    sf.write(tmp_path / "plain.wav", tone, 44100)
    latin = Path(os.fsdecode(bytes(tmp_path) + b"/caf\xe9.wav"))
    latin.write_bytes((tmp_path / "plain.wav").read_bytes())
    notes = AudioNotes()
    assert [p.name for p in list_audio(tmp_path)] == [latin.name, "plain.wav"]
    np.testing.assert_array_equal(read_mono(latin, 44100, notes), sf.read(tmp_path / "plain.wav", dtype="float32")[0])
    assert notes.skipped == [] and read_audio(latin)[0].shape == (4410, 1)
    write_audio(latin.with_name(latin.stem + " render.wav"), tone, 44100)  # `render --out` beside it
    assert read_audio(latin.with_name(latin.stem + " render.wav"))[0].shape == (4410, 1)
    (tmp_path / "junk.wav").write_text("no audio")  # libsndfile's reason, without the path said twice
    with pytest.raises(
        UserError, match=r"^audio file \S+junk\.wav: not a readable audio file \(Format not recognised\.\)$"
    ):
        read_audio(tmp_path / "junk.wav")


def test_resampled_counts_only_the_files_kept(tmp_path):
    """'resampled 15 file(s)' of a folder where 4 of those 15 were then skipped (silent, too short)."""
    sf.write(tmp_path / "take.wav", 0.1 * np.sin(np.arange(22050, dtype=np.float32) / 3), 22050)
    sf.write(tmp_path / "silent.wav", np.zeros(22050, np.float32), 22050)
    sf.write(tmp_path / "blip.wav", np.full(5, 0.5, np.float32), 22050)
    notes = AudioNotes()
    kept = [read_mono(p, 44100, notes, min_samples=100) for p in list_audio(tmp_path)]
    assert sum(a is not None for a in kept) == 1 and len(notes.skipped) == 2
    assert notes.lines()[0] == "resampled 1 file(s) from 22050 Hz to the model's 44100 Hz"


def test_a_folder_says_how_many_files_were_mixed_to_mono(tmp_path):
    """collect said 'resampled' for a 48 kHz stereo file but not that its two channels became one (render says)."""
    sf.write(tmp_path / "wide.wav", 0.1 * np.random.default_rng(0).standard_normal((4410, 2)).astype(np.float32), 44100)
    sf.write(tmp_path / "mono.wav", 0.1 * np.sin(np.arange(4410, dtype=np.float32) / 3), 44100)
    notes = AudioNotes()
    assert all(read_mono(p, 44100, notes).ndim == 1 for p in list_audio(tmp_path))
    assert notes.lines() == ["mixed 1 file(s) of 2 channels to mono"]
    stereo = AudioNotes()
    read_clip(tmp_path / "wide.wav", 44100, stereo, channels=2)  # a stereo model keeps both: nothing mixed
    assert stereo.lines() == []


def test_a_folder_says_which_float_files_peak_above_full_scale(tmp_path):
    """Hunt 67: one float clip peaking at +59 dBFS (under the reader's +60 dBFS limit) among 15 moved every probe
    feature of a concept, and neither collect nor concept find said a word (a render's input note did)."""
    tone = np.sin(np.arange(4410, dtype=np.float32) / 3)
    sf.write(tmp_path / "a_full.wav", 0.99 * tone, 44100, subtype="FLOAT")
    sf.write(tmp_path / "b_hot.wav", 2.0 * tone, 44100, subtype="FLOAT")
    sf.write(tmp_path / "c_loud.wav", 890.0 * tone, 44100, subtype="FLOAT")
    notes = AudioNotes()
    assert all(read_mono(p, 44100, notes) is not None for p in list_audio(tmp_path))
    assert notes.lines() == [
        f"2 file(s) peak above full scale (loudest {tmp_path / 'c_loud.wav'}, +59.0 dBFS): read as they are, "
        "louder than anything the model was trained on; normalise them if that is not meant"
    ]


def test_a_recording_that_was_never_closed_is_named_as_such(tmp_path):
    """A recorder that died before it finished the header leaves data sizes of 0: libsndfile reads no samples, and
    the file (seconds of audio on disk) was refused as 'no samples' / skipped as 'too short (0 samples'."""
    sf.write(tmp_path / "take.wav", 0.1 * np.sin(np.arange(44100, dtype=np.float32) / 3), 44100)
    raw = bytearray((tmp_path / "take.wav").read_bytes())
    at = raw.find(b"data")
    raw[4:8] = raw[at + 4 : at + 8] = bytes(4)  # RIFF and data sizes as written when recording starts
    (tmp_path / "take.wav").write_bytes(raw)
    why = "no samples in its header, yet 88244 bytes on disk: a recording never closed? (ffmpeg -i IN OUT.wav reads it)"
    with pytest.raises(UserError, match=f"^input {tmp_path / 'take.wav'}: {re.escape(why)}$"):
        read_audio(tmp_path / "take.wav", what="input")
    notes = AudioNotes()
    assert read_mono(tmp_path / "take.wav", 44100, notes) is None and notes.skipped[0][1] == why


def test_channels_that_cancel_are_named_not_called_silent(tmp_path):
    """A stereo take with one channel phase-inverted plays loud but mixes to nothing: it was skipped as 'silent'."""
    x = 0.3 * np.sin(np.arange(4410, dtype=np.float32) / 3)
    sf.write(tmp_path / "inverted.wav", np.stack([x, -x], axis=1), 44100)
    sf.write(tmp_path / "quiet.wav", np.zeros((4410, 2), np.float32), 44100)
    notes = AudioNotes()
    assert [read_mono(p, 44100, notes) for p in list_audio(tmp_path)] == [None, None]
    assert [why for _, why in notes.skipped] == [
        "silent once its 2 channels are mixed to mono: they cancel (one phase-inverted?)",
        "silent",
    ]
    # render rave and live say so too (hunt 101: 16-bit rounding leaves the mix at ±1/2 LSB, not exactly 0)
    data, sr = read_audio(tmp_path / "inverted.wav")
    assert np.abs(data.mean(axis=1)).max() > 0.0
    said = input_notes(tmp_path / "inverted.wav", data, sr, 44100, 1, 512)
    assert said[-1].endswith("is silent once its 2 channels are mixed to mono: they cancel (one phase-inverted?)")


def test_a_constant_offset_is_not_sound(tmp_path):
    """A take of nothing but a DC offset (a cheap interface's idle input) was kept as a clip and played without a
    note: it has a level, yet nothing to hear."""
    sf.write(tmp_path / "idle.wav", np.full(4410, 0.02, np.float32), 44100)
    notes = AudioNotes()
    assert read_mono(tmp_path / "idle.wav", 44100, notes) is None
    assert notes.skipped == [(str(tmp_path / "idle.wav"), "silent apart from a constant offset (DC)")]
    data, sr = read_audio(tmp_path / "idle.wav")
    assert input_notes(tmp_path / "idle.wav", data, sr, 44100, 1, 512) == [
        f"input {tmp_path / 'idle.wav'} is silent apart from a constant offset (DC)"
    ]
    sf.write(tmp_path / "take.wav", 0.02 + 0.01 * np.sin(np.arange(4410, dtype=np.float32) / 3), 44100)
    assert read_mono(tmp_path / "take.wav", 44100, notes) is not None  # sound over an offset is kept


def test_a_mono_model_on_two_channels_is_noted_by_what_it_hears():
    """Hunt 92: `live --channels 2` with a mono model (--stereo mid, the default) on a file whose channels cancel
    played silence with no note (the check took the device's two channels for what the model hears), and a mono
    file on it was said to play on "both channels of the stereo model"."""
    x = np.sin(np.arange(4410, dtype=np.float32) / 3)[:, None]
    cancelling = np.concatenate([x, -x], axis=1)
    cancel = "is silent once its 2 channels are mixed to mono: they cancel"
    assert any(cancel in n for n in input_notes("c.wav", cancelling, 44100, 44100, 2, 512, 1, mid=True))
    assert input_notes("c.wav", cancelling, 44100, 44100, 2, 512, 1, mid=False) == []  # each side its own stream
    assert input_notes("c.wav", cancelling, 44100, 44100, 2, 512) == []  # a stereo model plays both sides
    on_each = "played mono m.wav on both channels (a mono model on each)"
    assert input_notes("m.wav", x, 44100, 44100, 2, 512, 1) == [on_each]
    assert input_notes("m.wav", x, 44100, 44100, 2, 512) == ["played mono m.wav on both channels of the stereo model"]
    six = np.repeat(x, 6, axis=1)
    assert input_notes("s.wav", six, 44100, 44100, 2, 512, 1) == ["mixed 6 channels of s.wav to mono"]


def test_a_subfolder_it_cannot_list_is_named_not_skipped(tmp_path, monkeypatch):
    """os.walk skips a folder it cannot list (permissions, a dead network share) without a word: a collection
    quietly lost a subfolder's clips. (Root reads any folder, so the refusal is injected.)"""
    (tmp_path / "ok").mkdir()
    (tmp_path / "locked").mkdir()
    sf.write(tmp_path / "ok" / "a.wav", 0.1 * np.ones(100, np.float32), 44100)
    real = os.scandir

    def scandir(path):
        if Path(path).name == "locked":
            raise PermissionError(13, "Permission denied", str(path))
        return real(path)

    monkeypatch.setattr(os, "scandir", scandir)
    with pytest.raises(UserError, match=r"^--with folder \S+: cannot list \S+locked \(permission denied\); fix its"):
        list_audio(tmp_path, "--with folder")


def test_a_damaged_file_is_not_said_to_be_missing(tmp_path):
    """A damaged .mp3 (or a text file named so) was skipped as 'not a readable audio file (File does not exist or is
    not a regular file (possibly a pipe?).)': libsndfile's words, wrong for a file that is there."""
    (tmp_path / "b.mp3").write_text("x\n")
    notes = AudioNotes()
    assert read_mono(tmp_path / "b.mp3", 44100, notes) is None
    [(_, why)] = notes.skipped
    assert why.startswith("not a readable audio file") and "not exist" not in why and "pipe" not in why, why
    with pytest.raises(UserError, match="damaged, or not the format its name says"):
        read_audio(tmp_path / "b.mp3", what="input")


def test_a_sample_rate_no_audio_has_is_refused_before_resampling(tmp_path):
    """A 40 kB wav whose header says 1 Hz was resampled to 44.1 kHz: 8 GB of memory and minutes before anything
    said a word (at 8 Hz, 2500 s of audio rendered from 20000 samples)."""
    sf.write(tmp_path / "odd.wav", np.full(20000, 0.1, np.float32), 1)
    sf.write(tmp_path / "ok.wav", np.full(2000, 0.1, np.float32), 8000)  # telephone audio is audio
    with pytest.raises(UserError, match=r"odd\.wav: sample rate 1 Hz: expected audio at 1000 to 768000 Hz"):
        read_audio(tmp_path / "odd.wav", sr=44100)
    assert read_audio(tmp_path / "ok.wav", sr=44100)[0].shape == (11025, 1)
    # a byte-swapped rate field: 18 GB and 89 s to resample 1 s to 2 samples; 2^31 - 1 Hz ended a whole collect
    sf.write(tmp_path / "swapped.wav", np.full(44100, 0.1, np.float32), 1152122880)
    with pytest.raises(UserError, match=r"swapped\.wav: sample rate 1152122880 Hz: expected audio at 1000 to"):
        read_audio(tmp_path / "swapped.wav", sr=44100)


def test_a_pipe_or_absurd_samples_named_like_audio_are_skipped_with_a_reason(tmp_path):
    """A FIFO named take.wav hung `collect rave` forever; a float file of 1e30 samples rode through collection to a
    bank refusal that named the bank, never the clip."""
    noise = np.random.default_rng(0).standard_normal(4410).astype(np.float32)
    sf.write(tmp_path / "ok.wav", 0.1 * noise, 44100)
    os.mkfifo(tmp_path / "take.wav")
    sf.write(tmp_path / "loud.wav", 1e30 * noise / np.abs(noise).max(), 44100, subtype="FLOAT")
    sf.write(tmp_path / "hot.wav", 4 * noise / np.abs(noise).max(), 44100, subtype="FLOAT")  # +12 dBFS: kept
    notes = AudioNotes()
    kept = {p.name: read_mono(p, 44100, notes) for p in list_audio(tmp_path)}
    assert {n for n, a in kept.items() if a is not None} == {"ok.wav", "hot.wav"}
    reasons = dict((p.rsplit("/", 1)[-1], why) for p, why in notes.skipped)
    assert reasons == {"take.wav": "not a regular file (a pipe, socket or device)",
                       "loud.wav": "samples up to 1e+30: expected audio within ±1000 (+60 dBFS)"}  # fmt: skip


def test_a_damaged_mp3_is_named_in_one_line_and_libmpg123_says_nothing(tmp_path, capfd):
    """libmpg123 wrote its own lines ("Note: Illegal Audio-MPEG-Header ...", "Trying to resync...") on stderr
    beside musicsae's note for a damaged .mp3 (hunt 82); commands print only their own results."""
    from realtime.audio_files import _load

    (tmp_path / "fake.mp3").write_bytes(np.random.default_rng(0).bytes(5000))
    capfd.readouterr()
    why = _load(tmp_path / "fake.mp3")
    assert isinstance(why, str) and why, why
    assert capfd.readouterr().err == ""
    # hunt 92: libsndfile takes an MP3 by its bytes, whatever its name; cut short, one named .wav had its say
    sr = 44100
    sf.write(tmp_path / "tone.mp3", 0.3 * np.sin(np.arange(2 * sr, dtype=np.float32) / 7), sr)
    (tmp_path / "cut_mp3.wav").write_bytes((tmp_path / "tone.mp3").read_bytes()[:6000])
    capfd.readouterr()
    why = _load(tmp_path / "cut_mp3.wav")  # hunt 202: refused as cut short (its Xing frame declares 2 s), no more read
    assert isinstance(why, str) and why.startswith("cut short: decoded"), why
    assert capfd.readouterr().err == ""


def test_a_clip_that_cannot_be_read_is_left_to_be_skipped_not_the_end_of_the_listing(tmp_path, monkeypatch):
    """Hunt 133: a clip its user may not read ended `concept find` ("writing ...: Permission denied") once every clip
    was hashed: the file's bytes could not be read either. It is left to `read_clip`, which skips it with a note."""
    import sae.bank
    from realtime.audio_files import list_sides

    for k, side in enumerate(("with", "without")):
        (tmp_path / side).mkdir()
        for i in range(3):
            tone = 0.1 * np.sin(np.arange(4410 + i, dtype=np.float32) / (3 + 3 * k + i))  # six tones
            sf.write(tmp_path / side / f"{side}{i}.wav", tone, 44100)
    (tmp_path / "with" / "locked.wav").write_bytes(b"RIFF junk")  # as read without permission: no audio

    def denied(path):
        raise PermissionError(13, "Permission denied", str(path))

    monkeypatch.setattr(sae.bank, "file_sha256", denied)
    with_files, without_files = list_sides(tmp_path / "with", tmp_path / "without")
    assert len(with_files) == 4 and len(without_files) == 3


def test_a_long_take_is_written_as_ogg_and_stays_bit_exact_as_wav(tmp_path):
    """`--out take.ogg` of a take past about 50 s crashed the process (SIGSEGV: libsndfile 1.2.2 hands libvorbis a
    whole write on the stack) after the whole take was played, and lost it (hunt 147). The writer goes in chunks;
    run in a child, since the fault kills the process."""
    import subprocess
    import sys

    script = (
        "import sys, numpy as np; from realtime.audio_files import write_audio\n"
        "t = np.arange(44100 * 60, dtype=np.float32) / 44100\n"
        "x = 0.3 * np.sin(2 * np.pi * 220 * t)\n"
        "write_audio(sys.argv[1], np.stack([x, -x], 1), 44100); write_audio(sys.argv[2], x, 44100)\n"
    )
    root = Path(__file__).resolve().parents[2]
    done = subprocess.run([sys.executable, "-c", script, str(tmp_path / "take.ogg"), str(tmp_path / "take.wav")],
                          cwd=root, capture_output=True, text=True, timeout=300)  # fmt: skip
    assert done.returncode == 0, (done.returncode, done.stderr[-2000:])
    info = sf.info(str(tmp_path / "take.ogg"))
    assert info.channels == 2 and abs(info.frames - 44100 * 60) < 44100 * 0.01, info
    t = np.arange(44100 * 60, dtype=np.float32) / 44100
    sf.write(tmp_path / "whole.wav", 0.3 * np.sin(2 * np.pi * 220 * t), 44100)  # one call: what it wrote before
    chunked, whole = (sf.read(str(tmp_path / n), dtype="int16")[0] for n in ("take.wav", "whole.wav"))
    assert chunked.shape == (44100 * 60,) and np.array_equal(chunked, whole)


def test_clips_that_differ_above_4_khz_or_in_their_stereo_image_are_not_near_copies(tmp_path):
    """Hunt 171: the first near-copy check compared mono mixes at 8 kHz with a bound of 0.995: a loop with and
    without quiet hi-hats, a tone with and without a 6 kHz partial, and a stereo-width concept were refused as one
    recording saved two ways."""
    from realtime.audio_files import near_copies

    sr, rng = 44100, np.random.default_rng(0)
    t = np.arange(2 * sr) / sr
    tone = (0.5 * np.sin(2 * np.pi * 220 * t) * np.exp(-(t % 0.5) * 4)).astype(np.float32)
    hats = (0.05 * rng.standard_normal(len(t)) * (np.sin(2 * np.pi * 8 * t) > 0.9)).astype(np.float32)
    hiss = np.convolve(hats, [1, -1], "same").astype(np.float32)  # its top band only
    clips = {
        "tone.wav": tone,
        "tone_hats.wav": tone + hiss,
        "tone_partial.wav": tone + 0.03 * np.sin(2 * np.pi * 6000 * t).astype(np.float32),
        "mono.wav": np.stack([tone, tone], 1),
        "wide.wav": np.stack([tone + 0.3 * hats, tone - 0.3 * hats], 1),
        "tone_24.wav": tone,
    }
    for name, x in clips.items():
        sf.write(tmp_path / name, x, sr, subtype="PCM_24" if name == "tone_24.wav" else "PCM_16")
    pairs = near_copies([tmp_path / "tone.wav"], [tmp_path / n for n in clips if n != "tone.wav"])
    assert [q.name for _, q in pairs] == ["mono.wav", "tone_24.wav"], pairs  # the same recording, and only it
    assert near_copies([tmp_path / "mono.wav"], [tmp_path / "wide.wav"]) == []
    sf.write(tmp_path / "wide_swapped.flac", clips["wide.wav"][:, ::-1], sr)  # swapped channels: one recording
    assert near_copies([tmp_path / "wide.wav"], [tmp_path / "wide_swapped.flac"]) == [
        (tmp_path / "wide.wav", tmp_path / "wide_swapped.flac")
    ]


def test_a_dc_only_file_at_another_rate_is_silent_as_at_the_models(tmp_path):
    """Hunt 169: the silence test ran after resampling, whose edge ripple made a 48 kHz file of DC alone "sound" at
    44.1 kHz (its twin at 44.1 kHz was skipped), while `audio_digest` called it skipped: the same such file on
    both sides of a concept was read as a clip on each. A header-only file warned "Mean of empty slice"."""
    import warnings

    from realtime.audio_files import audio_digest, is_silent

    for sr in (44100, 48000):
        sf.write(tmp_path / f"dc_{sr}.wav", np.full(sr, 0.2, np.float32), sr)
        notes = AudioNotes()
        assert read_clip(tmp_path / f"dc_{sr}.wav", 44100, notes, 512) is None, sr
        assert "constant offset (DC)" in notes.skipped[0][1] and audio_digest(tmp_path / f"dc_{sr}.wav")[1]
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert is_silent(np.zeros((0, 2), np.float32))


def test_a_file_cut_short_or_damaged_midway_is_named_not_read_short(tmp_path):
    """Hunt 177: a WAV or AIFF cut at half its bytes (a copy that stopped) and an Ogg damaged midway were read as
    clips of half their length, without a word (a FLAC so damaged was refused); hunt 178: RF64, W64, AU and a WAV
    declaring gigabytes too. A WAV whose sizes are a pipe writer's placeholder (ffmpeg to stdout: 0xFFFFFFFF;
    espeak-ng: 0x7FFFF000) is whole, and read; so is an MP3 in a WAV, whose frame count libsndfile estimates."""
    import shutil
    import subprocess

    x = 0.1 * np.sin(np.arange(88200, dtype=np.float32) / 10)
    for name, fmt in (("a.wav", "WAV"), ("a.aiff", "AIFF"), ("r.wav", "RF64"), ("a.w64", "W64"), ("a.au", "AU")):
        sf.write(tmp_path / name, x, 44100, subtype="PCM_16", format=fmt)
        raw = (tmp_path / name).read_bytes()
        (tmp_path / f"cut_{name}").write_bytes(raw[: len(raw) // 2])
        with pytest.raises(UserError, match=rf"cut_{name}: cut short: its header declares \d+ bytes, the file holds "
                                            r"\d+ \(a copy that stopped\?\)$"):  # fmt: skip
            read_audio(tmp_path / f"cut_{name}", what="input")
        notes = AudioNotes()
        assert read_mono(tmp_path / f"cut_{name}", 44100, notes) is None and "cut short" in notes.skipped[0][1]
    raw = bytearray((tmp_path / "a.wav").read_bytes())
    at = raw.find(b"data")
    for size, whole in ((0xFFFFFFFF, True), (0x7FFFF000, True), (0x90000000, False)):  # the last: 2.4 GB declared
        raw[4:8] = raw[at + 4 : at + 8] = size.to_bytes(4, "little")
        (tmp_path / "sized.wav").write_bytes(raw)
        if whole:
            assert read_audio(tmp_path / "sized.wav")[0].shape == (88200, 1)
        else:
            with pytest.raises(UserError, match="cut short"):
                read_audio(tmp_path / "sized.wav")
    ffmpeg = shutil.which("ffmpeg")
    assert ffmpeg, "ffmpeg is not installed (just setup-system installs it)"
    subprocess.run([ffmpeg, "-v", "error", "-i", str(tmp_path / "a.wav"), "-c:a", "libmp3lame", "-f", "wav",
                    str(tmp_path / "mp3.wav")], check=True)  # fmt: skip
    assert sf.info(tmp_path / "mp3.wav").subtype == "MPEG_LAYER_III"
    assert abs(read_audio(tmp_path / "mp3.wav")[0].shape[0] - 88200) < 2 * 1152
    noise = 0.1 * np.random.default_rng(0).standard_normal(88200).astype(np.float32)  # 22 kB of Vorbis, not 7
    sf.write(tmp_path / "whole.ogg", noise, 44100, format="OGG")
    raw = bytearray((tmp_path / "whole.ogg").read_bytes())
    assert read_audio(tmp_path / "whole.ogg")[0].shape[0] == 88200
    mid = len(raw) // 2
    raw[mid : mid + 2000] = bytes(2000)
    (tmp_path / "damaged.ogg").write_bytes(raw)
    with pytest.raises(UserError, match=r"damaged\.ogg: damaged: decoded \d+ of the 88200 frames its header declares$"):
        read_audio(tmp_path / "damaged.ogg", what="input")


def test_a_vbr_mp3_without_a_xing_header_is_named_not_read_at_a_fraction(tmp_path):
    """Hunt 178: libsndfile takes a VBR MP3's length from its Xing header or, with none, from its first frame's
    bitrate: such a file (`ffmpeg -write_xing 0`, a stream cut from its start) decoded 0.53 s of its 3 s without a
    word. Its frames are counted: it is refused in one line, while the same file with its header and a CBR file
    without one are read whole."""
    import subprocess

    from realtime.mpeg_frames import frame_header

    sr = 44100
    t = np.arange(3 * sr) / sr
    noise = np.random.default_rng(0).standard_normal(len(t))
    x = np.where(t < 1.5, 0.05 * np.sin(2 * np.pi * 220 * t), 0.3 * noise).astype(np.float32)  # quiet start: low rate
    sf.write(tmp_path / "vbr.mp3", x, sr, format="MP3", subtype="MPEG_LAYER_III", bitrate_mode="VARIABLE")
    raw = (tmp_path / "vbr.mp3").read_bytes()
    head = frame_header(raw[:4])
    assert head and b"Xing" in raw[: head[0]]
    (tmp_path / "no_xing.mp3").write_bytes(raw[head[0] :])  # the stream without its first (Xing) frame
    assert abs(read_audio(tmp_path / "vbr.mp3")[0].shape[0] - len(x)) < 2 * 1152
    why = r"decoded 0\.\d\d s of the 3\.0\d s its MPEG frames hold \(libsndfile stops at the length its first frame"
    with pytest.raises(UserError, match=rf"no_xing\.mp3: {why} .*, or MP3s joined\); convert it \(e\.g\. ffmpeg -i IN"):
        read_audio(tmp_path / "no_xing.mp3", what="input")
    notes = AudioNotes()
    assert read_mono(tmp_path / "no_xing.mp3", sr, notes) is None and "MPEG frames hold" in notes.skipped[0][1]
    ffmpeg = shutil.which("ffmpeg")
    assert ffmpeg, "ffmpeg is not installed (just setup-system installs it)"
    sf.write(tmp_path / "x.wav", x, sr)
    files = {"ff_vbr.mp3": ["-q:a", "6"], "ff_cbr.mp3": ["-b:a", "128k"], "vbr_in.wav": ["-q:a", "6"]}  # ID3v2 tags
    for name, rate in files.items():  # the last: an MP3 in a WAV (hunt 182)
        subprocess.run([ffmpeg, "-v", "error", "-i", str(tmp_path / "x.wav"), "-c:a", "libmp3lame", *rate,
                        "-write_xing", "0", str(tmp_path / name)], check=True)  # fmt: skip
    for name in ("ff_vbr.mp3", "vbr_in.wav"):
        with pytest.raises(UserError, match=why):
            read_audio(tmp_path / name)
    assert abs(read_audio(tmp_path / "ff_cbr.mp3")[0].shape[0] - len(x)) < 2 * 1152
    # two files joined (`cat`), each with its ID3 tag and Xing header: libsndfile stops at the first one's length
    subprocess.run([ffmpeg, "-v", "error", "-i", str(tmp_path / "x.wav"), "-c:a", "libmp3lame", "-q:a", "6",
                    str(tmp_path / "tagged.mp3")], check=True)  # fmt: skip
    tagged = (tmp_path / "tagged.mp3").read_bytes()
    assert tagged[:3] == b"ID3" and abs(read_audio(tmp_path / "tagged.mp3")[0].shape[0] - len(x)) < 2 * 1152
    (tmp_path / "joined.mp3").write_bytes(tagged + tagged)
    with pytest.raises(UserError, match=r"joined\.mp3: decoded 3\.\d\d s of the 6\.\d\d s its MPEG frames hold"):
        read_audio(tmp_path / "joined.mp3")


def test_every_suffix_libsndfile_reads_is_listed_and_read(tmp_path):
    """Hunt 202: .caf (Apple Loops, GarageBand), .aifc, .w64, .au and .bwf were left out of every folder without a
    word (`collect` said "collected 1 of 1"), though the reader reads them; WavPack was left out unsaid too."""
    tone = (0.3 * np.sin(np.arange(4410) / 5)).astype(np.float32)
    formats = {"loop.caf": "CAF", "take.aifc": "AIFF", "big.w64": "W64", "sun.au": "AU", "field.bwf": "WAV"}
    for name, fmt in formats.items():
        sf.write(tmp_path / name, tone, 44100, format=fmt)
    (tmp_path / "pack.wv").write_bytes(b"wvpk" + bytes(60))
    listed = [p.name for p in list_audio(tmp_path)]
    assert sorted(listed) == sorted([*formats, "pack.wv"])
    notes = AudioNotes()
    for name in formats:
        np.testing.assert_allclose(read_mono(tmp_path / name, 44100, notes), tone, atol=1e-4)
    assert read_mono(tmp_path / "pack.wv", 44100, notes) is None and "pack.wv" in notes.skipped[0][0]


def test_a_pipe_named_like_audio_is_not_hashed(tmp_path):
    """Hunt 202: a FIFO named pipe.wav hung `collect rave` and `collect musicgen` for good: the store's record of
    each file hashed its bytes before the reader's check of a regular file, and collect's note on copies hashed
    any two files of one size."""
    import threading

    from realtime.audio_files import file_origin
    from training.cli.collect import _linked

    sf.write(tmp_path / "ok.wav", np.zeros(100, np.float32), 44100)
    for name in ("pipe.wav", "pipe2.wav"):  # two of one size (0 bytes): collect's note compared their bytes
        os.mkfifo(tmp_path / name)
    done = {}
    files = sorted(tmp_path.iterdir())
    worker = threading.Thread(  # a FIFO's read blocks until a writer comes: a thread, so a hang fails the test
        target=lambda: done.update(origin=file_origin(tmp_path / "pipe.wav"), notes=_linked(files, str(tmp_path))),
        daemon=True,
    )
    worker.start()
    worker.join(30)
    assert done == {"origin": None, "notes": []}, "hung on a FIFO"
    assert file_origin(tmp_path / "ok.wav")["bytes"] > 0


def test_an_mp3_cut_short_is_refused_where_its_xing_header_says_how_long_it_is(tmp_path, capfd):
    """Hunt 202: an MP3 download that stopped half way decoded its first half without a word (`render` wrote 10 s
    of a 20 s song), where a WAV, AIFF or FLAC cut short is refused: its Xing frame declares its length exactly."""
    from realtime.mpeg_frames import declares_length

    sr = 44100
    sf.write(tmp_path / "song.mp3", (0.3 * np.sin(np.arange(20 * sr) / 7)).astype(np.float32), sr)
    whole = (tmp_path / "song.mp3").read_bytes()
    (tmp_path / "cut.mp3").write_bytes(whole[: len(whole) // 2])
    assert declares_length(tmp_path / "song.mp3") and declares_length(tmp_path / "cut.mp3")
    capfd.readouterr()
    assert read_audio(tmp_path / "song.mp3")[0].shape == (20 * sr, 1)  # whole: read
    with pytest.raises(UserError, match=r"cut\.mp3: cut short: decoded 9\.\d\d s of the 20\.00 s its Xing header"):
        read_audio(tmp_path / "cut.mp3")
    assert capfd.readouterr().err == ""  # libmpg123's own warning about the Xing size is not printed
    # hunt 205: behind an ID3 tag over 1 MiB (cover art) the Xing frame was not looked for: read half, unsaid
    size = 2 << 20
    tag = b"ID3\x03\x00\x00" + bytes((size >> k) & 0x7F for k in (21, 14, 7, 0)) + bytes(size)  # padding only
    (tmp_path / "art.mp3").write_bytes(tag + whole[: len(whole) // 2])
    assert declares_length(tmp_path / "art.mp3")
    with pytest.raises(UserError, match=r"art\.mp3: cut short: decoded 9\.\d\d s of the 20\.00 s"):
        read_audio(tmp_path / "art.mp3")


def test_a_wav_whose_samples_run_past_its_declared_size_is_refused_a_trailing_chunk_is_not(tmp_path):
    """Hunt 202: a WAV whose header says 1 s while 3 s of samples follow (a recorder that crashed between header
    updates, a WAV over 4 GiB whose 32-bit size wrapped) was read as 1 s, unsaid. A chunk after the samples (an id3
    tag with cover art, a LIST) is no such thing."""
    import struct

    sr = 44100
    sf.write(tmp_path / "whole.wav", (0.3 * np.sin(np.arange(3 * sr) / 7)).astype(np.float32), sr, subtype="PCM_16")
    b = bytearray((tmp_path / "whole.wav").read_bytes())
    at = b.find(b"data")
    stale = bytearray(b)
    stale[at + 4 : at + 8] = struct.pack("<I", 2 * sr)  # 1 s of 16-bit samples declared
    (tmp_path / "stale.wav").write_bytes(stale)
    with pytest.raises(UserError, match=r"stale\.wav: its header declares 88200 bytes of samples, 176400 more bytes"):
        read_audio(tmp_path / "stale.wav")
    art = b + b"id3 " + struct.pack("<I", 300_000) + bytes(300_000)  # a large chunk after the samples
    art[4:8] = struct.pack("<I", len(art) - 8)
    (tmp_path / "art.wav").write_bytes(art)
    assert read_audio(tmp_path / "art.wav")[0].shape == (3 * sr, 1)
    size = 300_000  # hunt 205: a raw ID3v2 tag some taggers append after the RIFF chunk is no samples either
    tag = b"ID3\x03\x00\x00" + bytes((size >> k) & 0x7F for k in (21, 14, 7, 0)) + bytes(size)
    (tmp_path / "tagged.wav").write_bytes(b + tag)
    assert read_audio(tmp_path / "tagged.wav")[0].shape == (3 * sr, 1)
    # hunt 208: 8-bit mono at 16 kHz holds 3 s in 48 kB, under the 64 kB once asked of what follows
    sf.write(tmp_path / "low.wav", (0.3 * np.sin(np.arange(48000) / 7)).astype(np.float32), 16000, subtype="PCM_U8")
    low = bytearray((tmp_path / "low.wav").read_bytes())
    at = low.find(b"data")
    low[at + 4 : at + 8] = struct.pack("<I", 16000)  # 1 s declared
    (tmp_path / "low.wav").write_bytes(low)
    with pytest.raises(UserError, match=r"low\.wav: its header declares 16000 bytes of samples, 32000 more"):
        read_audio(tmp_path / "low.wav")
    # an odd-sized data chunk without its pad byte, then a raw ID3 tag: libsndfile reports a byte into the tag
    sf.write(tmp_path / "odd.wav", (0.3 * np.sin(np.arange(sr + 1) / 7)).astype(np.float32), sr, subtype="PCM_24")
    odd = bytearray((tmp_path / "odd.wav").read_bytes())
    at = odd.find(b"data")
    end = at + 8 + struct.unpack("<I", odd[at + 4 : at + 8])[0]
    odd = odd[:end] + tag
    odd[4:8] = struct.pack("<I", end - 8)
    (tmp_path / "odd.wav").write_bytes(odd)
    assert read_audio(tmp_path / "odd.wav")[0].shape == (sr + 1, 1)


def test_the_prints_a_command_holds_are_small_and_still_find_a_quiet_copy(tmp_path):
    """Hunt 202: every clip's near-copy print was held at 16 kHz, mid and side, for the whole command: 23 MB a
    three-minute stereo song, 1.56 GB for 24. A print holds the first pass's coarse mid now (8 kB a second),
    and the pairs it keeps are read again whole: a copy of a quiet take (-70 dBFS, another sample format) is found."""
    from realtime.audio_files import near_copies, sound_prints

    sr, seconds = 44100, 30
    rng = np.random.default_rng(1)
    take = (3e-4 * rng.standard_normal((seconds * sr, 2))).astype(np.float32)
    sf.write(tmp_path / "take.wav", take, sr, subtype="PCM_24")
    sf.write(tmp_path / "take_float.wav", take, sr, subtype="FLOAT")
    sf.write(tmp_path / "other.wav", np.roll(take, sr, axis=0), sr, subtype="PCM_24")
    prints = sound_prints()
    files = [tmp_path / n for n in ("take.wav", "other.wav", "take_float.wav")]
    assert near_copies(files, None, prints) == [(files[0], files[2])]
    held = [sum(v.nbytes for v in vars(prints(p)).values() if isinstance(v, np.ndarray)) for p in files]
    assert max(held) <= 8000 * seconds, held  # 4000 float16 samples a second (it held 128 kB)


def test_a_loops_variations_are_read_whole_once_a_command(tmp_path, monkeypatch):
    """Hunt 211: variations of one loop (0.998 alike: no copies, but each pairs up in the first pass) were read whole
    again for every pair once more than 16 were around (an LRU of 16): a side's checks took 44 s, not 2.7 s."""
    import realtime.audio_files as audio_files

    read = []
    whole_print = audio_files.whole_print
    monkeypatch.setattr(audio_files, "whole_print", lambda p: read.append(p) or whole_print(p))
    sr, rng = 16000, np.random.default_rng(2)
    loop = rng.standard_normal(sr).astype(np.float32) * 0.3
    files = []
    for i in range(20):
        files.append(tmp_path / f"take{i}.wav")
        sf.write(files[-1], loop + 0.017 * rng.standard_normal(sr).astype(np.float32), sr, subtype="FLOAT")
    prints = audio_files.sound_prints()
    assert audio_files.near_copies(files, None, prints) == []  # alike, not one recording
    assert audio_files.near_copies(files[:10], files[10:], prints) == []  # a second check of the same command
    assert len(read) == 20 * 2, len(read)  # each clip: once for its coarse print, once whole


def test_the_first_nan_is_timed_past_the_first_write_chunk_and_a_negative_peak_is_a_peak():
    """Hunt 212: a NaN past the first 65536-frame chunk could be timed in its chunk, and a peak blind to negative
    samples (the clipping and full-scale notes) went unseen."""
    from realtime.audio_files import WRITE_FRAMES, check_finite, peak

    x = np.zeros(WRITE_FRAMES + 32000, np.float32)
    x[WRITE_FRAMES + 16000] = np.nan
    with pytest.raises(UserError, match=rf"first at {(WRITE_FRAMES + 16000) / 16000:.2f} s"):
        check_finite(x, "take", 16000)
    assert peak(np.array([0.1, -1.5], np.float32)) == 1.5
