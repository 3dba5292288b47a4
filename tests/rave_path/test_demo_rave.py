"""The demo model's recipe (`python -m training.rave.demo_model`): train, resume, export a streaming RAVE."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[2]


def _run(*args: str) -> None:
    done = subprocess.run([sys.executable, "-m", "training.rave.demo_model", *args], cwd=ROOT, capture_output=True,
                          text=True, timeout=600)  # fmt: skip
    assert done.returncode == 0, done.stderr[-2000:]


def test_train_resume_export(tmp_path, concept_data):
    run = tmp_path / "run"
    common = ["--audio", str(concept_data / "clips"), "--run", str(run), "--length", "32768", "--batch", "1"]
    _run(*common, "--steps", "2")
    first = torch.load(run / "train_state.pt", weights_only=False)
    assert first["step"] == 2 and (run / "config.gin").exists()
    _run(*common, "--steps", "3")  # resumes from step 2 and counts on
    second = torch.load(run / "train_state.pt", weights_only=False)
    assert second["step"] == 3
    name = next(k for k, v in first["model"].items() if v.is_floating_point() and "decoder" in k)
    assert not torch.equal(first["model"][name], second["model"][name])
    _run("--run", str(run), "--export", str(tmp_path / "demo.ts"))
    from realtime.rave import RaveModel

    model = RaveModel.load(tmp_path / "demo.ts")  # refuses anything but a streaming RAVE export
    assert model.sr == 44100 and model.ratio == 512 and 1 <= model.latent_size <= 16
