"""`musicsae concept find`: a concept from example folders into the bank; refusals leave the bank untouched."""

from __future__ import annotations

import dataclasses
import json
import shutil

import numpy as np
import pytest
import soundfile as sf
import torch
import yaml

from sae.bank import ConceptBank
from sae.io import sae_weights_sha256
from training.cli import main


def _find(data, model, sae, bank, name="guitar", *extra, examples=None):
    """`concept find NAME` from the data's folders of `examples` (default NAME)."""
    return main(
        [
            "concept",
            "find",
            name,
            "--with",
            str(data / "concepts" / (examples or name) / "with"),
            "--without",
            str(data / "concepts" / (examples or name) / "without"),
            "--model",
            str(model),
            "--sae",
            str(sae),
            "--bank",
            str(bank),
            *extra,
        ]
    )


def test_find_writes_the_concept(tmp_path, tiny_rave_ts, concept_data, tiny_sae_dir, capsys):
    bank_path = tmp_path / "concepts.yaml"
    assert _find(concept_data, tiny_rave_ts, tiny_sae_dir, bank_path) == 0
    out = capsys.readouterr().out
    assert "SAE sparse probe" in out and "difference of means" in out and "logistic probe" in out
    flat = " ".join(out.split())  # rich wraps lines
    assert "only 18 clips" in flat and "only 21" not in flat  # a note below 20 clips per side, for that side only
    bank = ConceptBank.load(bank_path)
    c = bank.get("guitar")
    from realtime.rave import RaveModel

    assert c.model.sha256 == RaveModel.load(tiny_rave_ts).identity.sha256 and c.hook == "latent"
    assert bank.sae_dir(c).resolve() == tiny_sae_dir.resolve()
    assert c.sae_sha256 == sae_weights_sha256(tiny_sae_dir)  # the SAE's identity, checked wherever it steers
    assert set(c.auroc) == {"sae_probe", "diff_means", "logistic_raw"}
    assert all(0 <= v <= 1 for v in c.auroc.values())
    # each AUROC with its 95 % interval, and the clips it was measured on (18 with: one 'with' clip is too short)
    assert set(c.auroc_interval) == set(c.auroc) and all(0 <= lo <= hi <= 1 for lo, hi in c.auroc_interval.values())
    assert (c.clips.with_, c.clips.without) == (18, 21)
    assert c.verdict in ("SAE better", "baseline better", "tied")  # the search's verdict, as printed
    assert c.auroc_text("sae_probe").startswith(f"{c.auroc['sae_probe']:.2f} [")
    assert c.features and max(f.weight for f in c.features) == 1.0 and all(f.weight > 0 for f in c.features)
    assert all(0 <= f.index < 64 and f.typical >= 0 for f in c.features)
    assert c.default.mode == "none"  # found concepts start neutral
    assert set(c.probe.coef) == {f.index for f in c.features}  # the probe in raw units, for meters
    # a second concept is added beside the first
    assert (
        main(
            [
                "concept",
                "find",
                "strum",
                "--with",
                str(concept_data / "concepts/guitar/with"),
                "--without",
                str(concept_data / "concepts/guitar/without"),
                "--model",
                str(tiny_rave_ts),
                "--sae",
                str(tiny_sae_dir),
                "--bank",
                str(bank_path),
                "--default",
                "on",
                "--strength",
                "2",
                "--k",
                "1",
            ]
        )
        == 0
    )
    data = yaml.safe_load(bank_path.read_text())
    assert list(data["concepts"]) == ["guitar", "strum"]
    assert data["concepts"]["strum"]["default"] == {"mode": "on", "strength": 2.0}
    assert len(data["concepts"]["strum"]["features"]) == 1


