"""Tiny, seeded MusicGen checkpoints in the two real formats, for tests and offline demos.

- audiocraft: a folder with `state_dict.bin` (LM) and `compression_state_dict.bin` (EnCodec), each a
  release package `{'best_state', 'xp.cfg' (YAML), 'version', 'exported'}` exactly as
  `audiocraft.utils.export` writes them, so `MusicGen.get_pretrained(folder)` loads it offline. The
  text conditioner is a LUT with the `noop` tokenizer (one hashed token per description): the stock
  debug LM's `whitespace` tokenizer needs a spaCy model download.
- transformers: `MusicgenForConditionalGeneration.save_pretrained(folder)` plus a word-level
  tokenizer saved beside it (`PreTrainedTokenizerFast`, lower-cased, split on whitespace and
  punctuation, a fixed music vocabulary, `<unk>` for anything else, `</s>` appended like T5), so
  `from_pretrained(folder)` and `AutoTokenizer.from_pretrained(folder)` work with no download.

Weights are random (seeded): same seed, same bytes. Architecture mirrors musicgen-small (pre-norm,
no biases, delay pattern over 4 codebooks, 32 kHz, 50 Hz frames, cross-attention to the text).
"""

from __future__ import annotations

import os
import tempfile
from dataclasses import dataclass
from pathlib import Path

import torch

BACKENDS = ("audiocraft", "transformers")

# Words the tiny word-level tokenizer knows; any other word maps to <unk>.
_VOCAB_WORDS = (
    "a an and with of the in on at for to slow fast calm loud soft happy sad dark bright upbeat "
    "guitar piano drums bass violin cello strings trumpet sax flute synth organ voice vocals choir "
    "acoustic electric distorted clean jazz rock pop folk classical ambient techno house funk blues "
    "metal orchestral lofi beat melody chords solo rhythm groove song music track loop tempo bpm"
)
TINY_VOCAB = tuple(_VOCAB_WORDS.split())


@dataclass
class TinyMusicGenConfig:
    """Sizes of the tiny model (both backends build the same shapes).

    Args:
        dim: transformer width (residual stream dimension seen by the hooks).
        num_heads: attention heads.
        num_layers: transformer layers (hook points `0..num_layers-1`).
        n_q: codebooks (delay pattern 0..n_q-1).
        card: codebook size (>= 250, the default top-k of both generators).
        sample_rate: audio sample rate; the codec hop is 640, so 50 frames/s at 32 kHz.
        max_duration: longest generation in seconds the audiocraft model accepts.
        seed: torch seed for all random weights.
    """

    dim: int = 32
    num_heads: int = 4
    num_layers: int = 4
    n_q: int = 4
    card: int = 256
    sample_rate: int = 32000
    max_duration: float = 30.0
    seed: int = 0


CODEC_RATIOS = [8, 5, 4, 4]  # hop 640, the same as musicgen's 32 kHz EnCodec


