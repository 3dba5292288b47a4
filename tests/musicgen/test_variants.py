"""MusicGen weights users bring: stereo (8 interleaved codebooks, 2 channels), fp16 / bf16 files, musicgen-melody,
an audiocraft release whose codec is a hub pointer, and the hub cache layout. Each either works through both
backends or is refused in one line naming the variant; tiny models in the real formats, built once per session."""

from __future__ import annotations

import copy
import os
import shutil
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from huggingface_hub import constants

from realtime.musicgen import Recorder, load_musicgen
from realtime.musicgen.render import generation_steps
from sae.atomic import atomic_torch_save
from sae.errors import UserError
from training.musicgen.arch import CODEC_FILE, LM_FILE, release_package
from training.musicgen.tiny_model import TinyMusicGenConfig, build_audiocraft, save_tiny_musicgen

PROMPTS = ["happy guitar", "sad piano"]


@pytest.fixture(scope="session")
def stereo_dirs(tmp_path_factory, tiny_cfg) -> dict[str, Path]:
    cfg = TinyMusicGenConfig(**{**tiny_cfg.__dict__, "channels": 2})
    root = tmp_path_factory.mktemp("stereo")
    return {b: save_tiny_musicgen(root / b, b, cfg) for b in ("audiocraft", "transformers")}


@pytest.fixture(scope="module", params=["audiocraft", "transformers"])
def stereo(request, stereo_dirs):
    return load_musicgen(stereo_dirs[request.param])


def test_stereo_generates_interleaved_codebooks_and_two_channels(stereo, tiny_cfg):
    frames = stereo.frames(0.3)
    assert (stereo.n_q, stereo.audio_channels, stereo.delays) == (2 * tiny_cfg.n_q, 2, tiny_cfg.n_q - 1)
    seen: set[int] = set()
    gen_rec = {i: Recorder(rows=2, limit=frames) for i in range(stereo.num_layers)}
    with stereo.hooks({**gen_rec, 0: lambda h, pos: seen.add(pos)}):
        gen = stereo.generate(PROMPTS, duration=0.3, seed=1)
    assert gen.codes.shape == (2, stereo.n_q, frames)
    assert gen.wav.shape == (2, 2, frames * 640)  # no extra frames from a mono-sized delay tail
    assert sorted(seen) == list(range(generation_steps(stereo, 0.3)))  # stereo codebook pairs share a delay
    # the generated codes teacher-forced give the same residual stream: the codebooks are in the LM's order
    tf_rec = {i: Recorder(rows=2, limit=frames) for i in range(1, stereo.num_layers)}
    with stereo.hooks(tf_rec):
        stereo.teacher_force(gen.codes, PROMPTS)
    for i, rec in tf_rec.items():
        torch.testing.assert_close(rec.result(), gen_rec[i].result(), atol=1e-4, rtol=1e-4)


def test_stereo_encodes_mono_and_stereo_audio(stereo):
    wav = torch.randn(1, 2, 640 * 10, generator=torch.Generator().manual_seed(0)) * 0.1
    codes = stereo.encode(wav)
    assert codes.shape == (1, stereo.n_q, 10)
    mono = stereo.encode(wav[:, :1])  # the collectors read audio as mono: both sides get it
    assert torch.equal(mono[:, 0::2], mono[:, 1::2])
    assert torch.equal(mono[:, 0::2], codes[:, 0::2])
    rec = Recorder(rows=1, limit=10)
    with stereo.hooks({0: rec}):
        stereo.teacher_force(codes, [None])
    assert rec.result().shape == (1, 10, stereo.dim)


