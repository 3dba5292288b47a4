"""`musicsae collect musicgen`: from prompts and from audio, provenance, resume, bad input."""

from __future__ import annotations

import json

import numpy as np
import pytest
import soundfile as sf
import torch

from realtime.musicgen import Recorder, load_musicgen
from sae.errors import UserError
from sae.store import ActivationStore
from training.cli import main


def _stored(store: ActivationStore, hook: str) -> dict[str, torch.Tensor]:
    out: dict[str, list] = {}
    for source, start, rows in store.iter_segments(hook):
        out.setdefault(source, []).append((start, rows))
    return {s: torch.cat([r for _, r in sorted(parts, key=lambda p: p[0])]) for s, parts in out.items()}


def test_collect_from_prompts_stores_conditional_rows_and_resumes(tmp_path, audiocraft_dir, capsys):
    prompts = tmp_path / "prompts.txt"
    prompts.write_text("happy guitar\n# a comment\n\nsad piano\nhappy guitar\n")
    out = tmp_path / "store"
    argv = [
        "collect",
        "musicgen",
        "--model",
        str(audiocraft_dir),
        "--prompts",
        str(prompts),
        "--out",
        str(out),
        "--duration",
        "0.3",
        "--batch-size",
        "3",
        "--layers",
        "0,2",
        "--dtype",
        "float32",
        "--seed",
        "5",
    ]
    assert main(argv) == 0
    store = ActivationStore(out)
    mg = load_musicgen(audiocraft_dir)
    assert sorted(store.hooks) == ["transformer.layers.0", "transformer.layers.2"]
    assert store.info["model"] == mg.model_ref() and store.info["frame_rate"] == 50.0
    rows = _stored(store, "transformer.layers.2")
    assert list(rows) == ["happy guitar", "sad piano", "happy guitar #2"]
    assert all(r.shape == (15, mg.dim) for r in rows.values())
    # the stored rows are the conditional rows of the same generation (guidance: [cond x 3, uncond x 3]), what
    # generation encodes with the prompt, not the null-condition rows a collection from audio sees
    rec = Recorder(rows=6, limit=15)
    with mg.hooks({2: rec}):
        mg.generate(["happy guitar", "sad piano", "happy guitar"], 0.3, seed=5)
    both = rec.result()
    torch.testing.assert_close(torch.stack(list(rows.values())), both[:3])
    assert (torch.stack(list(rows.values())) - both[3:]).abs().max() > 1e-3

    # resume: nothing new for the same file; only the new prompt for a longer file
    capsys.readouterr()
    assert main(argv) == 0
    said = capsys.readouterr()
    assert "3 prompts already complete" in said.err
    lines = said.out.splitlines() + said.err.splitlines()  # not a terminal: no bar, no empty line, no wrapping
    assert lines and "" not in lines and len(lines) == 1, said
    assert ActivationStore(out).rows("transformer.layers.0") == 45
    prompts.write_text("happy guitar\nsad piano\nhappy guitar\nrock drums\n")
    assert main(argv) == 0
    store = ActivationStore(out)
    assert store.rows("transformer.layers.0") == 60
    assert store.complete_sources("transformer.layers.0") == {
        "happy guitar",
        "sad piano",
        "happy guitar #2",
        "rock drums",
    }


def test_collect_from_audio_teacher_forced(tmp_path, transformers_dir):
    audio = tmp_path / "audio"
    (audio / "sub").mkdir(parents=True)
    rng = np.random.default_rng(0)
    sf.write(audio / "a.wav", 0.1 * rng.standard_normal(int(44100 * 1.3)).astype(np.float32), 44100)
    sf.write(audio / "sub" / "b.flac", 0.1 * rng.standard_normal((32000 * 2, 2)).astype(np.float32), 32000)
    # hunt 106: a tail under a frame (100 of 640 samples) was a frame where it ended a chunk, nothing where it fell
    # alone past one: whole frames only, wherever the chunks end
    sf.write(audio / "c.wav", 0.1 * rng.standard_normal(16000 + 100).astype(np.float32), 32000)
    out = tmp_path / "store"
    assert (
        main(
            [
                "collect",
                "musicgen",
                "--model",
                str(transformers_dir),
                "--audio",
                str(audio),
                "--out",
                str(out),
                "--layers",
                "-1",
                "--chunk",
                "1",
                "--dtype",
                "float32",
            ]
        )
        == 0
    )
    store = ActivationStore(out)
    hook = "decoder.model.decoder.layers.2"
    assert store.hooks == [hook]
    rows = _stored(store, hook)
    assert {s: r.shape[0] for s, r in rows.items()} == {"a.wav": 65, "c.wav": 25, "sub/b.flac": 100}
    manifest = json.loads((out / hook / "manifest.json").read_text())
    starts = [(p["source"], p["start_frame"]) for s in manifest["shards"] for p in s["provenance"]]
    assert starts == [("a.wav", 0), ("a.wav", 50), ("c.wav", 0), ("sub/b.flac", 0), ("sub/b.flac", 50)]
    # a chunk's rows equal a teacher-forced pass over the codes of that chunk (null description)
    from realtime.audio_files import AudioNotes
    from training.musicgen.collect import load_audio

    mg = load_musicgen(transformers_dir)
    wav = load_audio(audio / "sub" / "b.flac", mg.sample_rate, AudioNotes())
    rec = Recorder(rows=1, limit=50)
    with mg.hooks({2: rec}):
        mg.teacher_force(mg.encode(wav[None, :, 32000:64000]), [None])
    torch.testing.assert_close(rows["sub/b.flac"][50:], rec.result()[0])


