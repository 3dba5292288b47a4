"""Prompt pairs, the per-layer experiment and the MusicGen demo on the toy demo-recipe model."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch

from realtime.musicgen.descriptions import DescriptionVocab, words
from sae.errors import UserError
from training.musicgen.adherence import prompt_pairs

VOCAB = DescriptionVocab(
    {
        "guitar": 9,
        "drums": 7,
        "guitar drums": 5,
        "guitar bass drums": 2,
        "bass drums": 4,
        "guitar, male voice": 3,
        "male voice": 3,
        "piano drums": 1,
        "unknown": 0,
    },
    "unknown",
)


def test_prompt_pairs_differ_by_the_concept_only():
    pairs = prompt_pairs(VOCAB, "guitar", 10)
    assert pairs == [("guitar", "unknown"), ("guitar drums", "drums"), ("guitar bass drums", "bass drums")]
    for with_it, without in pairs:
        assert "guitar" in words(with_it) and "guitar" not in words(without)
    assert prompt_pairs(VOCAB, "guitar", 2) == pairs[:2] and prompt_pairs(VOCAB, "guitar") == pairs  # None: all
    assert prompt_pairs(VOCAB, "piano", 5) == [("piano drums", "drums")]
    assert prompt_pairs(VOCAB, "drums", 5) == [("drums", "unknown"), ("guitar drums", "guitar")]  # no "bass" alone
    # the same words thrice (a hand-made descriptions.json) are one prompt, not three pairs (hunt 188), named as the
    # model plays it (hunt 190: the most-trained spelling was named while another played)
    thrice = DescriptionVocab({**VOCAB.descriptions, "drums, guitar": 6, "drums guitar": 5}, "unknown")
    played = thrice.canonical("guitar, drums")[0]
    assert prompt_pairs(thrice, "guitar") == [
        ("guitar", "unknown"),
        (played, "drums"),
        ("guitar bass drums", "bass drums"),
    ]


@pytest.mark.slow
def test_experiment_runs_every_stage_and_chooses_a_layer_on_validation(
    toy_folders, toy_concept_data, tmp_path, monkeypatch
):
    import json

    from training.musicgen.experiment import ExperimentConfig, run_experiment
    from training.musicgen.experiment import report_markdown as experiment_report

    ac, _ = toy_folders
    cfg = ExperimentConfig(
        str(ac), str(toy_concept_data), str(tmp_path / "exp"), steer=("guitar",), probe=("drums",), prompts=3,
        prompt_seconds=0.3, sae_steps=10, k=4, expansion=2, pairs=2, seeds=1, strengths=(1.0, 4.0), duration=0.3,
        folds=2, test_seeds=3,
    )  # fmt: skip
    s = run_experiment(cfg, say=lambda *_: None)
    assert s["layers"] == [0, 1]
    # a steered concept is found too, though not named among --probe (its banks and baseline come from finding it)
    assert set(s["auroc"]) == {"guitar", "drums"} and set(s["auroc"]["guitar"]) == {"0", "1"}
    iv = s["auroc"]["guitar"]["0"]["sae_probe"]
    assert iv["lo"] <= iv["value"] <= iv["hi"]
    g = s["steering"]["guitar"]
    best = g["validation"]["best_layer"]
    assert set(g["validation"]["layers"]) == {0, 1} and list(g["test"]["layers"]) == [best]
    for arm in g["validation"]["layers"][best].values():
        assert [e["strength"] for e in arm["sweep"]] == [1.0, 4.0]
    test_arm = g["test"]["layers"][best]["sae"]
    val_arm = g["validation"]["layers"][best]["sae"]
    assert [e["strength"] for e in test_arm["sweep"]] == [val_arm["strength_on"]]
    # both guidance rows tried on validation, the chosen one alone on test, with more renders there
    assert set(val_arm["rows_tried"]) == {"both", "cond"} and val_arm["edit_rows"] in ("both", "cond")
    assert list(test_arm["rows_tried"]) == [val_arm["edit_rows"]] == [test_arm["edit_rows"]]
    assert g["validation"]["renders_per_side"] == 1 and g["test"]["renders_per_side"] == 3
    assert test_arm["off_drop"]["n"] == 3 and test_arm["off_drop"]["groups"] == len(g["test"]["pairs"])
    for split in ("validation", "test"):
        refs = g[split]["references"]
        prompt = refs["prompt"]  # the prompt as the edit: its drop is the plain renders' difference
        p = g[split]["plain"]
        assert prompt["off_drop"]["value"] == pytest.approx(p["with"]["value"] - p["without"]["value"])
        assert prompt["on_rise"]["value"] == pytest.approx(prompt["off_drop"]["value"])
        assert refs["resample"]["off_drop"]["n"] == g[split]["renders_per_side"]
    saved = json.loads((tmp_path / "exp" / "experiment.json").read_text())
    assert saved["model"]["sha256"] == s["model"]["sha256"]
    report = (tmp_path / "exp" / "report.md").read_text()
    assert "layer" in report and "no edit, other draws" in report and "| rows |" in report
    assert "(3 renders per side: 1 prompt pair × 3 seeds)" in report and "(n=3 of 1 prompt)" in report
    assert (
        "With 1 prompt pair (each one outcome below 12, however many seeds), an edit that moved every render " in report
    )
    assert "the off drop (50) and on rise (30) goals cannot be met here" in report
    # a layer whose SAE has no feature firing more with a concept is marked (its edits steer the concept's absence)
    fires = [v["fires_more"] for t in saved["auroc"].values() for v in t.values()]
    assert all(isinstance(f, bool) for f in fires) and ("† no feature of the layer's SAE" in report) == (not all(fires))
    marked = experiment_report({**s, "auroc": {**s["auroc"], "drums": {**s["auroc"]["drums"], "1": {
        **s["auroc"]["drums"]["1"], "fires_more": False}}}})  # fmt: skip
    assert " †" in marked.split("| drums |")[1].splitlines()[0] and "† no feature of the layer's SAE" in marked
    sae = saved["sae"][str(best)]
    assert 0 <= sae["train_dead_fraction"] <= 1 and sae["rows"] > 0  # dead in training beside never fired
    assert f"% ({sae['rows']}) | {100 * sae['train_dead_fraction']:.1f} % |" in report
    lo, hi = sae["fvu_interval"]  # an interval over the held-out sources, resampled whole
    assert lo <= sae["fvu"] <= hi and f"{sae['fvu']:.3f} [{lo:.3f}, {hi:.3f}] (n={sae['sources']})" in report
    # a second run reuses the store and the SAEs
    again = run_experiment(cfg, say=lambda *_: None)
    assert again["timings_s"]["saes"] < s["timings_s"]["saes"] + 5
    # other draws of the same experiment: another render seed reuses them too (another --seed is refused at the
    # store, whose prompt rows were drawn with seed 0)
    from training.musicgen import experiment

    seeds, render = [], experiment._render
    monkeypatch.setattr(experiment, "_render", lambda mg, ps, n, seed0, *a, **k: [
        seeds.append(seed0), render(mg, ps, n, seed0, *a, **k)][1])  # fmt: skip
    other = run_experiment(dataclasses.replace(cfg, render_seed=5), say=lambda *_: None)
    assert other["config"]["render_seed"] == 5 and other["sae"] == s["sae"]
    # hunt 127: the second run replaced the first's experiment.json / report.md; each is kept under runs/, and the
    # store's rows are those it holds (a run that added none said 0)
    runs = tmp_path / "exp" / "runs"
    assert {p.name for p in runs.iterdir()} == {"guitar_seed0.json", "guitar_seed0.md", "guitar_seed5.json",
                                                "guitar_seed5.md"}  # fmt: skip
    assert json.loads((runs / "guitar_seed0.json").read_text())["config"]["render_seed"] is None
    assert other["store_rows_held"] == s["store_rows_held"] and min(other["store_rows_held"].values()) > 0
    assert set(seeds) == {5, 5 + experiment.RESAMPLE_SEED}  # every render: plain, edited and the references
    with pytest.raises(UserError, match="seed: 0 stored, 5 now"):
        run_experiment(dataclasses.replace(cfg, seed=5), say=lambda *_: None)


@pytest.mark.slow
def test_musicgen_demo_writes_renders_dashboard_and_report(toy_folders, tmp_path):
    from training.musicgen.demo import MusicGenDemoConfig, run_musicgen_demo

    ac, _ = toy_folders
    # n=72: guitar 18 and drums 12 train clips with it, the minimum-examples rule's 12 per side
    cfg = MusicGenDemoConfig(
        str(tmp_path / "demo"), str(ac), n=72, clip_seconds=0.6, probe=("guitar", "drums"), sae_steps=10, pairs=2,
        seeds=1, strengths=(2.0,), prompts=2, duration=0.3,
    )  # fmt: skip
    s = run_musicgen_demo(cfg, say=lambda *_: None)
    out = tmp_path / "demo"
    assert len(s["renders"]) == 4 and all((out / "renders" / name).is_file() for name in s["renders"])
    layers_page = (out / "site" / "layers.html").read_text()
    assert "transformer.layers.0" in layers_page and "transformer.layers.1" in layers_page
    report = (out / "report.md").read_text()
    assert f"steered at layer {s['chosen_layer']}" in report and "no training record" not in report


def test_codec_reconstructions_agree_between_run_package_and_conversion(toy_folders, toy_codec_run):
    import numpy as np

    from training.musicgen.codec_fidelity import reconstructor

    ac, tf = toy_folders
    x = (np.random.default_rng(0).standard_normal(8000) * 0.1).astype(np.float32)
    outs = [reconstructor(str(m))[2](x) for m in (toy_codec_run, ac, tf)]
    assert all(len(y) == len(x) for y in outs)
    np.testing.assert_array_equal(outs[0], outs[1])  # the package holds the codec the LM run learned from
    np.testing.assert_allclose(outs[1], outs[2], atol=1e-5)
    assert reconstructor(str(toy_codec_run))[1] == 16000


def test_renders_default_to_the_segment_the_lm_was_trained_on(toy_folders, toy_sizes, tmp_path):
    from training.musicgen.experiment import trained_seconds

    ac, _ = toy_folders
    assert trained_seconds(ac) == toy_sizes[1].segment == 0.5  # generation past it is untrained
    assert trained_seconds(tmp_path, 3.0) == 3.0  # no training.json: the caller's default
    (tmp_path / "training.json").write_text("{not json")  # damaged: 10 s silently became the default
    with pytest.raises(UserError, match=r"training\.json: not a readable training record \(Expecting"):
        trained_seconds(tmp_path, 3.0)


def test_the_store_is_teacher_forced_in_the_segment_the_probes_read(toy_folders, tmp_path):
    """The experiment collected its clips in 10 s chunks where its concept stage (`clip_activations`) reads them in
    the LM's training segment: clips longer than it fed the SAEs positions the probes never saw."""
    from training.musicgen.experiment import ExperimentConfig, store_config

    ac, _ = toy_folders
    cfg = store_config(ExperimentConfig(model=str(ac), data=str(tmp_path), out=str(tmp_path)), tmp_path / "store", [0])
    assert cfg.chunk == 0.5 and cfg.duration == ExperimentConfig.prompt_seconds


