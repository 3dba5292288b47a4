"""The one small adapter both MusicGen backends implement, and residual-stream hooks on its layers.

What every backend does the same way (and the hooks rely on):
- the LM works on a delay-pattern sequence: position 0 holds the special token for every codebook and
  position s holds codebook k of audio frame s - 1 - k, so the state at position t predicts codebook 0
  of audio frame t. Collection keeps positions 0..T-1 for T audio frames: row t = frame t.
- generation with classifier-free guidance doubles the batch, conditional rows first ([2B, T, D]);
- with the KV cache, every generation step after the prompt sees one position (T = 1).

A layer hook `fn(hidden [rows, T, D], start) -> Tensor | None` gets the residual stream after layer i
(`start` = position index of hidden[:, 0]) and may return a replacement of the same shape.
"""

from __future__ import annotations

import hashlib
import math
import re
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import Tensor, nn

from realtime.musicgen.descriptions import DescriptionVocab, canonical_prompts
from sae.errors import UserError

LayerFn = Callable[[Tensor, int], Tensor | None]


@dataclass
class Generation:
    """Generated audio [B, C, N] and its codes [B, K, T] (T audio frames)."""

    wav: Tensor
    codes: Tensor


def sha256_files(paths: Sequence[Path]) -> str:
    """sha256 over the bytes of `paths` in order (one file: the file's own sha256)."""
    h = hashlib.sha256()
    for path in paths:
        with open(path, "rb") as f:
            for chunk in iter(lambda: f.read(1 << 20), b""):
                h.update(chunk)
    return h.hexdigest()


SUPPORTED = "supported: text-to-music MusicGen (musicgen-small/medium/large, musicgen-stereo-*)"
"""What both backends load; named when a variant is refused."""


def sha256_tensors(module: nn.Module) -> str:
    """sha256 over a module's state dict (names and raw bytes, in order)."""
    h = hashlib.sha256()
    for key, value in module.state_dict().items():
        h.update(key.encode())
        h.update(value.detach().cpu().contiguous().view(torch.uint8).numpy().tobytes())
    return h.hexdigest()


def folder_name(source: str) -> str:
    """A model's name from its folder: the hub id of a hub cache snapshot (`facebook/musicgen-small`), else the
    folder's own name (`.` is the working folder's)."""
    path = Path(source).resolve()
    repo = path.parent.parent.name
    if path.parent.name == "snapshots" and repo.startswith("models--"):
        return repo.removeprefix("models--").replace("--", "/")
    return path.name


def layer_of(i: int, num_layers: int) -> int:
    """A layer index as given (-1: the last layer, as Python counts), counted from 0; out of range is left as it
    is, for the caller to refuse."""
    return i + num_layers if -num_layers <= i < 0 else i


LAYER_INDEX = re.compile(r"-?[0-9]{1,9}")


def layer_index(text: str) -> int | None:
    """A layer index as `--layers` spells it (`3`, or `-1` counted from the last), else None: ASCII digits only
    ("٤" and "-١" read as 4 and -1, "-²" was a traceback), at most nine (int() refuses 4300), and not `-0` (the
    first layer, not one counted from the last). `collect musicgen` and `sae train` read them alike."""
    text = text.strip()
    if not LAYER_INDEX.fullmatch(text) or (text.startswith("-") and int(text) == 0):
        return None
    return int(text)


def parse_layers(spec: str | Sequence[int], num_layers: int) -> list[int]:
    """`all`, `3`, `0,2,5`, `-1` (last) or a list of ints → sorted unique layer indices, checked."""
    if isinstance(spec, str):
        text = spec.strip().lower()
        if text == "all":
            return list(range(num_layers))
        items = [layer_index(x) for x in text.split(",") if x.strip()]
        if None in items:
            raise UserError(f"--layers {spec!r}: expected 'all' or comma-separated layer indices")
    else:
        items = [int(x) for x in spec]
    if not items:
        raise UserError(f"--layers {spec!r}: expected 'all' or at least one layer index")
    out = []
    for i in items:
        j = layer_of(i, num_layers)
        if not 0 <= j < num_layers:
            raise UserError(f"layer {i}: out of range, the model has layers 0..{num_layers - 1}")
        out.append(j)
    return sorted(set(out))