@pytest.mark.parametrize(
    "case",
    ["empty prompts", "layer out of range", "missing model", "chunk under a frame", "chunk of 1e308 s", "1e308 s"],
)
def test_bad_input_is_one_line_and_writes_nothing(tmp_path, audiocraft_dir, capsys, case):
    prompts = tmp_path / "p.txt"
    prompts.write_text("\n# nothing\n" if case == "empty prompts" else "guitar\n")
    (tmp_path / "audio").mkdir()
    sf.write(tmp_path / "audio" / "a.wav", np.zeros(16000, np.float32), 32000)
    # 1e-9: it took one-frame chunks, with no context; 1e308 (finite): an OverflowError traceback (hunt 172)
    source = ["--audio", str(tmp_path / "audio"), "--chunk", "1e308" if case == "chunk of 1e308 s" else "1e-9"]
    duration = "1e308" if case == "1e308 s" else "0.1"
    model = str(tmp_path / "nope") if case == "missing model" else str(audiocraft_dir)
    layers = "7" if case == "layer out of range" else "all"
    out = tmp_path / "store"
    code = main(
        [
            "collect",
            "musicgen",
            "--model",
            model,
            *(source if case.startswith("chunk") else ["--prompts", str(prompts), "--duration", duration]),
            "--out",
            str(out),
            "--layers",
            layers,
        ]
    )
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2
    assert err[-1].startswith("musicsae: error: ") and "Traceback" not in "\n".join(err)
    assert {
        "empty prompts": "no prompts",
        "layer out of range": "layer 7: out of range",
        "missing model": "expected a MusicGen folder",
        "chunk under a frame": "--chunk 1e-09: shorter than one frame (0.02 s)",
        "chunk of 1e308 s": "--chunk 1e+308: expected a number of seconds this model can count in frames",
        "1e308 s": "--duration 1e+308: expected a number of seconds this model can count in frames",
    }[case] in err[-1]
    assert not out.exists()


def test_audio_collection_stops_cleanly_and_resumes(tmp_path, audiocraft_dir, capsys):
    audio = tmp_path / "audio"
    audio.mkdir()
    rng = np.random.default_rng(1)
    sf.write(audio / "a.wav", 0.1 * rng.standard_normal(16000).astype(np.float32), 32000)
    (audio / "b.wav").write_text("not audio")
    sf.write(audio / "c.wav", 0.1 * rng.standard_normal(16000).astype(np.float32), 32000)
    out = tmp_path / "store"
    argv = [
        "collect",
        "musicgen",
        "--model",
        str(audiocraft_dir),
        "--audio",
        str(audio),
        "--out",
        str(out),
        "--layers",
        "0",
    ]
    from training.musicgen import collect

    real_load = collect.load_audio

    def interrupted_at_c(path, *args, **kwargs):  # the user stops the collection while c.wav is read
        if path.name == "c.wav":
            raise KeyboardInterrupt
        return real_load(path, *args, **kwargs)

    collect.load_audio = interrupted_at_c
    try:
        assert main(argv) == 130
    finally:
        collect.load_audio = real_load
    hook = "transformer.layers.0"
    assert ActivationStore(out).sources(hook) == {"a.wav": 25}  # the work before the interruption is kept
    assert main(argv) == 0  # an unreadable file is skipped with a note, like on the RAVE path
    err = " ".join(capsys.readouterr().err.split())
    assert "b.wav: not a readable audio file" in err
    assert ActivationStore(out).complete_sources(hook) == {"a.wav", "c.wav"}
    sf.write(audio / "b.wav", 0.1 * rng.standard_normal(32000).astype(np.float32), 32000)
    assert main(argv) == 0
    store = ActivationStore(out)
    assert store.sources(hook) == {"a.wav": 25, "b.wav": 50, "c.wav": 25}
    assert store.complete_sources(hook) == {"a.wav", "b.wav", "c.wav"}
    assert main(argv) == 0
    assert "3 files already complete" in " ".join(capsys.readouterr().err.split())
    assert ActivationStore(out).rows(hook) == 100


@pytest.mark.parametrize(
    "source, option",
    [
        ("--prompts", ["--chunk", "5"]),
        ("--prompts", ["--description", "guitar"]),
        ("--audio", ["--duration", "5"]),
        ("--audio", ["--seed", "3"]),
        ("--audio", ["--cfg-coef", "1"]),
    ],
)
def test_an_option_of_the_other_source_is_refused(tmp_path, source, option, capsys):
    """--chunk/--description shape teacher forcing, --duration/--seed/--cfg-coef generation: they were accepted with
    the other source and ignored."""
    (tmp_path / "p.txt").write_text("guitar\n")
    argv = ["collect", "musicgen", "--model", str(tmp_path / "mg"), source, str(tmp_path / "p.txt")]
    assert main([*argv, "--out", str(tmp_path / "store"), *option]) == 2
    other = "--audio" if source == "--prompts" else "--prompts"
    assert capsys.readouterr().err.strip() == f"musicsae: error: {option[0]}: applies to {other} only, not {source}"
    assert not (tmp_path / "store").exists()


