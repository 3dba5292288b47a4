"""SAE models (TopK / BatchTopK), SAELens-layout save/load, TorchScript export."""

import json

import pytest
import torch
from safetensors.torch import load_file, save_file

from sae.errors import UserError
from sae.export import export_torchscript, script_sae
from sae.io import load_sae, read_torch, save_sae
from sae.model import SAEConfig, SparseAutoencoder, geometric_median


def _trained_like(arch="topk", d_in=12, d_sae=48, k=4, seed=0):
    torch.manual_seed(seed)
    sae = SparseAutoencoder(SAEConfig(d_in=d_in, d_sae=d_sae, k=k, arch=arch, hook_name="layer.3", model_name="tiny"))
    x = torch.randn(2000, d_in) * 3 + 5
    sae.init_from_sample(x, normalize="center_scale")
    with torch.no_grad():
        sae.b_enc.normal_(0, 0.1)
        sae.W_enc.add_(0.1 * torch.randn_like(sae.W_enc))
    out = sae.train_forward(sae.normalize(x[:256]))  # sets the BatchTopK threshold
    assert out["l0"] > 0
    return sae, x


def test_init_unit_norm_decoder_and_encoder_transpose():
    sae = SparseAutoencoder(SAEConfig(d_in=16, d_sae=64, k=8))
    torch.testing.assert_close(sae.W_dec.norm(dim=1), torch.ones(64))
    torch.testing.assert_close(sae.W_enc, sae.W_dec.t())
    assert sae.W_enc.shape == (16, 64) and sae.W_dec.shape == (64, 16)
    # after a step with the projected gradient and renormalisation, rows stay unit norm
    x = torch.randn(128, 16)
    sae.train_forward(x)["loss"].backward()
    sae.project_decoder_grad()
    with torch.no_grad():
        sae.W_dec -= 0.5 * sae.W_dec.grad
    sae.normalize_decoder()
    torch.testing.assert_close(sae.W_dec.norm(dim=1), torch.ones(64))


def test_topk_l0_equals_k_and_batchtopk_threshold():
    sae, x = _trained_like("topk")
    f = sae.encode(x)
    assert f.shape == (2000, 48)
    assert torch.all((f != 0).sum(-1) == 4)
    assert torch.all(f >= 0)
    bt, x = _trained_like("batchtopk")
    x_n = bt.normalize(x[:512])
    out = bt.train_forward(x_n, track=False)
    assert out["l0"].item() == pytest.approx(4.0)  # k on average over the batch
    th = float(bt.threshold)
    assert th > 0
    f = bt.encode(x[:512])
    pre = bt.pre_acts(x[:512])
    assert torch.equal(f != 0, pre > th)  # inference: the global threshold decides
    assert 1.0 < (f != 0).sum(-1).float().mean() < 16.0


def test_geometric_median_resists_outliers():
    x = torch.cat([torch.randn(500, 3) * 0.1 + 1.0, torch.full((50, 3), 100.0)])
    m = geometric_median(x)
    assert (m - 1.0).abs().max() < 0.1 and x.mean(0)[0] > 5


def test_normalisation_folds_into_weights():
    for arch in ("topk", "batchtopk"):
        sae, x = _trained_like(arch)
        assert float(sae.scale) != 1.0 and sae.x_mean.abs().sum() > 0
        folded = sae.folded()
        assert float(folded.scale) == 1.0 and folded.x_mean.abs().sum() == 0
        torch.testing.assert_close(folded.encode(x), sae.encode(x), rtol=1e-4, atol=1e-4)
        torch.testing.assert_close(folded(x), sae(x), rtol=1e-4, atol=1e-4)
        torch.testing.assert_close(folded.W_dec.norm(dim=1), torch.ones(48))


