"""The demo MusicGen's recipe at toy sizes: codec and LM training (resume, refusals, interruption), the
audiocraft package, its transformers conversion (same numbers in both backends) and description handling."""

from __future__ import annotations

import json
import shutil
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch

from realtime.musicgen import Recorder, load_musicgen
from realtime.musicgen.descriptions import DescriptionVocab, canonical_prompts
from sae.errors import UserError
from training.musicgen import runs, train_codec
from training.musicgen.descriptions import (
    UNKNOWN,
    DescriptionDropout,
    assign_surfaces,
    canonical_text,
    clip_phrases,
    lut_row,
    reachable,
)
from training.musicgen.package import package
from training.musicgen.train_codec import CodecTrainConfig
from training.musicgen.train_lm import LMTrainConfig, train_lm

ROW = {"guitar": 1, "piano": 0, "strings": 0, "brass": 0, "bass": 1, "drums": 1, "voice": "male", "tempo": 117.3}


def quiet(*_):
    pass


def test_phrases_and_dropout():
    assert clip_phrases(ROW) == ["guitar", "bass", "drums", "male voice", "120 bpm"]
    assert canonical_text(frozenset(clip_phrases(ROW))) == "guitar bass drums, male voice, 120 bpm"
    keys = reachable([ROW])
    assert len(keys) == 2**5 - 1 + 2**4  # every non-empty subset, plus the ungendered voice variants
    draws = [DescriptionDropout().sample(ROW, np.random.default_rng(s)) for s in range(300)]
    assert {None, frozenset({UNKNOWN})} <= set(draws)
    assert all(d is None or d == frozenset({UNKNOWN}) or d in keys for d in draws)
    again = [DescriptionDropout().sample(ROW, np.random.default_rng(s)) for s in range(300)]
    assert draws == again


def test_max_phrases_keeps_descriptions_short_and_few():
    drop = DescriptionDropout(max_phrases=2)
    keys = reachable([ROW], max_phrases=2)
    assert len(keys) == 5 + 10 + 1 + 4  # singles, pairs, plus the ungendered voice in each
    draws = [drop.sample(ROW, np.random.default_rng(s)) for s in range(400)]
    described = [d for d in draws if d is not None and d != frozenset({UNKNOWN})]
    assert all(d in keys for d in described)
    sizes = [len(d) for d in described]
    assert {1, 2} == set(sizes) and 0.4 < sizes.count(1) / len(sizes) < 0.6  # the count is uniform
    assert drop.describe(ROW) == frozenset({"guitar", "bass"}) and DescriptionDropout().describe(ROW) == frozenset(
        clip_phrases(ROW)
    )
    assert "max_phrases" not in DescriptionDropout().identity()  # runs started before the option still resume
    assert drop.identity()["max_phrases"] == 2


def test_surfaces_avoid_lookup_table_collisions():
    keys = reachable([ROW])
    bins = 2 * (len(keys) + 1)  # crowded: the canonical texts collide
    surfaces = assign_surfaces(keys, bins)
    rows = [lut_row(t, bins) for t in surfaces.values()]
    assert len(set(rows)) == len(rows) == len(keys) + 1
    assert surfaces[frozenset({UNKNOWN})] == UNKNOWN
    moved = [k for k, t in surfaces.items() if t != canonical_text(k)]
    assert moved  # some had to take another order of their phrases
    for key, text in surfaces.items():  # only the order of the phrases (or trailing dots) may differ
        assert sorted(text.replace(",", "").replace(".", "").split()) == sorted(" ".join(key).split())
    with pytest.raises(UserError, match="--lut-bins"):
        assign_surfaces(keys, len(keys))