def test_a_resumed_prompt_collection_stores_what_an_uninterrupted_one_does(tmp_path, audiocraft_dir):
    """Batch k of the prompt list generates with seed + k whether or not earlier batches were stored by an earlier
    (killed, or shorter) run: a resume used to renumber the remaining batches from 0 (other seeds, other music)."""
    prompts = tmp_path / "prompts.txt"
    argv = ["collect", "musicgen", "--model", str(audiocraft_dir), "--prompts", str(prompts), "--duration", "0.3"]
    argv += ["--batch-size", "2", "--layers", "1", "--dtype", "float32", "--seed", "3"]
    four = "happy guitar\nsad piano\nrock drums\ncalm strings\n"
    prompts.write_text(four)
    assert main([*argv, "--out", str(tmp_path / "whole")]) == 0
    prompts.write_text("happy guitar\nsad piano\n")  # what a run killed after its first batch had stored
    assert main([*argv, "--out", str(tmp_path / "resumed")]) == 0
    prompts.write_text(four)
    assert main([*argv, "--out", str(tmp_path / "resumed")]) == 0
    whole = _stored(ActivationStore(tmp_path / "whole"), "transformer.layers.1")
    resumed = _stored(ActivationStore(tmp_path / "resumed"), "transformer.layers.1")
    assert list(resumed) == list(whole) and ActivationStore(tmp_path / "resumed").rows("transformer.layers.1") == 60
    for source in whole:
        torch.testing.assert_close(resumed[source], whole[source], rtol=0, atol=0)


def test_a_collection_stopped_mid_batch_keeps_the_batches_it_stored_complete(tmp_path, audiocraft_dir):
    """A run stopped while its third batch generated left the second batch's prompt (stored whole) not complete:
    a source was marked complete only when the next one was added, so the resume generated that batch again."""
    from realtime.musicgen import load_musicgen
    from training.musicgen.collect import CollectConfig, Collector

    mg = load_musicgen(str(audiocraft_dir))
    cfg = CollectConfig(tmp_path / "s", [0], duration=0.3, batch_size=1, dtype="float32")
    real, calls = mg.generate, []

    def generate(prompts, *args, **kwargs):
        calls.append(list(prompts))
        if len(calls) == 3:
            raise KeyboardInterrupt  # stopped while the third batch generates
        return real(prompts, *args, **kwargs)

    mg.generate = generate
    col = Collector(mg, cfg)
    with pytest.raises(KeyboardInterrupt):
        try:
            col.from_prompts(["happy guitar", "sad piano", "rock drums"])
        except KeyboardInterrupt:
            col.abort()
            raise
    assert ActivationStore(tmp_path / "s").complete_sources(mg.hook_name(0)) == {"happy guitar", "sad piano"}
    calls.clear()
    col = Collector(mg, cfg)
    col.from_prompts(["happy guitar", "sad piano", "rock drums"])
    col.close()
    assert calls == [["rock drums"]]


def test_a_layer_refused_leaves_the_layers_before_it_as_they_were(tmp_path, audiocraft_dir):
    """Hunt 89: `--layers 0,1 --dtype float32` on a float16 layer 1 was refused, leaving layer 0 new, empty and
    float32 (every later collect in float16, and `sae train`, refused the store), and its writer's lock held."""
    from realtime.musicgen import load_musicgen
    from training.musicgen.collect import CollectConfig, Collector

    mg = load_musicgen(str(audiocraft_dir))
    Collector(mg, CollectConfig(tmp_path / "s", [1], dtype="float16")).close()
    with pytest.raises(UserError, match="holds float16, not float32"):
        Collector(mg, CollectConfig(tmp_path / "s", [0, 1], dtype="float32"))
    assert not (tmp_path / "s" / mg.hook_name(0)).exists()
    Collector(mg, CollectConfig(tmp_path / "s", [0, 1], dtype="float16")).close()  # the store's dtype: taken


def test_a_resume_with_other_generation_settings_is_refused_naming_them(tmp_path, audiocraft_dir, capsys):
    """Prompt rows made with another seed, length, guidance or batch would mix two generations under one store
    (and the prompts already stored are skipped as complete): refused in one line naming what differs."""
    prompts = tmp_path / "prompts.txt"
    prompts.write_text("happy guitar\nsad piano\n")
    argv = ["collect", "musicgen", "--model", str(audiocraft_dir), "--prompts", str(prompts), "--duration", "0.3"]
    argv += ["--batch-size", "2", "--layers", "1", "--dtype", "float32", "--out", str(tmp_path / "s")]
    assert main([*argv, "--seed", "3"]) == 0
    prompts.write_text("happy guitar\nsad piano\nrock drums\n")
    capsys.readouterr()
    assert main([*argv, "--seed", "4"]) == 2
    err = capsys.readouterr().err
    assert "seed: 3 stored, 4 now" in err and err.count("\n") == 1
    assert ActivationStore(tmp_path / "s").rows("transformer.layers.1") == 30
    assert main([*argv, "--seed", "3"]) == 0
    assert ActivationStore(tmp_path / "s").rows("transformer.layers.1") == 45


