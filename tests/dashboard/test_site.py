"""The static site: every link resolves, snippets sit around the peaks, concepts and layers show up;
bad input gives one clear line (through the real CLI)."""

import json
import os
import re
import shutil
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch
from safetensors.torch import load_file, save_file

from training.cli import main

SMALL_ARGS = ["--top", "2", "--max-pages", "1", "--snippet", "1"]


def _links(page: Path) -> list[str]:
    text = page.read_text()
    return re.findall(r'(?:href|src)="([^"#:]+)"', text)


def test_site_structure(built_site, dash_inputs):
    data = json.loads((built_site / "features.json").read_text())
    assert data["hook"] == "mel" and data["clips"] == 20 and data["missing_audio"] == []
    pages = sorted(built_site.glob("features/f*.html"))
    described = [f for f in data["features"] if "clips" in f]
    # concept features (0, 3) always get pages; the rest are the purest features in the 1-25 % range
    assert {p.name for p in pages} == {f"f{f['index']:05d}.html" for f in described}
    assert {0, 3} <= {f["index"] for f in described}
    live = [f for f in data["features"] if f["frame_rate"] > 0]
    assert len(live) == data["live"] and {f["index"] for f in data["features"]} == {f["index"] for f in live} | {0, 3}
    others = [f for f in described if f["index"] not in (0, 3)]
    assert others and all(0.01 <= f["clip_rate"] <= 0.25 for f in others)
    # every local link and media file of every page exists
    for page in [built_site / "index.html", built_site / "layers.html", *pages, *built_site.glob("concepts/*.html")]:
        for link in _links(page):
            assert (page.parent / link).resolve().is_file(), (page.name, link)
    index = (built_site / "index.html").read_text()
    assert index.count("<tr data-inrange=") == len(data["features"])
    frame_rate = data["frame_rate"]
    for f in described:
        assert f["description"] and f["purity"]["by"] == "manifest labels"
        assert len(f["clips"]) <= 4 and [c["value"] for c in f["clips"]] == sorted(
            (c["value"] for c in f["clips"]), reverse=True
        )
        for c in f["clips"]:
            info = sf.info(str(built_site / c["wav"]))
            assert info.duration == pytest.approx(1.5, abs=0.01) and info.samplerate == 16000
            # the snippet is cut around the peak frame: its audio equals the source there
            y, sr = sf.read(str(dash_inputs.audio_root / c["source"]), dtype="float32")
            snip, _ = sf.read(str(built_site / c["wav"]), dtype="float32")
            peak = int((c["frame"] + 0.5) / frame_rate * sr)
            hits = [a for a in range(0, y.size - snip.size + 1) if abs(y[a] - snip[0]) < 1e-4]
            starts = [a for a in hits if np.allclose(y[a : a + snip.size], snip, atol=1e-4)]
            assert starts and starts[0] <= peak <= starts[0] + snip.size, (c, starts, peak)
            assert set(c["labels"]) <= {
                "guitar",
                "piano",
                "strings",
                "brass",
                "bass",
                "drums",
                "voice",
                "voice_male",
                "voice_female",
                "guitar_nylon",
                "guitar_steel",
                "guitar_distortion",
            }
    concept = (built_site / "concepts" / "bright.html").read_text()
    assert "Concept bright" in concept and "AUROC of 0.90" in concept and "features/f00000.html" in concept
    layers = (built_site / "layers.html").read_text()
    assert "img/layers.png" in layers and ">mel<" in layers and "AUROC bright" in layers