def test_prompts_map_onto_known_descriptions():
    vocab = DescriptionVocab({"guitar drums": 3, "drums": 5, "male voice, 120 bpm": 1, UNKNOWN: 0}, UNKNOWN)
    assert vocab.canonical("Drums and GUITAR!") == (
        "guitar drums",
        "prompt 'Drums and GUITAR!': unknown words and ignored, played as 'guitar drums'",
    )
    assert vocab.canonical("120 BPM male voice") == ("male voice, 120 bpm", None)
    text, note = vocab.canonical("kazoo orchestra")
    assert text == UNKNOWN and "kazoo, orchestra" in note
    assert vocab.canonical("piano")[0] == UNKNOWN  # known nowhere: no partial guess
    text, note = vocab.canonical("guitar drums, male voice")  # longer than any trained description
    assert text == "guitar drums" and note.endswith("played as 'guitar drums' (without male, voice)")
    assert vocab.canonical("drums, male voice, 120 bpm")[0] == "male voice, 120 bpm"  # the longest inside
    # hunt 181: words of other scripts are whole words, named when unknown; full-width letters are the ASCII ones
    said = "prompt 'drums brassé': unknown words brassé ignored, played as 'drums'"
    assert vocab.canonical("drums brassé")[1] == said
    assert vocab.canonical("guitàr")[1].startswith("prompt 'guitàr': unknown words guitàr; not a description")
    assert vocab.canonical("ｄｒｕｍｓ") == ("drums", None)
    assert canonical_prompts(vocab, [None, "drums"]) == ([None, "drums"], [])
    assert canonical_prompts(None, ["anything at all"]) == (["anything at all"], [])


def test_codec_run_resumes_and_refuses_other_sizes_or_data(toy_codec_run, toy_data, toy_sizes, tmp_path):
    progress = runs.read_json(toy_codec_run / runs.PROGRESS_FILE)
    assert progress["step"] == 3 and progress["cpu_hours"] >= 0 and "eval_mel" in progress["last"]
    run = tmp_path / "run"
    shutil.copytree(toy_codec_run, run)
    CODEC = toy_sizes[0]
    cfg = CodecTrainConfig([str(toy_data)], run, CODEC, steps=4, batch=2)
    assert train_codec.train_codec(cfg, say=quiet)["step"] == 4
    said: list[str] = []
    again = train_codec.train_codec(cfg, say=said.append)  # already there: nothing trained, the record is kept
    assert again["step"] == 4 and "eval_mel" in again["last"]
    assert f"note: {run} is at step 4, which --steps 4 does not pass: nothing to train" in said, said
    with pytest.raises(UserError, match=r"sizes\.n_filters: 4 at the start, 8 now"):
        train_codec.train_codec(replace(cfg, sizes=replace(CODEC, n_filters=8)), say=quiet)
    other = tmp_path / "elsewhere" / toy_data.name  # same folder name, another manifest
    shutil.copytree(toy_data, other)
    with open(other / "manifest.jsonl", "a") as f:
        f.write("\n")
    renamed = replace(cfg, data=[str(other)])
    changed = rf"data\.folders\.{toy_data.name}: '[0-9a-f]{{64}}' at the start, '[0-9a-f]{{64}}' now"
    with pytest.raises(UserError, match=changed):
        train_codec.train_codec(renamed, say=quiet)


def test_interrupted_codec_training_resumes_from_its_last_checkpoint(toy_data, toy_sizes, tmp_path, monkeypatch):
    cfg = CodecTrainConfig([str(toy_data)], tmp_path / "run", toy_sizes[0], steps=6, batch=2, checkpoint_every=2)
    calls = {"n": 0}
    real = train_codec.waveform_l1

    def failing(y, x):
        calls["n"] += 1
        if calls["n"] == 4:  # the 4th step dies (after the checkpoint at step 2, before the one at step 4)
            raise KeyboardInterrupt
        return real(y, x)

    monkeypatch.setattr(train_codec, "waveform_l1", failing)
    with pytest.raises(KeyboardInterrupt):
        train_codec.train_codec(cfg, say=quiet)
    assert runs.load_state(cfg.run, "cpu")["step"] == 2
    monkeypatch.setattr(train_codec, "waveform_l1", real)
    said = []
    assert train_codec.train_codec(cfg, say=said.append)["step"] == 6
    assert said[0] == f"resuming {cfg.run} at step 2"
    # hunt 54: the resumed run draws the batches and revived codes an uninterrupted one draws (it reseeded them)
    whole = replace(cfg, run=tmp_path / "whole")
    train_codec.train_codec(whole, say=quiet)
    resumed, uninterrupted = runs.load_state(cfg.run, "cpu"), runs.load_state(whole.run, "cpu")
    for key, value in uninterrupted["model"].items():
        assert torch.equal(resumed["model"][key], value), key