def test_a_prompts_file_that_is_not_text_is_one_line(tmp_path):
    """`collect musicgen --prompts take.wav` (a binary file) ended in a UnicodeDecodeError traceback."""
    from training.musicgen.collect import read_prompts

    (tmp_path / "take.wav").write_bytes(b"RIFF\xac\x00\x00\x00WAVEfmt ")
    with pytest.raises(UserError, match=r"^--prompts .*take\.wav: not UTF-8 text"):
        read_prompts(tmp_path / "take.wav")


@pytest.mark.parametrize(
    "text",
    ["- {prompt: guitar}\n- {promt: drums}\n", "prompts: [{prompt: [guitar, drums]}]\n"],
    ids=["a-typo", "a-list"],
)
def test_a_prompt_entry_without_a_prompt_text_is_one_line(tmp_path, text):
    """`- {promt: drums}` was dropped without a word, `{prompt: [guitar, drums]}` played "['guitar', 'drums']"."""
    from training.musicgen.collect import read_prompts

    (tmp_path / "p.yaml").write_text(text)
    with pytest.raises(UserError, match=r"p\.yaml: entry \d \{.*\}: expected a 'prompt' text$"):
        read_prompts(tmp_path / "p.yaml")
    (tmp_path / "p.yaml").write_text("- {prompt: guitar, seed: 3}\n- drums\n")  # a batch's jobs: its seeds were
    with pytest.raises(UserError, match=r"p\.yaml: entry 1: unknown key 'seed'; a prompt list takes 'prompt' only"):
        read_prompts(tmp_path / "p.yaml")  # dropped without a word (hunt 108)
    (tmp_path / "p.yaml").write_text("- {prompt: guitar}\n- drums\n")
    assert read_prompts(tmp_path / "p.yaml") == ["guitar", "drums"]
    (tmp_path / "p.yaml").write_text("seed: 9\nprompts: [guitar]\n")  # hunt 97: the seed was dropped
    with pytest.raises(UserError, match=r"p\.yaml: unknown key 'seed'; expected a 'prompts:' list only$"):
        read_prompts(tmp_path / "p.yaml")
    (tmp_path / "p.csv").write_text("prompt,prompt\nguitar solo,drum loop\n")  # the last cell won
    with pytest.raises(UserError, match=r"p\.csv: column 'prompt' appears twice in the header"):
        read_prompts(tmp_path / "p.csv")


@pytest.mark.parametrize(("name", "text"), [("p.csv", "prompt\r\nguitar\r\n"), ("p.txt", "guitar\n")])
def test_a_prompts_file_with_a_byte_order_mark_is_read(tmp_path, name, text):
    """Excel's "CSV UTF-8" and Notepad start with a BOM: a CSV was refused ("expected a 'prompt' column"), and a
    .txt played its first prompt as '\\ufeffguitar'."""
    from training.musicgen.collect import read_prompts

    (tmp_path / name).write_bytes(("\ufeff" + text).encode())
    assert read_prompts(tmp_path / name) == ["guitar"]


def test_a_csv_prompt_across_lines_keeps_its_newline_and_an_open_quote_is_refused(tmp_path):
    """A spreadsheet cell of two lines ("calm" / "guitar") was read as the one word "calmguitar", and a quote left
    open swallowed every prompt after it."""
    from training.musicgen.collect import read_prompts

    (tmp_path / "p.csv").write_text('prompt\n"calm\nguitar"\ndrums\n')
    assert read_prompts(tmp_path / "p.csv") == ["calm\nguitar", "drums"]
    (tmp_path / "p.csv").write_text('prompt\n"calm guitar\ndrums\n')
    with pytest.raises(
        UserError, match=r"--prompts .*p\.csv: not a readable CSV \(a quote opened on line 2 is never closed\)$"
    ):
        read_prompts(tmp_path / "p.csv")


def test_prompt_collection_lasts_the_lm_training_segment_and_names_unknown_words(tmp_path, audiocraft_dir, capsys):
    """README: collected prompts last the LM's training segment (read from training.json) and a prompt's unknown
    words are named; collect generated 10 s per prompt and said nothing about words the model ignored."""
    import shutil

    folder = tmp_path / "lut_model"
    shutil.copytree(audiocraft_dir, folder)
    vocab = {"version": 1, "unknown": "unknown", "descriptions": {"guitar drums": 3, "drums": 5, "unknown": 1}}
    (folder / "descriptions.json").write_text(json.dumps(vocab))
    (folder / "training.json").write_text(json.dumps({"lm": {"run": {"sizes": {"segment": 0.2}}}}))
    prompts = tmp_path / "prompts.txt"
    prompts.write_text("drums\nfunky cowbell\n")
    argv = ["collect", "musicgen", "--model", str(folder), "--prompts", str(prompts), "--layers", "1"]
    assert main([*argv, "--out", str(tmp_path / "store")]) == 0
    assert ActivationStore(tmp_path / "store").rows("transformer.layers.1") == 2 * 10  # 0.2 s at 50 frames/s
    assert json.loads((tmp_path / "store" / "store.json").read_text())["collect"]["prompts"]["duration"] == 0.2
    err = capsys.readouterr().err
    assert "prompt 'funky cowbell': unknown words cowbell, funky; not a description the model knows" in err
    assert main([*argv, "--out", str(tmp_path / "long"), "--duration", "0.4"]) == 0
    assert "trained on 0.2 s segments" in capsys.readouterr().err


