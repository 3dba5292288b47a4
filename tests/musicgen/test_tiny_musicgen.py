"""Tiny MusicGen checkpoints load through the real loaders and generate, seeded and reproducible."""

from __future__ import annotations

import argparse

import pytest
import torch

from sae.errors import UserError
from training.cli.models import register_musicgen
from training.musicgen.tiny_model import TinyMusicGenConfig, build_audiocraft, save_tiny_musicgen


def _models_cli(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="musicsae models")
    register_musicgen(parser.add_subparsers(dest="cmd", required=True))
    args = parser.parse_args(argv)
    return args.func(args)


def test_audiocraft_folder_loads_with_get_pretrained(audiocraft_dir, tiny_cfg):
    from audiocraft.models import MusicGen

    model = MusicGen.get_pretrained(str(audiocraft_dir), device="cpu")
    lm = build_audiocraft(tiny_cfg)[0]
    loaded = model.lm.state_dict()
    assert loaded.keys() == lm.state_dict().keys()
    assert all(torch.equal(loaded[k], v) for k, v in lm.state_dict().items())
    assert len(model.lm.transformer.layers) == tiny_cfg.num_layers
    assert model.lm.transformer.layers[0].self_attn.memory_efficient  # the pretrained attention path
    assert (model.sample_rate, model.frame_rate) == (32000, 50)

    model.set_generation_params(duration=0.4)
    wavs = []
    for _ in range(2):
        torch.manual_seed(3)
        wavs.append(model.generate(["happy guitar", "sad piano"]))
    assert wavs[0].shape == (2, 1, 12800)
    assert torch.isfinite(wavs[0]).all()
    assert torch.equal(wavs[0], wavs[1])


def test_seed_changes_weights_and_same_seed_repeats(tmp_path):
    a = build_audiocraft(TinyMusicGenConfig(seed=1))[0].state_dict()
    b = build_audiocraft(TinyMusicGenConfig(seed=1))[0].state_dict()
    c = build_audiocraft(TinyMusicGenConfig(seed=2))[0].state_dict()
    key = "transformer.layers.0.linear1.weight"
    assert torch.equal(a[key], b[key])
    assert not torch.equal(a[key], c[key])


def test_the_transformers_model_of_a_seed_is_the_same_on_any_thread_count(tmp_path):
    """Hunt 142: its codebooks come from the encoder's output, whose sums split by thread: 1 and 2 threads built
    other bytes, so another machine's build of the same seed was another model (its sha256 identity)."""
    import hashlib

    from training.musicgen.tiny_model import save_transformers

    threads, digests = torch.get_num_threads(), []
    try:
        for n in (1, 2):
            torch.set_num_threads(n)
            save_transformers(tmp_path / f"t{n}", TinyMusicGenConfig(seed=3))
            digests.append(hashlib.sha256((tmp_path / f"t{n}" / "model.safetensors").read_bytes()).hexdigest())
    finally:
        torch.set_num_threads(threads)
    assert digests[0] == digests[1]


def test_transformers_folder_loads_with_from_pretrained(transformers_dir, tiny_cfg):
    from transformers import AutoTokenizer, MusicgenForConditionalGeneration

    model = MusicgenForConditionalGeneration.from_pretrained(str(transformers_dir)).eval()
    tok = AutoTokenizer.from_pretrained(str(transformers_dir))
    assert len(model.decoder.model.decoder.layers) == tiny_cfg.num_layers
    assert model.config.decoder.num_codebooks == tiny_cfg.n_q
    enc = tok(["Happy GUITAR, please", "sad piano"], return_tensors="pt", padding=True)
    ids = enc["input_ids"][0].tolist()
    assert ids[-1] == tok.eos_token_id
    assert tok.unk_token_id in ids  # "please" is not in the tiny vocabulary
    assert tok.convert_ids_to_tokens(ids[:2]) == ["happy", "guitar"]
    torch.manual_seed(0)
    audio = model.generate(**enc, max_new_tokens=20 + tiny_cfg.n_q - 1, do_sample=True, guidance_scale=3.0)
    assert audio.shape == (2, 1, 20 * 640)
    assert torch.isfinite(audio).all()


def test_models_musicgen_cli_writes_both_formats(tmp_path):
    assert _models_cli(["musicgen", "--out", str(tmp_path / "ac"), "--layers", "2"]) == 0
    assert {p.name for p in (tmp_path / "ac").iterdir()} == {"state_dict.bin", "compression_state_dict.bin"}
    assert _models_cli(["musicgen", "--out", str(tmp_path / "tf"), "--backend", "transformers"]) == 0
    assert {"config.json", "model.safetensors", "tokenizer.json"} <= {p.name for p in (tmp_path / "tf").iterdir()}
    with pytest.raises(UserError, match="--dim 30 --heads 4"):
        _models_cli(["musicgen", "--out", str(tmp_path / "bad"), "--dim", "30"])
    with pytest.raises(UserError, match="--dim 32 --layers 100000: expected at most dim 2048 and 48 layers"):
        _models_cli(["musicgen", "--out", str(tmp_path / "bad"), "--layers", "100000"])  # not minutes of building
    assert not (tmp_path / "bad").exists()
    # a trained package there: its weights were replaced, its descriptions and training record left describing them
    pkg = tmp_path / "ac"
    (pkg / "training.json").write_text("{}")
    before = {p.name: p.read_bytes() for p in pkg.iterdir()}
    with pytest.raises(UserError, match=r"--out .*ac: holds a MusicGen already"):
        _models_cli(["musicgen", "--out", str(pkg)])
    assert {p.name: p.read_bytes() for p in pkg.iterdir()} == before
    (pkg / "state_dict.bin").unlink()
    (pkg / "compression_state_dict.bin").unlink()
    with pytest.raises(UserError, match=r"--out .*ac: holds other files \(training\.json\)"):
        _models_cli(["musicgen", "--out", str(pkg)])
    with pytest.raises(UserError, match="holds a MusicGen already"):  # its own format too (hunt 123: a fine-tuned
        _models_cli(["musicgen", "--out", str(tmp_path / "tf"), "--backend", "transformers"])  # model's weights)