def test_an_interrupted_lm_run_resumes_as_if_it_had_not_stopped(
    toy_data, toy_codec_run, toy_sizes, tmp_path, monkeypatch
):
    """Hunt 54: a resumed LM run reseeded its batches and text dropout from (seed, step), so it trained on other
    batches than the uninterrupted run: its checkpoints now carry the random streams."""
    from training.musicgen import train_lm as lm_module

    cfg = LMTrainConfig([str(toy_data)], toy_codec_run, tmp_path / "run", toy_sizes[1], steps=4, batch=2, warmup=1,
                        eval_every=2, checkpoint_every=2)  # fmt: skip
    real, calls = lm_module.lm_loss, {"n": 0}

    def failing(*args, **kwargs):
        calls["n"] += 1
        if calls["n"] == 4:  # the 4th step dies, after the checkpoint at step 2
            raise KeyboardInterrupt
        return real(*args, **kwargs)

    monkeypatch.setattr(lm_module, "lm_loss", failing)
    with pytest.raises(KeyboardInterrupt):
        train_lm(cfg, say=quiet)
    monkeypatch.setattr(lm_module, "lm_loss", real)
    train_lm(cfg, say=quiet)
    train_lm(replace(cfg, run=tmp_path / "whole"), say=quiet)
    resumed, uninterrupted = runs.load_state(cfg.run, "cpu"), runs.load_state(tmp_path / "whole", "cpu")
    assert resumed["step"] == uninterrupted["step"] == 4
    for key, value in uninterrupted["model"].items():
        assert torch.equal(resumed["model"][key], value), key


def test_lm_run_records_and_refuses_other_sizes(toy_lm_run, toy_data, toy_codec_run, toy_sizes):
    progress = runs.read_json(toy_lm_run / runs.PROGRESS_FILE)
    ce = {f"eval_ce_{h}{t}" for h in ("", "head_") for t in ("text", "other", "null")}
    assert progress["step"] == 4 and ce <= set(progress["last"])
    vocab = DescriptionVocab.load(toy_lm_run)
    assert vocab.unknown == UNKNOWN and len(vocab.descriptions) > 10
    cfg = LMTrainConfig([str(toy_data)], toy_codec_run, toy_lm_run, replace(toy_sizes[1], num_layers=3), steps=5)
    with pytest.raises(UserError, match=r"sizes\.num_layers: 2 at the start, 3 now"):
        train_lm(cfg, say=quiet)
    cfg = replace(cfg, sizes=toy_sizes[1], dropout=DescriptionDropout(max_phrases=2))
    with pytest.raises(UserError, match=r"dropout\.max_phrases"):
        train_lm(cfg, say=quiet)


def test_opening_weight_moves_the_loss_towards_the_first_frames(toy_lm_run):
    from training.musicgen.arch import build_lm
    from training.musicgen.train_lm import CODES_FILE, HEAD_FRAMES, lm_loss, load_lm_run

    r = load_lm_run(toy_lm_run)
    lm = build_lm(r["lm_sizes"], r["codec_sizes"], 0).eval()
    lm.load_state_dict(r["lm_state"])
    codes = torch.load(toy_lm_run / CODES_FILE, weights_only=True)["test"][:2, :, : 3 * HEAD_FRAMES].long()
    with torch.no_grad():
        plain, head = lm_loss(lm, codes, [None, None]), lm_loss(lm, codes, [None, None], head=HEAD_FRAMES)
        heavy = lm_loss(lm, codes, [None, None], opening_weight=1e6)
        mid = lm_loss(lm, codes, [None, None], opening_weight=4.0)
    assert abs(plain - head) > 1e-3  # the opening differs from the rest, so the weighting can be seen
    assert float(heavy) == pytest.approx(float(head), abs=1e-4)
    assert min(plain, head) < mid < max(plain, head)