def test_refusals_leave_the_bank_untouched(tmp_path, tiny_rave_ts, concept_data, tiny_sae_dir, capsys):
    bank_path = tmp_path / "concepts.yaml"
    assert _find(concept_data, tiny_rave_ts, tiny_sae_dir, bank_path) == 0
    before = bank_path.read_text()
    capsys.readouterr()

    # too few examples on one side
    few = tmp_path / "few"
    few.mkdir()
    for p in sorted((concept_data / "concepts/guitar/with").iterdir())[:3]:
        shutil.copy(p, few / p.name)
    assert (
        main(
            [
                "concept",
                "find",
                "piano",
                "--with",
                str(few),
                "--without",
                str(concept_data / "concepts/guitar/without"),
                "--model",
                str(tiny_rave_ts),
                "--sae",
                str(tiny_sae_dir),
                "--bank",
                str(bank_path),
            ]
        )
        == 2
    )
    err = capsys.readouterr().err.strip()
    assert f"--with {few}: 3 audio file(s); need at least 12 usable clips per side" in err and "\n" not in err
    # the rule cannot be lowered, only raised
    assert _find(concept_data, tiny_rave_ts, tiny_sae_dir, bank_path, "guitar", "--min-examples", "6") == 2
    assert "--min-examples 6: expected at least 12" in capsys.readouterr().err
    assert _find(concept_data, tiny_rave_ts, tiny_sae_dir, bank_path, "guitar", "--min-examples", "19") == 2
    assert "need at least 19 usable clips per side" in capsys.readouterr().err
    # a probe wider than the SAE (it stored the features that fired, silently)
    assert _find(concept_data, tiny_rave_ts, tiny_sae_dir, bank_path, "guitar", "--k", "100000") == 2
    assert "--k 100000: the SAE" in capsys.readouterr().err
    for flag, value, expected in (("--folds", "1", "an integer >= 2"), ("--k", "0", "a positive integer")):
        with pytest.raises(SystemExit):
            _find(concept_data, tiny_rave_ts, tiny_sae_dir, bank_path, "guitar", flag, value)
        assert f"argument {flag}: '{value}': expected {expected}" in capsys.readouterr().err

    # an SAE of another width (trained on another model's latents)
    from sae.io import save_sae
    from sae.model import SAEConfig, SparseAutoencoder

    other = save_sae(SparseAutoencoder(SAEConfig(d_in=8, d_sae=32, k=2, hook_name="latent")), tmp_path / "sae8")
    assert _find(concept_data, tiny_rave_ts, other, bank_path, "drums") == 2
    err = capsys.readouterr().err.strip()
    assert "takes 8-dim inputs" in err and "16 latents" in err and "\n" not in err

    # same width, but provenance says another model
    cfg = json.loads((tiny_sae_dir / "cfg.json").read_text())
    cfg["model_name"] = "someone_else.ts"
    named = tmp_path / "sae_named"
    shutil.copytree(tiny_sae_dir, named)
    (named / "cfg.json").write_text(json.dumps(cfg))
    assert _find(concept_data, tiny_rave_ts, named, bank_path, "drums") == 2
    assert "trained on latents of someone_else.ts" in capsys.readouterr().err
    # same width and name, but the recorded sha256 is another model's
    cfg["model_name"] = tiny_rave_ts.name
    cfg["musicsae"]["model"] = {"name": tiny_rave_ts.name, "sha256": "ab" * 32}
    (named / "cfg.json").write_text(json.dumps(cfg))
    assert _find(concept_data, tiny_rave_ts, named, bank_path, "drums") == 2
    err = capsys.readouterr().err.strip()
    assert f"was trained on {tiny_rave_ts.name} (abababababab), not" in err and "\n" not in err

    # no feature of this (random) SAE rises with drums: refused, not written
    assert _find(concept_data, tiny_rave_ts, tiny_sae_dir, bank_path, "drums") == 2
    assert "no feature of SAE" in capsys.readouterr().err

    # overlapping folders, no-replace, a broken bank
    assert (
        main(
            [
                "concept",
                "find",
                "x",
                "--with",
                str(concept_data / "clips"),
                "--without",
                str(concept_data / "concepts/guitar/without"),
                "--model",
                str(tiny_rave_ts),
                "--sae",
                str(tiny_sae_dir),
                "--bank",
                str(bank_path),
            ]
        )
        == 2
    )
    assert "in both --with and --without" in capsys.readouterr().err
    # clips "of it alone" that are --without clips: the detector learnt a contradiction, and `off` silenced audio
    # without the concept
    without = str(concept_data / "concepts/guitar/without")
    assert _find(concept_data, tiny_rave_ts, tiny_sae_dir, bank_path, "guitar", "--alone", without) == 2
    assert "clip(s) are in both --alone and --without" in capsys.readouterr().err
    assert _find(concept_data, tiny_rave_ts, tiny_sae_dir, bank_path, "guitar", "--no-replace") == 2
    assert "already in" in capsys.readouterr().err
    assert bank_path.read_text() == before
    broken = tmp_path / "broken.yaml"
    broken.write_text("version: 7\nconcepts: {}\n")
    assert _find(concept_data, tiny_rave_ts, tiny_sae_dir, broken, "drums") == 2
    assert "version 7" in capsys.readouterr().err
    assert broken.read_text() == "version: 7\nconcepts: {}\n"


