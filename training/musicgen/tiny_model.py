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

from dataclasses import dataclass
from pathlib import Path

import torch

from sae.atomic import atomic_torch_save, folder_replacing
from training.musicgen.arch import (
    CODEC_FILE,
    LM_FILE,
    CodecSizes,
    LMSizes,
    codec_xp_cfg,
    lm_xp_cfg,
    release_package,
)

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
        channels: 1 (mono) or 2 (a musicgen-stereo-* model: the mono codec's `n_q` codebooks per channel,
            interleaved left/right into 2 * n_q LM codebooks, codebook k of both channels delayed by k).
    """

    dim: int = 32
    num_heads: int = 4
    num_layers: int = 4
    n_q: int = 4
    card: int = 256
    sample_rate: int = 32000
    max_duration: float = 30.0
    seed: int = 0
    channels: int = 1


CODEC_RATIOS = [8, 5, 4, 4]  # hop 640, the same as musicgen's 32 kHz EnCodec


def tiny_sizes(cfg: TinyMusicGenConfig) -> tuple[CodecSizes, LMSizes]:
    """The tiny model's codec and LM sizes in `arch.py`'s terms."""
    codec = CodecSizes(
        sample_rate=cfg.sample_rate,
        ratios=tuple(CODEC_RATIOS),
        n_filters=4,
        dimension=16,
        lstm=1,
        n_residual_layers=1,
        n_q=cfg.n_q,
        bins=cfg.card,
        kmeans_init=False,
        dead_code=2,
    )
    lm = LMSizes(
        dim=cfg.dim,
        num_heads=cfg.num_heads,
        num_layers=cfg.num_layers,
        lut_bins=256,
        lut_dim=cfg.dim,
        max_duration=cfg.max_duration,
        cfg_dropout=0.3,
        cfg_coef=3.0,
    )
    return codec, lm


def audiocraft_configs(cfg: TinyMusicGenConfig) -> tuple[dict, dict]:
    """The `xp.cfg` dicts of the LM and of the compression model, in audiocraft's config schema."""
    codec, lm = tiny_sizes(cfg)
    lm_cfg = lm_xp_cfg(lm, codec)
    if cfg.channels == 2:  # as audiocraft's musicgen-stereo releases: the LM's config wraps the mono codec
        lm_cfg["channels"] = 2
        lm_cfg["transformer_lm"]["n_q"] = 2 * cfg.n_q
        lm_cfg["codebooks_pattern"]["delay"]["delays"] = [k for k in range(cfg.n_q) for _ in range(2)]
        lm_cfg["interleave_stereo_codebooks"] = {"use": True, "per_timestep": False}
    return lm_cfg, codec_xp_cfg(codec)


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
    cfg = cfg or TinyMusicGenConfig()
    out = Path(out_dir)
    lm, codec, lm_cfg, codec_cfg = build_audiocraft(cfg)
    with folder_replacing(out) as tmp:  # a stop between the two files left a mix of two models that loads
        for model, model_cfg, name in ((lm, lm_cfg, LM_FILE), (codec, codec_cfg, CODEC_FILE)):
            atomic_torch_save(release_package(model.state_dict(), model_cfg), tmp / name)
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
        num_codebooks=cfg.n_q * cfg.channels,
        audio_channels=cfg.channels,
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


@torch.no_grad()
def seed_codebooks(codec, seed: int) -> None:
    """Codebooks for transformers' EnCodec, which starts them at zero (every input would code to 0, every code
    decode to one sound): each book's entries drawn from the residuals it gets of the encoder's output on seeded
    noise, as audiocraft's k-means initialisation draws them from data. Random books far from the encoder's scale
    (kaiming's, |entry| ~1.4 against outputs ~0.04) coded every frame to the entry nearest 0: every clip alike."""
    gen = torch.Generator().manual_seed(seed + 1)
    noise = 0.3 * torch.randn(8, 1, codec.config.sampling_rate, generator=gen)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # the encoder's sums split by thread: the books (and the model's sha256) would differ
    try:
        _books_from(codec, noise, gen)
    finally:
        torch.set_num_threads(threads)


def _books_from(codec, noise: torch.Tensor, gen: torch.Generator) -> None:
    """`seed_codebooks`' drawing of each book from the residuals of the encoder's output on `noise` (no grad: its
    caller's)."""
    residual = codec.encoder(noise).transpose(1, 2).reshape(-1, codec.config.hidden_size)
    for layer in codec.quantizer.layers:
        book = layer.codebook
        bins = book.embed.shape[0]
        book.embed.copy_(residual[torch.randint(len(residual), (bins,), generator=gen)])
        book.embed_avg.copy_(book.embed)
        book.cluster_size.fill_(1.0)
        residual = residual - book.embed[torch.cdist(residual, book.embed).argmin(1)]


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
    seed_codebooks(model.audio_encoder, cfg.seed)
    model.generation_config.max_length = int(cfg.max_duration * cfg.sample_rate // 640) + cfg.n_q
    model.generation_config.guidance_scale = 3.0
    model.generation_config.do_sample = True
    model.generation_config.top_k = 250
    with folder_replacing(out) as tmp:  # a crash never leaves half a model, nor a mix of two
        model.save_pretrained(tmp)
        tokenizer.save_pretrained(tmp)
    return out


def save_tiny_musicgen(out_dir: str | Path, backend: str, cfg: TinyMusicGenConfig | None = None) -> Path:
    """Write the tiny model for `backend` ('audiocraft' or 'transformers') into `out_dir`."""
    if backend == "audiocraft":
        return save_audiocraft(out_dir, cfg)
    if backend == "transformers":
        return save_transformers(out_dir, cfg)
    from sae.errors import UserError

    raise UserError(f"--backend {backend!r}: expected one of {', '.join(BACKENDS)}")