def test_the_chunk_note_is_said_only_where_audio_runs_past_the_training_segment(tmp_path, audiocraft_dir, capsys):
    """--chunk 10 on a folder of 2 s clips (the demo MusicGen's own data) said the 10 s ran on positions past
    the LM's 2 s segment, though no clip was long enough to reach them."""
    import shutil

    folder = tmp_path / "model"
    shutil.copytree(audiocraft_dir, folder)
    (folder / "training.json").write_text(json.dumps({"lm": {"run": {"sizes": {"segment": 0.2}}}}))
    for name, seconds in (("short", 0.1), ("long", 0.5)):
        (tmp_path / name).mkdir()
        sf.write(tmp_path / name / "a.wav", 0.1 * np.random.default_rng(0).standard_normal(int(32000 * seconds)), 32000)
    argv = ["collect", "musicgen", "--model", str(folder), "--layers", "1", "--chunk", "10"]
    assert main([*argv, "--audio", str(tmp_path / "short"), "--out", str(tmp_path / "s1")]) == 0
    assert "note:" not in capsys.readouterr().err
    assert main([*argv, "--audio", str(tmp_path / "long"), "--out", str(tmp_path / "s2")]) == 0
    assert "trained on 0.2 s segments" in capsys.readouterr().err
    # hunt 172: collect cuts 0.215 s into 11 frames (rounded), past the 10 of the segment; the note counted 10
    argv[-1] = "0.215"
    assert main([*argv, "--audio", str(tmp_path / "long"), "--out", str(tmp_path / "s3")]) == 0
    assert "trained on 0.2 s segments: 0.22 s at a time" in capsys.readouterr().err


def test_audio_linked_under_several_names_is_said(tmp_path, audiocraft_dir, capsys):
    """`collect musicgen --audio data` on a `data make` folder collected every clip up to nine times (clips/ and
    the concepts/<c>/with|without links to them) and said only 'stored 43400 frames'."""
    audio = tmp_path / "data"
    (audio / "clips").mkdir(parents=True)
    (audio / "concepts" / "tone" / "with").mkdir(parents=True)
    sf.write(audio / "clips" / "a.wav", 0.1 * np.random.default_rng(0).standard_normal(3200), 32000)
    (audio / "concepts" / "tone" / "with" / "a.wav").symlink_to("../../../clips/a.wav")
    argv = ["collect", "musicgen", "--model", str(audiocraft_dir), "--layers", "1", "--audio", str(audio)]
    assert main([*argv, "--out", str(tmp_path / "s")]) == 0
    err = capsys.readouterr().err
    assert "note: 1 of the 2 audio files are links to audio listed already" in err, err
    assert "concepts/tone/with/a.wav and clips/a.wav are one file" in err


def test_one_file_as_audio_is_stored_under_its_name(tmp_path, audiocraft_dir, capsys):
    """`--audio song.wav` stored its rows under the source "." (its path relative to itself): the dashboard found
    no audio for them, a second file collected the same way was refused, and a rerun did not say it was done."""
    from sae.store import ActivationStore

    argv = ["collect", "musicgen", "--model", str(audiocraft_dir), "--layers", "1", "--out", str(tmp_path / "s")]
    for name in ("a.wav", "b.wav"):
        sf.write(tmp_path / name, 0.1 * np.random.default_rng(0).standard_normal(3200), 32000)
        assert main([*argv, "--audio", str(tmp_path / name)]) == 0
    assert sorted(ActivationStore(tmp_path / "s").sources("transformer.layers.1")) == ["a.wav", "b.wav"]
    capsys.readouterr()
    assert main([*argv, "--audio", str(tmp_path / "a.wav")]) == 0
    assert "stored 0 frames" in (said := capsys.readouterr().err) and "; 1 files already complete" in said


