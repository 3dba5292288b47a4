"""Collect RAVE activations from an audio folder into the activation store (`sae/store.py`).

Hooks:
- `latent`: the posterior mean of the encoder, projected like the export's own `encode` (PCA, kept
  dims), so the same file always gives the same rows (RAVE's `encode` samples; this bypasses it).
- `encoder.net.N` / `decoder.net.N`: the output of the N-th layer of the encoder's `net` (after PQMF) or of
  the decoder's `net` (fed the same deterministic latent), read by running the exported layers one by one
  (`realtime.rave_split.trace`, one pass per chunk); average-pooled to the latent frame rate so every hook
  of a store shares one frame rate (one row per latent frame), the rows an inner-hook SAE edits
  (`realtime.rave_split.pool`).

Each file runs through a stream reset to its freshly loaded state, in chunks that are a multiple of the
model's ratio; the last chunk is zero-padded to a full frame. Files at another sample rate are resampled
(noted). Under torchrun every rank takes `files[RANK::WORLD_SIZE]` and appends to the same store (the
store locks its manifests). A re-run skips files the store already lists as complete, and refuses files changed
since their rows were stored.
"""

from __future__ import annotations

import contextlib
import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from realtime.audio_files import (
    AudioNotes,
    audio_folder,
    check_collect_folder,
    file_origin,
    list_audio,
    read_clip,
    source_name,
)
from realtime.rave_split import LATENT, describe_hooks, hook_shape, pool, split_hooks, trace
from realtime.render_rave import RaveStream
from sae.errors import UserError
from sae.ranks import rank_device, split_by_rank
from sae.streams import kept_streams


@dataclass
class RaveCollectConfig:
    """Args:
    model: streaming RAVE `.ts`.
    audio: folder of audio files (or one file).
    out: activation store directory.
    layers: hooks to collect: `latent`, `encoder.net.N`, `decoder.net.N`.
    dtype: on-disk dtype, float32 or float16.
    chunk_seconds: audio per forward call (bounds memory; rounded to a multiple of the ratio).
    device: torch device.
    shard_rows: rows per store shard.
    """

    model: str
    audio: str
    out: str
    layers: tuple[str, ...] = (LATENT,)
    dtype: str = "float32"
    chunk_seconds: float = 10.0
    device: str = "cpu"
    shard_rows: int = 65536


@dataclass
class CollectReport:
    files: int = 0
    collected: int = 0
    resumed: int = 0
    rows: dict[str, int] = field(default_factory=dict)
    notes: AudioNotes = field(default_factory=AudioNotes)
    seconds: float = 0.0
    rank: int = 0
    world_size: int = 1


def resolve_layers(model, layers: tuple[str, ...] | list[str]) -> list[str]:
    """The hooks asked for, deduplicated; one line naming the model's hooks for one it does not have."""
    out: list[str] = []
    hooks = split_hooks(model)
    for name in layers:
        if name not in hooks:
            raise UserError(f"--layers {name}: not a hook of {model.path.name}; expected {describe_hooks(hooks)}")
        hook_shape(model, name)
        if name not in out:
            out.append(name)
    if not out:
        raise UserError("--layers: expected at least one hook")
    return out


def make_streams(model, hooks: list[str]) -> dict[str, RaveStream]:
    """One resettable stream for every hook (they are all read in one pass per chunk)."""
    return {"all": RaveStream(model)}


def chunk_samples(model, seconds: float = RaveCollectConfig.chunk_seconds) -> int:
    """Samples per forward call for `seconds` of audio, a whole number of the model's ratio (at least one): what
    bounds the memory of encoding a long file (an hour's recording in one call took gigabytes)."""
    if not math.isfinite(seconds * model.sr):  # 1e308 s: an OverflowError traceback (hunt 197)
        raise UserError(f"--chunk-seconds {seconds:g}: expected a number of seconds this model can count in samples")
    return max(1, round(seconds * model.sr / model.ratio)) * model.ratio


