"""Convert an audiocraft MusicGen folder with a lookup-table text conditioner into transformers' format.

The two implementations compute the same thing once the weights are mapped:
- EnCodec: the same SEANet layers in the same order (weight-norm g/v, LSTM weights, biases copied one
  module after the other) and the same codebook buffers;
- the LM: `emb.k` → `embed_tokens.k`, each attention's packed `in_proj_weight` → q/k/v projections,
  `norm1 / norm_cross / norm2` → the decoder layer's three layer norms, `linear1/2` → `fc1/2`,
  `out_norm` → the final norm, `linears.k` → `lm_heads.k` (audiocraft's musicgen conversions do the same);
- the text: audiocraft's `lut` conditioner looks up one row per whole description (sha256 mod n_bins),
  projects it and masks the null condition. transformers runs a T5 encoder and `enc_to_dec_proj`, so the
  T5 has no layers, one token per whole description (a `WordLevel` tokenizer without pre-tokenizer whose
  vocabulary is the model's `descriptions.json`), the table rows as embeddings and RMS-norm epsilon 1e-12:
  the rows were trained at unit RMS (`train_lm.normalise_lut`), so the norm returns them unchanged.
  Any other text maps to `<unk>`, whose row is the `unknown` description's, as in audiocraft.
"""

from __future__ import annotations

import shutil
from collections.abc import Callable
from pathlib import Path

import torch
from torch import nn

from realtime.musicgen.descriptions import DescriptionVocab
from sae.atomic import folder_replacing
from sae.errors import UserError
from sae.io import read_torch
from training.musicgen.arch import CODEC_FILE, LM_FILE
from training.musicgen.descriptions import lut_row

SPECIALS = ("<pad>", "<unk>")
CHECK_FILE = "backend_agreement.json"  # `package --convert`'s record of how far the two backends are apart
RECORDS = ("training.json", CHECK_FILE)  # a conversion's records: one of an earlier model's never stays


def _read_package(folder: Path, name: str) -> tuple[dict, dict]:
    from omegaconf import OmegaConf

    path = folder / name
    if not path.is_file():
        raise UserError(f"{folder}: {name} is missing (expected an audiocraft MusicGen folder)")
    pkg = read_torch(path)
    return pkg["best_state"], OmegaConf.to_container(OmegaConf.create(pkg["xp.cfg"]), resolve=True)


def _build_codec(state: dict, cfg: dict):
    from audiocraft.models import builders
    from omegaconf import OmegaConf

    codec = builders.get_compression_model(OmegaConf.create({**cfg, "device": "cpu"}))
    codec.load_state_dict(state)
    return codec.eval()


def encodec_config(cfg: dict):
    from transformers import EncodecConfig

    s, q = cfg["seanet"], cfg["rvq"]
    if s["causal"] or s["norm"] != "weight_norm" or not s["true_skip"] or s["disable_norm_outer_blocks"]:
        raise UserError("compression model: only non-causal, weight-norm, true-skip SEANets are converted")
    if not s["lstm"]:  # transformers' Encodec always builds its LSTM (nn.LSTM of 0 layers raised)
        raise UserError("compression model: it has no LSTM layer (train_codec --lstm 0); the transformers format "
                        "needs one or more (train the codec with --lstm 1 or 2)")  # fmt: skip
    frame_rate = cfg["sample_rate"] / torch.tensor(s["ratios"]).prod().item()
    return EncodecConfig(
        target_bandwidths=[q["n_q"] * frame_rate * torch.tensor(float(q["bins"])).log2().item() / 1000],
        sampling_rate=cfg["sample_rate"],
        audio_channels=cfg["channels"],
        normalize=bool(cfg["encodec"].get("renormalize", False)),
        hidden_size=s["dimension"],
        num_filters=s["n_filters"],
        num_residual_layers=s["n_residual_layers"],
        upsampling_ratios=list(s["ratios"]),
        norm_type="weight_norm",
        kernel_size=s["kernel_size"],
        last_kernel_size=s["last_kernel_size"],
        residual_kernel_size=s["residual_kernel_size"],
        dilation_growth_rate=s["dilation_base"],
        use_causal_conv=False,
        pad_mode=s["pad_mode"],
        compress=s["compress"],
        num_lstm_layers=s["lstm"],
        trim_right_ratio=s["decoder"]["trim_right_ratio"],
        codebook_size=q["bins"],
        use_conv_shortcut=False,
    )


