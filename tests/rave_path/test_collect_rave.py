"""`musicsae collect rave`: deterministic latents into the store, resume, resampling, bad files, ranks."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch

from sae.errors import UserError
from sae.store import ActivationStore, ActivationWriter
from training.cli import main
from training.rave.collect import RaveCollectConfig, collect_rave

ROOT = Path(__file__).resolve().parents[2]


def _rows(root, hook="latent") -> torch.Tensor:
    store = ActivationStore(root)
    return torch.cat([seg for _, _, seg in store.iter_segments(hook)])


def _audio(tmp_path, concept_data, n=4):
    audio = tmp_path / "audio"
    audio.mkdir()
    for p in sorted((concept_data / "clips").iterdir())[:n]:
        shutil.copy(p, audio / p.name)
    return audio


def test_collect_is_deterministic_and_resumes(tmp_path, tiny_rave_ts, concept_data, capsys):
    audio = _audio(tmp_path, concept_data)
    argv = [
        "collect",
        "rave",
        "--model",
        str(tiny_rave_ts),
        "--audio",
        str(audio),
        "--layers",
        "latent,encoder.net.5,decoder.net.2",
        "--quiet",
    ]
    assert main([*argv, "--out", str(tmp_path / "a")]) == 0
    assert main([*argv, "--out", str(tmp_path / "b")]) == 0
    a, b = _rows(tmp_path / "a"), _rows(tmp_path / "b")
    assert a.shape == (4 * 87, 16) and torch.equal(a, b)  # 44100 samples -> 87 frames of 512 (last one padded)
    enc = _rows(tmp_path / "a", "encoder.net.5")
    assert enc.shape[0] == a.shape[0] and enc.shape[1] > 0
    # a decoder layer: one row per latent frame, the mean of the layer's steps in that frame
    from realtime.rave import RaveModel
    from realtime.rave_split import RaveSplit, pool

    dec = _rows(tmp_path / "a", "decoder.net.2")
    split = RaveSplit(RaveModel.load(tiny_rave_ts), "decoder.net.2")
    x0, _ = sf.read(sorted(audio.iterdir())[0], dtype="float32")
    x0 = torch.from_numpy(np.pad(x0, (0, (-len(x0)) % 512))).reshape(1, 1, -1)
    assert dec.shape == (a.shape[0], split.width)
    assert torch.allclose(dec[:87], pool(split.upto(x0), split.steps)[0], atol=1e-5)
    info = json.loads((tmp_path / "a/store.json").read_text())
    assert info["model"]["name"] == tiny_rave_ts.name and info["frame_rate"] == pytest.approx(44100 / 512)
    prov = json.loads((tmp_path / "a/latent/manifest.json").read_text())["shards"][0]["provenance"]
    assert [p["source"] for p in prov] == sorted(p.name for p in audio.iterdir())
    assert {p["kind"] for p in prov} == {"rave"}
    # rows equal the posterior mean of a freshly loaded model on the same clip (caches reset between files)
    x, _ = sf.read(sorted(audio.iterdir())[1], dtype="float32")
    x = np.pad(x, (0, (-len(x)) % 512))
    fresh = RaveModel.load(tiny_rave_ts).encode_mean(torch.from_numpy(x).reshape(1, 1, -1))[0].T
    assert torch.allclose(a[87:174], fresh, atol=1e-6)
    capsys.readouterr()
    assert argv.pop() == "--quiet"  # the bar is on: not a terminal, so it shows nothing and leaves no empty line
    assert main([*argv, "--out", str(tmp_path / "a")]) == 0  # re-run: everything already complete
    said = capsys.readouterr()
    lines = said.out.splitlines() + said.err.splitlines()
    assert "4 already complete" in said.err and lines and "" not in lines, said
    assert torch.equal(_rows(tmp_path / "a"), a)
    # another folder whose files have the same names: they would be taken as complete and never read
    other = tmp_path / "other"
    other.mkdir()
    for f in audio.iterdir():
        x, sr = sf.read(f, dtype="float32")
        sf.write(other / f.name, x[::-1], sr)
    argv[argv.index(str(audio))] = str(other)
    assert main([*argv, "--out", str(tmp_path / "a")]) == 2
    err = capsys.readouterr().err
    assert "its rave rows were collected with other settings (audio: " in err and err.count("\n") == 1, err
    assert f"{str(audio)!r} stored, {str(other)!r} now" in err
    assert torch.equal(_rows(tmp_path / "a"), a)
    # an SAE trained on the store records which model (by sha256) its activations came from
    assert (
        main(
            [
                "sae",
                "train",
                "--activations",
                str(tmp_path / "a"),
                "--out",
                str(tmp_path / "sae"),
                "--layers",
                "latent",
                "--k",
                "2",
                "--expansion",
                "2",
                "--steps",
                "3",
                "--batch-size",
                "64",
                "--quiet",
            ]
        )
        == 0
    )
    cfg = json.loads((tmp_path / "sae/latent/cfg.json").read_text())
    assert cfg["musicsae"]["model"] == info["model"]
    assert cfg["musicsae"]["model"]["sha256"] == RaveModel.load(tiny_rave_ts).identity.sha256


def test_bad_files_resampling_and_ranks(tmp_path, tiny_rave_ts, concept_data, monkeypatch):
    audio = _audio(tmp_path, concept_data, n=3)
    x, _ = sf.read(sorted(audio.iterdir())[0], dtype="float32")
    from scipy.signal import resample_poly

    sf.write(audio / "low_rate.wav", resample_poly(x, 1, 2), 22050)
    sf.write(audio / "silent.wav", np.zeros(44100, np.float32), 44100)
    (audio / "broken.wav").write_bytes(b"RIFF not really")
    report = collect_rave(RaveCollectConfig(str(tiny_rave_ts), str(audio), str(tmp_path / "s")))
    lines = report.notes.lines()
    assert report.collected == 4 and report.files == 6
    assert "resampled 1 file(s) from 22050 Hz to the model's 44100 Hz" in lines
    assert any("silent.wav: silent" in s for s in lines) and any("broken.wav: not a readable" in s for s in lines)
    # two ranks append to one store; together they hold exactly what one process collects
    for rank in (0, 1):
        monkeypatch.setenv("RANK", str(rank))
        monkeypatch.setenv("WORLD_SIZE", "2")
        collect_rave(RaveCollectConfig(str(tiny_rave_ts), str(audio), str(tmp_path / "ranks")))
    assert set(ActivationStore(tmp_path / "ranks").sources("latent")) == set(
        ActivationStore(tmp_path / "s").sources("latent")
    )


def test_refusals(tmp_path, tiny_rave_ts, capsys):
    (tmp_path / "empty").mkdir()
    assert (
        main(
            [
                "collect",
                "rave",
                "--model",
                str(tiny_rave_ts),
                "--audio",
                str(tmp_path / "empty"),
                "--out",
                str(tmp_path / "s"),
            ]
        )
        == 2
    )
    assert "no audio files" in capsys.readouterr().err
    (tmp_path / "one").mkdir()
    sf.write(tmp_path / "one/x.wav", np.zeros(1000, np.float32), 44100)
    with pytest.raises(UserError, match="none of 1 file"):
        collect_rave(RaveCollectConfig(str(tiny_rave_ts), str(tmp_path / "one"), str(tmp_path / "s")))
    # through the CLI the failed first run leaves no folder behind; a chunk that is no number is one line
    argv = ["collect", "rave", "--model", str(tiny_rave_ts), "--audio", str(tmp_path / "one"), "--out"]
    assert main([*argv, str(tmp_path / "cli")]) == 2
    assert "none of 1 file" in capsys.readouterr().err and not (tmp_path / "cli").exists()
    for bad in ("nan", "inf"):
        assert main([*argv, str(tmp_path / "cli"), "--chunk-seconds", bad]) == 2
        assert f"--chunk-seconds {bad}: expected a positive number" in capsys.readouterr().err
    # finite, but not in samples: an OverflowError traceback (hunt 197)
    assert main([*argv, str(tmp_path / "cli"), "--chunk-seconds", "1e308"]) == 2
    err = capsys.readouterr().err
    assert "--chunk-seconds 1e+308: expected a number of seconds this model can count in samples" in err, err
    assert err.count("\n") == 1 and not (tmp_path / "cli").exists()
    with pytest.raises(UserError, match=r"--layers decoder\.x"):
        collect_rave(
            RaveCollectConfig(str(tiny_rave_ts), str(tmp_path / "one"), str(tmp_path / "s"), layers=("decoder.x",))
        )
    # the corrected folder into the same --out: the failed run stored no rows, so its folder binds nothing
    (tmp_path / "two").mkdir()
    sf.write(tmp_path / "two/y.wav", 0.3 * np.sin(np.arange(4410, dtype=np.float32) / 5), 44100)
    assert collect_rave(RaveCollectConfig(str(tiny_rave_ts), str(tmp_path / "two"), str(tmp_path / "s"))).collected == 1
    with pytest.raises(UserError, match=r"other settings \(audio: .*two' stored, .*one' now\)"):
        collect_rave(RaveCollectConfig(str(tiny_rave_ts), str(tmp_path / "one"), str(tmp_path / "s")))
    # hunt 89: a run refused by another collect's lock first wrote its own folder into the store's settings (the
    # other had no rows yet), so the other's rerun was refused and files of the same names were taken as done
    busy = tmp_path / "busy"
    refused = pytest.raises(UserError, match="another collect of 'latent' is writing there now")
    with ActivationWriter(busy, "latent", 8), refused:  # another collect of the hook, before its first shard
        collect_rave(RaveCollectConfig(str(tiny_rave_ts), str(tmp_path / "one"), str(busy)))
    stored = json.loads((busy / "store.json").read_text()) if (busy / "store.json").exists() else {}
    assert "collect" not in stored, stored


def test_a_stereo_model_collects_stereo_files_as_stereo(tmp_path, tiny_stereo_rave_ts):
    """A two-channel RAVE hears a stereo file's two sides, as `live` and `render rave` play it (collect mixed them to
    mono first, so the SAE learnt latents the model never gives on stage); a mono file plays on both sides."""
    from realtime.rave import RaveModel
    from training.rave.collect import activations_of

    audio = tmp_path / "audio"
    audio.mkdir()
    t = np.arange(22050) / 44100
    x = np.stack([0.3 * np.sin(2 * np.pi * 220 * t), 0.2 * np.sign(np.sin(2 * np.pi * 330 * t))], axis=1)
    x = x.astype(np.float32)
    sf.write(audio / "wide.wav", x, 44100, subtype="FLOAT")
    sf.write(audio / "narrow.wav", x[:, 0], 44100, subtype="FLOAT")
    argv = ["collect", "rave", "--model", str(tiny_stereo_rave_ts), "--audio", str(audio), "--quiet"]
    assert main([*argv, "--out", str(tmp_path / "s")]) == 0
    rows = {src: seg for src, _, seg in ActivationStore(tmp_path / "s").iter_segments("latent")}
    model = RaveModel.load(tiny_stereo_rave_ts)

    def latents(a: np.ndarray) -> torch.Tensor:
        return activations_of(model, a, ["latent"], 1 << 20)["latent"]

    wide = latents(x)
    assert torch.allclose(rows["wide.wav"], wide, atol=1e-6)
    assert not torch.allclose(wide, latents(x.mean(axis=1)), atol=1e-4)  # the mid is another input
    assert torch.allclose(rows["narrow.wav"], latents(x[:, 0]), atol=1e-6)


def test_a_hook_added_to_a_store_counts_only_the_rows_stored(tmp_path, tiny_rave_ts, concept_data):
    """Adding decoder.net.2 runs every file again: the summary said `latent: 174 rows` although the store kept
    none of them (already there)."""
    audio = _audio(tmp_path, concept_data, n=2)
    store = tmp_path / "store"
    first = collect_rave(RaveCollectConfig(str(tiny_rave_ts), str(audio), str(store), layers=("latent",)))
    both = RaveCollectConfig(str(tiny_rave_ts), str(audio), str(store), layers=("latent", "decoder.net.2"))
    again = collect_rave(both)
    assert first.rows == {"latent": 174} and again.rows == {"latent": 0, "decoder.net.2": 174}
    assert ActivationStore(store).rows("latent") == 174


def test_audio_linked_under_several_names_is_said(tmp_path, tiny_rave_ts, capsys):
    """`collect rave --audio data` on a `data make` folder stored each clip once per name (clips/ and the links of
    concepts/<c>/with|without) without a word, and `sae train`'s held-out sources were training audio under another
    name (hunt 82); `collect musicgen` said so already."""
    audio = tmp_path / "data"
    (audio / "clips").mkdir(parents=True)
    (audio / "concepts" / "tone" / "with").mkdir(parents=True)
    sf.write(audio / "clips" / "a.wav", 0.1 * np.random.default_rng(0).standard_normal(8000), 44100)
    (audio / "concepts" / "tone" / "with" / "a.wav").symlink_to("../../../clips/a.wav")
    argv = ["collect", "rave", "--model", str(tiny_rave_ts), "--audio", str(audio), "--quiet"]
    assert main([*argv, "--out", str(tmp_path / "s")]) == 0
    err = capsys.readouterr().err
    assert "note: 1 of the 2 audio files are links to audio listed already" in err, err
    assert "concepts/tone/with/a.wav and clips/a.wav are one file" in err
    # hunt 169: a link loop named *.wav was a RuntimeError traceback here (Path.resolve); the reader notes it
    (audio / "loop_a.wav").symlink_to("loop_b.wav")
    (audio / "loop_b.wav").symlink_to("loop_a.wav")
    assert main([*argv, "--out", str(tmp_path / "s2")]) == 0
    assert "symbolic links" in capsys.readouterr().err
    # hunt 169: a byte-for-byte copy (`a copy.wav`) was stored again without a word, and held out beside itself
    import shutil

    shutil.copy(audio / "clips" / "a.wav", audio / "a copy.wav")
    assert main([*argv, "--out", str(tmp_path / "s3")]) == 0
    err = capsys.readouterr().err
    assert "note: 2 of the 5 audio files are links to or copies of audio listed already" in err
    assert "(e.g. clips/a.wav and a copy.wav hold the same bytes)" in err, err  # not "are one file" (hunt 171)


def test_files_given_one_at_a_time_go_in_one_store_under_their_names(tmp_path, tiny_rave_ts):
    """`--audio a.wav`, then `--audio b.wav` into the same store: the second was refused as collected with other
    settings (the store recorded the file, not its folder, as the audio root)."""
    from sae.store import ActivationStore

    for name in ("a.wav", "b.wav"):
        sf.write(tmp_path / name, 0.1 * np.random.default_rng(0).standard_normal(8000), 44100)
        argv = ["collect", "rave", "--model", str(tiny_rave_ts), "--out", str(tmp_path / "s"), "--quiet"]
        assert main([*argv, "--audio", str(tmp_path / name)]) == 0
    assert sorted(ActivationStore(tmp_path / "s").sources("latent")) == ["a.wav", "b.wav"]


def test_a_rank_whose_share_is_unusable_leaves_the_others_rows(tmp_path, tiny_rave_ts, monkeypatch, capsys):
    """Hunt 106: under `--nproc 2`, a rank whose every-other file was all unusable ended the run ("none of 2
    file(s) was usable", exit 2) and removed the new store folder under the rank still writing; one process
    stores the usable files of the same folder."""
    rng = np.random.default_rng(0)
    audio = tmp_path / "audio"
    audio.mkdir()
    for name in ("a", "c"):
        sf.write(audio / f"{name}.wav", (0.2 * rng.standard_normal(44100)).astype(np.float32), 44100)
    (audio / "b.wav").write_text("not audio")
    sf.write(audio / "d.wav", np.zeros(44100, np.float32), 44100)  # silent
    argv = ["collect", "rave", "--model", str(tiny_rave_ts), "--audio", str(audio), "--quiet"]
    monkeypatch.setenv("WORLD_SIZE", "2")
    monkeypatch.setenv("RANK", "1")  # its share: b.wav and d.wav
    assert main([*argv, "--out", str(tmp_path / "two")]) == 0
    assert "collected 0 of 2 file(s) (rank 1 of 2)" in capsys.readouterr().err
    assert (tmp_path / "two" / "store.json").is_file()  # left for rank 0, which stores a.wav and c.wav
    monkeypatch.setenv("RANK", "0")
    assert main([*argv, "--out", str(tmp_path / "two")]) == 0
    assert sorted(ActivationStore(tmp_path / "two").sources("latent")) == ["a.wav", "c.wav"]
    monkeypatch.setenv("WORLD_SIZE", "1")
    shutil.copytree(audio, tmp_path / "bad_only")
    for name in ("a.wav", "c.wav"):
        (tmp_path / "bad_only" / name).unlink()
    argv[argv.index(str(audio))] = str(tmp_path / "bad_only")
    assert main([*argv, "--out", str(tmp_path / "one")]) == 2  # one process: none usable is still refused
    assert "none of 2 file(s) was usable" in capsys.readouterr().err and not (tmp_path / "one").exists()


def test_under_nproc_a_folder_no_rank_could_use_is_refused_and_leaves_no_store(tmp_path, tiny_rave_ts):
    """Each rank's share alone may be unusable (the others store rows), so a rank says nothing; a folder whose every
    file was unusable ended `--nproc 2` with exit 0 and an empty store. The launcher now says it, as one process
    does, and removes the store folder it made."""
    audio = tmp_path / "audio"
    audio.mkdir()
    (audio / "a.wav").write_text("not audio")
    sf.write(audio / "b.wav", np.zeros(44100, np.float32), 44100)  # silent
    out = tmp_path / "store"
    done = subprocess.run(
        [sys.executable, "-m", "training.cli", "collect", "rave", "--model", str(tiny_rave_ts), "--audio", str(audio),
         "--out", str(out), "--quiet", "--nproc", "2"],
        cwd=ROOT, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert done.returncode == 2, done.stderr
    last = done.stderr.strip().splitlines()[-1]
    assert last == f"musicsae: error: --audio {audio}: no rank stored a row (every rank's share was unusable; " \
        "their notes above say why)", done.stderr  # fmt: skip
    assert "Traceback" not in done.stderr and not out.exists()


def test_a_file_changed_since_it_was_collected_is_refused_not_taken_as_done(
    tmp_path, tiny_rave_ts, concept_data, capsys
):
    """A re-run knew finished files by name only: a re-rendered folder (`data make` again, another seed) kept the
    old rows and trained on them (hunt 169). A copy that did not keep the file's time is the same file, and its new
    time is recorded (hashed once, not on every re-run). A run of a hook the store does not hold yet is refused too
    (hunt 175: it stored the new file's rows beside the other hooks' rows of the old one)."""
    audio = _audio(tmp_path, concept_data, n=3)
    out = tmp_path / "store"
    argv = ["collect", "rave", "--model", str(tiny_rave_ts), "--audio", str(audio), "--out", str(out), "--quiet"]
    assert main(argv) == 0
    rows = _rows(out)
    first = sorted(audio.iterdir())[0]
    origins = json.loads((out / "latent/manifest.json").read_text())["origins"]
    assert set(origins) == {p.name for p in audio.iterdir()} and origins[first.name]["bytes"] == first.stat().st_size
    data = first.read_bytes()
    first.unlink()
    first.write_bytes(data)  # the same bytes at another time: still done
    assert main(argv) == 0 and torch.equal(_rows(out), rows)
    origins = json.loads((out / "latent/manifest.json").read_text())["origins"]
    assert origins[first.name]["mtime_ns"] == first.stat().st_mtime_ns
    x, sr = sf.read(first, dtype="float32")
    sf.write(first, x[::-1], sr)  # the same size, other sound
    capsys.readouterr()
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and f"audio {first}: changed since store {out} collected it" in err, err
    assert "other bytes of the same size" in err and torch.equal(_rows(out), rows)
    assert main([*argv, "--layers", "encoder.net.5"]) == 2 and not (out / "encoder.net.5").exists()
    assert "changed since store" in capsys.readouterr().err
    first.write_bytes(data)
    assert main(argv) == 0
    sf.write(first, x[::-1], sr)  # rewritten with its time set back (hunt 177: `touch -d`, archives of fixed times)
    stamp = json.loads((out / "latent/manifest.json").read_text())["origins"][first.name]["mtime_ns"]
    os.utime(first, ns=(stamp, stamp))
    assert main(argv) == 2 and "other bytes of the same size" in capsys.readouterr().err
    sf.write(first, x[:-512], sr)
    assert main(argv) == 2
    assert f"{len(data) - 1024} bytes, {len(data)} when collected" in capsys.readouterr().err  # 512 16-bit samples
    first.write_bytes(data)  # put back
    assert main(argv) == 0 and torch.equal(_rows(out), rows)
    # hunt 175: a file dated before 1970 (a negative time) made the manifest unreadable for every later reader
    second = sorted(audio.iterdir())[1]
    os.utime(second, ns=(-(10**18), -(10**18)))
    x, sr = sf.read(second, dtype="float32")
    sf.write(second, -x, sr)
    os.utime(second, ns=(-(10**18), -(10**18)))
    assert main(argv) == 2  # the same size, another time, other bytes
    assert main([*argv[:-3], "--out", str(tmp_path / "old"), "--quiet"]) == 0
    assert main([*argv[:-3], "--out", str(tmp_path / "old"), "--quiet"]) == 0
    assert ActivationStore(tmp_path / "old").rows("latent") == rows.shape[0]


def test_a_project_moved_elsewhere_collects_on_into_its_store(tmp_path, tiny_rave_ts, concept_data, capsys):
    """Hunt 214: a store and its audio folder moved together (another folder or machine) were refused as "collected
    with other settings (audio: '/old/audio' stored, '/new/audio' now); collect with the same", a folder that no
    longer exists. The files it holds rows of are known by their bytes: the moved folder is taken, a new clip in it
    collected, and a file of a stored name with other bytes still refused."""
    old = tmp_path / "old"
    old.mkdir()
    audio = _audio(old, concept_data, n=3)
    argv = ["collect", "rave", "--model", str(tiny_rave_ts), "--layers", "latent", "--quiet"]
    assert main([*argv, "--audio", str(audio), "--out", str(old / "store")]) == 0
    before = _rows(old / "store")
    new = tmp_path / "new"
    shutil.copytree(old, new)  # new inodes and times: the bytes tell the files are the same
    shutil.rmtree(old)
    clip = sorted((concept_data / "clips").iterdir())[3]
    shutil.copy(clip, new / "audio" / clip.name)
    capsys.readouterr()
    assert main([*argv, "--audio", str(new / "audio"), "--out", str(new / "store")]) == 0
    err = " ".join(capsys.readouterr().err.split())
    assert f"was collected from {audio}: {new / 'audio'} taken as that folder moved" in err, err
    assert "3 already complete" in err, err
    after = _rows(new / "store")
    assert after.shape[0] == before.shape[0] + 87 and torch.equal(after[: len(before)], before)
    # moved again, with a file of a stored name holding other bytes: another file, refused by its bytes, and the
    # store left as it was (hunt 215: the new folder was recorded first, and the store refused its own back)
    moved = tmp_path / "moved"
    shutil.copytree(new, moved)
    shutil.rmtree(new)
    recorded = (moved / "store" / "store.json").read_bytes()
    first = sorted((moved / "audio").iterdir())[0]
    x, sr = sf.read(first, dtype="float32")
    sf.write(first, x[::-1], sr)
    assert main([*argv, "--audio", str(moved / "audio"), "--out", str(moved / "store")]) == 2
    err = capsys.readouterr().err
    assert f"audio {first}: store {moved / 'store'} holds rows of another file of that name, from " in err, err
    assert err.count("\n") == 1 and torch.equal(_rows(moved / "store"), after)
    assert (moved / "store" / "store.json").read_bytes() == recorded
    # a folder of other files (the recorded one gone: a drive unplugged) is no move: its rows were mixed in (215)
    other = tmp_path / "other"
    other.mkdir()
    shutil.copy(clip, other / "other.wav")
    assert main([*argv, "--audio", str(other), "--out", str(moved / "store")]) == 2
    err = capsys.readouterr().err
    assert f"this folder lacks 4 of its files (first: {first.name}): another folder" in err and err.count("\n") == 1
    assert (moved / "store" / "store.json").read_bytes() == recorded and torch.equal(_rows(moved / "store"), after)
    sf.write(first, x, sr)  # put back: the moved folder goes on
    assert main([*argv, "--audio", str(moved / "audio"), "--out", str(moved / "store")]) == 0
    assert "4 already complete" in capsys.readouterr().err


def test_a_project_collected_one_file_at_a_time_collects_on_after_a_move(tmp_path, tiny_rave_ts, concept_data, capsys):
    """Hunt 218: files given one at a time (their folder is the store's), then the project moved: the next file was
    refused as "this folder lacks 2 of its files", which it held: the folder's files were not listed, the file was."""
    old = tmp_path / "old"
    old.mkdir()
    audio = _audio(old, concept_data, n=3)
    first, second, third = sorted(audio.iterdir())
    argv = ["collect", "rave", "--model", str(tiny_rave_ts), "--layers", "latent", "--quiet"]
    for clip in (first, second):
        assert main([*argv, "--audio", str(clip), "--out", str(old / "store")]) == 0
    (tmp_path / "old").rename(tmp_path / "new")
    new = tmp_path / "new"
    capsys.readouterr()
    assert main([*argv, "--audio", str(new / "audio" / third.name), "--out", str(new / "store")]) == 0
    assert "taken as that folder moved" in " ".join(capsys.readouterr().err.split())
    assert main([*argv, "--audio", str(new / "audio"), "--out", str(new / "store")]) == 0
    assert "3 already complete" in capsys.readouterr().err


def test_under_ranks_a_moved_folder_one_rank_refuses_is_recorded_by_none(tmp_path, tiny_rave_ts, concept_data):
    """Hunt 219: each rank checked the bytes of its own share: a rank whose share matched recorded the moved folder,
    another refused it (a file of other bytes), and the store then refused its own folder when the drive came back.
    Every rank checks every file on a move now; each records its own share's origins."""
    from realtime.audio_files import audio_folder, check_collect_folder, list_audio, source_name
    from sae.errors import UserError

    old = tmp_path / "old"
    old.mkdir()
    audio = _audio(old, concept_data, n=4)
    argv = ["collect", "rave", "--model", str(tiny_rave_ts), "--layers", "latent", "--quiet"]
    assert main([*argv, "--audio", str(audio), "--out", str(old / "store")]) == 0
    recorded = (old / "store" / "store.json").read_bytes()
    (tmp_path / "old").rename(tmp_path / "new")
    root = tmp_path / "new" / "audio"
    files = list_audio(root)
    settings = {"audio": str(audio_folder(root).resolve())}
    x, sr = sf.read(files[3], dtype="float32")
    sf.write(files[3], x[::-1], sr)  # rank 1's share holds another file of that name
    for mine in (files[:2], files[2:]):
        with pytest.raises(UserError, match=r"holds rows of another file of that name"):
            check_collect_folder(tmp_path / "new" / "store", "rave", settings, files, mine, root)
    assert (tmp_path / "new" / "store" / "store.json").read_bytes() == recorded
    sf.write(files[3], x, sr)
    moved, note = check_collect_folder(tmp_path / "new" / "store", "rave", settings, files, files[:2], root)
    assert set(moved) <= {source_name(p, root) for p in files[:2]} and note is not None