def _atomic_torch_save(obj: object, path: Path) -> None:
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(fd)
    try:
        torch.save(obj, tmp)
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def audiocraft_configs(cfg: TinyMusicGenConfig) -> tuple[dict, dict]:
    """The `xp.cfg` dicts of the LM and of the compression model, in audiocraft's config schema."""
    lm_cfg = {
        "device": "cpu",
        "dtype": "float32",
        "lm_model": "transformer_lm",
        "sample_rate": cfg.sample_rate,
        "channels": 1,
        "dataset": {"segment_duration": cfg.max_duration},
        "codebooks_pattern": {
            "modeling": "delay",
            "delay": {"delays": list(range(cfg.n_q)), "flatten_first": 0, "empty_initial": 0},
        },
        "transformer_lm": {
            "dim": cfg.dim,
            "num_heads": cfg.num_heads,
            "num_layers": cfg.num_layers,
            "hidden_scale": 4,
            "n_q": cfg.n_q,
            "card": cfg.card,
            "dropout": 0.0,
            "emb_lr": None,
            "activation": "gelu",
            "norm_first": True,
            "bias_ff": False,
            "bias_attn": False,
            "bias_proj": False,
            "past_context": None,
            "causal": True,
            "custom": False,
            "memory_efficient": True,
            "attention_as_float32": False,
            "layer_scale": None,
            "positional_embedding": "sin",
            "xpos": False,
            "checkpointing": "none",
            "weight_init": "gaussian",
            "depthwise_init": "current",
            "zero_bias_init": True,
            "norm": "layer_norm",
            "cross_attention": False,
            "qk_layer_norm": False,
            "qk_layer_norm_cross": False,
            "attention_dropout": None,
            "kv_repeat": 1,
            "two_step_cfg": False,
        },
        "classifier_free_guidance": {"training_dropout": 0.3, "inference_coef": 3.0},
        "attribute_dropout": {},
        "fuser": {
            "cross_attention_pos_emb": False,
            "cross_attention_pos_emb_scale": 1,
            "sum": [],
            "prepend": [],
            "cross": ["description"],
            "input_interpolate": [],
        },
        "conditioners": {"description": {"model": "lut", "lut": {"n_bins": 256, "dim": cfg.dim, "tokenizer": "noop"}}},
    }
    codec_cfg = {
        "device": "cpu",
        "sample_rate": cfg.sample_rate,
        "channels": 1,
        "compression_model": "encodec",
        "encodec": {
            "autoencoder": "seanet",
            "quantizer": "rvq",
            "sample_rate": cfg.sample_rate,
            "channels": 1,
            "causal": False,
            "renormalize": False,
        },
        "seanet": {
            "dimension": 16,
            "channels": 1,
            "causal": False,
            "n_filters": 4,
            "n_residual_layers": 1,
            "ratios": CODEC_RATIOS,
            "activation": "ELU",
            "activation_params": {"alpha": 1.0},
            "norm": "weight_norm",
            "norm_params": {},
            "kernel_size": 7,
            "residual_kernel_size": 3,
            "last_kernel_size": 7,
            "dilation_base": 2,
            "pad_mode": "constant",
            "true_skip": True,
            "compress": 2,
            "lstm": 1,
            "disable_norm_outer_blocks": 0,
            "decoder": {"trim_right_ratio": 1.0, "final_activation": None, "final_activation_params": None},
            "encoder": {},
        },
        "rvq": {
            "n_q": cfg.n_q,
            "q_dropout": False,
            "bins": cfg.card,
            "decay": 0.99,
            "kmeans_init": False,
            "kmeans_iters": 50,
            "threshold_ema_dead_code": 2,
            "orthogonal_reg_weight": 0.0,
            "orthogonal_reg_active_codes_only": False,
        },
    }
    return lm_cfg, codec_cfg


def build_audiocraft(cfg: TinyMusicGenConfig):
    """Build the tiny audiocraft `(lm, compression_model, lm_cfg, codec_cfg)` with seeded weights."""
    from audiocraft.models import builders
    from omegaconf import OmegaConf

    lm_cfg, codec_cfg = audiocraft_configs(cfg)
    torch.manual_seed(cfg.seed)
    codec = builders.get_compression_model(OmegaConf.create(codec_cfg)).eval()
    lm = builders.get_lm_model(OmegaConf.create(lm_cfg)).eval()
    return lm, codec, lm_cfg, codec_cfg


def save_audiocraft(out_dir: str | Path, cfg: TinyMusicGenConfig | None = None) -> Path:
    """Write a tiny audiocraft MusicGen folder loadable by `MusicGen.get_pretrained(out_dir)`."""
    import audiocraft
    from omegaconf import OmegaConf

    cfg = cfg or TinyMusicGenConfig()
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    lm, codec, lm_cfg, codec_cfg = build_audiocraft(cfg)
    for model, model_cfg, name in ((lm, lm_cfg, "state_dict.bin"), (codec, codec_cfg, "compression_state_dict.bin")):
        package = {
            "best_state": model.state_dict(),
            "xp.cfg": OmegaConf.to_yaml(OmegaConf.create(model_cfg)),
            "version": audiocraft.__version__,
            "exported": True,
        }
        _atomic_torch_save(package, out / name)
    return out