def _layers(module: nn.Module) -> list[tuple[str, nn.Module]]:
    """(kind, module) of every convolution and LSTM, in registration order."""
    kinds = ((nn.LSTM, "lstm"), (nn.ConvTranspose1d, "transposed conv"), (nn.Conv1d, "conv"))
    return [(k, m) for m in module.modules() for t, k in kinds if isinstance(m, t)]


@torch.no_grad()
def copy_codec(src, dst) -> None:
    """audiocraft EncodecModel → transformers EncodecModel, module by module (shapes checked)."""
    for part in ("encoder", "decoder"):
        a, b = _layers(getattr(src, part)), _layers(getattr(dst, part))
        if len(a) != len(b):
            raise RuntimeError(f"codec {part}: {len(a)} audiocraft layers vs {len(b)} transformers layers")
        for (kind_m, m), (kind_n, n) in zip(a, b, strict=True):
            if kind_m != kind_n:
                raise RuntimeError(f"codec {part}: audiocraft {kind_m} vs transformers {kind_n}")
            if kind_m == "lstm":
                n.load_state_dict(m.state_dict())
                continue
            pairs = (
                (m.weight_g, n.parametrizations.weight.original0),
                (m.weight_v, n.parametrizations.weight.original1),
                (m.bias, n.bias),
            )
            for x, y in pairs:
                if x.shape != y.shape:
                    raise RuntimeError(f"codec {part}: shape {tuple(x.shape)} vs {tuple(y.shape)}")
                y.copy_(x)
    for qa, qb in zip(src.quantizer.vq.layers, dst.quantizer.layers, strict=True):
        for name in ("inited", "cluster_size", "embed", "embed_avg"):
            getattr(qb.codebook, name).copy_(getattr(qa._codebook, name))


def musicgen_config(lm_cfg: dict, codec_cfg: dict, vocab_size: int):
    from transformers import MusicgenConfig, MusicgenDecoderConfig, T5Config

    t = lm_cfg["transformer_lm"]
    lut = lm_cfg["conditioners"]["description"]["lut"]
    if t["dim"] == lut["dim"]:
        raise UserError("LM: the lookup-table width equals the LM width; transformers would drop the projection")
    text = T5Config(
        vocab_size=vocab_size,
        d_model=lut["dim"],
        d_kv=lut["dim"],
        d_ff=lut["dim"],
        num_layers=0,
        num_heads=1,
        layer_norm_epsilon=1e-12,
        dropout_rate=0.0,
        pad_token_id=0,
        eos_token_id=0,
        decoder_start_token_id=0,
    )
    decoder = MusicgenDecoderConfig(
        vocab_size=t["card"],
        max_position_embeddings=4096,
        num_hidden_layers=t["num_layers"],
        ffn_dim=t["hidden_scale"] * t["dim"],
        num_attention_heads=t["num_heads"],
        hidden_size=t["dim"],
        activation_function=t["activation"],
        dropout=0.0,
        attention_dropout=0.0,
        activation_dropout=0.0,
        num_codebooks=t["n_q"],
        pad_token_id=t["card"],
        bos_token_id=t["card"],
    )
    return MusicgenConfig(
        text_encoder=text.to_dict(), audio_encoder=encodec_config(codec_cfg).to_dict(), decoder=decoder.to_dict()
    )