@pytest.mark.parametrize("arch", ["topk", "batchtopk"])
def test_saelens_round_trip(tmp_path, arch):
    sae, x = _trained_like(arch)
    save_sae(sae, tmp_path)
    cfg = json.loads((tmp_path / "cfg.json").read_text())
    assert cfg["d_in"] == 12 and cfg["d_sae"] == 48 and cfg["normalize_activations"] == "none"
    assert cfg["metadata"]["hook_name"] == "layer.3" and cfg["metadata"]["model_name"] == "tiny"
    assert cfg["architecture"] == ("topk" if arch == "topk" else "jumprelu")
    w = load_file(tmp_path / "sae_weights.safetensors")
    assert {k: tuple(v.shape) for k, v in w.items()} == {
        "W_enc": (12, 48),
        "b_enc": (48,),
        "W_dec": (48, 12),
        "b_dec": (12,),
        **({"threshold": (48,)} if arch == "batchtopk" else {}),
    }
    # SAELens' own forward on these tensors: TopK of the pre-activations, or JumpReLU at the threshold
    pre = (x - w["b_dec"]) @ w["W_enc"] + w["b_enc"]
    if arch == "topk":
        v, i = pre.topk(cfg["k"], dim=-1)
        f_ref = torch.zeros_like(pre).scatter(-1, i, v.relu())
    else:
        f_ref = pre.relu() * (pre > w["threshold"])
    torch.testing.assert_close(f_ref @ w["W_dec"] + w["b_dec"], sae(x), rtol=1e-4, atol=1e-4)
    loaded = load_sae(tmp_path)
    assert (loaded.cfg.d_in, loaded.cfg.d_sae, loaded.cfg.k, loaded.cfg.arch) == (12, 48, 4, arch)
    assert loaded.cfg.hook_name == "layer.3" and loaded.cfg.model_name == "tiny"
    torch.testing.assert_close(loaded.encode(x), sae.encode(x), rtol=1e-4, atol=1e-4)


def test_load_errors_are_one_line(tmp_path):
    with pytest.raises(UserError, match=r"no cfg\.json"):
        load_sae(tmp_path)
    sae, _ = _trained_like()
    save_sae(sae, tmp_path)
    cfg = json.loads((tmp_path / "cfg.json").read_text())
    cfg["d_in"] = 13
    (tmp_path / "cfg.json").write_text(json.dumps(cfg))
    with pytest.raises(
        UserError, match=r"W_enc has shape \[12, 48\], cfg.json \(d_in=13, d_sae=48\) expects \[13, 48\]"
    ):
        load_sae(tmp_path)
    cfg["d_in"] = 12
    (tmp_path / "cfg.json").write_text(json.dumps(cfg))
    w = load_file(tmp_path / "sae_weights.safetensors")
    w["W_dec"][3, 1], w["b_enc"][0] = float("nan"), float("inf")  # a diverged or damaged SAE
    save_file(w, tmp_path / "sae_weights.safetensors")
    with pytest.raises(UserError, match="NaN/inf in b_enc, W_dec: expected finite weights"):
        load_sae(tmp_path)
    del w["b_enc"]
    save_file(w, tmp_path / "sae_weights.safetensors")
    with pytest.raises(UserError, match="missing tensors b_enc") as exc:
        load_sae(tmp_path)
    assert "\n" not in str(exc.value)
    cfg["architecture"] = "gated"
    (tmp_path / "cfg.json").write_text(json.dumps(cfg))
    with pytest.raises(UserError, match="architecture 'gated'"):
        load_sae(tmp_path)
    with pytest.raises(UserError, match="encode input of width 5: expected 12"):
        sae.encode(torch.zeros(2, 5))


@pytest.mark.parametrize("arch", ["topk", "batchtopk"])
def test_torchscript_export_matches_eager(tmp_path, arch):
    sae, x = _trained_like(arch)
    path = export_torchscript(sae, tmp_path / "sae.ts")
    ts = torch.jit.load(str(path))
    xb = x[:64].reshape(4, 16, 12)  # [.., T, d_in] blocks as the engine sends them
    torch.testing.assert_close(ts.encode(xb), sae.encode(xb), rtol=1e-4, atol=1e-4)
    f = sae.encode(xb)
    torch.testing.assert_close(ts.decode(f), sae.decode(f), rtol=1e-4, atol=1e-4)
    torch.testing.assert_close(ts(xb), sae(xb), rtol=1e-4, atol=1e-4)
    assert ts.W_dec.shape == (48, 12) and ts.k == 4 and ts.hook_name == "layer.3"
    assert isinstance(script_sae(sae), torch.jit.ScriptModule)


def test_a_truncated_checkpoint_is_one_line(tmp_path):
    """Every resumable run reads its state through read_torch: a cut-short file names itself, no traceback."""
    path = tmp_path / "checkpoint.pt"
    torch.save({"model": torch.zeros(1000)}, path)
    assert read_torch(path)["model"].shape == (1000,)
    path.write_bytes(path.read_bytes()[:500])
    with pytest.raises(UserError, match=r"checkpoint.pt: cannot read it \(.*\); truncated or damaged") as exc:
        read_torch(path)
    assert "\n" not in str(exc.value)
    path.write_bytes(b"")
    with pytest.raises(UserError, match="truncated or damaged"):
        read_torch(path)