def test_stereo_codes_agree_across_backends(stereo_dirs):
    a, b = (load_musicgen(stereo_dirs[k]) for k in ("audiocraft", "transformers"))
    wav = torch.randn(1, 2, 640 * 6, generator=torch.Generator().manual_seed(1)) * 0.1
    # different random codecs, same layout: left codebooks at even rows in both
    assert a.encode(wav).shape == b.encode(wav).shape == (1, 8, 6)
    for mg in (a, b):
        left = mg.encode(wav[:, :1])[:, 0::2]
        assert torch.equal(mg.encode(wav)[:, 0::2], left)


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_half_precision_transformers_weights_run_on_cpu(transformers_dir, tmp_path, dtype):
    from transformers import MusicgenForConditionalGeneration

    folder = tmp_path / "half"
    shutil.copytree(transformers_dir, folder)
    os.remove(folder / "model.safetensors")
    MusicgenForConditionalGeneration.from_pretrained(transformers_dir).to(dtype).save_pretrained(folder)
    mg = load_musicgen(folder)
    assert next(mg.model.parameters()).dtype == torch.float32
    codes = mg.encode(torch.randn(1, 1, 640 * 5) * 0.1)  # float32 audio into the codec
    rec = Recorder(rows=1, limit=5)
    with mg.hooks({0: rec}):
        mg.teacher_force(codes, ["guitar"])
    assert rec.result().dtype == torch.float32 and torch.isfinite(rec.result()).all()


def test_transformers_melody_is_refused(transformers_dir, tmp_path):
    from transformers import (
        MusicgenConfig,
        MusicgenMelodyConfig,
        MusicgenMelodyDecoderConfig,
        MusicgenMelodyForConditionalGeneration,
    )

    c = MusicgenConfig.from_pretrained(transformers_dir)
    dec = {k: v for k, v in c.decoder.to_dict().items() if k not in ("model_type", "transformers_version")}
    cfg = MusicgenMelodyConfig(
        text_encoder=c.text_encoder.to_dict(),
        audio_encoder=c.audio_encoder.to_dict(),
        decoder=MusicgenMelodyDecoderConfig(**dec).to_dict(),
    )
    folder = tmp_path / "melody"
    MusicgenMelodyForConditionalGeneration(cfg).save_pretrained(folder)
    for f in transformers_dir.glob("tokenizer*"):
        shutil.copy(f, folder / f.name)
    with pytest.raises(UserError, match=r"musicgen-melody.*not supported.*supported:") as err:
        load_musicgen(folder)
    assert "\n" not in str(err.value)


def test_transformers_folder_missing_tensors_is_refused(transformers_dir, tmp_path):
    from safetensors.torch import load_file, save_file

    folder = tmp_path / "partial"
    shutil.copytree(transformers_dir, folder)
    state = load_file(folder / "model.safetensors")
    save_file({k: v for k, v in state.items() if ".layers.1." not in k}, folder / "model.safetensors")
    with pytest.raises(UserError, match=r"leave .* tensors of a MusicGen unset"):
        load_musicgen(folder)


def test_audiocraft_melody_is_refused(audiocraft_dir, tiny_cfg, tmp_path):
    """musicgen-melody's LM config has a `self_wav` chroma conditioner (needs demucs and its weights)."""
    lm, _codec, lm_cfg, _codec_cfg = build_audiocraft(tiny_cfg)
    cfg = copy.deepcopy(lm_cfg)
    chroma = {"sample_rate": 32000, "n_chroma": 12, "radix2_exp": 14, "argmax": True, "cache_path": None}
    cfg["conditioners"]["self_wav"] = {"model": "chroma_stem", "chroma_stem": chroma}
    cfg["fuser"]["prepend"] = ["self_wav"]
    folder = tmp_path / "melody"
    folder.mkdir()
    atomic_torch_save(release_package(lm.state_dict(), cfg), folder / LM_FILE)
    shutil.copy(audiocraft_dir / CODEC_FILE, folder / CODEC_FILE)
    with pytest.raises(UserError, match=r"musicgen-melody.*not supported.*supported:"):
        load_musicgen(folder)


def test_audiocraft_release_with_hub_codec_is_refused_naming_it(audiocraft_dir, tmp_path, monkeypatch):
    """audiocraft's own releases point compression_state_dict.bin at facebook/encodec_32khz on the hub."""
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(tmp_path / "hub"))
    monkeypatch.setattr(constants, "ENDPOINT", "http://127.0.0.1:9")
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    folder = tmp_path / "release"
    folder.mkdir()
    shutil.copy(audiocraft_dir / LM_FILE, folder / LM_FILE)
    torch.save({"pretrained": "facebook/encodec_32khz", "exported": True, "version": "1.3.0"}, folder / CODEC_FILE)
    t0 = time.monotonic()
    with pytest.raises(UserError, match="names the codec facebook/encodec_32khz on the hub"):
        load_musicgen(folder)
    assert time.monotonic() - t0 < 20


