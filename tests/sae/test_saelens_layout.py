"""SAEs saved by SAELens with its default settings load here and compute what SAELens computes.

The folders in tests/data/saelens were written by sae-lens 6.54.12 itself (bench/saelens_roundtrip.py
--write-fixture: default TopK training settings, `rescale_acts_by_decoder_norm: true`; BatchTopK saved for
inference as `jumprelu`; the TopK training checkpoint), with SAELens's own features and reconstructions of
the same inputs. The bench reruns the comparison both ways against the installed package.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file, save_file

from sae.errors import UserError
from sae.io import load_sae, musicsae_version, save_sae
from sae.model import SAEConfig, SparseAutoencoder

DATA = Path(__file__).resolve().parents[1] / "data" / "saelens"
X = load_file(str(DATA / "inputs.safetensors"))["x"]


@pytest.mark.parametrize(
    ("folder", "arch"),
    [("saelens_topk", "topk"), ("saelens_topk_checkpoint", "topk"), ("saelens_batchtopk", "batchtopk")],
)
def test_saelens_default_saves_compute_the_same_here(folder, arch):
    sae = load_sae(DATA / folder)
    expected = load_file(str(DATA / folder / "expected.safetensors"))
    with torch.no_grad():
        f = sae.encode(X)
        x_hat = sae.decode(f)
    assert sae.cfg.arch == arch and sae.cfg.k == 4
    assert torch.equal(f != 0, expected["f"] != 0)  # the same active features, row by row
    torch.testing.assert_close(f, expected["f"], rtol=0, atol=1e-6)
    torch.testing.assert_close(x_hat, expected["x_hat"], rtol=0, atol=1e-6)


def test_the_decoder_norm_rescaling_is_what_makes_them_equal(tmp_path):
    """Read without its `rescale_acts_by_decoder_norm`, SAELens's TopK picks other features (so the fold is real)."""
    plain = shutil.copytree(DATA / "saelens_topk_checkpoint", tmp_path / "plain")
    cfg = json.loads((plain / "cfg.json").read_text())
    cfg["rescale_acts_by_decoder_norm"] = False
    (plain / "cfg.json").write_text(json.dumps(cfg))
    expected = load_file(str(DATA / "saelens_topk_checkpoint" / "expected.safetensors"))
    with torch.no_grad():
        f = load_sae(plain).encode(X)
    assert (f - expected["f"]).abs().max() > 1e-2


def test_jumprelu_that_is_not_batchtopk_is_refused_in_one_line(tmp_path):
    per_latent = shutil.copytree(DATA / "saelens_batchtopk", tmp_path / "jr")
    tensors = load_file(str(per_latent / "sae_weights.safetensors"))
    tensors["threshold"] = torch.linspace(0.1, 0.5, tensors["threshold"].numel())
    save_file(tensors, str(per_latent / "sae_weights.safetensors"))
    with pytest.raises(UserError, match="per-latent thresholds differ") as err:
        load_sae(per_latent)
    assert "\n" not in str(err.value)
    cfg = json.loads((per_latent / "cfg.json").read_text())
    del cfg["metadata"]["training_architecture_details"]["k"]
    (per_latent / "cfg.json").write_text(json.dumps(cfg))
    with pytest.raises(UserError, match="JumpReLU SAE without k"):
        load_sae(per_latent)


def test_our_cfg_names_the_layout_and_the_real_writer_version(tmp_path):
    save_sae(SparseAutoencoder(SAEConfig(d_in=8, d_sae=32, k=4)), tmp_path / "s")
    cfg = json.loads((tmp_path / "s" / "cfg.json").read_text())
    assert cfg["metadata"]["sae_lens_version"] == "6.0.0"  # the cfg layout SAELens reads as 6.x
    assert cfg["metadata"]["sae_lens_training_version"] is None  # SAELens did not train it
    assert cfg["musicsae"]["version"] == musicsae_version()
    import tomllib
    from importlib import metadata

    try:
        installed = metadata.version("musicsae")
    except metadata.PackageNotFoundError:
        installed = None
    pyproject = tomllib.loads((Path(__file__).resolve().parents[2] / "pyproject.toml").read_text())
    assert musicsae_version() in {installed, pyproject["project"]["version"]} - {None}