def _edited(tmp_path, name, cfg_edit=None, weights_edit=None):
    """A copy of a saved SAE with its cfg.json and / or weights changed the way a hand-edited folder might be."""
    sae, _ = _trained_like()
    d = save_sae(sae, tmp_path / name)
    cfg = json.loads((d / "cfg.json").read_text())
    if cfg_edit:
        cfg_edit(cfg)
    (d / "cfg.json").write_text(json.dumps(cfg))
    if weights_edit:
        w = load_file(d / "sae_weights.safetensors")
        weights_edit(w)
        save_file(w, d / "sae_weights.safetensors")
    return d


@pytest.mark.parametrize(
    ("name", "edit", "message"),
    [
        ("metadata", lambda c: c.update(metadata="layer.3"), "metadata is str: expected an object"),
        ("musicsae", lambda c: c.update(musicsae=[1]), "musicsae is list: expected an object"),
        ("config", lambda c: c["musicsae"]["config"].update(aux_k="many"), "musicsae.config: aux_k 'many'"),
        ("train", lambda c: c["musicsae"].update(train_config=5), "musicsae: train_config is int: expected an"),
        ("b_dec", lambda c: c.update(apply_b_dec_to_input="false"), "apply_b_dec_to_input 'false': expected true or"),
        ("rescale", lambda c: c.update(rescale_acts_by_decoder_norm=1), "rescale_acts_by_decoder_norm 1: expected"),
        ("d_in", lambda c: c.update(d_in=True), "'d_in' is True; expected an integer"),
        ("d_sae", lambda c: c.update(d_sae="128"), "'d_sae' is '128'; expected an integer"),  # not "missing" (hunt 176)
        ("no_d_sae", lambda c: c.pop("d_sae"), "missing integer 'd_sae'"),
        ("k_big", lambda c: c.update(k=100), "k=100: expected at most d_sae=48"),
        ("k_frac", lambda c: c.update(k=2.5), "k=2.5: expected a whole number"),
        ("hook", lambda c: (c.update(hook_name=3), c["metadata"].update(hook_name=3)), "hook_name 3: expected a str"),
    ],
)
def test_cfg_fields_of_the_wrong_type_are_one_line(tmp_path, name, edit, message):
    """A hand-edited or foreign cfg.json: refused naming the field, never a traceback nor a silent reinterpretation
    (a string "false" is truthy: it used to load as apply_b_dec_to_input true; k=100 of 48 latents as k=48)."""
    with pytest.raises(UserError, match=message) as exc:
        load_sae(_edited(tmp_path, name, cfg_edit=edit))
    assert "\n" not in str(exc.value) and "cfg.json" in str(exc.value)


def test_half_precision_weights_load_and_integer_ones_are_refused(tmp_path):
    """SAELens users often save float16 / bfloat16 weights: they load (as float32) and compute what the same
    weights do in float32; integer tensors are no SAE's weights."""
    x = torch.randn(64, 12) * 3 + 5
    for dtype in (torch.float16, torch.bfloat16):
        half = _edited(
            tmp_path, str(dtype), weights_edit=lambda w, t=dtype: w.update({k: v.to(t) for k, v in w.items()})
        )
        full = _edited(
            tmp_path,
            f"{dtype}-32",
            weights_edit=lambda w, t=dtype: w.update({k: v.to(t).float() for k, v in w.items()}),
        )
        a, b = load_sae(half), load_sae(full)
        assert a.W_enc.dtype == torch.float32
        torch.testing.assert_close(a.decode(a.encode(x)), b.decode(b.encode(x)), rtol=0, atol=0)
    ints = _edited(tmp_path, "int", weights_edit=lambda w: w.update(b_enc=w["b_enc"].round().to(torch.int32)))
    with pytest.raises(UserError, match=r"b_enc is torch.int32: expected floating-point weights"):
        load_sae(ints)