@pytest.mark.slow
def test_codec_fidelity_and_adherence_reports(toy_folders, toy_data, tmp_path, capsys):
    import numpy as np

    from sae.stats import paired_diff
    from training.data.concept_clips import read_manifest
    from training.musicgen.evaluate import main

    ac, _ = toy_folders
    assert main(["codec", "--model", str(ac), "--data", str(toy_data), "--out", str(tmp_path), "--max-clips", "4"]) == 0
    codec = (tmp_path / "codec_fidelity.md").read_text()
    assert "in-font test: 4 clips" in codec and "| guitar |" in codec
    argv = ["adherence", "--model", str(ac), "--judge-data", str(toy_data), "--out", str(tmp_path), "--pairs", "2"]
    argv += ["--seeds", "2", "--duration", "0.3", "--concepts", "guitar,drums", "--seed", "7", "--cfg-coef", "4"]
    assert main([*argv, "--top-k", "1"]) == 0
    import json

    r = json.loads((tmp_path / "adherence.json").read_text())
    g = r["concepts"]["guitar"]
    assert g["renders_per_side"] == 2 * len(g["pairs"]) and r["seed"] == 7
    assert g["rise"]["groups"] == g["with"]["groups"] == len(g["pairs"])  # the pair the unit (hunt 184)
    assert f"(n={g['renders_per_side']} of {len(g['pairs'])} pairs)" in (tmp_path / "adherence.md").read_text()
    assert "groups" not in g["rise_these_pairs"] and g["rise_these_pairs"]["value"] == g["rise"]["value"]
    heard = {side: np.array(calls, bool) for side, calls in g["heard"].items()}
    assert paired_diff(heard["without"], heard["with"]).as_dict() == g["rise_these_pairs"]
    assert (r["cfg_coef"], r["top_k"]) == (4, 1) and "guidance 4, top-k 1;" in (tmp_path / "adherence.md").read_text()
    assert g["rise"]["value"] == pytest.approx(g["with"]["value"] - g["without"]["value"])
    assert g["verdict"] == "undecided"  # hunt 109: 4 renders a side were "met" or "missed" (12 needed)
    assert main(["adherence", "--model", str(ac), "--judge-data", str(toy_data), "--out", str(tmp_path),
                 "--concepts", "kazoo"]) == 2  # fmt: skip
    argv = ["judge-shift", "--model", str(ac), "--judge-data", str(toy_data), "--out", str(tmp_path)]
    for split in ("test", "all"):
        assert main([*argv, "--concept", "drums", "--concepts", "guitar,drums,piano", "--split", split]) == 0
        shift = json.loads((tmp_path / "judge_shift.json").read_text())
        assert set(shift["shift"]) == {"guitar", "piano"} and shift["judge"]["sample_rate"] == 16000
        assert shift["clips"] == sum(r["split"] in {"all": ("test", "holdout_font")}.get(split, (split,))
                                     for r in read_manifest(toy_data))  # fmt: skip
        assert "| piano | without it |" in (tmp_path / "judge_shift.md").read_text()
    assert main([*argv, "--concept", "drums", "--concepts", "guitar,drums,piano", "--oracle", "2"]) == 0
    oracle = json.loads((tmp_path / "judge_shift.json").read_text())["oracle"]
    assert 0 < oracle["clips"]["with"] <= 2 and 0 < oracle["clips"]["without"] <= 2
    assert oracle["off"]["drop"]["n"] == oracle["clips"]["with"] and set(oracle["on"]["drift"]) == {"guitar", "piano"}
    assert "| on | rise " in (tmp_path / "judge_shift.md").read_text()
    assert main([*argv, "--concept", "kazoo"]) == 2
    assert main([*argv, "--concept", "drums", "--split", "train"]) == 2
    with pytest.raises(SystemExit) as stop:  # refused at parse, before the judge trains
        main([*argv, "--concept", "drums", "--oracle", "-1"])
    assert stop.value.code == 2
    capsys.readouterr()  # a concept of the manifest with no ideal edit: a KeyError traceback after the judge trained
    assert main([*argv, "--concept", "voice", "--concepts", "guitar,voice", "--oracle", "2"]) == 2
    assert "--oracle 2: concept voice has no ideal edit" in capsys.readouterr().err