@pytest.mark.parametrize("name", ["bad name", "../x", "guitarra_española"])
def test_bad_concept_name(tmp_path, tiny_rave_ts, concept_data, tiny_sae_dir, capsys, name):
    assert _find(concept_data, tiny_rave_ts, tiny_sae_dir, tmp_path / "b.yaml", name, examples="guitar") == 2
    err = capsys.readouterr().err  # "letters" alone reads as if "ñ" were fine
    assert "concept name" in err and "ASCII letters" in err and not (tmp_path / "b.yaml").exists()


def _decoder_sae(tiny_model, path, seed: int | None = 0):
    """An untrained SAE on the tiny model's decoder.net.1 (encoder biases spread so features fire), saved at `path`."""
    from realtime.rave_split import hook_shape
    from sae.io import save_sae
    from sae.model import SAEConfig, SparseAutoencoder

    model, _ = tiny_model
    width = hook_shape(model, "decoder.net.1")[0]
    if seed is not None:
        torch.manual_seed(seed)
    sae = SparseAutoencoder(SAEConfig(d_in=width, d_sae=2 * width, k=8, hook_name="decoder.net.1"))
    with torch.no_grad():
        sae.b_enc.normal_(0.0, 0.1)
    return save_sae(sae, path)


def test_a_rave_export_of_any_name_is_a_rave_model(tmp_path, tiny_rave_ts, concept_data, tiny_sae_dir, capsys):
    """Hunt 111: `--model demo.TS` (or a name without .ts) was "a file, not MusicGen weights", and with one
    "a MusicGen model" (a RAVE-only option); `collect rave` takes it. A file is a RAVE export whatever its name."""
    import json
    import shutil

    model, sae = tmp_path / "tiny.TS", tmp_path / "sae"
    shutil.copy(tiny_rave_ts, model)
    shutil.copytree(tiny_sae_dir, sae)
    cfg = json.loads((sae / "cfg.json").read_text())
    cfg["model_name"] = cfg["metadata"]["model_name"] = model.name  # trained on it under that name
    (sae / "cfg.json").write_text(json.dumps(cfg))
    assert _find(concept_data, model, sae, tmp_path / "b.yaml", "guitar", "--steer-threshold", "0.02") == 0, (
        capsys.readouterr().err
    )
    assert ConceptBank.load(tmp_path / "b.yaml").get("guitar").hook == "latent"


def test_find_on_a_decoder_layer_with_steer_features(tmp_path, tiny_rave_ts, tiny_model, concept_data, capsys):
    """An SAE on decoder.net.1: the concept records the hook, the steering features chosen by effect (with
    the threshold) and what off cannot remove; raw baselines on that layer and on the latents; an SAE of
    another hook is refused in one line."""
    hook = "decoder.net.1"
    sae_dir = _decoder_sae(tiny_model, tmp_path / "sae_dec")
    bank_path = tmp_path / "concepts.yaml"
    assert _find(concept_data, tiny_rave_ts, sae_dir, bank_path, "guitar", "--steer-threshold", "0.01") == 0
    out = capsys.readouterr().out
    assert "raw latents" in out and "steering moves" in out
    c = ConceptBank.load(bank_path).get("guitar")
    assert c.hook == hook and {"sae_probe", "diff_means", "logistic_raw", "diff_means_latent"} <= set(c.auroc)
    assert set(c.auroc_interval) == set(c.auroc)  # the latent baseline's interval too
    assert c.steer is not None and c.steer.threshold == 0.01 and c.steer.features
    assert -1.0 < c.steer.error_share < 2.0 and c.steer.off_left < 2.0
    assert _find(concept_data, tiny_rave_ts, sae_dir, bank_path, "drums", "--hook", "latent") == 2
    err = capsys.readouterr().err.strip()
    assert f"was trained on hook '{hook}', not 'latent'" in err and "\n" not in err
    assert _find(concept_data, tiny_rave_ts, sae_dir, bank_path, "drums", "--steer-threshold", "-1") == 2
    assert "--steer-threshold -1" in capsys.readouterr().err