def lm_state_to_transformers(ac: dict, num_layers: int, n_q: int, dim: int) -> dict:
    """audiocraft LM tensors → `MusicgenForConditionalGeneration` decoder tensors (names as in its state dict)."""
    out: dict = {}
    pre = "decoder.model.decoder."
    for k in range(n_q):
        out[f"{pre}embed_tokens.{k}.weight"] = ac[f"emb.{k}.weight"]
        out[f"decoder.lm_heads.{k}.weight"] = ac[f"linears.{k}.weight"]
    for i in range(num_layers):
        a, b = f"transformer.layers.{i}.", f"{pre}layers.{i}."
        for src, dst in (("self_attn", "self_attn"), ("cross_attention", "encoder_attn")):
            q, k_, v = ac[f"{a}{src}.in_proj_weight"].split(dim)
            out[f"{b}{dst}.q_proj.weight"], out[f"{b}{dst}.k_proj.weight"], out[f"{b}{dst}.v_proj.weight"] = q, k_, v
            out[f"{b}{dst}.out_proj.weight"] = ac[f"{a}{src}.out_proj.weight"]
        for src, dst in (("norm1", "self_attn_layer_norm"), ("norm_cross", "encoder_attn_layer_norm")):
            for p in ("weight", "bias"):
                out[f"{b}{dst}.{p}"] = ac[f"{a}{src}.{p}"]
        for p in ("weight", "bias"):
            out[f"{b}final_layer_norm.{p}"] = ac[f"{a}norm2.{p}"]
            out[f"{pre}layer_norm.{p}"] = ac[f"out_norm.{p}"]
        out[f"{b}fc1.weight"] = ac[f"{a}linear1.weight"]
        out[f"{b}fc2.weight"] = ac[f"{a}linear2.weight"]
    return out


def build_tokenizer(vocab: DescriptionVocab):
    """One token per whole description, the exact text as audiocraft's table hashes it (no lower-casing or
    stripping: "Guitar" found a trained row here and the unknown one there); anything else is `<unk>`."""
    from tokenizers import Tokenizer
    from tokenizers.models import WordLevel
    from transformers import PreTrainedTokenizerFast

    texts = sorted(d for d in vocab.descriptions if d != vocab.unknown)
    ids = {tok: i for i, tok in enumerate([*SPECIALS, *texts])}
    tok = Tokenizer(WordLevel(ids, unk_token="<unk>"))
    fast = PreTrainedTokenizerFast(tokenizer_object=tok, pad_token="<pad>", unk_token="<unk>", model_max_length=64)
    return fast, texts