def test_audio_with_no_usable_file_is_refused_and_leaves_no_store(tmp_path, audiocraft_dir, capsys):
    audio = tmp_path / "audio"
    audio.mkdir()
    (audio / "notes.wav").write_text("not audio")
    out = tmp_path / "store"
    argv = ["collect", "musicgen", "--model", str(audiocraft_dir), "--audio", str(audio), "--out", str(out)]
    assert main([*argv, "--layers", "1"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1].startswith(f"musicsae: error: --audio {audio}: none of 1 file(s) was usable"), err
    assert not out.exists()


def test_a_prompt_duration_past_the_models_limit_is_refused_before_it_is_recorded(tmp_path, audiocraft_dir):
    """`experiment --duration 1e9` stored the audio rows, recorded the prompts' duration in store.json, then generation
    refused it: the corrected rerun was refused ('collected with other settings (duration: 1e9 stored, 0.3 now)')."""
    from training.musicgen.collect import CollectConfig, Collector

    mg = load_musicgen(audiocraft_dir)
    too_long = mg.max_duration * 2
    col = Collector(mg, CollectConfig(tmp_path / "store", [1], duration=too_long))
    with pytest.raises(UserError, match=f"--duration {too_long:g}: this model generates at most {mg.max_duration:g}"):
        col.from_prompts(["happy guitar"])
    col.abort()
    info = json.loads((tmp_path / "store" / "store.json").read_text())
    assert "prompts" not in info.get("collect", {}), info
    # hunt 152: a fraction of a frame past the limit renders the limit (whole frames), as render musicgen allows
    edge = mg.max_duration + 0.4 / mg.frame_rate
    assert mg.rendered_seconds(edge) == mg.max_duration
    col = Collector(mg, CollectConfig(tmp_path / "edge", [1], duration=edge))

    def generate(*args, **kwargs):
        raise RuntimeError("generating")

    with pytest.MonkeyPatch.context() as m, pytest.raises(RuntimeError, match="generating"):
        m.setattr(mg, "generate", generate)
        col.from_prompts(["happy guitar"])
    col.abort()


def test_rows_record_the_collection_that_made_them(tmp_path, audiocraft_dir, monkeypatch):
    """Audio rows, then a prompt run that stops before its first rows: its corrected rerun takes new settings."""
    from training.musicgen.collect import CollectConfig, Collector

    mg = load_musicgen(audiocraft_dir)
    (tmp_path / "audio").mkdir()
    sf.write(tmp_path / "audio" / "a.wav", 0.1 * np.random.default_rng(0).standard_normal(6400), 32000)
    col = Collector(mg, CollectConfig(tmp_path / "store", [1], duration=0.2))
    col.from_audio(tmp_path / "audio")
    col.close()
    col = Collector(mg, CollectConfig(tmp_path / "store", [1], duration=0.3))
    with monkeypatch.context() as m, pytest.raises(KeyboardInterrupt):
        m.setattr(mg, "generate", lambda *a, **k: (_ for _ in ()).throw(KeyboardInterrupt))
        col.from_prompts(["happy guitar"])
    col.abort()
    col = Collector(mg, CollectConfig(tmp_path / "store", [1], duration=0.2))
    col.from_prompts(["sad piano"])
    col.close()
    store = ActivationStore(tmp_path / "store")
    kinds = {p["source"]: p["kind"] for s in store.manifest(mg.hook_name(1))["shards"] for p in s["provenance"]}
    assert kinds == {"a.wav": "audio", "sad piano": "prompts"}, kinds


def test_a_prompt_named_like_another_prompts_repeat_keeps_its_own_rows(tmp_path, audiocraft_dir, capsys):
    """'calm guitar' twice beside 'calm guitar #2': the repeat was named 'calm guitar #2', so that prompt's frames
    were dropped as already stored, and 'stored 45 frames' was said of 30."""
    from training.musicgen.collect import prompt_sources

    assert prompt_sources(["a", "a", "a #2", "a"]) == ["a", "a #3", "a #2", "a #4"]
    assert prompt_sources(["a", "b", "a"]) == ["a", "b", "a #2"]  # the names stores already hold
    prompts = tmp_path / "p.txt"
    prompts.write_text("calm guitar\ncalm guitar\ncalm guitar #2\n")
    out = tmp_path / "store"
    argv = ["collect", "musicgen", "--model", str(audiocraft_dir), "--prompts", str(prompts), "--out", str(out)]
    assert main([*argv, "--duration", "0.3", "--layers", "1"]) == 0
    rows = _stored(ActivationStore(out), load_musicgen(audiocraft_dir).hook_name(1))
    assert sorted(rows) == ["calm guitar", "calm guitar #2", "calm guitar #3"]
    assert "stored 45 frames" in capsys.readouterr().err
    prompts.write_text("calm guitar\ncalm guitar\ncalm guitar #2\nrock drums\n")
    assert main([*argv, "--duration", "0.3", "--layers", "1"]) == 0
    said = capsys.readouterr().err
    assert "stored 15 frames" in said and "3 prompts already complete" in said, said
    # a layer added: its rows are new, layer 1's are there already ("stored 15 frames x 2 layers" of 60 new rows in
    # layer 0 alone; hunt 134)
    assert main([*argv, "--duration", "0.3", "--layers", "0,1"]) == 0
    said = " ".join(capsys.readouterr().err.split())
    assert "stored frames 60 in layer 0, 0 in layer 1 of" in said, said
    assert len(ActivationStore(out).sources(load_musicgen(audiocraft_dir).hook_name(0))) == 4


def test_another_audio_folder_is_refused_not_taken_as_done(tmp_path, audiocraft_dir, capsys):
    """Two folders of the same file names (two `data make` outputs) into one store: the second folder's a.wav was
    skipped as 'already complete'."""
    for name, seed in (("one", 0), ("two", 1)):
        (tmp_path / name).mkdir()
        sf.write(tmp_path / name / "a.wav", 0.1 * np.random.default_rng(seed).standard_normal(6400), 32000)
    argv = ["collect", "musicgen", "--model", str(audiocraft_dir), "--out", str(tmp_path / "st"), "--layers", "1"]
    assert main([*argv, "--audio", str(tmp_path / "one")]) == 0
    capsys.readouterr()
    assert main([*argv, "--audio", str(tmp_path / "two")]) == 2
    err = capsys.readouterr().err
    assert "its audio rows were collected with other settings (audio: " in err and "one' stored" in err, err


def test_a_prompt_named_like_a_stored_file_is_refused_not_taken_as_done(tmp_path, audiocraft_dir, capsys):
    """Rows are keyed by source: a prompt reading 'a.wav' beside the stored file a.wav was skipped as 'already
    complete' (and would be read back as one clip with it); so was a file named like a stored prompt."""
    (tmp_path / "audio").mkdir()
    sf.write(tmp_path / "audio" / "a.wav", 0.1 * np.random.default_rng(0).standard_normal(6400), 32000)
    sf.write(tmp_path / "audio" / "b.wav", 0.1 * np.random.default_rng(1).standard_normal(6400), 32000)
    store = tmp_path / "st"
    argv = ["collect", "musicgen", "--model", str(audiocraft_dir), "--out", str(store), "--layers", "1"]
    prompts = tmp_path / "p.txt"
    prompts.write_text("b.wav\n")
    assert main([*argv, "--prompts", str(prompts), "--duration", "0.2"]) == 0
    capsys.readouterr()
    assert main([*argv, "--audio", str(tmp_path / "audio")]) == 2
    assert "file 'b.wav': store " in capsys.readouterr().err
    (tmp_path / "audio" / "b.wav").unlink()
    assert main([*argv, "--audio", str(tmp_path / "audio")]) == 0
    capsys.readouterr()
    prompts.write_text("rock drums\na.wav\n")
    before = {p.name: p.read_bytes() for p in store.rglob("*") if p.is_file() and p.suffix != ".lock"}
    assert main([*argv, "--prompts", str(prompts), "--duration", "0.2"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.endswith("prompt 'a.wav': store " + str(store) + " holds audio rows of that name; rename it or "
                        "collect into another --out"), err  # fmt: skip
    assert {p.name: p.read_bytes() for p in store.rglob("*") if p.is_file() and p.suffix != ".lock"} == before


def test_ranks_of_nproc_share_the_prompts_and_files_and_store_what_one_process_does(tmp_path, audiocraft_dir):
    """Under torchrun each rank of `collect musicgen` stored every prompt and file through its own writer: every
    source's rows twice. A rank now takes every world-th generation batch (with the seed it has in one process) or
    file; `--nproc 2` launches the ranks."""
    import os
    import subprocess
    import sys
    from pathlib import Path

    prompts = tmp_path / "prompts.txt"
    prompts.write_text("happy guitar\nsad piano\nrock drums\ncalm strings\nloud brass\n")  # batches of 2: 3
    audio = tmp_path / "audio"
    audio.mkdir()
    for i in range(3):
        sf.write(audio / f"{i}.wav", 0.1 * np.random.default_rng(i).standard_normal(6400), 32000)
    common = ["collect", "musicgen", "--model", str(audiocraft_dir), "--layers", "1", "--dtype", "float32",
              "--batch-size", "2"]  # fmt: skip
    sources = (["--prompts", str(prompts), "--duration", "0.3", "--seed", "3"], ["--audio", str(audio)])
    root = Path(__file__).resolve().parents[2]
    env = {**os.environ, "PYTHONPATH": str(root)}
    for k, source in enumerate(sources):
        one, two = tmp_path / f"one{k}", tmp_path / f"two{k}"
        assert main([*common, *source, "--out", str(one)]) == 0
        ranks = subprocess.run([sys.executable, "-m", "training.cli", *common, *source, "--out", str(two), "--nproc",
                                "2"], env=env, cwd=root, capture_output=True, text=True, timeout=300)  # fmt: skip
        assert ranks.returncode == 0, ranks.stderr
        assert "(rank 0 of 2)" in ranks.stderr and "(rank 1 of 2)" in ranks.stderr, ranks.stderr
        hook = "transformer.layers.1"
        assert ActivationStore(two).rows(hook) == ActivationStore(one).rows(hook)
        alone, shared = _stored(ActivationStore(one), hook), _stored(ActivationStore(two), hook)
        assert sorted(shared) == sorted(alone)
        for s in alone:
            torch.testing.assert_close(shared[s], alone[s], rtol=0, atol=0)


def test_the_chunk_note_reads_only_regular_files_by_bytes(tmp_path, capfd):
    """Hunt 106: `collect musicgen --audio` read every file's header for its chunk note: a FIFO named pipe.wav
    blocked the run for good, a name that is not UTF-8 was a UnicodeEncodeError traceback; the reader skips the one
    and reads the other (as `collect rave` does)."""
    import os
    from pathlib import Path

    from training.cli.collect import _longest

    good = tmp_path / "a.wav"
    sf.write(good, np.zeros(16000, np.float32), 16000)
    latin = os.path.join(os.fsencode(tmp_path), b"caf\xe9.wav")
    sf.write(latin, np.zeros(32000, np.float32), 16000)
    os.mkfifo(tmp_path / "pipe.wav")
    files = [good, tmp_path / "pipe.wav", Path(os.fsdecode(latin))]
    assert _longest(files) == 2.0
    assert capfd.readouterr().err == ""


def test_audio_batches_span_files_and_store_what_one_file_at_a_time_does(tmp_path, audiocraft_dir, monkeypatch):
    """Short clips are one chunk each: batched one file at a time, `--batch-size` did nothing for them (help said
    so). Now a batch spans files: fewer LM calls, the same rows, each file whole, in order and complete."""
    from training.musicgen.collect import CollectConfig, Collector

    mg = load_musicgen(audiocraft_dir)
    audio = tmp_path / "audio"
    audio.mkdir()
    rng = np.random.default_rng(3)
    for name, samples in (("a", 6400), ("b", 6400), ("c", 16000), ("d", 6400), ("e", 6400)):  # c: two chunks
        sf.write(audio / f"{name}.wav", 0.1 * rng.standard_normal(samples).astype(np.float32), 32000)
    calls = []
    real = mg.teacher_force
    monkeypatch.setattr(mg, "teacher_force", lambda codes, *a, **k: calls.append(len(codes)) or real(codes, *a, **k))
    stored = {}
    for batch in (1, 4):
        calls.clear()
        col = Collector(mg, CollectConfig(tmp_path / f"store{batch}", [1], chunk=0.3, batch_size=batch))
        col.from_audio(audio)
        col.close()
        store = ActivationStore(tmp_path / f"store{batch}")
        hook = mg.hook_name(1)
        assert store.complete_sources(hook) == {"a.wav", "b.wav", "c.wav", "d.wav", "e.wav"}
        stored[batch] = {(s, start): x for s, start, x in store.iter_segments(hook)}
        stored[batch, "calls"] = list(calls)
    assert stored[1, "calls"] == [1] * 6 and sum(stored[4, "calls"]) == 6 and len(stored[4, "calls"]) < 6
    assert stored[1].keys() == stored[4].keys() and len(stored[1]) == 6
    for key, x in stored[1].items():
        np.testing.assert_allclose(stored[4][key], x, atol=1e-5, err_msg=str(key))


def test_the_progress_counts_every_file_given_skipped_ones_too(tmp_path, audiocraft_dir):
    """Hunt 119: the bar's total is every file not yet complete, but an unreadable one never advanced it (9/10)."""
    from training.musicgen.collect import CollectConfig, Collector

    mg = load_musicgen(audiocraft_dir)
    audio = tmp_path / "audio"
    audio.mkdir()
    for i in range(4):
        sf.write(audio / f"{i}.wav", 0.1 * np.random.default_rng(i).standard_normal(6400).astype(np.float32), 32000)
    (audio / "2b.wav").write_text("not audio")
    done = []
    col = Collector(mg, CollectConfig(tmp_path / "store", [1], chunk=0.3, batch_size=3))
    col.from_audio(audio, lambda files, rows: done.append(files))
    col.close()
    assert sum(done) == 5, done


def test_a_csv_job_list_is_refused_as_the_yaml_one_is(tmp_path):
    """A `render musicgen --batch` job list as CSV (`prompt,seed,duration`) was collected with its seeds and
    durations dropped without a word, while the same jobs as YAML were refused (hunt 128)."""
    from training.musicgen.collect import read_prompts

    (tmp_path / "p.csv").write_text("prompt,seed,duration\nguitar,7,0.5\ndrums,9,0.5\n")
    with pytest.raises(UserError, match=r"p\.csv: column 'seed'; a prompt list takes 'prompt' only"):
        read_prompts(tmp_path / "p.csv")
    (tmp_path / "p.csv").write_text("prompt\nguitar,7\n")  # a cell past the header
    with pytest.raises(UserError, match=r"p\.csv: column without a name \(a row has more cells than the header\)"):
        read_prompts(tmp_path / "p.csv")
    for text in ("prompt,notes\nguitar,\ndrums,\n", "prompt\nguitar,\ndrums, \n"):  # empty cells: no harm
        (tmp_path / "p.csv").write_text(text)
        assert read_prompts(tmp_path / "p.csv") == ["guitar", "drums"], text


def test_a_file_edited_after_an_interrupted_collection_is_refused_not_resumed(tmp_path, audiocraft_dir, capsys):
    """A resumed collection took the rows of a file by its name: the stored rows of an edited file stayed and the
    rest of it was added from the new one (hunt 169)."""
    audio = tmp_path / "audio"
    audio.mkdir()
    rng = np.random.default_rng(2)
    sf.write(audio / "a.wav", 0.1 * rng.standard_normal(16000).astype(np.float32), 32000)
    sf.write(audio / "c.wav", 0.1 * rng.standard_normal(16000).astype(np.float32), 32000)
    out = tmp_path / "store"
    argv = ["collect", "musicgen", "--model", str(audiocraft_dir), "--audio", str(audio), "--out", str(out)]
    from training.musicgen import collect

    real_load = collect.load_audio

    def interrupted_at_c(path, *args, **kwargs):
        if path.name == "c.wav":
            raise KeyboardInterrupt
        return real_load(path, *args, **kwargs)

    collect.load_audio = interrupted_at_c
    try:
        assert main([*argv, "--layers", "0"]) == 130
    finally:
        collect.load_audio = real_load
    hook = "transformer.layers.0"
    before = _stored(ActivationStore(out), hook)
    assert set(before) == {"a.wav"}
    x, sr = sf.read(audio / "a.wav", dtype="float32")
    sf.write(audio / "a.wav", -x, sr)
    capsys.readouterr()
    assert main([*argv, "--layers", "0"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and f"audio {audio / 'a.wav'}: changed since store {out} collected it" in err, err
    assert torch.equal(_stored(ActivationStore(out), hook)["a.wav"], before["a.wav"])
    assert main([*argv, "--layers", "0,1"]) == 2  # a layer added later reads the file again: refused too
    assert main([*argv, "--layers", "1"]) == 2  # alone too (hunt 175: it checked the layers of this run only)
    sf.write(audio / "a.wav", x, sr)  # put back (another time, the same bytes)
    assert main([*argv, "--layers", "0"]) == 0
    assert ActivationStore(out).complete_sources(hook) == {"a.wav", "c.wav"}