def test_spare_leaves_another_concepts_steering_features_alone(
    tmp_path, tiny_rave_ts, tiny_model, concept_data, capsys
):
    """`concept find drums --spare guitar`: none of guitar's steering features is steered by drums, the bank
    records the spared concept and the note counts the shared features; a spared name not in the bank, the
    concept itself, or a concept of another SAE is refused in one line with the bank untouched."""
    sae_dir = _decoder_sae(tiny_model, tmp_path / "sae_dec")
    bank_path = tmp_path / "concepts.yaml"
    args = ("--steer-threshold", "0.01", "--permutations", "0")
    assert _find(concept_data, tiny_rave_ts, sae_dir, bank_path, "guitar", *args) == 0
    assert _find(concept_data, tiny_rave_ts, sae_dir, bank_path, "drums", *args) == 0
    bank = ConceptBank.load(bank_path)
    drums_alone = bank.get("drums").steer.features
    assert len(drums_alone) >= 2
    # a guitar that shares drums' strongest steering feature (the tiny model's two concepts share none)
    g = bank.get("guitar")
    g.steer = dataclasses.replace(g.steer, features=[*g.steer.features, drums_alone[0]])
    bank.save()
    guitar = {f.index for f in g.steer.features}
    shared = guitar & {f.index for f in drums_alone}
    assert shared == {drums_alone[0].index}
    capsys.readouterr()
    assert _find(concept_data, tiny_rave_ts, sae_dir, bank_path, "drums", *args, "--spare", "guitar") == 0
    out = " ".join(capsys.readouterr().out.split())
    drums = ConceptBank.load(bank_path).get("drums").steer
    assert drums.spared == ("guitar",) and drums.features and not guitar & {f.index for f in drums.features}
    assert f"spared guitar: {len(shared)} feature(s) it shares with them are not steered" in out
    assert ConceptBank.load(bank_path).get("drums").to_dict()["steer"]["spared"] == ["guitar"]
    assert main(["concept", "list", "--bank", str(bank_path)]) == 0
    assert "spares guitar" in capsys.readouterr().out
    before = bank_path.read_bytes()
    for spare, says in (
        ("piano", "--spare piano: not in the concept bank"),
        ("drums", "--spare drums: a concept cannot spare itself"),
    ):
        assert _find(concept_data, tiny_rave_ts, sae_dir, bank_path, "drums", *args, "--spare", spare) == 2
        err = capsys.readouterr().err.strip()
        assert says in err and "\n" not in err
    no_steer = ("--steer-threshold", "0", "--spare", "guitar")
    assert _find(concept_data, tiny_rave_ts, sae_dir, bank_path, "drums", *no_steer) == 2
    assert "--spare: spares steering features" in capsys.readouterr().err
    other = tmp_path / "other.yaml"
    shutil.copy(bank_path, other)
    sae2_dir = _decoder_sae(tiny_model, tmp_path / "sae_dec2", seed=None)  # other weights: another SAE
    assert _find(concept_data, tiny_rave_ts, sae2_dir, other, "drums", *args, "--spare", "guitar") == 2
    assert "--spare guitar: found on another SAE" in capsys.readouterr().err
    older = ConceptBank.load(other)  # a bank of before SAE identities: its path tells which SAE
    older.get("guitar").sae_sha256 = None
    older.save()
    assert _find(concept_data, tiny_rave_ts, sae2_dir, other, "drums", *args, "--spare", "guitar") == 2
    assert "--spare guitar: found on another SAE" in capsys.readouterr().err
    other_model = ConceptBank.load(bank_path)  # the same SAE's file, but the concept was found on another model
    g = other_model.get("guitar")
    g.model = dataclasses.replace(g.model, sha256="0" * 64)
    other_model.save(other)
    assert _find(concept_data, tiny_rave_ts, sae_dir, other, "drums", *args, "--spare", "guitar") == 2
    assert "--spare guitar: found on another model (tiny_rave.ts, sha256 000000000000)" in capsys.readouterr().err
    high = ("--steer-threshold", "0.999", "--permutations", "0", "--spare", "guitar")  # no feature carries that
    assert _find(concept_data, tiny_rave_ts, sae_dir, bank_path, "drums", *high) == 2
    err = capsys.readouterr().err
    assert "no feature carrying >= 99.9 %" in err and "is one of guitar's" not in err
    assert bank_path.read_bytes() == before
    # guitar found again, now with a feature drums steers: drums no longer spares it, and the bank says so
    bank = ConceptBank.load(bank_path)
    g = bank.get("guitar")
    g.steer = dataclasses.replace(g.steer, features=[*g.steer.features, bank.get("drums").steer.features[0]])
    bank.save()
    assert main(["concept", "list", "--bank", str(bank_path)]) == 0
    out = " ".join(capsys.readouterr().out.split())
    assert "note: drums spares guitar, but drums's edits now move 1 of guitar's features" in out
    assert "find drums again with --spare guitar" in out
    assert main(["concept", "remove", "guitar", "--bank", str(bank_path)]) == 0
    assert "note: drums spares guitar, which is no longer in the bank" in capsys.readouterr().out


