"""`musicsae eval hooks`: the side-by-side run of latent and inner-layer SAEs against the raw baseline."""

from __future__ import annotations

import json

import numpy as np
import pytest

from training.rave.hooks import auroc_interval, compare_arms, paired_interval


def test_intervals_behave():
    lo, hi = auroc_interval(0.9, 20, 20)
    assert 0.75 < lo < 0.9 < hi <= 1.0
    assert auroc_interval(0.9, 200, 200)[0] > lo  # more clips, narrower
    assert paired_interval(np.full(10, 5.0)) == (5.0, 5.0)
    lo, hi = paired_interval(np.r_[np.zeros(10), np.full(10, 100.0)], seed=1)
    assert lo < 50 < hi
    sae = {"drop": np.full(12, 100.0), "rise": np.zeros(12), "drift_on": {"x": np.zeros(12)}}
    base = {"drop": np.zeros(12), "rise": np.zeros(12), "drift_on": {"x": np.full(12, 100.0)}}
    c = compare_arms(sae, base, 0)
    assert c["drop"]["beats"] and not c["rise"]["beats"] and not c["rise"]["loses"] and c["drift"]["beats"]


@pytest.mark.slow
def test_eval_hooks_runs_every_stage_and_resumes(tmp_path, tiny_rave_ts, concept_data, capsys):
    from training.cli import main

    out = tmp_path / "cmp"
    argv = ["eval", "hooks", "--data", str(concept_data), "--model", str(tiny_rave_ts), "--out", str(out)]
    argv += ["--hooks", "latent,decoder.net.1", "--concepts", "guitar", "--sae-steps", "20"]
    argv += ["--strength", "4", "--clamp", "2", "--max-clips", "2", "--steer-threshold", "0.01"]
    assert main(argv) == 0
    summary = json.loads((out / "comparison.json").read_text())
    assert summary["split"] == "test" and summary["pick"] in ("latent", "decoder.net.1")
    assert set(summary["hooks"]) == {"latent", "decoder.net.1"}
    assert summary["hooks"]["decoder.net.1"]["d_in"] > summary["hooks"]["latent"]["d_in"]
    for row in summary["concepts"].values():
        for hook in ("latent", "decoder.net.1"):
            cell = row.get(hook) or {}
            assert "not_found" in cell or ("on" in cell and "clamp" in cell and len(cell["auroc"]["sae_probe"]) == 3)
    assert "Pick:" in (out / "report.md").read_text()
    renders = {p.name for p in (out / "latent" / "renders").iterdir()}
    assert {"guitar_clip_original.wav", "guitar_clip_guitar_off.wav", "no_guitar_clip_guitar_clamp.wav"} <= renders
    assert {p.name for p in (out / "baseline" / "renders").iterdir()} >= {"guitar_clip_guitar_off_baseline.wav"}
    stamp = (out / "latent" / "judge" / "judge.json").stat().st_mtime
    capsys.readouterr()
    assert main(argv) == 0  # resumed: every stage is there, only the summary is rewritten
    assert (out / "latent" / "judge" / "judge.json").stat().st_mtime == stamp
    assert "train the SAE" not in capsys.readouterr().out
    assert main([*argv[:8], "--out", str(tmp_path / "x"), "--hooks", "latent,decoder.net.99"]) == 2
    assert "hook 'decoder.net.99'" in capsys.readouterr().err and not (tmp_path / "x").exists()