def to_transformers(ac_dir: str | Path, out_dir: str | Path, finish: Callable[[Path], object] | None = None) -> Path:
    """Write the transformers version of the audiocraft folder `ac_dir` into `out_dir` (model, tokenizer,
    descriptions.json, and the training record `training.json` when the folder has one); returns `out_dir`.
    `finish` gets the new folder, written in full, before it replaces `out_dir` (a check of the conversion, whose
    record goes in with it): where it fails, or the run is killed meanwhile, `out_dir` stays as it was."""
    from transformers import MusicgenForConditionalGeneration

    ac_dir, out = Path(ac_dir), Path(out_dir)
    lm_state, lm_cfg = _read_package(ac_dir, LM_FILE)
    codec_state, codec_cfg = _read_package(ac_dir, CODEC_FILE)
    vocab = DescriptionVocab.load(ac_dir)
    if vocab is None:
        raise UserError(f"{ac_dir}: descriptions.json is missing (only lookup-table MusicGens are converted)")
    if lm_cfg["conditioners"]["description"].get("model") != "lut":
        raise UserError(f"{ac_dir}: the text conditioner is not a lookup table; only those are converted")
    tokenizer, texts = build_tokenizer(vocab)
    config = musicgen_config(lm_cfg, codec_cfg, vocab_size=len(SPECIALS) + len(texts))
    model = MusicgenForConditionalGeneration(config).eval()
    t = lm_cfg["transformer_lm"]
    lut = lm_state["condition_provider.conditioners.description.embed.weight"]
    bins = lut.shape[0]
    rows = torch.zeros(len(SPECIALS) + len(texts), lut.shape[1])
    rows[1] = lut[lut_row(vocab.unknown, bins)]
    for i, text in enumerate(texts):
        rows[len(SPECIALS) + i] = lut[lut_row(text, bins)]
    state = lm_state_to_transformers(lm_state, t["num_layers"], t["n_q"], t["dim"])
    state["text_encoder.shared.weight"] = rows
    state["text_encoder.encoder.embed_tokens.weight"] = rows
    state["text_encoder.encoder.final_layer_norm.weight"] = torch.ones(lut.shape[1])
    state["enc_to_dec_proj.weight"] = lm_state["condition_provider.conditioners.description.output_proj.weight"]
    state["enc_to_dec_proj.bias"] = lm_state["condition_provider.conditioners.description.output_proj.bias"]
    own = model.state_dict()
    missing = sorted(k for k in own if not k.startswith("audio_encoder.") and k not in state)
    if missing:
        raise RuntimeError(f"conversion left transformers tensors unset: {', '.join(missing[:5])}")
    with torch.no_grad():
        for k, v in state.items():
            own[k].copy_(v)
    copy_codec(_build_codec(codec_state, codec_cfg), model.audio_encoder)
    frame_rate = model.config.audio_encoder.frame_rate
    model.generation_config.max_length = int(lm_cfg["dataset"]["segment_duration"] * frame_rate) + t["n_q"]
    model.generation_config.guidance_scale = float(lm_cfg["classifier_free_guidance"]["inference_coef"])
    model.generation_config.do_sample = True
    model.generation_config.top_k = 250
    with folder_replacing(out, own=RECORDS) as tmp:
        model.save_pretrained(tmp)
        tokenizer.save_pretrained(tmp)
        vocab.save(tmp)
        if (ac_dir / "training.json").is_file():  # the training record: how it was trained, the LM's segment
            shutil.copyfile(ac_dir / "training.json", tmp / "training.json")
        if finish is not None:
            finish(tmp)
    return out


def backend_agreement(ac_dir: str | Path, tf_dir: str | Path, seconds: float = 1.0, seed: int = 0) -> dict:
    """How far the two folders' computations are apart: the codes of one noise clip (must be equal), every
    layer's residual stream teacher-forced over them with a trained description, the null one and an unknown
    text, and the decoded audio (max |difference| each; the conversion is exact up to float rounding)."""
    from realtime.musicgen import Recorder, load_musicgen

    a, b = load_musicgen(ac_dir), load_musicgen(tf_dir)
    if (a.backend, b.backend) != ("audiocraft", "transformers"):
        raise UserError(f"{ac_dir} / {tf_dir}: expected an audiocraft folder and a transformers folder")
    gen = torch.Generator().manual_seed(seed)
    wav = torch.randn(1, 1, round(seconds * a.sample_rate), generator=gen) * 0.1
    codes = a.encode(wav)
    desc = max(a.vocab.descriptions, key=lambda d: (a.vocab.descriptions[d], d))
    hidden: dict[str, float] = {}
    for text in (desc, None, "a kazoo solo"):
        outs = []
        for mg in (a, b):
            rec = {i: Recorder(rows=1, limit=codes.shape[-1]) for i in range(mg.num_layers)}
            with mg.hooks(rec):
                mg.teacher_force(codes, [text])
            outs.append(torch.stack([rec[i].result() for i in range(mg.num_layers)]))
        hidden[str(text)] = float((outs[0] - outs[1]).abs().max())
    with torch.no_grad():
        decoded_b = b.model.audio_encoder.decode(codes[None], [None]).audio_values
        decoded_a = a.model.compression_model.decode(codes)
    return {
        "codes_equal": bool(torch.equal(codes, b.encode(wav))),
        "layers": a.num_layers,
        "hidden_max_abs_diff": hidden,
        "decoded_max_abs_diff": float((decoded_a - decoded_b).abs().max()),
    }