def test_steer_threshold_0_says_edits_move_the_probes_features(
    tmp_path, tiny_rave_ts, concept_data, tiny_sae_dir, capsys
):
    assert _find(concept_data, tiny_rave_ts, tiny_sae_dir, tmp_path / "b.yaml", "guitar", "--steer-threshold", "0") == 0
    out = " ".join(capsys.readouterr().out.split())
    assert "--steer-threshold 0: edits move the probe's" in out and "carries 0 %" not in out
    assert ConceptBank.load(tmp_path / "b.yaml").get("guitar").steer is None


def test_a_name_export_nn_would_refuse_is_said_as_it_is_found(
    tmp_path, tiny_rave_ts, concept_data, tiny_sae_dir, capsys
):
    """`concept find mix` wrote 'mix' without a word, and `export nn` then refused it ("rename it in the bank"), with
    no command to rename it (hunt 132): the find says so while the name is easy to change."""
    bank = tmp_path / "b.yaml"
    assert _find(concept_data, tiny_rave_ts, tiny_sae_dir, bank, "mix", "--permutations", "0", examples="guitar") == 0
    out = " ".join(capsys.readouterr().out.split())
    assert "`export nn` (Max/Pd) will refuse this bank: concept 'mix': cannot be an nn~ attribute ('mix')" in out
    assert _find(concept_data, tiny_rave_ts, tiny_sae_dir, tmp_path / "ok.yaml", "guitar", "--permutations", "0") == 0
    assert "will refuse this bank" not in capsys.readouterr().out


def test_groups_keep_sources_together_and_few_sources_are_named(
    tmp_path, tiny_rave_ts, concept_data, tiny_sae_dir, capsys
):
    """--groups subfolder: clips of one subfolder are one source; a side with fewer sources than folds is named;
    AUROCs carry intervals, the chance level and a verdict."""
    import os

    sides = {}
    for side, n_src in (("with", 3), ("without", 5)):
        files = sorted((concept_data / "concepts/guitar" / side).iterdir())
        files += sorted((concept_data / "heldout/guitar" / side).iterdir())
        for i, f in enumerate(files):
            dst = tmp_path / side / f"src{i % n_src}" / f.name
            dst.parent.mkdir(parents=True, exist_ok=True)
            os.symlink(f.resolve(), dst)
        sides[side] = str(tmp_path / side)
    argv = ["concept", "find", "guitar", "--with", sides["with"], "--without", sides["without"]]
    argv += ["--model", str(tiny_rave_ts), "--sae", str(tiny_sae_dir), "--bank", str(tmp_path / "b.yaml")]
    assert main([*argv, "--groups", "subfolder", "--permutations", "5"]) == 0
    out = capsys.readouterr().out
    assert "5 sources" in out  # src0..src4: the with side's src0..src2 are the same three sources
    assert "only 3 groups with the concept: folds never split a group, so 3 folds instead of 5" in " ".join(out.split())
    # with/src0..2 are without/src0..2 too: no source is wholly with the concept, so a shuffle of whole sources
    # moves nothing (hunt 98: the row showed the real AUROC as the chance level)
    assert "shuffled labels (5 runs)" not in out and "no source is wholly with the concept" in " ".join(out.split())
    assert "verdict:" in out
    assert "[" in out.split("SAE sparse probe")[1].splitlines()[0]  # an interval beside the AUROC
    # the bank says the clips came from 5 sources, and `concept list` shows it (it showed the clip counts alone)
    from sae.bank import ConceptBank

    assert ConceptBank.load(tmp_path / "b.yaml").get("guitar").clips.sources == 5
    assert main(["concept", "list", "--bank", str(tmp_path / "b.yaml")]) == 0
    assert "from 5 sources" in capsys.readouterr().out


