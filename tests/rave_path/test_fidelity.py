"""Fidelity report (`musicsae eval fidelity`): judged reconstructions vs originals, with counts and intervals."""

from __future__ import annotations

import json

import numpy as np
import pytest

from training.cli import main
from training.rave.fidelity import GOAL_POINTS, _set_report, markdown
from training.rave.fidelity_metrics import loudness_error_db, spectral_distance


def test_distances_are_zero_for_identity_and_grow_with_damage():
    rng = np.random.default_rng(0)
    x = rng.normal(0, 0.1, 22050).astype(np.float32)
    assert spectral_distance(x, x) == 0 and loudness_error_db(x, x) == 0
    assert spectral_distance(x, x + rng.normal(0, 0.01, len(x))) < spectral_distance(x, x + rng.normal(0, 0.1, len(x)))
    assert abs(loudness_error_db(x, 0.5 * x) - 20 * np.log10(2)) < 1e-6  # half the amplitude: 6 dB


def _report(orig: dict, recon: dict, labels: dict, n: int) -> dict:
    rows = [{"index": i, "font": "fluidr3"} for i in range(n)]
    clean = {i: np.ones(4096, np.float32) for i in range(n)}
    audio = {i: np.ones(4096, np.float32) for i in range(n)}
    return _set_report(list(range(n)), rows, clean, audio, orig, recon, labels, ["guitar"])


def test_verdicts_follow_the_intervals():
    n = 40
    labels = {"guitar": {i: i < 20 for i in range(n)}}
    same = _report(labels, labels, labels, n)["concepts"]["guitar"]
    assert same["verdict"] == "met" and same["with"]["clips"] == 20 and same["without"]["clips"] == 20
    # the model makes everything sound like guitar: all 20 clips without guitar now "have" it
    everything = {"guitar": dict.fromkeys(range(n), True)}
    guitarish = _report(labels, everything, labels, n)["concepts"]["guitar"]
    assert guitarish["without"]["difference"]["value"] == 100 and guitarish["verdict"] == "missed"
    # one clip of 20 changes: 5 points, but the interval reaches past the goal: not claimed
    one = {"guitar": {**labels["guitar"], 25: True}}
    close = _report(labels, one, labels, n)["concepts"]["guitar"]
    assert close["without"]["difference"]["value"] == 5 < GOAL_POINTS and close["without"]["verdict"] == "undecided"


@pytest.mark.slow
def test_cli_report_on_a_held_out_font(tmp_path, tiny_rave_ts, capsys):
    from training.data.concept_clips import DataConfig, make_dataset

    data = tmp_path / "data"
    make_dataset(data, DataConfig(n=15, seed=3, duration=1.0, holdout_font="fluidr3"), concepts=())
    out = tmp_path / "fid"
    argv = ["eval", "fidelity", "--data", str(data), "--model", str(tiny_rave_ts), "--out", str(out)]
    assert main([*argv, "--concepts", "guitar,drums"]) == 0
    result = json.loads((out / "fidelity.json").read_text())
    sets = result["models"][tiny_rave_ts.name]["sets"]
    assert set(sets) == {"held-out font", "in-font test"}
    held = sets["held-out font"]
    assert held["clips"] == 5 and held["fonts"] in (["fluidr3"], ["fluidr3", "none"], ["none", "fluidr3"])
    for c in ("guitar", "drums"):
        e = held["concepts"][c]
        assert e["with"]["clips"] + e["without"]["clips"] == 5
        assert e["verdict"] in ("met", "missed", "undecided")
    assert held["spectral_distance"]["value"] > 1  # an untrained model does not reconstruct
    assert "held-out font: 5 clips" in (out / "fidelity.md").read_text()
    assert "held-out font" in markdown(result)
    assert main([*argv, "--concepts", "kazoo"]) == 2
    assert "kazoo" in capsys.readouterr().err