def test_tag_purity_counts_each_features_own_snippets(dash_inputs, tmp_path):
    """Without a manifest, a feature's share of a tag is of its own snippets, the tags its cards show (a clip
    among several features' top clips has a snippet, and tags, for each)."""
    out = tmp_path / "site"
    args = ["--sae", str(dash_inputs.sae), "--store", str(dash_inputs.store), "--out", str(out)]
    main(["dashboard", *args, "--audio-root", str(dash_inputs.audio_root), "--top", "4", "--max-pages", "12",
          "--snippet", "0.4", "--clip-range", "0,1"])  # fmt: skip
    described = [f for f in json.loads((out / "features.json").read_text())["features"] if f.get("purity")]
    assert len(described) >= 6
    for f in described:
        p, clips = f["purity"], f["clips"]
        assert round(p["purity"] * len(clips)) == sum(p["label"] in c["props"]["tags"] for c in clips), f["index"]
    # its base is a share of the snippets on the pages built (it moves with --max-pages): it was called "all clips"
    mostly = [f["description"] for f in described if "mostly" in f["description"]]
    assert mostly and all("% of the snippets on these pages)" in d for d in mostly), mostly
    for f in described:  # "mostly" is a majority (hunt 130: "mostly voice female: 1 of 5" beside 2 of 5 drums)
        said = re.search(r"(mostly|than elsewhere)[^:·]*: (\d+) of (\d+) top clips", f["description"])
        k, n = round(f["purity"]["purity"] * len(f["clips"])), len(f["clips"])
        expected = "mostly" if 2 * k > n else "than elsewhere" if k >= 2 else None
        assert (said.group(1) if said else None) == expected, f["description"]
    assert "of all clips" not in (out / "features" / f"f{described[0]['index']:05d}.html").read_text()


def test_cli_builds_and_replaces(dash_inputs, tmp_path, capsys):
    out = tmp_path / "site"
    args = [
        "dashboard",
        "--sae",
        str(dash_inputs.sae),
        "--store",
        str(dash_inputs.store),
        "--audio-root",
        str(dash_inputs.audio_root),
        "--out",
        str(out),
        *SMALL_ARGS,
    ]
    assert main(args) == 0
    assert capsys.readouterr().out.strip().endswith("index.html")
    first = json.loads((out / "features.json").read_text())
    assert "purity" not in first["features"][0] or first["features"][0]["purity"]["by"] == "property tags"
    (out / "notes.txt").write_text("mine")  # a user's file beside an earlier dashboard: it was deleted with it
    assert main([*args, "--manifest", str(dash_inputs.manifest)]) == 2
    assert f"{out}: an earlier dashboard that also holds notes.txt (it is replaced whole)" in capsys.readouterr().err
    assert (out / "notes.txt").read_text() == "mine"
    (out / "notes.txt").unlink()
    (out / "features" / "f99999.html").write_text("a page of an earlier SAE")
    audio_in_out = [
        *args[: args.index("--audio-root") + 1],
        str(out / "audio"),
        *args[args.index("--audio-root") + 2 :],
    ]
    assert main(audio_in_out) == 2  # an input the replacement would delete
    assert f"--audio-root {out / 'audio'}: inside --out {out}, which is replaced whole" in capsys.readouterr().err
    assert main([*args, "--manifest", str(dash_inputs.manifest)]) == 0
    assert not (out / "features" / "f99999.html").exists()  # replaced as a whole
    assert not list(tmp_path.glob(".site*"))  # no temp folders left
    (tmp_path / "notasite").mkdir()
    (tmp_path / "notasite" / "keep.txt").write_text("mine")
    args[args.index(str(out))] = str(tmp_path / "notasite")
    assert main(args) == 2
    assert "is not a dashboard" in capsys.readouterr().err
    assert (tmp_path / "notasite" / "keep.txt").read_text() == "mine"


def _one_line_error(capsys, args) -> str:
    assert main(args) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and err.startswith("musicsae: error: ") and "Traceback" not in err
    return err


def test_store_of_another_model(copy_inputs, tmp_path, capsys):
    """Another model's weights (another sha256); the same weights under another name are the same model."""
    info = json.loads((copy_inputs.store / "store.json").read_text())
    info["model"] = {**info["model"], "name": "demo_rave.ts", "sha256": "ab" * 32}
    (copy_inputs.store / "store.json").write_text(json.dumps(info))
    err = _one_line_error(
        capsys,
        [
            "dashboard",
            "--sae",
            str(copy_inputs.sae),
            "--store",
            str(copy_inputs.store),
            "--audio-root",
            str(copy_inputs.audio_root),
            "--out",
            str(tmp_path / "o"),
        ],
    )
    assert "logmel24" in err and "demo_rave.ts (abababababab)" in err
    assert not (tmp_path / "o").exists()