def test_steer_features_carry_the_concept_and_on_1_moves_one_mean_difference():
    """Features chosen by the share of the concept's mean difference they carry (only those that fire more
    with it); weights calibrated so that on:1 adds one mean difference along d."""
    import numpy as np
    import torch

    from training.rave.concepts import concept_shares, steer_features

    rng = np.random.default_rng(0)
    W = torch.nn.functional.normalize(torch.randn(6, 4, generator=torch.Generator().manual_seed(0)), dim=1)
    y = np.r_[np.ones(10), np.zeros(10)].astype(int)
    S = rng.random((20, 6))
    S[y == 1, 0] += 2.0  # feature 0 carries most of the concept
    S[y == 1, 5] += 1.0
    S[y == 1, 3] -= 0.5  # fires less with it: never steered
    R = S @ W.double().numpy() + 0.01 * rng.standard_normal((20, 4))
    delta, share = concept_shares(S, R, y, W)
    assert abs(share.sum() - 1.0) < 0.05
    fired = torch.ones(30, 6)
    feats = steer_features(S, R, y, W, fired, 0.1)
    chosen = {f.index for f in feats}
    assert {0, 5} <= chosen and 3 not in chosen and chosen == {i for i in range(6) if delta[i] > 0 and share[i] >= 0.1}
    d = R[y == 1].mean(0) - R[y == 0].mean(0)
    added = sum(f.weight * f.typical * W[f.index].double().numpy() for f in feats)
    assert abs(added @ d / (d @ d) - 1.0) < 1e-9
    assert steer_features(S, R, y, W, fired, 0.0) == []
    loose = {f.index for f in steer_features(S, R, y, W, fired, 0.01)}
    spared = steer_features(S, R, y, W, fired, 0.01, frozenset({0}))  # feature 0 belongs to a spared concept
    assert 0 in loose and {f.index for f in spared} == loose - {0} != set()
    added = sum(f.weight * f.typical * W[f.index].double().numpy() for f in spared)
    assert abs(added @ d / (d @ d) - 1.0) < 1e-9  # the rest still move one mean difference along d


def test_a_stereo_model_hears_stereo_concept_clips_as_stereo(tmp_path, tiny_stereo_rave_ts):
    """concept find on a two-channel RAVE: a stereo clip's rows are the model's latents of both sides (as `collect`,
    `live` and `render rave` give them), not of their mono mix."""
    from realtime.audio_files import AudioNotes
    from realtime.rave import RaveModel
    from training.rave.collect import activations_of, make_streams
    from training.rave.concepts import clip_frames

    t = np.arange(22050) / 44100
    x = np.stack([0.3 * np.sin(2 * np.pi * 220 * t), 0.2 * np.sign(np.sin(2 * np.pi * 330 * t))], axis=1)
    x = x.astype(np.float32)
    sf.write(tmp_path / "wide.wav", x, 44100, subtype="FLOAT")
    model = RaveModel.load(tiny_stereo_rave_ts)
    [(_, rows)] = clip_frames(model, [tmp_path / "wide.wav"], AudioNotes(), make_streams(model, ["latent"]))
    assert torch.allclose(rows, activations_of(model, x, ["latent"], 1 << 20)["latent"], atol=1e-6)
    assert not torch.allclose(rows, activations_of(model, x.mean(axis=1), ["latent"], 1 << 20)["latent"], atol=1e-4)


def test_a_clip_read_once_for_two_sides_is_noted_on_both(tmp_path, tiny_rave_ts):
    """Hunt 207: the clips of a concept alone are among the clips with it, encoded once (a cache): the --alone side's
    note then said "resampled 1 file(s)" of 15 resampled clips, counting only those the cache did not hold."""
    from realtime.audio_files import AudioNotes
    from realtime.rave import RaveModel
    from training.rave.collect import make_streams
    from training.rave.concepts import clip_frames

    for i in range(3):
        sf.write(tmp_path / f"c{i}.wav", np.random.default_rng(i).uniform(-0.3, 0.3, (22050, 2)), 22050)
    model = RaveModel.load(tiny_rave_ts)
    files, cache, streams = sorted(tmp_path.glob("*.wav")), {}, make_streams(model, ["latent"])
    first, second = AudioNotes(), AudioNotes()
    a = clip_frames(model, files, first, streams, cache)
    b = clip_frames(model, files[1:], second, streams, cache)  # every one from the cache
    assert torch.equal(a[1][1], b[0][1]) and first.resampled == {22050: 3} and first.mixed == {2: 3}
    assert second.resampled == {22050: 2} and second.mixed == {2: 2}
    assert second.lines()[0] == "resampled 2 file(s) from 22050 Hz to the model's 44100 Hz"