class MusicGenBackend(ABC):
    """A loaded MusicGen (either implementation) seen through the few things musicsae needs.

    Attributes:
        backend: 'audiocraft' or 'transformers'.
        name: hub id or folder name.
        sample_rate, frame_rate: audio rate and LM frames per second.
        n_q: codebooks (a stereo model's left and right codebooks interleaved: 8 for 4 per channel);
        audio_channels: 1 (mono) or 2 (stereo);
        num_layers, dim: transformer layers and width (hook points and their size).
        device: where the model runs.
        max_duration: the longest render in seconds (inf: the backend sets no limit).
    """

    backend: str
    name: str
    sample_rate: int
    frame_rate: float
    n_q: int
    audio_channels: int = 1
    num_layers: int
    dim: int
    device: torch.device
    max_duration: float = float("inf")

    # -- layers ----------------------------------------------------------------------------------------
    @property
    @abstractmethod
    def hook_prefix(self) -> str:
        """Module path of the layer list, e.g. `transformer.layers` (hook name = prefix + '.' + i)."""

    @abstractmethod
    def layers(self) -> nn.ModuleList:
        """The transformer layers whose outputs are the residual stream."""

    def hook_name(self, layer: int) -> str:
        return f"{self.hook_prefix}.{layer}"

    def layer_index(self, hook: str) -> int:
        """The layer index a hook name refers to; `UserError` if it is not a layer of this model."""
        m = re.fullmatch(re.escape(self.hook_prefix) + r"\.(0|[1-9][0-9]*)", hook.strip())  # ASCII, as written
        if m is None:
            raise UserError(f"hook {hook!r}: expected '{self.hook_prefix}.<i>' for this {self.backend} MusicGen")
        i = int(m.group(1))
        if i >= self.num_layers:
            raise UserError(f"hook {hook!r}: layer {i} out of range, the model has layers 0..{self.num_layers - 1}")
        return i

    # -- identity --------------------------------------------------------------------------------------
    @abstractmethod
    def weight_files(self) -> list[Path]:
        """The LM weight file(s) this model was loaded from (its identity is their sha256)."""

    @abstractmethod
    def lm_module(self) -> nn.Module:
        """The module holding the LM weights (identity fallback when no weight file is at hand)."""

    def check_sae(self, sae_dir: str | Path, d_in: int, layer: int, what: str = "") -> None:
        """One line when the SAE at `sae_dir` was not trained on `layer` of this model: its width, the layer its
        cfg.json names, or the model its activation store recorded (`what`: how the caller names the SAE's use)."""
        from sae.io import cfg_hook, cfg_model, read_sae_cfg

        name = f"SAE {sae_dir}{what}"
        if d_in != self.dim:
            raise UserError(
                f"{name}: d_in {d_in} does not match {self.hook_name(layer)} of {self.name}, width {self.dim}"
            )
        cfg = read_sae_cfg(sae_dir)
        hook = cfg_hook(cfg)
        if hook and hook != self.hook_name(layer):
            raise UserError(f"{name} was trained on {hook}, not {self.hook_name(layer)}")
        ident, sha = cfg_model(cfg)
        ref = self.model_ref()
        if sha and sha != ref["sha256"]:
            raise UserError(
                f"{name} was trained on {ident.get('name', '?')} ({sha[:12]}), not {ref['name']} ({ref['sha256'][:12]})"
            )

    def model_ref(self) -> dict[str, str]:
        """Identity for store.json and concept banks: {name, sha256, backend}.

        sha256 of the LM weight file(s); when they cannot be located (e.g. a hub snapshot laid out
        differently), of the LM's tensors (names and bytes, in state-dict order).
        """
        if not hasattr(self, "_sha256"):
            try:
                files = self.weight_files()
            except Exception:  # hub lookups raise their own error types
                files = []
            self._sha256 = (
                sha256_files(files) if files and all(f.is_file() for f in files) else sha256_tensors(self.lm_module())
            )
        return {"name": self.name, "sha256": self._sha256, "backend": self.backend}

    # -- text ------------------------------------------------------------------------------------------
    vocab: DescriptionVocab | None = None  # descriptions.json of a lookup-table model (None: free text)

    def describe(self, prompts: Sequence[str | None]) -> list[str | None]:
        """Prompts as the model's text conditioner should see them (see `descriptions.py`); the notes
        (unknown words, unknown descriptions) are kept in `prompt_notes`."""
        out, notes = canonical_prompts(self.vocab, prompts)
        seen = self.__dict__.setdefault("prompt_notes", [])
        seen += [n for n in dict.fromkeys(notes) if n not in seen]
        return out

    # -- running ---------------------------------------------------------------------------------------
    @abstractmethod
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
        """Sample audio for text prompts (classifier-free guidance, conditional rows first)."""

    @abstractmethod
    def encode(self, wav: Tensor) -> Tensor:
        """Codes [B, K, T] of audio [B, C, N] at `sample_rate` (the model's compression model)."""

    @abstractmethod
    def teacher_force(self, codes: Tensor, descriptions: Sequence[str | None]) -> None:
        """Run the LM once over the delay-pattern sequence of `codes` [B, K, T] (hooks see [B, S, D]).

        A description of None is the null condition (the unconditional branch of guidance).
        """

    @property
    def delays(self) -> int:
        """Steps of the delay tail: the last codebook's delay (a stereo pair of codebooks shares one delay)."""
        return self.n_q // self.audio_channels - 1

    @property
    def min_frames(self) -> int:
        """The fewest frames a render may have (`check_request` refuses fewer; a batch checks every job first)."""
        return 1

    min_frames_why = ""  # why `min_frames` is more than one frame, for `check_request`'s refusal

    def match_channels(self, wav: Tensor) -> Tensor:
        """Audio [B, C, N] with the model's channels: mono copied to both sides of a stereo model (as
        transformers does), stereo mixed down for a mono one."""
        if wav.shape[1] == self.audio_channels:
            return wav
        if self.audio_channels == 1:
            return wav.mean(dim=1, keepdim=True)
        return wav.expand(-1, 2, -1) if wav.shape[1] == 1 else wav[:, :2]

    def frames(self, duration: float) -> int:
        """Audio frames (LM steps without the delay tail) in `duration` seconds: its whole frames, a product a hair
        under a whole number counted whole (`int(2.3 * 50)` is 114: a frame short for 73 of 3000 durations)."""
        return math.floor(duration * self.frame_rate + 1e-6)

    def whole_frames(self, wav: Tensor) -> Tensor:
        """`wav` [..., N] cut to its whole frames: a tail under a frame was a frame of its own where it ended a
        chunk (the codec pads a piece), and nothing where it fell alone past a chunk's end (32100 samples: 100
        rows, 32400: 102). What collect stores and concept probes pool."""
        hop = self.sample_rate / self.frame_rate
        return wav[..., : int(wav.shape[-1] // hop * hop)]

    def seconds_of(self, frames: int) -> float:
        """The least duration whose `int(duration * frame_rate)` (audiocraft's own count) is `frames`."""
        seconds = frames / self.frame_rate
        while int(seconds * self.frame_rate) < frames:
            seconds = math.nextafter(seconds, math.inf)
        return seconds

    def rendered_seconds(self, duration: float) -> float:
        """The seconds of audio a render of `duration` seconds holds: its whole frames."""
        return self.frames(duration) / self.frame_rate

    def duration_record(self, duration: float) -> dict[str, float]:
        """What a report records of a render's length: the seconds rendered (whole frames), and the seconds asked
        where they differ (0.33 s renders 0.32 s)."""
        written = self.rendered_seconds(duration)
        return {"duration": written, **({"duration_asked": duration} if written != duration else {})}

    def check_request(self, prompts: Sequence[str], duration: float, what: str = "") -> None:
        """What both backends' `generate` need, refused in one line (audiocraft raised a bare AssertionError,
        transformers rendered 3 frames for 0 s): a prompt at least, at least one frame, at most `max_duration`.
        Every caller checks before its work (a batch every job before the first renders); `what` names the
        duration in a refusal (default `--duration D`)."""
        if isinstance(prompts, str) or not prompts:
            raise UserError(f"prompts {prompts!r}: expected a list of at least one prompt")
        what = what or f"--duration {duration:g}"
        if not math.isfinite(duration * self.frame_rate) or self.frames(duration) < 1:  # 1e308 s: inf frames
            raise UserError(f"{what}: expected at least one frame ({1 / self.frame_rate:g} s), a finite number of "
                            "seconds")  # fmt: skip
        if self.rendered_seconds(duration) > self.max_duration:  # whole frames: 30.01 s renders 30 s
            raise UserError(f"{what}: this model generates at most {self.max_duration:g} s")
        if (frames := self.frames(duration)) < self.min_frames:
            least = f"{self.min_frames} ({self.min_frames / self.frame_rate:g} s)"
            raise UserError(f"{what}: {frames} frame(s); the {self.backend} backend renders at least "
                            f"{least}{self.min_frames_why}")  # fmt: skip

    # -- hooks ---------------------------------------------------------------------------------------------
    @abstractmethod
    @contextmanager
    def _positions(self) -> Iterator[Callable[[], int]]:
        """Yield a function giving the position of the first input of the forward now running."""

    @contextmanager
    def hooks(self, fns: dict[int, LayerFn]) -> Iterator[None]:
        """Attach `fn` to the output of each layer i in `fns` for the duration of the block."""
        layers = self.layers()
        handles = []
        for i in fns:
            if not 0 <= i < len(layers):
                raise UserError(f"layer {i}: out of range, the model has layers 0..{len(layers) - 1}")
        with self._positions() as position:
            for i, fn in fns.items():
                handles.append(layers[i].register_forward_hook(_output_hook(fn, position)))
            try:
                yield
            finally:
                for h in handles:
                    h.remove()


def _output_hook(fn: LayerFn, position: Callable[[], int]):
    def hook(module: nn.Module, args, output):
        hidden = output[0] if isinstance(output, tuple) else output  # transformers 4.x returns a tuple
        new = fn(hidden, position())
        if new is None or new is hidden:
            return None
        if new.shape != hidden.shape:
            raise RuntimeError(f"layer hook returned {tuple(new.shape)}, expected {tuple(hidden.shape)}")
        return (new, *output[1:]) if isinstance(output, tuple) else new

    return hook


class Recorder:
    """Collects the conditional rows of a layer's residual stream by position.

    A position seen twice keeps the last value (transformers 5 runs the first step twice in `generate`).

    Args:
        rows: how many leading batch rows to keep (the conditional ones: the number of prompts).
        limit: keep positions < limit (the audio frames; the delay tail is dropped).
    """

    def __init__(self, rows: int, limit: int | None = None):
        self.rows = rows
        self.limit = limit
        self.by_pos: dict[int, Tensor] = {}

    def __call__(self, hidden: Tensor, start: int) -> None:
        keep = hidden.shape[1] if self.limit is None else max(0, min(hidden.shape[1], self.limit - start))
        rows = hidden[: self.rows, :keep].detach().float().cpu()
        for t in range(keep):
            self.by_pos[start + t] = rows[:, t]

    def result(self) -> Tensor:
        """[rows, T, D] for positions 0..T-1 (all of them must have been seen)."""
        n = len(self.by_pos)
        if sorted(self.by_pos) != list(range(n)):
            raise RuntimeError(f"recorded positions are not 0..{n - 1}")
        return torch.stack([self.by_pos[t] for t in range(n)], dim=1)