def test_unknown_backend_is_a_user_error(tmp_path):
    with pytest.raises(UserError, match="expected one of audiocraft, transformers"):
        save_tiny_musicgen(tmp_path / "x", "onnx")


@pytest.mark.parametrize("backend", ["audiocraft", "transformers"])
def test_tiny_codec_codes_depend_on_the_audio_and_audio_on_the_codes(backend, audiocraft_dir, transformers_dir):
    """A codec whose codebooks are all zero maps every input to code 0 and every code to one sound: collected
    activations and renders of such a model would not depend on the audio or on the edits at all."""
    from realtime.musicgen import load_musicgen

    mg = load_musicgen(audiocraft_dir if backend == "audiocraft" else transformers_dir)
    gen = torch.Generator().manual_seed(0)
    codes = [mg.encode(0.5 * torch.randn(1, 1, 640 * 10, generator=gen)) for _ in range(2)]
    assert len(codes[0].unique()) > 3  # (random encoders hardly tell one input from another; the books must)
    # hunt 138: the transformers books, far from the encoder's scale, coded every frame of any input alike (4
    # codebooks of one code each passed the line above): two noises must code apart in many places (2.5 % did)
    assert (codes[0] != codes[1]).float().mean() > 0.2, (codes[0] != codes[1]).float().mean()
    other = torch.randint(0, 256, codes[0].shape, generator=gen)
    if backend == "audiocraft":
        wavs = [mg.model.compression_model.decode(c) for c in (codes[0], other)]
    else:
        wavs = [mg.model.audio_encoder.decode(c[None], [None]).audio_values for c in (codes[0], other)]
    assert not torch.allclose(wavs[0], wavs[1])


def test_models_cli_writes_a_stereo_model(tmp_path):
    import json

    assert _models_cli(["musicgen", "--out", str(tmp_path / "st"), "--backend", "transformers", "--stereo"]) == 0
    decoder = json.loads((tmp_path / "st" / "config.json").read_text())["decoder"]
    assert (decoder["audio_channels"], decoder["num_codebooks"]) == (2, 8)


@pytest.mark.parametrize("first", ["audiocraft", "transformers"])
def test_a_folder_of_the_other_format_is_not_written_into(tmp_path, first):
    """`models musicgen --out tiny_ac --backend transformers` over an audiocraft folder left both formats in one
    folder, which then loaded as audiocraft without a word; same-format ones are refused too (hunt 123)."""
    other = "transformers" if first == "audiocraft" else "audiocraft"
    out = str(tmp_path / "tiny")
    assert _models_cli(["musicgen", "--out", out, "--backend", first, "--layers", "1"]) == 0
    before = sorted(p.name for p in (tmp_path / "tiny").iterdir())
    with pytest.raises(UserError, match=f"--out {out}: holds an? {first} MusicGen already"):
        _models_cli(["musicgen", "--out", out, "--backend", other, "--layers", "1"])
    assert sorted(p.name for p in (tmp_path / "tiny").iterdir()) == before
    with pytest.raises(UserError, match="holds a MusicGen already"):
        _models_cli(["musicgen", "--out", out, "--backend", first, "--layers", "1", "--seed", "1"])


def test_a_stop_between_the_two_files_leaves_the_old_model_whole(tmp_path, monkeypatch):
    """Hunt 108: the audiocraft folder's two files were saved one by one into it; a stop between them left the new
    LM beside the old codec, a folder that loads without a word."""
    import hashlib

    from training.musicgen import tiny_model

    out = tmp_path / "mg"
    save_tiny_musicgen(out, "audiocraft", TinyMusicGenConfig(num_layers=1, seed=0))
    before = {f.name: hashlib.sha256(f.read_bytes()).hexdigest() for f in out.iterdir()}
    real, calls = tiny_model.atomic_torch_save, []

    def stopped_at_the_second(obj, path) -> None:
        calls.append(path)
        if len(calls) == 2:
            raise KeyboardInterrupt
        real(obj, path)

    monkeypatch.setattr(tiny_model, "atomic_torch_save", stopped_at_the_second)
    with pytest.raises(KeyboardInterrupt):
        save_tiny_musicgen(out, "audiocraft", TinyMusicGenConfig(num_layers=1, seed=1))
    assert {f.name: hashlib.sha256(f.read_bytes()).hexdigest() for f in out.iterdir()} == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["mg"]  # nothing half-written beside it
