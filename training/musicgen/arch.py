"""The MusicGen architecture in one place: sizes → audiocraft `xp.cfg` dicts → models → release packages.

Both the tiny random models (`tiny_model.py`) and the trained demo model (`train_codec.py`, `train_lm.py`,
`package.py`) are built here, from audiocraft's own builders, so a model is never half-configured elsewhere.

- `CodecSizes`: audiocraft's EnCodec (SEANet encoder/decoder + residual vector quantizer). MusicGen's layout:
  `n_q` codebooks at 50 frames/s (the hop is the product of `ratios`; 16 kHz with ratios 8·5·4·2 = 320).
- `LMSizes`: the transformer LM (pre-norm, no biases, sinusoidal positions, delay pattern over the codebooks,
  cross-attention to the text) with audiocraft's lookup-table text conditioner (`lut`, `noop` tokenizer: one
  hashed token per description, no download).

A release package is what `audiocraft.utils.export` writes and `MusicGen.get_pretrained(folder)` reads:
`{'best_state', 'xp.cfg' (YAML), 'version', 'exported'}` in `state_dict.bin` / `compression_state_dict.bin`.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import torch

LM_FILE = "state_dict.bin"
CODEC_FILE = "compression_state_dict.bin"


@dataclass(frozen=True)
class CodecSizes:
    """Args:
    sample_rate: audio rate in Hz.
    ratios: SEANet up/down-sampling ratios (the hop is their product; frame rate = sample_rate / hop).
    n_filters: channels of the first conv (doubled after each down-sampling).
    dimension: latent dimension the quantizer sees.
    lstm: LSTM layers at the bottleneck.
    n_residual_layers: residual blocks per resolution.
    n_q: codebooks (MusicGen: 4, delay pattern 0..3).
    bins: codebook size (>= 250, the default top-k of both generators).
    kmeans_init: start the codebooks from k-means on the first training batch (audiocraft's default).
    dead_code: a code whose running count of uses per step falls below this is revived as a random input
        vector (`train_codec.CodeReviver`; also written as audiocraft's `threshold_ema_dead_code`). Keep it
        well under the frames per step / bins (a code's count when every code is used alike).
    """

    sample_rate: int = 16000
    ratios: tuple[int, ...] = (8, 5, 4, 2)
    n_filters: int = 16
    dimension: int = 64
    lstm: int = 1
    n_residual_layers: int = 1
    n_q: int = 4
    bins: int = 1024
    kmeans_init: bool = True
    dead_code: float = 0.02

    @property
    def hop(self) -> int:
        return math.prod(self.ratios)

    @property
    def frame_rate(self) -> float:
        return self.sample_rate / self.hop


@dataclass(frozen=True)
class LMSizes:
    """Args:
    dim: transformer width (the residual stream the hooks see).
    num_heads: attention heads.
    num_layers: transformer layers (hook points 0..num_layers-1).
    hidden_scale: feed-forward width / dim.
    lut_bins: rows of the description lookup table (a description's row is sha256(text) mod lut_bins).
    lut_dim: width of a lookup-table row (projected to `dim`; keep it != dim so the transformers
        conversion has its text-to-decoder projection).
    segment: training segment in seconds (clips are cut to it; positions beyond it are never trained).
    max_duration: longest generation audiocraft accepts (its `segment_duration`; MusicGen asserts it is
        above its 18 s extension stride, so it cannot simply be the training segment).
    cfg_dropout: probability of the null description in training (classifier-free guidance).
    cfg_coef: guidance coefficient at inference.
    """

    dim: int = 192
    num_heads: int = 6
    num_layers: int = 6
    hidden_scale: int = 4
    lut_bins: int = 16384
    lut_dim: int = 32
    segment: float = 4.0
    max_duration: float = 30.0
    cfg_dropout: float = 0.2
    cfg_coef: float = 3.0


def codec_xp_cfg(sizes: CodecSizes, device: str = "cpu") -> dict:
    """The compression model's `xp.cfg` (audiocraft's config schema)."""
    return {
        "device": device,
        "sample_rate": sizes.sample_rate,
        "channels": 1,
        "compression_model": "encodec",
        "encodec": {
            "autoencoder": "seanet",
            "quantizer": "rvq",
            "sample_rate": sizes.sample_rate,
            "channels": 1,
            "causal": False,
            "renormalize": False,
        },
        "seanet": {
            "dimension": sizes.dimension,
            "channels": 1,
            "causal": False,
            "n_filters": sizes.n_filters,
            "n_residual_layers": sizes.n_residual_layers,
            "ratios": list(sizes.ratios),
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
            "lstm": sizes.lstm,
            "disable_norm_outer_blocks": 0,
            "decoder": {"trim_right_ratio": 1.0, "final_activation": None, "final_activation_params": None},
            "encoder": {},
        },
        "rvq": {
            "n_q": sizes.n_q,
            "q_dropout": False,
            "bins": sizes.bins,
            "decay": 0.99,
            "kmeans_init": sizes.kmeans_init,
            "kmeans_iters": 50,
            "threshold_ema_dead_code": sizes.dead_code,
            "orthogonal_reg_weight": 0.0,
            "orthogonal_reg_active_codes_only": False,
        },
    }


def lm_xp_cfg(sizes: LMSizes, codec: CodecSizes, device: str = "cpu") -> dict:
    """The LM's `xp.cfg` (audiocraft's config schema): delay pattern, LUT description conditioner."""
    lut = {"n_bins": sizes.lut_bins, "dim": sizes.lut_dim, "tokenizer": "noop"}
    return {
        "device": device,
        "dtype": "float32",
        "lm_model": "transformer_lm",
        "sample_rate": codec.sample_rate,
        "channels": 1,
        "dataset": {"segment_duration": sizes.max_duration},
        "codebooks_pattern": {
            "modeling": "delay",
            "delay": {"delays": list(range(codec.n_q)), "flatten_first": 0, "empty_initial": 0},
        },
        "transformer_lm": {
            "dim": sizes.dim,
            "num_heads": sizes.num_heads,
            "num_layers": sizes.num_layers,
            "hidden_scale": sizes.hidden_scale,
            "n_q": codec.n_q,
            "card": codec.bins,
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
        "classifier_free_guidance": {"training_dropout": sizes.cfg_dropout, "inference_coef": sizes.cfg_coef},
        "attribute_dropout": {},
        "fuser": {
            "cross_attention_pos_emb": False,
            "cross_attention_pos_emb_scale": 1,
            "sum": [],
            "prepend": [],
            "cross": ["description"],
            "input_interpolate": [],
        },
        "conditioners": {"description": {"model": "lut", "lut": lut}},
    }


def build_codec(sizes: CodecSizes, seed: int, device: str = "cpu"):
    """audiocraft's `EncodecModel` for `sizes`, weights drawn from `seed`."""
    from audiocraft.models import builders
    from omegaconf import OmegaConf

    torch.manual_seed(seed)
    return builders.get_compression_model(OmegaConf.create(codec_xp_cfg(sizes, device)))


def build_lm(sizes: LMSizes, codec: CodecSizes, seed: int, device: str = "cpu"):
    """audiocraft's `LMModel` for `sizes` over `codec`'s codes, weights drawn from `seed`."""
    from audiocraft.models import builders
    from omegaconf import OmegaConf

    torch.manual_seed(seed)
    return builders.get_lm_model(OmegaConf.create(lm_xp_cfg(sizes, codec, device)))


def release_package(state: dict, xp_cfg: dict) -> dict:
    """The dict `audiocraft.utils.export` writes for a model state and its config."""
    import audiocraft
    from omegaconf import OmegaConf

    return {
        "best_state": {k: v.detach().cpu() for k, v in state.items()},
        "xp.cfg": OmegaConf.to_yaml(OmegaConf.create(xp_cfg)),
        "version": audiocraft.__version__,
        "exported": True,
    }


def sizes_dict(sizes: CodecSizes | LMSizes) -> dict:
    """JSON-ready sizes (tuples as lists), for run records and comparisons."""
    return {k: list(v) if isinstance(v, tuple) else v for k, v in asdict(sizes).items()}
