"""Fixtures for the RAVE path: a small generated data folder and an SAE on the tiny RAVE's latents."""

from __future__ import annotations

import struct
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch


@pytest.fixture(scope="session")
def concept_data(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """48 one-second clips at 44.1 kHz (the tiny RAVE's rate) with guitar / drums folders, one soundfont (so no
    clip is dropped to balance fonts; tests/rave_path/test_concept_data.py covers several). Train split: guitar 18
    with / 21 without, drums 12 / 27: both meet the minimum-examples rule of 12 per side."""
    from training.data.concept_clips import DataConfig, make_dataset

    root = tmp_path_factory.mktemp("data")
    cfg = DataConfig(n=48, seed=1, duration=1.0, sample_rate=44100, soundfonts=("timgm6mb",))
    make_dataset(root, cfg, concepts=("guitar", "drums"))
    return root


@pytest.fixture(scope="session")
def tiny_sae_dir(tmp_path_factory: pytest.TempPathFactory, tiny_rave_ts: Path) -> Path:
    """A seeded TopK SAE (16 -> 64, k 4) on the tiny RAVE's latent hook, saved in the SAELens layout."""
    from sae.io import save_sae
    from sae.model import SAEConfig, SparseAutoencoder

    torch.manual_seed(0)
    sae = SparseAutoencoder(SAEConfig(d_in=16, d_sae=64, k=4, hook_name="latent", model_name=tiny_rave_ts.name))
    with torch.no_grad():
        sae.b_enc.normal_(0.0, 0.1)
    return save_sae(sae, tmp_path_factory.mktemp("sae") / "latent")


@pytest.fixture(scope="session")
def tiny_model(tiny_rave_ts: Path):
    """The tiny RAVE loaded once, with the delay renders remove measured once: (RaveModel, aligned delay)."""
    from realtime.rave import RaveModel
    from realtime.render_rave import model_delay

    torch.set_num_threads(1)
    model = RaveModel.load(tiny_rave_ts)
    return model, model_delay(model)


@pytest.fixture(scope="session")
def noise_bursts():
    """Writes `n` one-second 44.1 kHz clips of noise bursts (a drum solo's shape: hits, decays, gaps), seeded, into
    a new folder: `noise_bursts(folder, n, seed=3)` → folder."""

    def write(folder: Path, n: int, seed: int = 3) -> Path:
        folder.mkdir()
        rng = np.random.default_rng(seed)
        t = np.arange(44100) / 44100
        env = np.exp(-((t * 4) % 1) * 12)  # four hits a second
        for i in range(n):
            sf.write(folder / f"solo_{i:02d}.wav", (0.5 * env * rng.standard_normal(len(t))).astype(np.float32), 44100)
        return folder

    return write


SF2_SR = 22050
PROGRAMS = (0, 24, 25, 30, 33, 48, 56)  # piano, the guitars, bass, strings, brass (bank 0)


def _chunk(cid: bytes, data: bytes) -> bytes:
    return cid + struct.pack("<I", len(data)) + data + (b"\0" if len(data) % 2 else b"")


def _list(kind: bytes, *chunks: bytes) -> bytes:
    body = kind + b"".join(chunks)
    return b"LIST" + struct.pack("<I", len(body)) + body


def _name(text: str) -> bytes:
    return text.encode()[:20].ljust(20, b"\0")


def write_sf2(
    path: Path, drum_keys: tuple[int, int] = (0, 127), keys: tuple[int, int] = (0, 127), release_s: float = 0.0
) -> Path:
    """A General-MIDI-shaped SoundFont 2 file written from scratch at `path`: every preset `data make` selects, each
    playing one looped sine over `keys`; the drum kit (bank 128) over `drum_keys` only (keys 0–10: presets, but no
    sound at the notes the data plays); `release_s` > 0: a release that long, as real presets ring on."""
    n = SF2_SR // 10
    smpl = (np.sin(2 * np.pi * 440 * np.arange(n) / SF2_SR) * 12000).astype("<i2").tobytes() + b"\0" * 92
    shdr = _name("sine") + struct.pack("<IIIIIbbHH", 0, n, 100, n - 100, SF2_SR, 69, 0, 0, 1)
    shdr += _name("EOS") + struct.pack("<IIIIIbbHH", 0, 0, 0, 0, 0, 0, 0, 0, 0)
    # instrument 0: `keys`; 1: the drum keys. Generators: key range (43), sample modes (54: loop), sample id (53)
    inst = _name("full") + struct.pack("<H", 0) + _name("kit") + struct.pack("<H", 1) + _name("EOI")
    inst += struct.pack("<H", 2)
    # release (38, timecents; 0 = 1 s), before the sample id, which comes last
    release = struct.pack("<Hh", 38, round(1200 * np.log2(release_s))) if release_s > 0 else b""
    per = 3 + bool(release)
    ibag = struct.pack("<HHHHHH", 0, 0, per, 0, 2 * per, 0)
    igen = b"".join(
        struct.pack("<HBB", 43, lo, hi) + struct.pack("<HH", 54, 1) + release + struct.pack("<HH", 53, 0)
        for lo, hi in (keys, drum_keys)
    ) + struct.pack("<HH", 0, 0)
    presets = [(p, 0, 0) for p in PROGRAMS] + [(0, 128, 1)]
    phdr = b"".join(
        _name(f"p{p}b{b}") + struct.pack("<HHHIII", p, b, k, 0, 0, 0) for k, (p, b, _) in enumerate(presets)
    )
    phdr += _name("EOP") + struct.pack("<HHHIII", 0, 0, len(presets), 0, 0, 0)
    pbag = b"".join(struct.pack("<HH", k, 0) for k in range(len(presets) + 1))
    pgen = b"".join(struct.pack("<HH", 41, i) for _, _, i in presets) + struct.pack("<HH", 0, 0)
    info = _list(b"INFO", _chunk(b"ifil", struct.pack("<HH", 2, 1)), _chunk(b"isng", b"EMU8000\0"),
                 _chunk(b"INAM", b"test\0\0"))  # fmt: skip
    pdta = _list(b"pdta", _chunk(b"phdr", phdr), _chunk(b"pbag", pbag), _chunk(b"pmod", b"\0" * 10),
                 _chunk(b"pgen", pgen), _chunk(b"inst", inst), _chunk(b"ibag", ibag), _chunk(b"imod", b"\0" * 10),
                 _chunk(b"igen", igen), _chunk(b"shdr", shdr))  # fmt: skip
    body = b"sfbk" + info + _list(b"sdta", _chunk(b"smpl", smpl)) + pdta
    path.write_bytes(b"RIFF" + struct.pack("<I", len(body)) + body)
    return path


def scaled_sf2(src: Path, factor: float, out: Path) -> Path:
    """A copy of the SoundFont `src` (16-bit samples) at `out` with every sample scaled by `factor`: the same
    samples at another level."""
    buf = bytearray(src.read_bytes())

    def chunks(start: int, end: int):
        while start + 8 <= end:
            size = struct.unpack("<I", buf[start + 4 : start + 8])[0]
            yield bytes(buf[start : start + 4]), start + 8, size
            start += 8 + size + (size & 1)

    (off, size), = [(o2, s2) for cid, o, s in chunks(12, len(buf)) if cid == b"LIST" and buf[o : o + 4] == b"sdta"
                    for cid2, o2, s2 in chunks(o + 4, o + s) if cid2 == b"smpl"]  # fmt: skip
    samples = np.frombuffer(bytes(buf[off : off + size]), dtype="<i2").astype(np.float64)
    buf[off : off + size] = np.round(samples * factor).astype("<i2").tobytes()
    out.write_bytes(buf)
    return out


@pytest.fixture
def sine_font(tmp_path: Path):
    """`write_sf2` into tmp_path: `sine_font(name, drum_keys=(lo, hi), keys=(lo, hi), release_s=0.0)`."""
    return lambda name="sine.sf2", drum_keys=(0, 127), keys=(0, 127), release_s=0.0: write_sf2(
        tmp_path / name, drum_keys, keys, release_s
    )