def test_missing_audio_is_named_and_skipped(copy_inputs, tmp_path, capsys):
    gone = ["clip_00002.wav", "clip_00007.wav"]
    for name in gone:
        (copy_inputs.audio_root / name).unlink()
    (copy_inputs.audio_root / "clip_00004.wav").write_bytes(b"RIFF not really a wav")
    sf.write(copy_inputs.audio_root / "clip_00005.wav", np.zeros(4000, np.float32), 16000)  # 0.25 s, not 2 s
    out = tmp_path / "site"
    assert (
        main(
            [
                "dashboard",
                "--sae",
                str(copy_inputs.sae),
                "--store",
                str(copy_inputs.store),
                "--audio-root",
                str(copy_inputs.audio_root),
                "--out",
                str(out),
                *SMALL_ARGS,
            ]
        )
        == 0
    )
    err = capsys.readouterr().err
    line = next(ln for ln in err.splitlines() if "missing" in ln)
    assert "2 of 20 audio files" in line and all(g in line for g in gone)
    assert "1 of 20 audio files" in next(ln for ln in err.splitlines() if "unreadable" in ln)
    assert "clip_00005.wav" in next(ln for ln in err.splitlines() if "shorter than the frames" in ln)
    data = json.loads((out / "features.json").read_text())
    assert data["missing_audio"] == gone and data["clips"] == 16
    skipped = {*gone, "clip_00004.wav", "clip_00005.wav"}
    assert set(data["skipped_audio"]) == skipped
    assert all(c["source"] not in skipped for f in data["features"] for c in f["top"])
    assert "clip_00002.wav" in (out / "index.html").read_text()  # the note is on the index too
    for name in [f"clip_{i:05d}.wav" for i in range(20)]:
        (copy_inputs.audio_root / name).unlink(missing_ok=True)
    err = _one_line_error(
        capsys,
        [
            "dashboard",
            "--sae",
            str(copy_inputs.sae),
            "--store",
            str(copy_inputs.store),
            "--audio-root",
            str(copy_inputs.audio_root),
            "--out",
            str(tmp_path / "o"),
        ],
    )
    assert "none of the 20 audio files" in err
    assert "(20 missing, 0 unreadable, 0 changed since collected, 0 shorter" in err


def test_audio_changed_since_the_store_collected_it_is_left_out(copy_inputs, tmp_path, capsys):
    """Hunt 193: a folder rendered again under the same names (another `data make --seed`: same names and sizes, other
    music) gave a site whose every snippet, spectrogram and label was of another clip than its activations, with no
    word (`collect` refuses such files by the origins the store records; the dashboard read none)."""
    from realtime.audio_files import file_origin

    manifest = copy_inputs.store / "mel" / "manifest.json"
    m = json.loads(manifest.read_text())
    origins = {name: file_origin(copy_inputs.audio_root / name) for name in ("clip_00003.wav", "clip_00006.wav")}
    origins["clip_00003.wav"]["bytes"] += 2  # recorded of another size
    origins["clip_00006.wav"] |= {"sha256": "0" * 64, "mtime_ns": 1}  # the same size, other bytes (times moved)
    origins["clip_00007.wav"] = file_origin(copy_inputs.audio_root / "clip_00007.wav")  # as collected
    manifest.write_text(json.dumps({**m, "origins": origins}))
    out = tmp_path / "site"
    argv = ["dashboard", "--sae", str(copy_inputs.sae), "--store", str(copy_inputs.store), "--audio-root",
            str(copy_inputs.audio_root), "--out", str(out), *SMALL_ARGS]  # fmt: skip
    assert main(argv) == 0
    line = next(ln for ln in capsys.readouterr().err.splitlines() if "changed since" in ln)
    assert "2 of 20 audio files" in line and "clip_00003.wav, clip_00006.wav" in line, line
    data = json.loads((out / "features.json").read_text())
    assert set(data["skipped_audio"]) == {"clip_00003.wav", "clip_00006.wav"} and data["clips"] == 18
    assert all(c["source"] not in data["skipped_audio"] for f in data["features"] for c in f["top"])