def test_mean_difference_baseline_edits_the_rows_asked_for():
    """ShiftSteering: `cond` shifts the first B of 2·B guidance rows only, `both` every row (as BankSteering)."""
    import torch

    from training.musicgen.experiment import ShiftSteering

    hidden, v = torch.randn(4, 3, 5), torch.randn(5)
    both = ShiftSteering(1, v, "both").layer_fns(2)[1](hidden, 0)
    cond = ShiftSteering(1, v).layer_fns(2)[1](hidden, 0)  # the default, as BankSteering's
    torch.testing.assert_close(both, hidden + v)
    torch.testing.assert_close(cond[:2], hidden[:2] + v)
    assert torch.equal(cond[2:], hidden[2:])
    torch.testing.assert_close(ShiftSteering(1, v, "cond").layer_fns(4)[1](hidden, 0), both)  # no guidance rows


@pytest.mark.parametrize(
    ("change", "message"),
    [({"edit_rows": ("sideways",)}, "--edit-rows sideways"), ({"test_seeds": -1}, "--test-seeds -1")],
)
def test_experiment_refuses_bad_settings_before_loading_a_model(tmp_path, change, message):
    from sae.errors import UserError
    from training.musicgen.experiment import ExperimentConfig, run_experiment

    cfg = ExperimentConfig(str(tmp_path / "no_model"), str(tmp_path), str(tmp_path / "out"), probe=(), **change)
    with pytest.raises(UserError, match=message):
        run_experiment(cfg, say=lambda *_: None)
    assert not (tmp_path / "out").exists()