def test_package_loads_in_audiocraft_and_plays_unknown_words(toy_folders):
    from audiocraft.models import MusicGen

    ac, _ = toy_folders
    record = json.loads((ac / "training.json").read_text())
    assert record["lm"]["step"] == 4 and record["codec"]["step"] == 3
    model = MusicGen.get_pretrained(str(ac), device="cpu")
    assert (model.sample_rate, model.frame_rate) == (16000, 50)
    mg = load_musicgen(ac)
    gen = mg.generate(["a kazoo solo", "drums"], duration=0.1, seed=0)
    assert gen.wav.shape == (2, 1, 1600) and torch.isfinite(gen.wav).all()
    assert any("kazoo" in n and UNKNOWN in n for n in mg.prompt_notes)
    # every lookup-table row no trained description uses is the unknown row
    lut = model.lm.condition_provider.conditioners["description"].embed.weight
    torch.testing.assert_close(lut.pow(2).mean(-1).sqrt(), torch.ones(lut.shape[0]), atol=1e-6, rtol=0)
    assert torch.equal(lut[lut_row("never trained on this", lut.shape[0])], lut[lut_row(UNKNOWN, lut.shape[0])])


def test_transformers_conversion_computes_the_same(toy_folders):
    ac, tf = toy_folders
    a, b = load_musicgen(ac), load_musicgen(tf)
    assert (b.backend, b.sample_rate, b.frame_rate, b.num_layers, b.dim) == ("transformers", 16000, 50.0, 2, 32)
    torch.manual_seed(0)
    wav = torch.randn(1, 1, 8000) * 0.1
    codes = a.encode(wav)
    assert torch.equal(codes, b.encode(wav))
    desc = next(d for d in a.vocab.descriptions if "drums" in d)
    out = {}
    for name, mg in (("ac", a), ("tf", b)):
        for d in (desc, None, "kazoo"):
            rec = {i: Recorder(rows=1, limit=codes.shape[-1]) for i in range(2)}
            with mg.hooks(rec):
                mg.teacher_force(codes, [d])
            out[name, d] = torch.stack([rec[i].result() for i in range(2)])
    for d in (desc, None, "kazoo"):
        torch.testing.assert_close(out["ac", d], out["tf", d], atol=1e-5, rtol=1e-4)
    assert not torch.allclose(out["ac", desc], out["ac", None], atol=1e-3)  # the text does reach the layers
    # used directly (`AutoTokenizer`), the tokens are the exact text's, as audiocraft's table (hunt 135: upper case
    # or a space found the trained row here and the unknown one there)
    unk = b.tokenizer.unk_token_id
    assert b.tokenizer([desc]).input_ids[0] != [unk]
    assert b.tokenizer([desc.upper()]).input_ids[0] == b.tokenizer([f" {desc}"]).input_ids[0] == [unk]
    decoded = b.model.audio_encoder.decode(codes[None], [None]).audio_values
    torch.testing.assert_close(decoded, a.model.compression_model.decode(codes), atol=1e-5, rtol=1e-4)
    from training.musicgen.convert import backend_agreement  # what `package --convert` records

    check = backend_agreement(ac, tf, seconds=0.2)
    assert check["codes_equal"] and check["layers"] == 2 and check["decoded_max_abs_diff"] < 1e-5
    assert len(check["hidden_max_abs_diff"]) == 3 and "a kazoo solo" in check["hidden_max_abs_diff"]
    assert max(check["hidden_max_abs_diff"].values()) < 1e-4


def test_a_codec_without_lstm_is_refused_by_the_conversion_in_one_line(toy_folders):
    """Hunt 50: `train_codec --lstm 0` trained and packaged, then `package --convert` died in transformers with a
    traceback (nn.LSTM of 0 layers): its Encodec always has the LSTM."""
    from training.musicgen.arch import CODEC_FILE
    from training.musicgen.convert import _read_package, encodec_config

    _, cfg = _read_package(toy_folders[0], CODEC_FILE)
    assert cfg["seanet"]["lstm"] > 0
    encodec_config(cfg)
    cfg["seanet"]["lstm"] = 0
    with pytest.raises(UserError, match=r"no LSTM layer \(train_codec --lstm 0\); the transformers format needs"):
        encodec_config(cfg)