def test_hub_cache_folder_loads_its_snapshot(transformers_dir, tmp_path):
    """`models--facebook--musicgen-small` as huggingface_hub lays it out (snapshot files are links to blobs)."""
    repo = tmp_path / "models--facebook--musicgen-small"
    snap = repo / "snapshots" / "abc123"
    snap.mkdir(parents=True)
    (repo / "blobs").mkdir()
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text("abc123")
    for f in transformers_dir.iterdir():
        blob = repo / "blobs" / f"b_{f.name}"
        shutil.copy(f, blob)
        (snap / f.name).symlink_to(os.path.relpath(blob, snap))
    for source in (repo, snap):
        mg = load_musicgen(source)
        assert (mg.backend, mg.name) == ("transformers", "facebook/musicgen-small")


def test_transformers_folder_without_tokenizer_is_refused(transformers_dir, tmp_path):
    """Without tokenizer files transformers builds an empty T5 vocabulary: every prompt would be <unk>."""
    folder = tmp_path / "no_tokenizer"
    shutil.copytree(transformers_dir, folder)
    for f in folder.glob("tokenizer*"):
        f.unlink()
    with pytest.raises(UserError, match="the tokenizer is missing"):
        load_musicgen(folder)


def test_damaged_safetensors_is_one_line(transformers_dir, tmp_path):
    folder = tmp_path / "damaged"
    shutil.copytree(transformers_dir, folder)
    data = (folder / "model.safetensors").read_bytes()
    (folder / "model.safetensors").write_bytes(data[:1000])
    with pytest.raises(UserError, match="could not load it as transformers MusicGen weights"):
        load_musicgen(folder)


def test_weights_without_config_name_the_missing_file(transformers_dir, tmp_path):
    folder = tmp_path / "no_config"
    shutil.copytree(transformers_dir, folder)
    (folder / "config.json").unlink()
    with pytest.raises(UserError, match=r"config\.json is missing"):
        load_musicgen(folder)


@pytest.mark.parametrize("backend", ["audiocraft", "transformers"])
def test_backend_of_the_other_format_is_named(audiocraft_dir, transformers_dir, backend):
    folder = transformers_dir if backend == "audiocraft" else audiocraft_dir
    other = "transformers" if backend == "audiocraft" else "audiocraft"
    with pytest.raises(UserError, match=f"is a {other} MusicGen folder; pass --backend {other} or auto"):
        load_musicgen(folder, backend)


def test_folders_of_the_wrong_kind_are_named(tmp_path):
    sae = tmp_path / "sae"  # what `musicsae sae train` writes per layer
    sae.mkdir()
    (sae / "cfg.json").write_text("{}")
    (sae / "sae_weights.safetensors").write_bytes(b"")
    rave = tmp_path / "model.ts"
    rave.write_bytes(b"PK")
    for path, what in ((sae, "an SAE folder"), (rave, "a TorchScript file")):
        with pytest.raises(UserError, match=f"{what}.*not MusicGen weights; expected a MusicGen folder"):
            load_musicgen(path)


def test_audiocraft_bare_state_dict_is_named(audiocraft_dir, tmp_path):
    folder = tmp_path / "bare"
    shutil.copytree(audiocraft_dir, folder)
    pkg = torch.load(folder / LM_FILE, weights_only=False)
    torch.save(pkg["best_state"], folder / LM_FILE)
    with pytest.raises(UserError, match="not an audiocraft release package"):
        load_musicgen(folder)