def test_too_few_prompt_pairs_are_refused_before_the_costly_stages(toy_folders, toy_concept_data, tmp_path):
    """--pairs 1 was accepted, and the steering stage refused it after collect, SAEs and concepts, saying the model
    knew 1 pair (it knows 15)."""
    from sae.errors import UserError
    from training.musicgen.experiment import ExperimentConfig, run_experiment

    cfg = ExperimentConfig(str(toy_folders[0]), str(toy_concept_data), str(tmp_path / "out"), probe=(), pairs=1)
    with pytest.raises(UserError, match=r"--pairs 1: the steering of guitar needs 2 prompt pairs .*; give 2 or more"):
        run_experiment(cfg, say=lambda *_: None)
    assert not (tmp_path / "out" / "store").exists()
    # hunt 167: a --duration of no frame, refused by the first render after the store and the SAEs
    with pytest.raises(UserError, match=r"--duration 0\.001: .*expected at least one frame"):
        run_experiment(dataclasses.replace(cfg, pairs=2, duration=0.001), say=lambda *_: None)
    assert not (tmp_path / "out" / "store").exists()


def test_on_strength_meets_the_most_goals_then_drifts_least():
    from training.musicgen.experiment import _strength_key

    def e(s, rise, drift):
        return {"strength": s, "rise": {"value": rise}, "max_drift": drift}

    def pick(*sweep):
        return max(sweep, key=_strength_key)["strength"]

    assert pick(e(0.25, 54, 25), e(0.5, 58, 54), e(1, 58, 79)) == 0.25  # rise met by all: least drift
    assert pick(e(0.25, 20, 5), e(0.5, 40, 8), e(1, 60, 30)) == 0.5  # both goals met beats a higher rise
    assert pick(e(0.25, 10, 5), e(0.5, 40, 30)) == 0.5  # the rise goal before the drift goal
    assert pick(e(0.25, 10, 40), e(0.5, 20, 60)) == 0.5  # no goal met: the most rise


def test_steering_goals_need_a_margin_of_one_render_and_their_intervals():
    from training.judge import goals_met
    from training.musicgen.experiment import GOALS

    # 4 renders per side: point values at the goals, intervals reaching far below: nothing is met
    assert goals_met(75, 75, 0, 4, 4, 25, 25, GOALS) == {"off_drop": False, "on_rise": False, "drift": False}
    # 96 per side, intervals above the goals (on: 30, the MusicGen goal, not the RAVE judge's 50)
    assert goals_met(82, 45, 8, 96, 96, 75, 34, GOALS) == {"off_drop": True, "on_rise": True, "drift": True}
    assert goals_met(82, 45, 9.5, 96, 96, 75, 29, GOALS) == {"off_drop": True, "on_rise": False, "drift": False}


def test_steering_goals_need_twelve_renders_per_side():
    """4 renders that all rose give a bootstrap interval of [100, 100]: the experiment meets no goal on them."""
    from sae.stats import Interval
    from training.musicgen.experiment import _goals

    def iv(v, n):
        return Interval(v, v, v, n)

    assert _goals(iv(100, 4), iv(100, 4).as_dict(), 0) == {"off_drop": False, "on_rise": False, "drift": False}
    assert _goals(iv(100, 12), iv(100, 12).as_dict(), 0) == {"off_drop": True, "on_rise": True, "drift": True}