def test_an_interval_below_chance_is_not_said_to_reach_it():
    from types import SimpleNamespace

    from training.cli.concept import chance_note

    def note(lo, hi):
        return chance_note(SimpleNamespace(intervals={"sae_probe": {"lo": lo, "hi": hi}}), "latent")

    assert "[0.01, 0.36] lies below chance (0.5)" in note(0.01, 0.36)
    assert "[0.30, 0.70] reaches chance (0.5)" in note(0.3, 0.7)
    assert note(0.6, 0.9) is None


def test_a_spared_concept_found_again_on_another_sae_is_named_as_such(tmp_path):
    """Feature numbers of two SAEs name different features: comparing them said drums' edits 'now move' guitar's
    (advice `find drums again --spare guitar`, which is refused), or said nothing where the numbers differed."""
    from sae.bank import Concept, ConceptFeature, ConceptSteer, ModelRef

    def feats(*ix):
        return [ConceptFeature(i, 1.0, 1.0) for i in ix]

    bank = ConceptBank(tmp_path / "b.yaml")
    steer = ConceptSteer(0.05, feats(1, 2), spared=("guitar",))
    bank.add(
        Concept("drums", ModelRef("a.ts", "a" * 64), "latent", "sae1", feats(1, 2), steer=steer, sae_sha256="1" * 64)
    )
    for sha, model in (("2" * 64, "a" * 64), ("1" * 64, "b" * 64)):  # another SAE; another model
        for guitar in (feats(2, 9), feats(7, 9)):  # a shared number, or none
            g = Concept("guitar", ModelRef("x.ts", model), "latent", "sae1", guitar, steer=ConceptSteer(0.05, guitar))
            g.sae_sha256 = sha
            bank.add(g)
            assert bank.stale_spares() == [
                "drums spares guitar, but guitar is now found on another model, SAE or hook: find both on one SAE to "
                "spare it again"
            ]
    g.model, g.sae_sha256 = ModelRef("a.ts", "a" * 64), "1" * 64  # the same SAE again, no shared feature
    assert bank.stale_spares() == []


def test_sides_at_different_sample_rates_are_said():
    """Hunt 98: `--with` clips at 16 kHz and `--without` at 44.1 kHz made a "concept" of AUROC 1.00 out of the band
    limit, and the only hint was "resampled 14 file(s)", with no word of which side."""
    from realtime.audio_files import AudioNotes
    from training.rave.concepts import rate_apart

    low, plain = AudioNotes(resampled={16000: 14}), AudioNotes()
    said = rate_apart({"with": low, "without": plain}, {"with": 14, "without": 14}, 44100)
    assert said == [
        "the sides came at different sample rates (--with 14 of 14 clips at 16000 Hz, --without 14 of 14 at 44100 "
        "Hz): the probe may tell them apart by the rate's band limit alone; bring both sides to one rate"
    ]
    assert rate_apart({"with": low, "without": AudioNotes(resampled={16000: 12})}, {"with": 14, "without": 14},
                      44100) == []  # fmt: skip
    mixed = AudioNotes(resampled={16000: 7})  # half and half: no side is at one rate
    assert rate_apart({"with": mixed, "without": plain}, {"with": 14, "without": 14}, 44100) == []


def test_sides_in_different_channel_layouts_are_said_for_a_stereo_model(tmp_path):
    """Hunt 169: stereo `--with` against mono `--without` clips of one distribution read 0.81 on raw activations
    for the stereo model (0.35 with both mono), and nothing said the sides differed in their channels."""
    import numpy as np
    import soundfile as sf

    from realtime.audio_files import AudioNotes, read_clip
    from training.rave.concepts import layout_apart

    noise = np.random.default_rng(0).standard_normal((4410, 2)).astype(np.float32) * 0.1
    sf.write(tmp_path / "st.wav", noise, 44100)
    sf.write(tmp_path / "mono.wav", noise[:, 0], 44100)
    stereo, mono = AudioNotes(), AudioNotes()
    for _ in range(14):
        assert read_clip(tmp_path / "st.wav", 44100, stereo, channels=2).shape == (4410, 2)
        assert read_clip(tmp_path / "mono.wav", 44100, mono, channels=2).shape == (4410,)
    assert (stereo.as_mono, mono.as_mono) == (0, 14)
    said = layout_apart({"with": stereo, "without": mono}, {"with": 14, "without": 14}, 2)
    assert said == [
        "the sides came in different channel layouts (--with 0 of 14 clips mono, --without 14 of 14 clips mono; "
        "the model has 2): the probe may tell them apart by a mono clip's channels being alike alone; bring both "
        "sides to one layout"
    ]
    assert layout_apart({"with": mono, "without": mono}, {"with": 14, "without": 14}, 2) == []
    assert layout_apart({"with": stereo, "without": mono}, {"with": 14, "without": 14}, 1) == []  # a mono model