def test_sae_without_live_features(dash_inputs, tmp_path, capsys):
    dead = tmp_path / "dead_sae"
    shutil.copytree(dash_inputs.sae, dead)
    w = load_file(str(dead / "sae_weights.safetensors"))
    w["b_enc"] = torch.full_like(w["b_enc"], -1e4)  # every pre-activation negative: nothing fires
    save_file(w, str(dead / "sae_weights.safetensors"))
    err = _one_line_error(
        capsys,
        [
            "dashboard",
            "--sae",
            str(dead),
            "--store",
            str(dash_inputs.store),
            "--audio-root",
            str(dash_inputs.audio_root),
            "--out",
            str(tmp_path / "o"),
        ],
    )
    assert "no live features" in err and "96 features" in err
    assert not (tmp_path / "o").exists() and not list(tmp_path.glob(".o*"))


def test_bank_feature_out_of_range(dash_inputs, tmp_path, capsys):
    from sae.bank import Concept, ConceptBank, ConceptFeature, ModelRef

    bank = ConceptBank(tmp_path / "bank.yaml")
    bank.add(
        Concept(
            "wide", ModelRef("logmel24", "0" * 64), "mel", bank.relative_sae(dash_inputs.sae), [ConceptFeature(500)]
        )
    )
    bank.save()
    err = _one_line_error(
        capsys,
        [
            "dashboard",
            "--sae",
            str(dash_inputs.sae),
            "--store",
            str(dash_inputs.store),
            "--audio-root",
            str(dash_inputs.audio_root),
            "--out",
            str(tmp_path / "o"),
            "--bank",
            str(bank.path),
        ],
    )
    assert "'wide' uses feature 500" in err and "96 features" in err


def test_prompt_sources_build_without_audio(dash_inputs, tmp_path, capsys):
    """MusicGen stores collected from prompts have no audio files: pages show activation curves and the
    top prompts, and purity is by prompt words."""
    from sae.store import ActivationStore, ActivationWriter

    rows = {
        json.loads(line)["file"].split("/")[-1]: json.loads(line)
        for line in dash_inputs.manifest.read_text().splitlines()
    }
    src = ActivationStore(dash_inputs.store)
    store = tmp_path / "prompts"
    with ActivationWriter(
        store, "mel", 24, "float32", model={"name": "logmel24", "sha256": "0" * 64}, frame_rate=50.0, sample_rate=32000
    ) as w:
        for source, start, x in src.iter_segments("mel"):
            r = rows[source]
            prompt = f"{r['instruments'].replace('+', ' and ') or 'spoken word'} in {r['mode']} #{r['index']}"
            w.add(x, prompt, start)
    info = json.loads((store / "store.json").read_text())  # as `collect musicgen --prompts` records it
    (store / "store.json").write_text(json.dumps({**info, "collect": {"prompts": {"duration": 1.0, "seed": 0}}}))
    out = tmp_path / "site"
    assert (  # no --audio-root: a store of prompts has no clips (one was asked for all the same: hunt 114)
        main(
            [
                "dashboard",
                "--sae",
                str(dash_inputs.sae),
                "--store",
                str(store),
                "--out",
                str(out),
                "--top",
                "3",
                "--max-pages",
                "3",
            ]
        )
        == 0
    )
    err = capsys.readouterr().err
    assert "sources are prompts" in err and "audio: none (the store was collected from prompts)" in err
    data = json.loads((out / "features.json").read_text())
    described = [f for f in data["features"] if f.get("clips")]
    assert described and all(f["purity"]["by"] == "prompt words" for f in described)
    page = (out / "features" / f"f{described[0]['index']:05d}.html").read_text()
    assert "<audio" not in page and page.count('<svg class="curve"') == len(described[0]["clips"])
    assert "top prompts:" in described[0]["description"]
    assert not list((out / "audio").iterdir())


