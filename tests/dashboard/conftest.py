"""Small real inputs for dashboard tests: generated clips + manifest, a log-mel activation store of them
(real store format; the "model" is a fixed log-mel front end, so features follow the audio), an SAE trained
on it by the real trainer, and a concept bank pointing at that SAE."""

from __future__ import annotations

import html
import json
import os
import re
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
import torch

N_MELS = 24
HOP = 512


def logmel(y: np.ndarray, sr: int, n_mels: int = N_MELS, hop: int = HOP) -> np.ndarray:
    """[frames, n_mels] log-mel energies (frame i covers samples i*hop .. i*hop+1024)."""
    n_fft = 1024
    y = np.pad(y, (0, max(0, n_fft - y.size)))
    n = 1 + (y.size - n_fft) // hop
    frames = y[np.arange(n_fft)[None, :] + hop * np.arange(n)[:, None]] * np.hanning(n_fft)
    mag = np.abs(np.fft.rfft(frames, axis=1)) ** 2
    mel = lambda f: 2595 * np.log10(1 + f / 700)  # noqa: E731
    edges = 700 * (10 ** (np.linspace(mel(40), mel(sr / 2), n_mels + 2) / 2595) - 1)
    freqs = np.fft.rfftfreq(n_fft, 1 / sr)
    fb = np.maximum(
        0,
        np.minimum(
            (freqs[None] - edges[:-2, None]) / (edges[1:-1, None] - edges[:-2, None]),
            (edges[2:, None] - freqs[None]) / (edges[2:, None] - edges[1:-1, None]),
        ),
    )
    return np.log10(mag @ fb.T + 1e-6).astype(np.float32)


def write_logmel_store(clips: list[Path], audio_root: Path, out: Path, model_name: str = "logmel24") -> float:
    """One hook `mel` with a row per frame of every clip; returns the frame rate."""
    import soundfile as sf

    from sae.store import ActivationWriter

    sr = sf.info(os.fsencode(clips[0])).samplerate  # a name may not be UTF-8: its own bytes
    rate = sr / HOP
    with ActivationWriter(
        out,
        "mel",
        N_MELS,
        "float32",
        model={"name": model_name, "sha256": "0" * 64},
        frame_rate=rate,
        sample_rate=sr,
        shard_rows=500,
    ) as w:
        for clip in clips:
            y, _ = sf.read(os.fsencode(clip), dtype="float32")
            w.add(logmel(y, sr), clip.relative_to(audio_root).as_posix(), 0)
    return rate


@dataclass
class Inputs:
    data: Path
    audio_root: Path
    manifest: Path
    store: Path
    sae: Path
    bank: Path


def train_sae(store: Path, out: Path, steps: int = 150, expansion: int = 4, k: int = 4) -> Path:
    from sae.store import ActivationStore
    from sae.train import TrainConfig, train_hook

    torch.set_num_threads(1)
    cfg = TrainConfig(
        k=k,
        expansion=expansion,
        steps=steps,
        batch_size=256,
        eval_fraction=0.0,
        shuffle_buffer=2048,
        checkpoint_every=0,
        log_every=50,
        eval_rows=20000,
        seed=0,
    )
    train_hook(ActivationStore(store), "mel", out, cfg)
    return out


@pytest.fixture(scope="session")
def dash_inputs(tmp_path_factory: pytest.TempPathFactory) -> Inputs:
    from sae.bank import Concept, ConceptBank, ConceptFeature, ModelRef
    from training.data.concept_clips import DataConfig, make_dataset

    root = tmp_path_factory.mktemp("dash")
    data = root / "data"
    make_dataset(data, DataConfig(n=20, seed=3, duration=2.0, sample_rate=16000, p_voice=0.25), concepts=None)
    clips = sorted((data / "clips").glob("*.wav"))
    store = root / "store"
    write_logmel_store(clips, data / "clips", store)
    sae = train_sae(store, root / "sae" / "mel")
    bank = ConceptBank(root / "concepts.yaml")
    bank.add(
        Concept(
            "bright",
            ModelRef("logmel24", "0" * 64),
            "mel",
            bank.relative_sae(sae),
            [ConceptFeature(0, 1.0, 1.5), ConceptFeature(3, 0.5, 0.8)],
            auroc={"sae_probe": 0.9},
        )
    )
    bank.save()
    return Inputs(data, data / "clips", data / "manifest.jsonl", store, sae, bank.path)