@torch.no_grad()
def activations_of(
    model, audio: np.ndarray, hooks: list[str], chunk: int, streams: dict[str, RaveStream] | None = None, seed: int = 0
) -> dict[str, torch.Tensor]:
    """Rows [frames, dim] per hook for one clip, from a stream reset to its fresh state: mono [samples] (on every
    channel of a stereo model) or [samples, channels] with the model's channels.

    `streams` (made by `make_streams`) are reused between calls. `seed` seeds the decoder's noise fill of
    cropped latent dims (decoder hooks of an export that keeps fewer latents than it has); the caller's
    random stream is left as it was.
    """
    streams = streams or make_streams(model, hooks)
    stream = streams.get("all") or next(iter(streams.values()))
    ratio = model.ratio
    pad = (-len(audio)) % ratio
    x = np.pad(audio.reshape(len(audio), -1), ((0, pad), (0, 0)))
    x = torch.from_numpy(np.ascontiguousarray(x.T)).unsqueeze(0).to(torch.float32)  # [1, C, T]
    if x.shape[1] != model.channels:
        if x.shape[1] != 1:
            raise UserError(f"audio of {x.shape[1]} channels: expected mono or the model's {model.channels}")
        x = x.expand(1, model.channels, -1)
    out: dict[str, list[torch.Tensor]] = {h: [] for h in hooks}
    stream.reset()
    with kept_streams(stream.device):
        torch.manual_seed(seed)
        for s in range(0, x.shape[-1], chunk):
            piece = x[..., s : s + chunk].to(stream.device)
            frames = piece.shape[-1] // ratio
            for h, act in trace(stream, piece, hooks).items():
                out[h].append(pool(act, act.shape[-1] // frames)[0].cpu())
    return {h: torch.cat(v) for h, v in out.items()}


def collect_rave(cfg: RaveCollectConfig, progress: Callable[[int, int], None] | None = None) -> CollectReport:
    """Collect every hook of `cfg.layers` for this rank's share of the audio files; returns what happened."""
    from realtime.rave import RaveModel
    from sae.store import ActivationWriter, record_moved

    t0 = time.perf_counter()
    model = RaveModel.load(cfg.model, rank_device(cfg.device))
    hooks = resolve_layers(model, cfg.layers)
    root = Path(cfg.audio)
    files = list_audio(root)
    mine, rank, world = split_by_rank(files)
    chunk = chunk_samples(model, cfg.chunk_seconds)
    streams = make_streams(model, hooks)
    probe = activations_of(model, np.zeros(model.ratio, np.float32), hooks, chunk, streams)
    report = CollectReport(files=len(mine), rank=rank, world_size=world)
    report.notes.target_rate = model.sr
    with contextlib.ExitStack() as stack:
        writers = {
            h: stack.enter_context(
                ActivationWriter(
                    cfg.out,
                    h,
                    int(probe[h].shape[1]),
                    cfg.dtype,
                    model=model.identity.as_dict(),
                    frame_rate=model.sr / model.ratio,
                    sample_rate=model.sr,
                    shard_rows=cfg.shard_rows,
                )
            )
            for h in hooks
        }
        # once the writers hold their locks (a run refused by another's lock rewrote the settings under it, and
        # that run's own rerun was refused): sources are named relative to the folder, so another folder's files
        # of the same names would be taken as done
        settings = {"audio": str(audio_folder(root).resolve())}
        moved, note = check_collect_folder(cfg.out, "rave", settings, files, mine, root)
        done = set.intersection(*(w.complete_sources for w in writers.values()))
        record_moved(writers.values(), moved)
        if note is not None:
            report.notes.said.append(note)
        for i, path in enumerate(mine):
            source = source_name(path, root)
            if source in done:
                report.resumed += 1
            else:
                origin = file_origin(path)
                audio = read_clip(path, model.sr, report.notes, min_samples=model.ratio, channels=model.channels)
                if audio is not None:
                    acts = activations_of(model, audio, hooks, chunk, streams)
                    for h, rows in acts.items():
                        if origin is not None:
                            writers[h].set_origin(source, origin)
                        kept = writers[h].add(rows, source, 0, "rave")  # a hook added later: the others had it
                        report.rows[h] = report.rows.get(h, 0) + kept
                    report.collected += 1
            if progress:
                progress(i + 1, len(mine))
    if mine and report.collected == 0 and report.resumed == 0 and world == 1:  # a rank's share alone: its notes say
        raise UserError(f"audio {root}: none of {len(mine)} file(s) was usable ({report.notes.lines()[-1]})")
    report.seconds = time.perf_counter() - t0
    return report
