"""transformers' `MusicgenForConditionalGeneration` behind the adapter.

Loads a hub id or a local folder (model + tokenizer) with `from_pretrained`. Hooks sit on
`decoder.model.decoder.layers[i]` (a tensor output in transformers 5.x, a tuple in 4.x: both handled).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

import torch
from torch import Tensor, nn

from realtime.musicgen.base import SUPPORTED, Generation, MusicGenBackend, folder_name
from realtime.musicgen.descriptions import DescriptionVocab
from sae.errors import UserError


def check_model_type(source: str) -> None:
    """Refuse a local folder whose config.json is not a text-to-music MusicGen (e.g. musicgen-melody, whose
    chroma conditioner and prepended conditioning `MusicgenForConditionalGeneration` would drop silently)."""
    config = Path(source) / "config.json"
    if not config.is_file():
        return
    try:
        model_type = json.loads(config.read_text()).get("model_type")
    except (OSError, ValueError, AttributeError):
        raise UserError(f"--model {source}: config.json is not readable JSON") from None
    if model_type == "musicgen_melody":
        raise UserError(f"--model {source}: a musicgen-melody model (chroma conditioner) is not supported; {SUPPORTED}")
    if model_type != "musicgen":
        raise UserError(f"--model {source}: config.json describes a {model_type!r} model, not MusicGen; {SUPPORTED}")


class TransformersMusicGen(MusicGenBackend):
    """Args:
    source: hub id or local folder.
    device: torch device string.
    """

    backend = "transformers"

    def __init__(self, source: str, device: str = "cpu"):
        from transformers import AutoTokenizer, MusicgenForConditionalGeneration

        self.source = str(source)
        self.device = torch.device(device)
        check_model_type(self.source)
        # float32 whatever the file holds (fp16/bf16 releases): the codec and the hooks see float32 audio and
        # activations, as audiocraft loads on CPU; transformers 5 would otherwise keep the file's dtype
        model, info = MusicgenForConditionalGeneration.from_pretrained(
            self.source, dtype=torch.float32, output_loading_info=True
        )
        missing = sorted(info.get("missing_keys") or ())
        if missing:
            raise UserError(
                f"--model {self.source}: the weights leave {len(missing)} tensors of a MusicGen unset "
                f"(e.g. {missing[0]}); expected a complete musicgen-small/medium/large or stereo folder"
            )
        self.model = model.to(self.device).eval()
        try:
            self.tokenizer = AutoTokenizer.from_pretrained(self.source)
        except Exception as exc:  # the tokenizers library raises its own types; the weights loaded fine
            lines = str(exc).strip().splitlines() or [type(exc).__name__]
            raise UserError(
                f"--model {self.source}: the tokenizer files could not be read ({lines[0][:200]})"
            ) from None
        cfg = self.model.config
        self.name = folder_name(self.source) if Path(self.source).is_dir() else self.source
        self.sample_rate = int(cfg.audio_encoder.sampling_rate)
        self.frame_rate = float(cfg.audio_encoder.frame_rate)
        self.n_q = int(cfg.decoder.num_codebooks)
        self.audio_channels = int(getattr(cfg.decoder, "audio_channels", 1))
        self.num_layers = int(cfg.decoder.num_hidden_layers)
        self.dim = int(cfg.decoder.hidden_size)
        self.pad_id = int(self.model.generation_config.pad_token_id)
        self.vocab = DescriptionVocab.of_model(self.source)

    @property
    def hook_prefix(self) -> str:
        return "decoder.model.decoder.layers"

    @property
    def cardinality(self) -> int:
        """Codes per codebook."""
        return int(self.model.decoder.config.vocab_size)

    def layers(self) -> nn.ModuleList:
        return self.model.decoder.model.decoder.layers

    @contextmanager
    def _positions(self) -> Iterator[Callable[[], int]]:
        # the decoder's cache length on entry is the position of its first input (5.x `cache`, 4.x `past_key_values`)
        state = {"pos": 0}

        def pre_hook(module, args, kwargs):
            cache = kwargs.get("cache", kwargs.get("past_key_values"))
            state["pos"] = int(cache.get_seq_length()) if cache is not None else 0

        handle = self.model.decoder.model.decoder.register_forward_pre_hook(pre_hook, with_kwargs=True)
        try:
            yield lambda: state["pos"]
        finally:
            handle.remove()

    def lm_module(self) -> nn.Module:
        return self.model.decoder

    def weight_files(self) -> list[Path]:
        local = Path(self.source)
        if local.is_dir():
            files = sorted(local.glob("*.safetensors")) or sorted(local.glob("pytorch_model*.bin"))
            return files
        from huggingface_hub import hf_hub_download

        return [Path(hf_hub_download(self.source, "model.safetensors"))]

    def _text(self, descriptions: Sequence[str | None]) -> dict[str, Tensor]:
        # None (the null condition, masked out below) becomes the pad token: never an empty sequence
        null = self.tokenizer.pad_token or ""
        texts = [null if d is None else d for d in self.describe(descriptions)]
        return self.tokenizer(texts, return_tensors="pt", padding=True).to(self.device)

    @property
    def min_frames(self) -> int:
        """Below `delays` frames transformers drops MusicGen's delay pattern."""
        return self.delays

    min_frames_why = ", below that it drops MusicGen's delay pattern"

    def generate(
        self,
        prompts: Sequence[str],
        duration: float,
        seed: int | None = None,
        *,
        cfg_coef: float = 3.0,
        top_k: int = 250,
        temperature: float = 1.0,
    ) -> Generation:
        self.check_request(prompts, duration)
        inputs = self._text(prompts)
        if seed is not None:
            torch.manual_seed(seed)
        # `generate` only returns audio: catch the codes it hands to the codec (instance attribute, removed after)
        codec = self.model.audio_encoder
        captured: list[Tensor] = []

        def decode(audio_codes, *args, **kwargs):
            captured.append(audio_codes[0])
            return type(codec).decode(codec, audio_codes, *args, **kwargs)

        codec.decode = decode
        try:
            with torch.no_grad():
                wav = self.model.generate(
                    **inputs,
                    max_new_tokens=self.frames(duration) + self.delays,
                    do_sample=True,
                    guidance_scale=cfg_coef,
                    top_k=top_k,
                    temperature=temperature,
                )
        finally:
            del codec.decode
        # stereo: the codec decodes the left codebooks (0, 2, ...) then the right ones (1, 3, ...): interleave back
        return Generation(wav, _interleave(captured) if self.audio_channels == 2 else captured[0])

    def encode(self, wav: Tensor) -> Tensor:
        wav = self.match_channels(wav).to(self.device)
        with torch.no_grad():  # the codec is mono: a stereo model's channels are coded apart and interleaved
            codes = [self.model.audio_encoder.encode(wav[:, c : c + 1]).audio_codes[0] for c in range(wav.shape[1])]
        return codes[0] if len(codes) == 1 else _interleave(codes)

    def teacher_force(self, codes: Tensor, descriptions: Sequence[str | None]) -> None:
        B, K, T = codes.shape
        # prompt = [bos, codes]; the model's own delay pattern shifts codebook k by k (bos == pad for MusicGen)
        bos = torch.full((B, K, 1), self.pad_id, dtype=torch.long, device=self.device)
        prompt = torch.cat([bos, codes.to(self.device).long()], dim=-1).reshape(B * K, T + 1)
        # transformers applies no delay pattern below 2 * delays + 1 positions (a 1- or 2-frame chunk, a file's
        # tail): a longer pattern has the same first T + 1 columns
        length = max(T + 1 + self.delays, 2 * self.delays + 1)
        seq, mask = self.model.decoder.build_delay_pattern_mask(prompt, self.pad_id, max_length=length)
        seq = self.model.decoder.apply_delay_pattern_mask(seq, mask)
        text = self._text(descriptions)
        null = torch.tensor([d is None for d in descriptions], device=self.device)
        with torch.no_grad():
            hidden = self.model.text_encoder(**text).last_hidden_state
            hidden = hidden.masked_fill(null[:, None, None], 0.0)  # the null condition, as guidance builds it
            attention = text["attention_mask"].masked_fill(null[:, None], 0)
            self.model(encoder_outputs=(hidden,), attention_mask=attention, decoder_input_ids=seq)


def _interleave(per_channel: list[Tensor]) -> Tensor:
    """[B, K, T] codes of each channel → [B, K * C, T] in the stereo LM's order (left 0, right 0, left 1, ...)."""
    return torch.stack(per_channel, dim=2).flatten(1, 2)