def test_a_long_recording_is_encoded_in_chunks_as_collect_reads_it(tmp_path, tiny_rave_ts, monkeypatch):
    """concept find encoded each clip in one model call: a 20-minute recording took 0.9 GB more and four times as
    long as `collect rave` does in 10 s chunks (hunt 146). The rows are the chunked ones, equal to one call's."""
    from realtime.audio_files import AudioNotes
    from realtime.rave import RaveModel
    from training.rave import collect
    from training.rave.concepts import clip_frames

    model = RaveModel.load(tiny_rave_ts)
    x = (0.2 * np.random.default_rng(4).standard_normal(25 * model.sr)).astype(np.float32)
    sf.write(tmp_path / "long.wav", x, model.sr, subtype="FLOAT")
    whole = collect.activations_of(model, x, ["latent"], 1 << 30)["latent"]
    calls, real = [], collect.activations_of
    monkeypatch.setattr(
        collect, "activations_of", lambda m, a, h, chunk, *r: calls.append(chunk) or real(m, a, h, chunk, *r)
    )
    [(_, rows)] = clip_frames(model, [tmp_path / "long.wav"], AudioNotes(), collect.make_streams(model, ["latent"]))
    assert calls == [collect.chunk_samples(model)] and calls[0] <= 10 * model.sr + model.ratio, calls
    assert rows.shape == whole.shape and torch.allclose(rows, whole, atol=1e-5)


def test_too_few_usable_solos_are_refused_before_the_search_naming_why(
    concept_data, tiny_rave_ts, tiny_sae_dir, tmp_path, capsys, monkeypatch
):
    """An --alone folder of three solos and three silent takes was refused only after the probes, baselines and
    permutations had run, in a line naming neither the folder nor why clips were skipped (hunt 146)."""
    import shutil

    from training.rave import concepts

    alone = tmp_path / "alone"
    alone.mkdir()
    solos = sorted((concept_data / "concepts" / "drums" / "with").glob("*.wav"))[:3]
    for path in solos:
        shutil.copy(path, alone / path.name)
    for i in range(3):
        sf.write(alone / f"quiet_{i}.wav", np.zeros(44100, np.float32), 44100)

    def searched(*args, **kwargs):
        raise AssertionError("the probes ran")

    monkeypatch.setattr(concepts, "compare_probes", searched)
    bank = tmp_path / "bank.yaml"
    assert _find(concept_data, tiny_rave_ts, tiny_sae_dir, bank, "drums", "--alone", str(alone)) == 2
    err = capsys.readouterr().err
    assert f"--alone {alone} (3 skipped; the first: " in err and "): 3 usable clip(s); expected at least 4" in err, err


def test_permutations_past_the_limit_are_refused_before_any_work(tmp_path):
    """Each permutation reruns the whole probe: `--permutations 1e30`'s digits were taken and never ended (hunt
    155)."""
    from sae.errors import UserError
    from training.rave.concepts import MAX_PERMUTATIONS, FindConfig, find_concept

    for n in (-1, MAX_PERMUTATIONS + 1):
        cfg = FindConfig("guitar", str(tmp_path), str(tmp_path), "m.ts", str(tmp_path), str(tmp_path / "b.yaml"),
                         permutations=n)  # fmt: skip
        with pytest.raises(UserError, match=f"--permutations {n}: expected 0 to {MAX_PERMUTATIONS}$"):
            find_concept(cfg)


def test_off_is_said_as_the_share_it_leaves_or_how_far_past_the_clips_without_it_it_goes():
    """A negative share left (`off` moves the clips past those without the concept) read "leaves -20 % of it"."""
    from training.rave.concepts import off_left_words

    assert off_left_words(0.3) == "leaves 30 % of it"
    assert off_left_words(0.0) == "leaves 0 % of it"
    assert off_left_words(-0.2) == "goes 20 % of it past the clips without it"