def test_a_stop_in_the_sae_stage_keeps_its_step_and_says_what_is_kept(toy_folders, toy_concept_data, tmp_path,
                                                                        monkeypatch, capsys):  # fmt: skip
    """Hunt 127: SIGTERM while the experiment trained an SAE said "a checkpoint of the last step is kept", but it
    trained with no checkpoint and no stop: the layer started over from step 0."""
    from training.cli.main import HeldStop
    from training.musicgen import experiment

    cfg = experiment.ExperimentConfig(
        str(toy_folders[0]), str(toy_concept_data), str(tmp_path / "exp"), steer=("guitar",), probe=(), prompts=3,
        prompt_seconds=0.3, sae_steps=50, k=4, expansion=2, pairs=2, seeds=1, duration=0.3, layers="0",
    )  # fmt: skip
    monkeypatch.setattr(HeldStop, "due", lambda self: True)  # as if a signal came during the first step
    with pytest.raises(KeyboardInterrupt):
        experiment.run_experiment(cfg, say=print)
    assert "step 1 is checkpointed in" in capsys.readouterr().out
    assert list((tmp_path / "exp" / "saes").glob("*/checkpoint.pt"))


def test_the_drift_goal_needs_its_interval_within_it():
    """Hunt 127: 3 renders of 24 moved up and 3 down were a drift of 0 [−21, +21], and its goal "met"."""
    from sae.stats import Interval, paired_diff
    from training.judge import drift_reach
    from training.musicgen.experiment import _goals

    before = np.zeros(24, bool)
    after = before.copy()
    after[:3] = True
    before[3:6] = True
    drift = {"piano": paired_diff(before, after).as_dict()}
    assert drift["piano"]["value"] == 0 and drift["piano"]["hi"] > 10
    drop = rise = Interval(100, 100, 100, 24)
    assert _goals(drop, rise.as_dict(), 0.0, drift_reach(drift))["drift"] is False
    assert _goals(drop, rise.as_dict(), 0.0, drift_reach({"piano": Interval(0, -5, 5, 24).as_dict()}))["drift"]


BAD_OPTIONS = [
    ("--threads", "0"),
    ("--strengths", "1,x"),
    ("--strengths", "nan"),
    ("--strengths", "-2"),
    ("--duration", "-1"),
    ("--strengths", "١,٢"),  # hunt 157: read as 1, 2 (float() reads other scripts' digits)
    ("--strengths", "1_0"),
]


@pytest.mark.parametrize(("option", "value"), BAD_OPTIONS, ids=lambda x: str(x))
def test_bad_experiment_options_exit_2_as_every_usage_error(option, value, tmp_path, capsys):
    """They said 'error:' but exited 1 (SystemExit with a message), where a usage error exits 2."""
    from training.musicgen.experiment import main

    with pytest.raises(SystemExit) as stop:
        main(["--model", str(tmp_path), "--data", str(tmp_path), "--out", str(tmp_path / "o"), option, value])
    assert stop.value.code == 2
    last = capsys.readouterr().err.splitlines()[-1]
    assert "error: " in last and f"{option} " in last.replace(f"{option}:", f"{option} "), last