@pytest.mark.parametrize("damage", ["garbage", "truncated", "partly unset", "swapped", "codec twice", "a tensor"])
def test_damaged_audiocraft_weights_are_one_line_naming_the_problem(audiocraft_dir, tmp_path, damage):
    """A state_dict.bin that is not a torch file ended in a 30-line traceback (pickle.UnpicklingError, which
    load_musicgen did not catch), and one missing a tensor said only '(Error(s) in loading state_dict for
    LMModel:)', the first line of torch's message, without the key."""
    folder = tmp_path / "damaged"
    shutil.copytree(audiocraft_dir, folder)
    lm = folder / LM_FILE
    if damage == "garbage":
        lm.write_text("garbage\n")
    elif damage == "truncated":
        lm.write_bytes(lm.read_bytes()[:5000])
    elif damage == "partly unset":
        pkg = torch.load(lm, weights_only=False)
        del pkg["best_state"]["transformer.layers.1.linear1.weight"]
        torch.save(pkg, lm)
    elif damage == "swapped":  # hunt 181: omegaconf's, torch's or Python's traceback for files of another kind
        codec = folder / "compression_state_dict.bin"
        lm_bytes = lm.read_bytes()
        lm.write_bytes(codec.read_bytes())
        codec.write_bytes(lm_bytes)
    elif damage == "codec twice":
        shutil.copyfile(folder / "compression_state_dict.bin", lm)
    else:
        torch.save(torch.zeros(3), lm)
    with pytest.raises(UserError, match="could not load it as audiocraft MusicGen weights") as err:
        load_musicgen(folder)
    line = str(err.value)
    assert "\n" not in line and len(line) < 400, line
    expected = {
        "garbage": "state_dict.bin is not a readable torch file",
        "truncated": "state_dict.bin is not a readable torch file",
        "partly unset": "transformer.layers.1.linear1.weight",
        "swapped": "Missing key lm_model: a weight file of another kind, or the LM's and the codec's swapped?",
        "codec twice": "Missing key lm_model: a weight file of another kind",
        "a tensor": "too many indices for tensor of dimension 1: a weight file of another kind",
    }[damage]
    assert expected in line, line


def test_a_damaged_transformers_bin_is_one_line(transformers_dir, tmp_path):
    """A transformers folder whose pytorch_model.bin is not a torch file ended in a pickle traceback."""
    folder = tmp_path / "damaged_bin"
    shutil.copytree(transformers_dir, folder)
    (folder / "model.safetensors").unlink()
    (folder / "pytorch_model.bin").write_text("garbage\n")
    with pytest.raises(UserError, match="could not load it as transformers MusicGen weights") as err:
        load_musicgen(folder)
    assert "not a readable torch file" in str(err.value) and "\n" not in str(err.value)


def test_a_broken_tokenizer_is_named_not_blamed_on_the_weights(transformers_dir, tmp_path):
    """A tokenizer.json that is not JSON was reported as 'could not load it as transformers MusicGen weights
    (Expecting property name ...)': the weights were fine."""
    folder = tmp_path / "bad_tokenizer"
    shutil.copytree(transformers_dir, folder)
    (folder / "tokenizer.json").write_text("{bad")
    with pytest.raises(UserError, match="the tokenizer files could not be read") as err:
        load_musicgen(folder)
    assert "weights" not in str(err.value) and "\n" not in str(err.value)


@pytest.mark.parametrize("backend", ["audiocraft", "transformers"])
def test_codec_fidelity_reconstructs_through_a_stereo_model(stereo_dirs, backend):
    """Hunt 108: `evaluate codec` fed mono audio to audiocraft's stereo codec (an AssertionError) and decoded the
    8 interleaved codebooks with transformers' mono codec (an IndexError). Mono audio is copied to both sides, each
    side coded apart: the sides' mean is the mono codec's own round trip (transformers' codec is mono)."""
    from training.musicgen.codec_fidelity import reconstructor

    _, sr, run = reconstructor(str(stereo_dirs[backend]))
    audio = (0.1 * np.random.default_rng(0).standard_normal(sr // 2)).astype(np.float32)
    out = run(audio)
    assert out.shape == audio.shape and np.isfinite(out).all() and np.abs(out).max() > 0
    if backend == "transformers":
        codec = load_musicgen(stereo_dirs[backend]).model.audio_encoder
        with torch.no_grad():
            x = torch.from_numpy(audio)[None, None]
            mono = codec.decode(codec.encode(x).audio_codes, [None]).audio_values[0, 0, : len(audio)].numpy()
        np.testing.assert_allclose(out, mono, atol=1e-5)