def test_odd_source_names_play_and_someone_elses_site_is_kept(copy_inputs, tmp_path, capsys):
    """Audio files named with '#', '?', '&', '$', spaces, CJK or in Latin-1: every page's links reach a file (a raw
    '#' or '?' in a src cut the URL: a silent player), a '$_$' in a spectrogram's title is text, not TeX
    (matplotlib's mathtext stopped the build with a traceback), a name that is not UTF-8 is shown, not a
    UnicodeEncodeError, and matplotlib's missing-glyph warnings stay out of the output. A folder with
    someone else's index.html is no dashboard: refused, not replaced."""
    import urllib.parse
    import warnings

    from tests.dashboard.conftest import SMALL, write_logmel_store
    from training.dashboard import DashboardConfig, build_dashboard

    clips = []
    for i, clip in enumerate(sorted(copy_inputs.audio_root.glob("*.wav"))):
        latin = os.fsdecode(b"caf\xe9 #0.wav")  # a Latin-1 name (an old archive's): not UTF-8
        clips.append(clip.rename(clip.with_name(f"ギター #{i}? a&b' $_$.wav" if i else latin)))
    write_logmel_store(clips, copy_inputs.audio_root, tmp_path / "odd_store")
    out = tmp_path / "site"
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        build_dashboard(
            copy_inputs.sae, tmp_path / "odd_store", copy_inputs.audio_root, out, cfg=DashboardConfig(**SMALL)
        )
    assert not [w for w in caught if "Glyph" in str(w.message)]
    audio = 0
    for page in out.rglob("*.html"):
        for url in re.findall(r'(?:href|src)="([^"]+)"', page.read_text()):
            if url.startswith(("data:", "http:", "https:", "#")):
                continue
            path = urllib.parse.urlsplit(url).path
            assert path == url, f"{page.name}: {url!r} is cut at its '?' or '#'"
            assert (page.parent / urllib.parse.unquote(path)).is_file(), f"{page.name}: {url!r}"
            audio += "/audio/" in url or url.startswith("audio/")
    assert audio > 0
    theirs = tmp_path / "their_site"
    theirs.mkdir()
    (theirs / "index.html").write_text("<html>my homepage</html>")
    args = ["--sae", str(copy_inputs.sae), "--store", str(copy_inputs.store), "--audio-root"]
    err = _one_line_error(capsys, ["dashboard", *args, str(copy_inputs.audio_root), "--out", str(theirs)])
    assert "is not a dashboard" in err and (theirs / "index.html").read_text() == "<html>my homepage</html>"


def test_an_eval_dir_that_is_not_there_is_refused(dash_inputs, tmp_path, capsys):
    """A mistyped --eval-dir built the site without any renders on its concept pages, silently."""
    args = ["dashboard", "--sae", str(dash_inputs.sae), "--store", str(dash_inputs.store), "--audio-root"]
    args += [str(dash_inputs.audio_root), "--out", str(tmp_path / "o"), "--bank", str(dash_inputs.bank)]
    err = _one_line_error(capsys, [*args, "--eval-dir", str(tmp_path / "judgee")])
    assert "--eval-dir" in err and "judgee: not a folder" in err and not (tmp_path / "o").exists()
    # hunt 141: without --bank there are no concept pages, and --eval-dir was taken and used nowhere
    no_bank = args[: args.index("--bank")]
    err = _one_line_error(capsys, [*no_bank, "--eval-dir", str(tmp_path)])
    assert "--eval-dir: its before/after renders go on the concept pages of --bank; pass --bank too" in err


