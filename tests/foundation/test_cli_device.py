"""`--device` on every command that runs a model: one option, one check, a one-line error for a missing GPU."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from training.cli.args import torch_device
from training.cli.main import build_parser, command_parsers

ROOT = Path(__file__).resolve().parents[2]
# commands that run no model: they write data or files, or list / edit a bank
NO_MODEL = {"models rave", "models musicgen", "data make", "concept list", "concept remove", "sae export"}
# writes a file nn~ runs on the CPU: the model is scripted and checked there, not on another device
NO_MODEL |= {"export nn"}


def test_every_model_command_has_the_same_device_option():
    leaves = command_parsers(build_parser())
    assert set(leaves) >= NO_MODEL
    missing, other = [], []
    for name, parser in sorted(leaves.items()):
        if name in NO_MODEL:
            continue
        flag = "--model-device" if name == "live" else "--device"  # live's --device is the audio device
        action = next((a for a in parser._actions if flag in a.option_strings), None)
        if action is None:
            missing.append(name)
        elif action.type is not torch_device or action.default != "cpu":
            other.append(name)
    assert missing == [] and other == []
    assert {"concept find", "eval steering", "render rave", "demo", "sae eval"} <= set(leaves) - NO_MODEL


def test_a_device_this_machine_lacks_is_one_line():
    run = subprocess.run(
        [sys.executable, "-m", "training.cli", "render", "rave", "--in", "a.wav", "--out", "b.wav", "--model", "m.ts",
         "--device", "cuda:99"],
        capture_output=True, text=True, cwd=ROOT,
    )  # fmt: skip
    lines = run.stderr.strip().splitlines()
    assert run.returncode == 2 and "argument --device: 'cuda:99': torch sees" in lines[-1]
    assert "Traceback" not in run.stderr
    bad = subprocess.run(
        [sys.executable, "-m", "training.cli", "demo", "--out", "x", "--device", "gpu"], capture_output=True, text=True
    )
    assert bad.returncode == 2 and "expected cpu, cuda, cuda:N or mps" in bad.stderr


def test_a_cuda_index_torch_would_refuse_is_refused_as_it_is_written(monkeypatch):
    """`cuda:00` and `cuda:٠` passed the count check where a GPU was, then torch.device() raised a traceback (hunt
    155); a device counted by torch is checked with a GPU faked here."""
    import argparse

    import pytest
    import torch

    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)
    assert torch_device("cuda:1") == "cuda:1" and torch_device("cuda") == "cuda"
    for text in ("cuda:00", "cuda:٠", "cuda:０", "cuda:01"):
        with pytest.raises(argparse.ArgumentTypeError, match="expected cpu, cuda, cuda:N or mps"):
            torch_device(text)
