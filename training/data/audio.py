"""Audio folders for collection, concept finding and judging: list, read mono at a model's rate, skip bad files.

Every problem with a file (unreadable, silent, too short) becomes one line in `AudioNotes`, and the file
is skipped; resampling is noted once per source rate. Callers decide whether what is left is enough.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from sae.errors import UserError

AUDIO_EXTENSIONS = (".wav", ".flac", ".ogg", ".aif", ".aiff", ".mp3", ".opus")
SILENCE_PEAK = 1e-4  # below this peak amplitude a file counts as silent


@dataclass
class AudioNotes:
    """What happened to the files of a folder: skipped ones (path, reason) and resampled source rates."""

    skipped: list[tuple[str, str]] = field(default_factory=list)
    resampled: dict[int, int] = field(default_factory=dict)  # source rate -> number of files
    target_rate: int = 0

    def lines(self) -> list[str]:
        out = [
            f"resampled {n} file(s) from {sr} Hz to the model's {self.target_rate} Hz"
            for sr, n in sorted(self.resampled.items())
        ]
        out += [f"skipped {path}: {why}" for path, why in self.skipped]
        return out


def list_audio(root: str | os.PathLike, what: str = "audio folder") -> list[Path]:
    """Audio files under `root` (recursive, sorted, symlinks followed); UserError when there are none."""
    root = Path(root)
    if not root.exists():
        raise UserError(f"{what} {root}: no such folder")
    if root.is_file():
        return [root]
    files = sorted(p for p in root.rglob("*") if p.suffix.lower() in AUDIO_EXTENSIONS and p.is_file())
    if not files:
        raise UserError(f"{what} {root}: no audio files ({', '.join(AUDIO_EXTENSIONS)})")
    return files


def read_mono(path: Path, sample_rate: int, notes: AudioNotes, min_samples: int = 1) -> np.ndarray | None:
    """The file as mono float32 at `sample_rate`, or None (with a note) when unreadable / silent / too short."""
    import soundfile as sf

    notes.target_rate = sample_rate
    try:
        data, sr = sf.read(str(path), dtype="float32", always_2d=True)
    except Exception as exc:  # soundfile raises LibsndfileError / RuntimeError / TypeError
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        notes.skipped.append((str(path), f"not a readable audio file ({first})"))
        return None
    audio = data.mean(axis=1)
    if not np.isfinite(audio).all():
        notes.skipped.append((str(path), "contains NaN/inf samples"))
        return None
    if sr != sample_rate:
        from scipy.signal import resample_poly

        g = math.gcd(int(sr), int(sample_rate))
        audio = resample_poly(audio, sample_rate // g, sr // g).astype(np.float32)
        notes.resampled[int(sr)] = notes.resampled.get(int(sr), 0) + 1
    if len(audio) < min_samples:
        notes.skipped.append((str(path), f"too short ({len(audio)} samples at {sample_rate} Hz, need {min_samples})"))
        return None
    if float(np.abs(audio).max(initial=0.0)) < SILENCE_PEAK:
        notes.skipped.append((str(path), "silent"))
        return None
    return np.ascontiguousarray(audio, dtype=np.float32)


def split_by_rank(files: list[Path]) -> tuple[list[Path], int, int]:
    """This process's share of `files` under torchrun (RANK / WORLD_SIZE env; one process otherwise)."""
    rank, world = int(os.environ.get("RANK", "0")), int(os.environ.get("WORLD_SIZE", "1"))
    if world < 1 or not 0 <= rank < world:
        raise UserError(f"RANK={rank} WORLD_SIZE={world}: expected 0 <= RANK < WORLD_SIZE")
    return files[rank::world], rank, world