def test_missing_files_are_named(toy_folders, toy_lm_run, tmp_path):
    ac, tf = toy_folders
    broken = tmp_path / "ac"
    shutil.copytree(ac, broken)
    (broken / "compression_state_dict.bin").unlink()
    with pytest.raises(UserError, match=r"compression_state_dict\.bin is missing"):
        load_musicgen(broken)
    broken_tf = tmp_path / "tf"
    shutil.copytree(tf, broken_tf)
    (broken_tf / "model.safetensors").unlink()
    with pytest.raises(UserError, match=r"model\.safetensors is missing"):
        load_musicgen(broken_tf)
    for folder in (ac, tf):  # every prompt played an untrained row of the text table, with no note
        lost = tmp_path / f"{folder.name}_no_descriptions"
        shutil.copytree(folder, lost)
        (lost / "descriptions.json").unlink()
        with pytest.raises(UserError, match=r"descriptions\.json is missing \(a trained package lists"):
            load_musicgen(lost)
    run = tmp_path / "lm"
    shutil.copytree(toy_lm_run, run)
    (run / "codec.pt").unlink()
    with pytest.raises(UserError, match=r"codec\.pt is missing"):
        package(run, tmp_path / "out")


def test_dead_codes_are_revived_where_audiocraft_leaves_them_dead(toy_sizes):
    CODEC = toy_sizes[0]
    from training.musicgen.arch import build_codec
    from training.musicgen.train_codec import CodeReviver

    torch.manual_seed(0)
    x = torch.randn(2, 1, 3200) * 0.1
    codecs = [build_codec(replace(CODEC, kmeans_init=False), 0).train() for _ in range(2)]
    reviver = CodeReviver(codecs[1], CODEC.dead_code, seed=0)
    for codec in codecs:
        book = codec.quantizer.vq.layers[0]._codebook
        book.cluster_size.fill_(1.0)
        book.cluster_size[:100] = 0.0  # 100 dead codes
        codec(x)
    plain, revived = (c.quantizer.vq.layers[0]._codebook for c in codecs)
    assert (plain.cluster_size < CODEC.dead_code).sum() >= 100 - 20  # audiocraft's expiry did not bring them back
    assert reviver() >= 100
    assert (revived.cluster_size >= CODEC.dead_code).all()
    inputs = codecs[1].encoder(x).transpose(1, 2).reshape(-1, CODEC.dimension)
    nearest = torch.cdist(revived.embed[:100], inputs).min(dim=1).values
    assert nearest.max() < 1e-3 * inputs.norm(dim=1).mean()  # each revived code is one of this step's inputs


def test_the_transformers_conversion_keeps_the_training_record(toy_folders):
    """The conversion left training.json behind: the same model rendered 10 s by default in transformers and
    its training segment in audiocraft, and the transformers folder no longer said how it was trained."""
    from realtime.musicgen import trained_seconds

    ac, tf = toy_folders
    assert trained_seconds(ac) == trained_seconds(tf) == 0.5
    assert json.loads((tf / "training.json").read_text()) == json.loads((ac / "training.json").read_text())


def test_a_conversion_leaves_no_record_of_an_earlier_model(toy_folders, tmp_path):
    """Hunt 135: converting a folder with no training.json into an earlier conversion kept that one's record
    (another model's segment: `render musicgen` then played its length) and its backend check."""
    from training.musicgen.convert import CHECK_FILE, to_transformers

    ac, tf = toy_folders
    bare, out = tmp_path / "bare", tmp_path / "tf"
    shutil.copytree(ac, bare)
    (bare / "training.json").unlink()
    shutil.copytree(tf, out)
    (out / CHECK_FILE).write_text('{"earlier": true}')
    (out / "my_notes.txt").write_text("kept")
    to_transformers(bare, out)
    assert not (out / "training.json").exists() and not (out / CHECK_FILE).exists()
    assert (out / "my_notes.txt").read_text() == "kept"  # what is not a conversion's stays


def test_a_conversion_replaces_its_folder_only_once_both_backends_agree(toy_folders, tmp_path, monkeypatch):
    """Hunt 54: `package --convert` swapped the new folder in, then ran the backend check: a check that failed (or a
    kill meanwhile) left an unchecked conversion in place, beside the earlier backend_agreement.json it carried."""
    from training.musicgen import convert
    from training.musicgen.package import CHECK_FILE
    from training.musicgen.package import main as package_main

    ac, tf = toy_folders
    out = tmp_path / "tf"
    shutil.copytree(tf, out)
    (out / CHECK_FILE).write_text('{"earlier": true}')
    before = {p.name: p.stat().st_mtime_ns for p in out.iterdir()}

    def broken(ac_dir, tf_dir, **_):
        assert (Path(tf_dir) / "model.safetensors").is_file() and Path(tf_dir) != out  # the new folder, whole
        raise UserError("the two backends disagree")

    monkeypatch.setattr(convert, "backend_agreement", broken)
    assert package_main(["--convert", str(ac), "--out", str(out)]) == 2
    assert {p.name: p.stat().st_mtime_ns for p in out.iterdir()} == before  # untouched
    monkeypatch.setattr(convert, "backend_agreement", lambda ac_dir, tf_dir, **_: {"codes_equal": True})
    assert package_main(["--convert", str(ac), "--out", str(out)]) == 0
    assert json.loads((out / CHECK_FILE).read_text()) == {"codes_equal": True}