def test_a_damaged_lm_segment_is_one_line_from_the_experiment_too(tmp_path, capsys):
    """Hunt 157: the experiment read the LM's segment before its guard: a package's damaged record was a traceback."""
    import json

    from training.musicgen.experiment import main

    record = {"codec": {"step": 3}, "lm": {"step": 4, "run": {"sizes": {"segment": "2"}}}}
    (tmp_path / "training.json").write_text(json.dumps(record))
    assert main(["--model", str(tmp_path), "--data", str(tmp_path), "--out", str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "lm.run.sizes.segment '2': expected the LM's training segment" in err[0], err


def test_an_out_that_is_a_file_is_named_before_any_input_is_read(tmp_path, capsys):
    from training.musicgen.experiment import main

    (tmp_path / "afile").write_text("keep me")
    assert main(["--model", str(tmp_path), "--data", str(tmp_path), "--out", str(tmp_path / "afile")]) == 2
    assert "--out " in capsys.readouterr().err and (tmp_path / "afile").read_text() == "keep me"


def test_a_finished_sae_of_other_settings_is_refused_not_reused(tmp_path):
    """A rerun on the same --out with another --k / --expansion / --sae-steps reused the SAEs it found, and the
    report gave them the new settings."""
    import json
    from dataclasses import asdict

    from sae.train import TrainConfig
    from training.musicgen.experiment import finished_sae

    tc = TrainConfig(k=4, expansion=2, steps=10, batch_size=1024, checkpoint_every=0, log_every=100)
    data = {"digest": "d", "rows": 10}
    assert finished_sae(tmp_path / "none", tc, data) is None
    sae = tmp_path / "sae"
    sae.mkdir()
    (sae / "cfg.json").write_text(json.dumps({"musicsae": {"train_config": asdict(tc)}}))
    (sae / "metrics.json").write_text('{"fvu": 0.1}')  # a run before its data was recorded: not checked
    assert finished_sae(sae, dataclasses.replace(tc, device="cuda", log_every=10), data) == {"fvu": 0.1}
    with pytest.raises(UserError, match=r"sae: an SAE trained with other settings \(k: 4 there, 8 now\); run with"):
        finished_sae(sae, dataclasses.replace(tc, k=8), data)


def test_a_finished_sae_of_fewer_rows_than_the_store_holds_now_is_refused_not_reused(tmp_path):
    """A rerun on the same --out with more --prompts stored the new prompts' rows, then reused the SAEs trained
    before them, and reported them as trained on the new store."""
    from sae.store import ActivationStore, ActivationWriter
    from sae.synthetic import planted_store
    from sae.train import TrainConfig, data_identity, train_hook
    from training.musicgen.experiment import finished_sae

    planted_store(tmp_path / "store", n=6000, d=8, n_features=16, k_true=2)
    tc = TrainConfig(k=2, expansion=2, steps=3, batch_size=256, checkpoint_every=0, log_every=100)
    train_hook(ActivationStore(tmp_path / "store"), "synthetic", tmp_path / "sae", tc)
    store = ActivationStore(tmp_path / "store")
    assert finished_sae(tmp_path / "sae", tc, data_identity(store, "synthetic"))["steps"] == 3
    w = ActivationWriter(tmp_path / "store", "synthetic", 8, dtype="float32")  # a new prompt's rows
    w.add(torch.randn(500, 8), "a new prompt")
    w.close()
    store = ActivationStore(tmp_path / "store")
    with pytest.raises(UserError, match=r"sae: an SAE trained on other rows than the store holds now \(6000 rows "
                       r"then, 6500 now: a rerun with other --prompts\?\)"):  # fmt: skip
        finished_sae(tmp_path / "sae", tc, data_identity(store, "synthetic"))


def test_a_rerun_with_more_prompts_is_refused_before_its_rows_go_in(tmp_path):
    """Hunt 136: the rerun's new prompts were stored, then `finished_sae` refused the SAEs, and the first command
    itself was refused from then on ("other rows than the store holds now"): the folder could not resume."""
    from sae.store import ActivationWriter
    from training.musicgen.collect import prompt_sources
    from training.musicgen.experiment import refuse_rows_beside_finished_saes

    out = tmp_path / "exp"
    w = ActivationWriter(out / "store", "layer_1", 8, dtype="float32")
    for source in prompt_sources(["rock drums", "piano"]):
        w.add(torch.randn(50, 8), source)
    w.close()
    hooks = ["layer_1"]
    refuse_rows_beside_finished_saes(out, ["rock drums", "piano", "jazz"], hooks)  # no finished SAE yet
    (out / "saes" / "layer_1").mkdir(parents=True)
    (out / "saes" / "layer_1" / "metrics.json").write_text("{}")
    refuse_rows_beside_finished_saes(out, ["rock drums", "piano"], hooks)  # the first run's: resumes
    refuse_rows_beside_finished_saes(out, ["piano"], hooks)  # fewer: nothing to add
    # another layer, collected now (hunt 139: refused for layer_1's SAE, which this run leaves alone)
    refuse_rows_beside_finished_saes(out, ["rock drums", "piano", "jazz"], ["layer_0"])
    said = r"its SAE layer_1 was trained on the store as it is, and this run would add rows of 1 prompt\(s\) it lacks"
    with pytest.raises(UserError, match=said + r" \(.*jazz.*: other --prompts than the first run's\)"):
        refuse_rows_beside_finished_saes(out, ["rock drums", "piano", "jazz"], hooks)


def test_the_baseline_direction_leaves_out_the_clips_the_activations_left_out(tmp_path):
    """Hunt 167: a silent clip in a concept folder (noted, and left out of the activations and the probes) was a
    KeyError traceback in the mean-difference baseline, after the store and the SAEs were made."""
    from training.musicgen.experiment import mean_difference

    a, b, silent = (tmp_path / n for n in ("a.wav", "b.wav", "silent.wav"))
    acts = {a: {0: torch.ones(3, 2)}, b: {0: torch.zeros(5, 2)}}
    direction = mean_difference(acts, [a, silent], [b], 0)
    assert direction.tolist() == [1.0, 1.0]


def test_a_run_of_other_settings_keeps_its_own_record(tmp_path):
    """Hunt 167: the README's recipe runs --render-seed 1000 twice (--seeds 8, then 24) on one OUT, and the second
    run's record replaced the first's under runs/guitar_seed1000.json."""
    import json

    from training.musicgen.experiment import run_name

    first = {"seeds": 8, "test_seeds": 32, "render_seed": 1000}
    assert run_name(tmp_path, "guitar_seed1000", first) == "guitar_seed1000"
    (tmp_path / "guitar_seed1000.json").write_text(json.dumps({"config": first}))
    assert run_name(tmp_path, "guitar_seed1000", first) == "guitar_seed1000"  # the same run again: replaced
    other = run_name(tmp_path, "guitar_seed1000", {**first, "seeds": 24, "test_seeds": 128})
    assert other.startswith("guitar_seed1000_") and len(other) == len("guitar_seed1000_") + 8


def test_the_baseline_direction_goes_to_the_hidden_states_device():
    """The raw-residual baseline's direction (built from rows recorded on the CPU) was added to the hidden state as
    it was: on a GPU the steering stage died ("Expected all tensors to be on the same device") after every costly
    stage before it (hunt 85). A 'meta' hidden state stands in for a CUDA one (the same device check)."""
    from training.musicgen.experiment import ShiftSteering

    fn = ShiftSteering(1, torch.ones(8), "cond").layer_fns(1)[1]
    assert fn(torch.zeros(2, 1, 8, device="meta"), 0).device.type == "meta"


def test_a_verdict_on_two_renders_is_undecided_as_its_goals():
    """Two renders that both lost the concept read drop 100 [100, 100]: verdict "met" where `goals_met` (12 renders
    a side) said not met (hunt 88)."""
    import numpy as np

    from training.musicgen.experiment import _arm

    def detect(n: int, guitar: int) -> dict:
        return {"guitar": np.full(n, guitar, bool), "drums": np.zeros(n, bool)}

    for n, said in ((2, "undecided"), (12, "met")):
        a = _arm(["guitar", "drums"], "guitar", detect(n, 1), detect(n, 0), lambda n=n: detect(n, 0),
                 lambda s, n=n: detect(n, 1), (1.0,), 1)  # fmt: skip
        assert a["off_drop"]["value"] == 100 and a["verdicts"] == {"off_drop": said, "on_rise": said}, a["verdicts"]


def test_the_prompt_is_the_unit_of_a_steering_interval():
    """24 renders that all lost the concept: from 24 prompts a drop of 100 [86, 100], met; from 2 prompts × 12 seeds
    the renders of a prompt share it, so as much is known as from 2 renders (hunt 184: renders counted alone)."""
    import numpy as np

    from training.musicgen.experiment import _arm

    def detect(guitar: int) -> dict:
        return {"guitar": np.full(24, guitar, bool), "drums": np.zeros(24, bool)}

    for seeds, said, groups in ((1, "met", 24), (12, "undecided", 2)):
        a = _arm(["guitar", "drums"], "guitar", detect(1), detect(0), lambda: detect(0), lambda s: detect(1), (1.0,),
                 seeds)  # fmt: skip
        drop = a["off_drop"]
        assert (drop["value"], drop["n"], drop["groups"], a["verdicts"]["off_drop"]) == (100, 24, groups, said)
        assert a["off"]["detected"]["groups"] == groups and a["drift_reach"] > (0 if seeds == 1 else 60)
    assert not a["goals_met"]["off_drop"] and not a["goals_met"]["drift"]
    from training.musicgen.experiment import _few_pairs

    goals = {"off_drop": 50.0, "on_rise": 30.0}
    assert _few_pairs({"renders_per_side": 384, "seeds_per_pair": 128}, goals)[1].endswith(
        "reads at least +20: the off drop (50) and on rise (30) goals cannot be met here; more pairs (`--pairs`) can."
    )
    assert "the off drop (50) goal cannot" in _few_pairs({"renders_per_side": 80, "seeds_per_pair": 16}, goals)[1]
    assert _few_pairs({"renders_per_side": 96, "seeds_per_pair": 8}, goals) == []  # 12 pairs
    every = {"renders_per_side": 384, "seeds_per_pair": 128, "pairs_used": 6, "pairs_known": 6}  # the demo's guitar
    assert _few_pairs(every, goals)[1].endswith("the model knows no more pairs for this concept (6 in all), so no "
                                                "`--pairs` can.")  # fmt: skip
    assert _few_pairs({"renders_per_side": 10, "seeds_per_pair": 4}, goals) == []  # not whole pairs: nothing said
    assert (
        "reads at least +49: the off drop (50) goal"
        in _few_pairs({"renders_per_side": 28, "seeds_per_pair": 4}, goals)[1]
    )  # 7 pairs: 49.9, not "+50" (hunt 188)


def test_adherence_refuses_a_concept_without_prompt_pairs_before_the_judge_trains(tmp_path, monkeypatch):
    """Hunt 127: `evaluate adherence --concepts voice` trained the judge (minutes) before it said the model knows
    no description pair differing by voice."""
    from pathlib import Path

    from training.musicgen import adherence

    monkeypatch.setattr(adherence, "fit_judge", lambda *a, **k: pytest.fail("the judge trained first"))
    model = Path(__file__).resolve().parents[2] / "training" / "assets" / "demo_musicgen"
    cfg = adherence.AdherenceConfig(str(model), [str(tmp_path)], concepts=("guitar", "voice"))
    with pytest.raises(UserError, match="concept voice: the model knows no description pair differing by it"):
        adherence.evaluate_adherence(cfg, say=lambda *_: None)


def test_judge_shift_refuses_a_split_without_clips_before_the_judge_trains(tmp_path, monkeypatch):
    """Hunt 167: `evaluate judge-shift --split holdout_font` on data without a held-out font trained the judge
    (minutes on the recipe's data) before it said there were no such clips."""
    from pathlib import Path

    from training.cli.main import main
    from training.musicgen import adherence, evaluate

    data = str(tmp_path / "d")
    assert main(["data", "make", "--out", data, "--n", "4", "--duration", "0.5", "--sr", "16000"]) == 0
    monkeypatch.setattr(adherence, "fit_judge", lambda *a, **k: pytest.fail("the judge trained first"))
    model = str(Path(__file__).resolve().parents[2] / "training" / "assets" / "demo_musicgen")
    with pytest.raises(UserError, match=r"clips .*/d: no holdout_font clips outside the train split"):
        evaluate.judge_shift_result(model, [data], "drums", ("drums",), split="holdout_font")


def test_adherence_checks_its_duration_before_the_judge_trains_and_defaults_to_the_lms_segment(tmp_path, monkeypatch):
    """Hunt 152: `evaluate adherence --duration 0.01` (or 31) was refused after the judge had trained, and it rendered
    4 s by default on the demo MusicGen (trained on 2 s segments) without a word."""
    from pathlib import Path

    from training.musicgen import adherence, evaluate

    model = Path(__file__).resolve().parents[2] / "training" / "assets" / "demo_musicgen"
    monkeypatch.setattr(adherence, "fit_judge", lambda *a, **k: pytest.fail("the judge trained first"))
    for duration, needle in ((0.01, "expected at least one frame"), (31.0, "this model generates at most 30 s")):
        cfg = adherence.AdherenceConfig(str(model), [str(tmp_path)], concepts=("guitar",), duration=duration)
        with pytest.raises(UserError, match=needle):
            adherence.evaluate_adherence(cfg, say=lambda *_: None)
    seen: list = []

    def stop(cfg, *args, **kwargs):
        seen.append(cfg.duration)
        raise UserError("stopped")

    monkeypatch.setattr(adherence, "evaluate_adherence", stop)
    argv = ["adherence", "--model", str(model), "--judge-data", str(tmp_path), "--out", str(tmp_path / "out")]
    assert evaluate.main(argv) == 2 and seen == [2.0]
    said: list[str] = []
    monkeypatch.undo()
    monkeypatch.setattr(adherence, "fit_judge", lambda *a, **k: (_ for _ in ()).throw(UserError("judge")))
    cfg = adherence.AdherenceConfig(str(model), [str(tmp_path)], concepts=("guitar",), duration=4.0)
    with pytest.raises(UserError, match="judge"):
        adherence.evaluate_adherence(cfg, say=said.append)
    assert "note: demo_musicgen's LM was trained on 2 s segments: 4 s at a time" in said[0]


def test_adherence_draws_its_verdict_from_the_renders_only_where_its_pairs_are_every_pair_the_model_knows(
    tmp_path, monkeypatch
):
    """The pair is the unit of adherence's interval (hunt 184), so 6 pairs read like 6 outcomes, however many seeds.
    Where the pairs are every instrument-only pair the model knows (the demo MusicGen's 6 per instrument), no such
    prompt is left to generalise to: the renders counted alone measure the whole, and the verdict comes from them.
    A judge that hears guitar in every render prompted with it, and in none / half of the others' renders, pair by
    pair."""
    import types
    from pathlib import Path

    import numpy as np
    import torch

    import realtime.musicgen as musicgen_pkg
    from training.musicgen import adherence

    model = Path(__file__).resolve().parents[2] / "training" / "assets" / "demo_musicgen"
    real = musicgen_pkg.load_musicgen(str(model))
    asked: list[str] = []

    def generate(prompts, duration, seed=0, **_):
        asked.append(prompts[0])
        return types.SimpleNamespace(wav=[torch.zeros(1, 8) for _ in prompts])

    def detect(audio):
        prompt, n = asked[-1], len(audio)
        if "guitar" in prompt.split():
            return {"guitar": np.ones(n, bool)}
        j = len(asked) // 2 - 1  # the pair: each renders with, then without
        return {"guitar": (np.arange(n) % 2 == 0) if j >= 3 else np.zeros(n, bool)}

    monkeypatch.setattr(real, "generate", generate)
    monkeypatch.setattr(musicgen_pkg, "load_musicgen", lambda *a, **k: real)
    monkeypatch.setattr(adherence, "fit_judge", lambda *a, **k: (types.SimpleNamespace(detect=detect), 1))
    results = {}
    for pairs in (6, 5):
        asked.clear()
        cfg = adherence.AdherenceConfig(str(model), [str(tmp_path)], ("guitar",), pairs=pairs, seeds=12, duration=0.5)
        results[pairs] = adherence.evaluate_adherence(cfg, say=lambda *_: None)["concepts"]["guitar"]
    every, some = results[6], results[5]
    assert (every["every_pair"], some["every_pair"]) == (True, False)
    assert every["rise"]["value"] == 75.0 and every["rise"]["lo"] < 30 <= every["rise_these_pairs"]["lo"]
    assert every["verdict"] == "met" and some["verdict"] == "undecided" and some["rise_these_pairs"]["lo"] >= 30