def build_tiny_tokenizer():
    """A download-free word-level tokenizer standing in for T5's (see the module docstring)."""
    from tokenizers import Tokenizer, normalizers, pre_tokenizers, processors
    from tokenizers.models import WordLevel
    from transformers import PreTrainedTokenizerFast

    specials = ["<pad>", "</s>", "<unk>"]
    vocab = {tok: i for i, tok in enumerate([*specials, *TINY_VOCAB])}
    tok = Tokenizer(WordLevel(vocab, unk_token="<unk>"))
    tok.normalizer = normalizers.Lowercase()
    tok.pre_tokenizer = pre_tokenizers.Sequence([pre_tokenizers.Whitespace(), pre_tokenizers.Punctuation()])
    tok.post_processor = processors.TemplateProcessing(single="$A </s>", special_tokens=[("</s>", vocab["</s>"])])
    return PreTrainedTokenizerFast(
        tokenizer_object=tok, pad_token="<pad>", eos_token="</s>", unk_token="<unk>", model_max_length=512
    )


def transformers_config(cfg: TinyMusicGenConfig, vocab_size: int):
    """A tiny `MusicgenConfig` (T5 text encoder, EnCodec, decoder) shaped like musicgen-small."""
    from transformers import EncodecConfig, MusicgenConfig, MusicgenDecoderConfig, T5Config

    text = T5Config(
        vocab_size=vocab_size,
        d_model=cfg.dim,
        d_kv=cfg.dim // cfg.num_heads,
        d_ff=2 * cfg.dim,
        num_layers=1,
        num_heads=cfg.num_heads,
        pad_token_id=0,
        eos_token_id=1,
        decoder_start_token_id=0,
    )
    nbits = cfg.card.bit_length() - 1
    frame_rate = cfg.sample_rate // 640
    audio = EncodecConfig(
        sampling_rate=cfg.sample_rate,
        upsampling_ratios=CODEC_RATIOS,
        num_filters=4,
        hidden_size=16,
        num_lstm_layers=1,
        codebook_size=cfg.card,
        target_bandwidths=[cfg.n_q * frame_rate * nbits / 1000],
        use_causal_conv=False,
        pad_mode="constant",
    )
    decoder = MusicgenDecoderConfig(
        vocab_size=cfg.card,
        max_position_embeddings=4096,
        num_hidden_layers=cfg.num_layers,
        ffn_dim=4 * cfg.dim,
        num_attention_heads=cfg.num_heads,
        hidden_size=cfg.dim,
        dropout=0.0,
        num_codebooks=cfg.n_q,
        pad_token_id=cfg.card,
        bos_token_id=cfg.card,
        initializer_factor=cfg.dim**-0.5,
    )  # audiocraft's gaussian init: peaked logits
    config = MusicgenConfig(
        text_encoder=text.to_dict(),
        audio_encoder=audio.to_dict(),
        decoder=decoder.to_dict(),
        initializer_factor=cfg.dim**-0.5,
    )
    return config


def save_transformers(out_dir: str | Path, cfg: TinyMusicGenConfig | None = None) -> Path:
    """Write a tiny transformers MusicGen folder (model + tokenizer) loadable with `from_pretrained`."""
    from transformers import MusicgenForConditionalGeneration

    cfg = cfg or TinyMusicGenConfig()
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    tokenizer = build_tiny_tokenizer()
    config = transformers_config(cfg, vocab_size=len(tokenizer))
    torch.manual_seed(cfg.seed)
    model = MusicgenForConditionalGeneration(config).eval()
    model.generation_config.max_length = int(cfg.max_duration * cfg.sample_rate // 640) + cfg.n_q
    model.generation_config.guidance_scale = 3.0
    model.generation_config.do_sample = True
    model.generation_config.top_k = 250
    # Write into a temp dir and swap it in, so a crash never leaves a half model behind.
    tmp = Path(tempfile.mkdtemp(dir=out.parent, prefix=f".{out.name}."))
    try:
        model.save_pretrained(tmp)
        tokenizer.save_pretrained(tmp)
        for f in tmp.iterdir():
            os.replace(f, out / f.name)
    finally:
        for f in tmp.iterdir():
            f.unlink()
        tmp.rmdir()
    return out


def save_tiny_musicgen(out_dir: str | Path, backend: str, cfg: TinyMusicGenConfig | None = None) -> Path:
    """Write the tiny model for `backend` ('audiocraft' or 'transformers') into `out_dir`."""
    if backend == "audiocraft":
        return save_audiocraft(out_dir, cfg)
    if backend == "transformers":
        return save_transformers(out_dir, cfg)
    from sae.errors import UserError

    raise UserError(f"--backend {backend!r}: expected one of {', '.join(BACKENDS)}")