@pytest.fixture
def copy_inputs(dash_inputs: Inputs, tmp_path: Path) -> Inputs:
    """A private copy of data + store (to break things in)."""
    data = tmp_path / "data"
    shutil.copytree(dash_inputs.data, data)
    store = tmp_path / "store"
    shutil.copytree(dash_inputs.store, store)
    return Inputs(data, data / "clips", data / "manifest.jsonl", store, dash_inputs.sae, dash_inputs.bank)


SMALL = {"top_n": 4, "max_pages": 6, "snippet_seconds": 1.5}


@pytest.fixture(scope="session")
def built_site(dash_inputs: Inputs, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The dashboard of `dash_inputs` (small sizes), built once; returns its folder."""
    from training.dashboard import DashboardConfig, build_dashboard

    out = tmp_path_factory.mktemp("site") / "site"
    build_dashboard(
        dash_inputs.sae,
        dash_inputs.store,
        dash_inputs.audio_root,
        out,
        dash_inputs.bank,
        dash_inputs.manifest,
        cfg=DashboardConfig(**SMALL),
        progress=False,
    )
    return out


CHROMIUM = "chromium"
CHROMIUM_FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--mute-audio",
]


class Browser:
    """Headless Chromium (Debian `chromium`) runs, each with a fresh profile under `tmp`."""

    def __init__(self, tmp: Path) -> None:
        self.tmp = tmp
        self.runs = 0

    def run(self, url: str, *extra: str) -> subprocess.CompletedProcess:
        self.runs += 1
        profile = self.tmp / f"chromium-profile-{self.runs}"
        cmd = [shutil.which(CHROMIUM) or CHROMIUM, *CHROMIUM_FLAGS, f"--user-data-dir={profile}", *extra, url]
        return subprocess.run(cmd, capture_output=True, text=True, timeout=120)

    def load(self, page: Path, query: str = "") -> tuple[dict, list[str]]:
        """Load `page` (with `?query` when given) with the site's self-check on (`#selfcheck`): returns its
        report (script and load errors, audio readyState/duration, image naturalWidth, rows shown) and the
        browser's console lines."""
        r = self.run(
            page.as_uri() + (f"?{query}" if query else "") + "#selfcheck",
            "--enable-logging=stderr",
            "--v=0",
            "--virtual-time-budget=15000",
            "--dump-dom",
        )
        m = re.search(r'<pre id="selfcheck"[^>]*>(.*?)</pre>', r.stdout, re.S)
        assert m, f"no self-check report in the DOM of {page} (rc {r.returncode}): {r.stderr[-2000:]}"
        console = [ln for ln in r.stderr.splitlines() if ":CONSOLE" in ln]
        return json.loads(html.unescape(m.group(1))), console

    @staticmethod
    def assert_clean(report: dict, console: list[str], page: Path, n_audio: int | None = None) -> None:
        assert report["errors"] == [], (page, report["errors"])
        assert console == [], (page, console)
        for a in report["audio"]:
            assert a["error"] is None and a["readyState"] >= 1 and a["duration"] > 0, (page, a)
        for im in report["images"]:
            assert im["naturalWidth"] > 0, (page, im)
        if n_audio is not None:
            assert len(report["audio"]) == n_audio


@pytest.fixture
def browser(tmp_path: Path) -> Browser:
    return Browser(tmp_path)
