"""transformers' `MusicgenForConditionalGeneration` behind the adapter.

Loads a hub id or a local folder (model + tokenizer) with `from_pretrained`. Hooks sit on
`decoder.model.decoder.layers[i]` (a tensor output in transformers 5.x, a tuple in 4.x: both handled).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

import torch
from torch import Tensor, nn

from realtime.musicgen.base import Generation, MusicGenBackend
from realtime.musicgen.descriptions import DescriptionVocab


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
        self.model = MusicgenForConditionalGeneration.from_pretrained(self.source).to(self.device).eval()
        self.tokenizer = AutoTokenizer.from_pretrained(self.source)
        cfg = self.model.config
        self.name = Path(self.source).name if Path(self.source).is_dir() else self.source
        self.sample_rate = int(cfg.audio_encoder.sampling_rate)
        self.frame_rate = float(cfg.audio_encoder.frame_rate)
        self.n_q = int(cfg.decoder.num_codebooks)
        self.num_layers = int(cfg.decoder.num_hidden_layers)
        self.dim = int(cfg.decoder.hidden_size)
        self.pad_id = int(self.model.generation_config.pad_token_id)
        self.vocab = DescriptionVocab.load(self.source) if Path(self.source).is_dir() else None

    @property
    def hook_prefix(self) -> str:
        return "decoder.model.decoder.layers"

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
                    max_new_tokens=self.frames(duration) + self.n_q - 1,
                    do_sample=True,
                    guidance_scale=cfg_coef,
                    top_k=top_k,
                    temperature=temperature,
                )
        finally:
            del codec.decode
        return Generation(wav, captured[0])

    def encode(self, wav: Tensor) -> Tensor:
        with torch.no_grad():
            out = self.model.audio_encoder.encode(wav.to(self.device))
        return out.audio_codes[0]

    def teacher_force(self, codes: Tensor, descriptions: Sequence[str | None]) -> None:
        B, K, T = codes.shape
        # prompt = [bos, codes]; the model's own delay pattern shifts codebook k by k (bos == pad for MusicGen)
        bos = torch.full((B, K, 1), self.pad_id, dtype=torch.long, device=self.device)
        prompt = torch.cat([bos, codes.to(self.device).long()], dim=-1).reshape(B * K, T + 1)
        seq, mask = self.model.decoder.build_delay_pattern_mask(prompt, self.pad_id, max_length=T + K)
        seq = self.model.decoder.apply_delay_pattern_mask(seq, mask)
        text = self._text(descriptions)
        null = torch.tensor([d is None for d in descriptions], device=self.device)
        with torch.no_grad():
            hidden = self.model.text_encoder(**text).last_hidden_state
            hidden = hidden.masked_fill(null[:, None, None], 0.0)  # the null condition, as guidance builds it
            attention = text["attention_mask"].masked_fill(null[:, None], 0)
            self.model(encoder_outputs=(hidden,), attention_mask=attention, decoder_input_ids=seq)