def test_package_outputs_never_clobber_or_mix(toy_folders, toy_lm_run, tmp_path, capsys, monkeypatch):
    """`--convert P --out P` wrote the transformers files into the audiocraft folder before failing; `--out ''` wrote
    into the current folder; a folder of other files had its descriptions.json / config.json overwritten."""
    from training.musicgen.package import main as package_main

    ac, _ = toy_folders
    pkg = tmp_path / "pkg"
    shutil.copytree(ac, pkg)
    before = sorted(p.name for p in pkg.iterdir())
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "descriptions.json").write_text("mine")
    (mine / "config.json").write_text("mine")
    monkeypatch.chdir(tmp_path)
    cases = [
        (["--convert", str(pkg), "--out", str(tmp_path / "." / "pkg")], "it is --convert"),
        (["--lm-run", str(toy_lm_run), "--out", ""], "--out: expected a value, got an empty string"),
        (["--lm-run", str(toy_lm_run), "--out", str(mine)], "not an earlier audiocraft package"),
        (["--convert", str(pkg), "--out", str(mine)], "not an earlier transformers conversion"),
        (["--convert", str(pkg), "--out", str(pkg.parent / "afile" / "x")], "--out"),
        (["--lm-run", str(tmp_path / "afile"), "--out", str(tmp_path / "new")], "afile: a file, expected a run folder"),
    ]
    (tmp_path / "afile").write_text("x")
    for argv, needle in cases:
        try:
            code = package_main(argv)
        except SystemExit as exit_:  # argparse's own refusals
            code = exit_.code
        assert code == 2, argv
        err = capsys.readouterr().err.strip()
        assert needle in err and "\n" not in err, (argv, err)
    assert sorted(p.name for p in pkg.iterdir()) == before
    assert (mine / "descriptions.json").read_text() == (mine / "config.json").read_text() == "mine"
    assert not (tmp_path / "training.json").exists()
    # its own earlier outputs are written again
    assert package_main(["--lm-run", str(toy_lm_run), "--out", str(pkg)]) == 0


def test_packaging_an_unfinished_run_says_so(toy_lm_run, tmp_path):
    """A run stopped short of its --steps (Ctrl-C, --minutes) was packaged without a word; finished ones say nothing."""
    said: list[str] = []
    package(toy_lm_run, tmp_path / "done", say=said.append)
    assert said == []
    run = tmp_path / "lm"
    shutil.copytree(toy_lm_run, run)
    state = torch.load(run / runs.STATE_FILE, weights_only=False)
    assert state["target"] == state["step"] == 4
    torch.save({**state, "target": 10}, run / runs.STATE_FILE)
    package(run, tmp_path / "part", say=said.append)
    assert said == [f"note: the LM run {run} stopped at step 4 of its --steps 10 (interrupted or out of --minutes): "
                    "packaged as it is; resume it to finish"]  # fmt: skip
    record = json.loads((tmp_path / "part" / "training.json").read_text())
    assert record["lm"]["target"] == 10 and record["codec"]["target"] == record["codec"]["step"] == 3
    # hunt 136: a run a training still holds was packaged as one that "stopped at step 900 ... resume it to finish"
    from sae.atomic import flocked

    held = pytest.raises(UserError, match=f"--lm-run {run}: an LM training is writing there now")
    with flocked(run / ".lock"), held:  # as `train_lm` holds it while it trains
        package(run, tmp_path / "now", say=said.append)
    assert not (tmp_path / "now").exists()
    package(run, tmp_path / "after", say=said.append)  # the training ended: its lock is free
