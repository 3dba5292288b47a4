"""A hub id with no hub in reach: refused in seconds with one line saying how to pass a local folder; a model
already in the local cache loads from it without waiting for the network. Real sockets and the real
huggingface_hub cache layout; the endpoint is pointed at addresses that cannot answer, so the test never
downloads anything even where a network exists."""

from __future__ import annotations

import shutil
import time

import pytest
from huggingface_hub import constants

from realtime.musicgen import load_musicgen
from sae.errors import UserError
from training.cli import main


@pytest.fixture
def no_hub(tmp_path, monkeypatch):
    """An empty hub cache and an endpoint on a closed local port (connection refused at once)."""
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(tmp_path / "hub"))
    monkeypatch.setattr(constants, "ENDPOINT", "http://127.0.0.1:9")
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.delenv("AUDIOCRAFT_CACHE_DIR", raising=False)
    return tmp_path / "hub"


@pytest.mark.parametrize("endpoint", ["http://127.0.0.1:9", "http://192.0.2.1:81"])  # refused; unroutable (waits)
def test_unreachable_hub_is_one_line_in_seconds(no_hub, monkeypatch, capsys, tmp_path, endpoint):
    monkeypatch.setattr(constants, "ENDPOINT", endpoint)
    t0 = time.monotonic()
    with pytest.raises(UserError) as err:
        load_musicgen("facebook/musicgen-small")
    assert time.monotonic() - t0 < 20  # it took ~30-45 s of hub retries before the probe
    text = str(err.value)
    assert "cannot be reached" in text and "pass a local folder" in text and "\n" not in text
    argv = f"render musicgen --model facebook/musicgen-small --prompt x --out {tmp_path}/a.wav".split()
    assert main(argv) == 2
    out = capsys.readouterr()
    assert out.err.count("\n") == 1 and "pass a local folder" in out.err and "Retrying" not in out.err + out.out
    assert not (tmp_path / "a.wav").exists()


def test_a_cached_model_loads_without_the_hub(no_hub, audiocraft_dir, monkeypatch):
    """The tiny audiocraft checkpoint placed in the hub cache under a repo id loads by that id, offline."""
    snap = no_hub / "models--musicsae--tiny" / "snapshots" / ("0" * 40)
    snap.mkdir(parents=True)
    for name in ("state_dict.bin", "compression_state_dict.bin"):
        shutil.copyfile(audiocraft_dir / name, snap / name)
    (no_hub / "models--musicsae--tiny" / "refs").mkdir()
    (no_hub / "models--musicsae--tiny" / "refs" / "main").write_text("0" * 40)
    monkeypatch.setenv("HF_HUB_OFFLINE", "0")  # restored after the test (the probe switches it on)
    t0 = time.monotonic()
    mg = load_musicgen("musicsae/tiny")
    assert time.monotonic() - t0 < 30
    assert mg.num_layers == 3 and constants.HF_HUB_OFFLINE
    with pytest.raises(UserError, match="not in the local cache and HF_HUB_OFFLINE is set"):
        load_musicgen("musicsae/other")