def test_the_folder_above_the_sae_folders_names_them(tmp_path):
    """`sae train --out sae` writes sae/<hook>/; passing `--sae sae` is the first mistake of many: the line names the
    SAE folders inside. A path to cfg.json itself names the folder to pass."""
    sae, _ = _trained_like()
    for hook in ("latent", "encoder.net.4"):
        save_sae(sae, tmp_path / "sae" / hook)
    with pytest.raises(UserError, match=r"sae: no cfg.json; it holds SAE folders encoder.net.4, latent: pass one") as e:
        load_sae(tmp_path / "sae")
    assert "\n" not in str(e.value)
    with pytest.raises(UserError, match=r"cfg.json is a file; pass its folder .*latent"):
        load_sae(tmp_path / "sae" / "latent" / "cfg.json")
    # hunt 203: a training run stopped before its end holds its checkpoint only: named as such, with the way on
    (tmp_path / "stopped").mkdir()
    (tmp_path / "stopped" / "checkpoint.pt").write_bytes(b"x")
    with pytest.raises(UserError, match=r"stopped: no cfg.json: a training run stopped before it ended \(checkpoint"
                       r"\.pt\); finish it with the same sae train command and --resume"):  # fmt: skip
        load_sae(tmp_path / "stopped")


def test_an_sae_path_that_is_some_other_file_or_missing_is_named_as_such(tmp_path):
    """A bank's `sae:` or `--sae` naming a file that is there (not cfg.json) was "no such directory" in render rave
    and concept find; a path to cfg.json itself still names the folder to pass."""
    from sae.io import read_sae_cfg

    (tmp_path / "in.wav").write_bytes(b"RIFF")
    with pytest.raises(UserError, match=r"in.wav: a file; expected an SAE directory \(cfg.json \+ sae_weights"):
        read_sae_cfg(tmp_path / "in.wav")
    (tmp_path / "latent.ts").write_bytes(b"PK")  # hunt 105: `sae export`'s file, which the help called the engine's
    with pytest.raises(UserError, match=r"directory \(cfg.json \+ sae_weights.safetensors\) \(a `sae export` .ts is"):
        read_sae_cfg(tmp_path / "latent.ts")
    with pytest.raises(UserError, match=r"SAE .*gone: no such directory"):
        read_sae_cfg(tmp_path / "gone")


def test_every_reader_of_cfg_json_gets_the_one_line_refusal(tmp_path):
    """Concept find, the engine and the dashboard read cfg.json (read_sae_cfg) before load_sae: a metadata or
    musicsae that is no object is refused there too (it was an AttributeError traceback in those readers)."""
    from sae.io import read_sae_cfg

    for key in ("metadata", "musicsae"):
        with pytest.raises(UserError, match=f"{key} is str: expected an object"):
            read_sae_cfg(_edited(tmp_path, key, cfg_edit=lambda c, k=key: c.update({k: "x"})))


def test_a_device_torch_cannot_use_is_one_line(tmp_path):
    """`load_sae(device=...)` called directly (the CLI checks its --device first): a CPU build asked for CUDA, or a
    GPU that is not there, is one line naming the folder and the device, not torch's assertion."""
    save_sae(SparseAutoencoder(SAEConfig(d_in=4, d_sae=8, k=2)), tmp_path / "sae")
    with pytest.raises(UserError, match=r"sae: cannot load the SAE on device 'cuda:99': .+") as err:
        load_sae(tmp_path / "sae", device="cuda:99")
    assert "\n" not in str(err.value)
    assert load_sae(tmp_path / "sae", device="cpu").W_dec.device.type == "cpu"


def test_a_save_that_fails_leaves_the_folder_as_it_was(tmp_path):
    """An `extra` JSON cannot hold failed after the new weights had replaced the old: the folder held one SAE's
    weights under another's config, and loaded."""
    import numpy as np

    a, _ = _trained_like(k=4, seed=0)
    b, _ = _trained_like(k=2, seed=1)
    save_sae(a, tmp_path)
    before = {p.name: p.read_bytes() for p in tmp_path.iterdir()}
    with pytest.raises(TypeError):
        save_sae(b, tmp_path, extra={"fvu": np.float32(0.12)})
    assert {p.name: p.read_bytes() for p in tmp_path.iterdir()} == before


def test_topk_never_keeps_a_negative_preactivation():
    """Hunt 212: TopK's ReLU could go unseen: every top-k pre-activation of the tests' data was positive, so
    `f >= 0` held without it. With every pre-activation negative, nothing fires."""
    torch.manual_seed(0)
    sae = SparseAutoencoder(SAEConfig(d_in=8, d_sae=32, k=4))
    with torch.no_grad():
        sae.b_enc.fill_(-10.0)
    assert (sae.encode(torch.randn(16, 8)) == 0).all()