def test_snippets_of_stereo_sources_keep_both_channels(copy_inputs, tmp_path):
    """A stereo source (what a stereo model was collected on) plays as stereo snippets on the feature pages; the
    spectrogram and the measured properties stay on its mono mix (snippets were the mono mix)."""
    for path in sorted(copy_inputs.audio_root.glob("*.wav")):
        y, sr = sf.read(str(path), dtype="float32")
        sf.write(path, np.stack([y, -0.5 * y], axis=1), sr, subtype="FLOAT")  # the right side: half, inverted
    out = tmp_path / "site"
    argv = ["dashboard", "--sae", str(copy_inputs.sae), "--store", str(copy_inputs.store), "--audio-root",
            str(copy_inputs.audio_root), "--out", str(out), *SMALL_ARGS]  # fmt: skip
    assert main(argv) == 0
    snippets = sorted((out / "audio").glob("*.wav"))
    assert snippets
    for path in snippets:
        y = sf.read(str(path), dtype="float32", always_2d=True)[0]
        assert y.shape[1] == 2 and np.abs(y[:, 0]).max() > 0.01, path.name
        assert np.abs(y[:, 1] + 0.5 * y[:, 0]).max() < 1e-3, path.name  # the sides as recorded, in one gain


def test_a_store_of_one_clip_says_one_clip(dash_inputs, tmp_path):
    """`collect rave --audio FILE` makes a store of one clip: the index says '1 clip', not '1 clips'."""
    from sae.store import ActivationStore, ActivationWriter

    src = ActivationStore(dash_inputs.store)
    source, start, x = next(src.iter_segments("mel"))
    store = tmp_path / "one"
    info = src.info
    with ActivationWriter(
        store, "mel", x.shape[1], "float32", model=info["model"], frame_rate=info["frame_rate"],
        sample_rate=info["sample_rate"],
    ) as w:  # fmt: skip
        w.add(x, source, start)
    out = tmp_path / "site"
    argv = ["dashboard", "--sae", str(dash_inputs.sae), "--store", str(store), "--audio-root",
            str(dash_inputs.audio_root), "--out", str(out), "--max-pages", "1"]  # fmt: skip
    assert main(argv) == 0
    index = (out / "index.html").read_text()
    assert f" · 1 clip, {x.shape[0]} frames at " in index


def test_prompt_sources_beside_clips_are_called_prompts_not_missing_files(dash_inputs, tmp_path, capsys):
    """`musicsae demo --musicgen` collects clips and prompts into one store: its dashboard said '8 of 128 audio
    files referenced by the store are missing ... skipped: guitar, 100 bpm, ...', calling prompts lost files."""
    from sae.store import ActivationStore, ActivationWriter

    src = ActivationStore(dash_inputs.store)
    info = src.info
    store = tmp_path / "mixed"
    with ActivationWriter(
        store, "mel", 24, "float32", model=info["model"], frame_rate=info["frame_rate"],
        sample_rate=info["sample_rate"],
    ) as w:  # fmt: skip
        for source, start, x in src.iter_segments("mel"):
            w.add(x, source, start)
        w.add(x, "guitar, 100 bpm", 0)
        w.add(x, "drums", 0)
        w.add(x, "a warm lo-fi beat, " * 15, 0)  # hunt 153: longer than a file name may be, an OSError
    argv = ["dashboard", "--sae", str(dash_inputs.sae), "--store", str(store), "--audio-root",
            str(dash_inputs.audio_root), "--out", str(tmp_path / "site"), "--max-pages", "1"]  # fmt: skip
    assert main(argv) == 0
    err = " ".join(capsys.readouterr().err.split())
    assert "3 of the store's 23 sources are prompts, not audio files" in err and "guitar, 100 bpm" in err
    assert "missing" not in err


def test_a_snippet_shorter_than_a_frame_is_one_line(dash_inputs, tmp_path, capsys):
    """`--snippet 0.00001` wrote every snippet as a WAV of 0 frames, with exit 0."""
    err = _one_line_error(capsys, ["dashboard", "--sae", str(dash_inputs.sae), "--store", str(dash_inputs.store),
                                   "--audio-root", str(dash_inputs.audio_root), "--out", str(tmp_path / "o"),
                                   "--snippet", "0.00001"])  # fmt: skip
    assert "--snippet 1e-05: shorter than one frame of the store (" in err
    assert not (tmp_path / "o").exists()