def test_a_topk_sae_in_the_layout_before_saelens_6_loads(tmp_path):
    """SAELens before 6.0 saved TopK as architecture "standard" with `activation_fn_str: "topk"` and k in
    `activation_fn_kwargs` (its SAEConfig.to_dict); the same computation: k largest pre-activations, ReLU, decode.
    A fine-tuned one (`finetuning_scaling_factor: true`) is refused in one line."""
    sae = SparseAutoencoder(SAEConfig(d_in=8, d_sae=32, k=4))
    torch.manual_seed(1)
    with torch.no_grad():
        for p in (sae.W_enc, sae.b_enc, sae.b_dec):
            p.normal_()
    path = save_sae(sae, tmp_path / "v5")
    old = {
        "architecture": "standard",
        "d_in": 8,
        "d_sae": 32,
        "activation_fn_str": "topk",
        "activation_fn_kwargs": {"k": 4},
        "apply_b_dec_to_input": True,
        "finetuning_scaling_factor": False,
        "context_size": 128,
        "model_name": "tiny",
        "hook_name": "blocks.0.hook_resid_pre",
        "hook_layer": 0,
        "hook_head_index": None,
        "prepend_bos": True,
        "dataset_path": "",
        "dataset_trust_remote_code": True,
        "normalize_activations": "none",
        "dtype": "float32",
        "device": "cpu",
        "sae_lens_training_version": "5.5.0",
    }
    (path / "cfg.json").write_text(json.dumps(old))
    loaded = load_sae(path)
    assert (loaded.cfg.arch, loaded.cfg.k, loaded.cfg.hook_name) == ("topk", 4, "blocks.0.hook_resid_pre")
    with torch.no_grad():
        torch.testing.assert_close(loaded.encode(X), sae.encode(X), rtol=0, atol=1e-6)
    (path / "cfg.json").write_text(json.dumps({**old, "finetuning_scaling_factor": True}))
    with pytest.raises(UserError, match="finetuning_scaling_factor") as err:
        load_sae(path)
    assert "\n" not in str(err.value)


def test_a_git_lfs_pointer_instead_of_the_weights_says_so(tmp_path):
    """A Hugging Face SAE cloned without git-lfs has a 130-byte pointer where the weights should be: named as such
    (it read `unreadable (... header too large)`), for loading and for the bank's weight hash alike."""
    from sae.io import sae_weights_sha256

    folder = shutil.copytree(DATA / "saelens_topk", tmp_path / "cloned")
    (folder / "sae_weights.safetensors").write_text(
        "version https://git-lfs.github.com/spec/v1\noid sha256:" + "3" * 64 + "\nsize 134291856\n"
    )
    for read in (load_sae, sae_weights_sha256):
        with pytest.raises(UserError, match="a Git LFS pointer, not the weights: fetch them with `git lfs pull`"):
            read(folder)


def test_an_sae_saved_without_b_dec_applied_to_its_input_encodes_the_same(tmp_path):
    """Hunt 212: folding `apply_b_dec_to_input: false` into the encoder bias could take the wrong sign unseen."""
    torch.manual_seed(0)
    sae = SparseAutoencoder(SAEConfig(d_in=8, d_sae=32, k=4))
    with torch.no_grad():
        sae.b_dec.normal_(0.0, 1.0)
    save_sae(sae, tmp_path / "s")
    w = load_file(tmp_path / "s" / "sae_weights.safetensors")
    w["b_enc"] = w["b_enc"] - w["b_dec"] @ w["W_enc"]  # SAELens encodes x @ W_enc + b_enc
    save_file(w, tmp_path / "s" / "sae_weights.safetensors")
    cfg = json.loads((tmp_path / "s" / "cfg.json").read_text())
    cfg["apply_b_dec_to_input"] = False
    (tmp_path / "s" / "cfg.json").write_text(json.dumps(cfg))
    x = torch.randn(64, 8)
    torch.testing.assert_close(load_sae(tmp_path / "s").encode(x), sae.encode(x), atol=1e-4, rtol=1e-4)