def test_a_manifest_matched_by_file_names_alone_is_noted(tmp_path):
    """Hunt 64: a manifest of another data folder gave its labels to every source of the same file name, in
    silence (a strings solo shown as brass, drums, piano, voice)."""
    from training.dashboard.labels import match_manifest

    for folder, label in (("ours", "guitar"), ("theirs", "drums")):
        (tmp_path / folder / "clips").mkdir(parents=True)
        row = {"file": "clips/a.wav", "index": 0, "split": "train", "instruments": label, label: 1}
        (tmp_path / folder / "manifest.jsonl").write_text(json.dumps(row) + "\n")
    (tmp_path / "ours" / "clips" / "a.wav").write_bytes(b"")
    own = match_manifest(tmp_path / "ours", tmp_path / "ours" / "clips", ["a.wav"])
    other = match_manifest(tmp_path / "theirs", tmp_path / "ours" / "clips", ["a.wav"])
    assert own.by_name == 0 and other.by_name == 1 and other.instruments["a.wav"] == ["drums"]


def test_the_features_a_concept_steers_get_pages_too(dash_inputs, tmp_path):
    """Hunt 64: only the probe's features got pages (`--max-pages`: "every feature of a --bank concept gets one
    all the same"); those its edits steer had none and the concept page did not name them."""
    from sae.bank import Concept, ConceptBank, ConceptFeature, ConceptSteer, ModelRef

    bank = ConceptBank(tmp_path / "bank.yaml")
    steer = ConceptSteer(0.5, [ConceptFeature(1), ConceptFeature(90)])
    bank.add(Concept("bright", ModelRef("logmel24", "0" * 64), "mel", bank.relative_sae(dash_inputs.sae),
                     [ConceptFeature(1)], steer=steer))  # fmt: skip
    bank.save()
    out = tmp_path / "o"
    args = ["dashboard", "--sae", str(dash_inputs.sae), "--store", str(dash_inputs.store), "--audio-root",
            str(dash_inputs.audio_root), "--out", str(out), "--bank", str(bank.path), "--max-pages", "1"]  # fmt: skip
    assert main(args) == 0
    assert (out / "features" / "f00090.html").is_file()
    page = (out / "concepts" / "bright.html").read_text()
    assert "Its edits steer 2 feature(s)" in page and "#90</a>" in page


def test_a_clip_the_reader_refuses_is_shown_without_audio_not_the_end_of_the_build(copy_inputs, tmp_path, capsys):
    """A float WAV with one NaN sample passed the audio check (`sf.info`) and stopped the whole build, after its
    statistics, when its snippet was read (hunt 153): now it is named and its clips shown without audio."""
    bad = [f"clip_{i:05d}.wav" for i in range(0, 20, 2)]
    for name in bad:
        y, sr = sf.read(copy_inputs.audio_root / name, dtype="float32")
        y[5] = np.nan
        sf.write(copy_inputs.audio_root / name, y, sr, subtype="FLOAT")
    out = tmp_path / "site"
    argv = ["dashboard", "--sae", str(copy_inputs.sae), "--store", str(copy_inputs.store), "--audio-root",
            str(copy_inputs.audio_root), "--out", str(out), *SMALL_ARGS]  # fmt: skip
    assert main(argv) == 0
    notes = json.loads((out / "features.json").read_text())["warnings"]
    named = {n for n in bad if any(n in w and "NaN/inf" in w and w.endswith("its clips are shown without audio")
                                   for w in notes)}  # fmt: skip
    clips = [c for f in json.loads((out / "features.json").read_text())["features"] for c in f.get("clips", [])]
    silent = {c["source"] for c in clips if not c["wav"]}
    assert named and silent == named, (named, silent)
    assert all(c["wav"] and (out / c["wav"]).is_file() for c in clips if c["source"] not in named)
