"""Training clips for the demo MusicGen: the train split of one or more `musicsae data make` folders.

Clips are read once, mono at the model's rate, and kept as int16 (half the memory of float). The data's
identity for resumed runs is the sha256 of every folder's manifest (the clips are a function of it and of the
voicing, which the manifest does not show: `:in_key` follows the sha of a folder voiced in key), not the folder's
path, so a moved folder still resumes and a regenerated one with other clips is refused.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from realtime.audio_files import AudioNotes, read_mono
from sae.errors import UserError
from training.data.concept_clips import read_manifest


@dataclass
class ClipSet:
    """Args:
    rows: manifest rows of the clips kept (in folder order, then manifest order).
    audio: int16 mono audio per row at `sample_rate`.
    sample_rate: Hz.
    identity: {folder name: manifest sha256} per data folder, plus the split.
    notes: skipped / resampled files.
    """

    rows: list[dict]
    audio: list[np.ndarray]
    sample_rate: int
    identity: dict
    notes: list[str]

    def segment(self, i: int, start: int, length: int) -> np.ndarray:
        """float32 samples [start, start + length) of clip i, zero-padded past its end."""
        out = np.zeros(length, np.float32)
        piece = self.audio[i][start : start + length]
        out[: len(piece)] = piece.astype(np.float32) / 32767.0
        return out


def manifest_sha256(folder: Path) -> str:
    """The folder's identity: its manifest's sha256, with `:in_key` where data.json says its parts play in key (the
    same manifest then names other audio; a folder off key, or from before `voicing`, keeps the bare sha)."""
    from sae.jsonfile import read_json_object

    path = folder / "manifest.jsonl"
    if not path.is_file():
        raise UserError(f"--data {folder}: no manifest.jsonl (expected a folder written by `musicsae data make`)")
    sha = hashlib.sha256(path.read_bytes()).hexdigest()
    meta = read_json_object(folder / "data.json", "data.json") if (folder / "data.json").is_file() else {}
    config = meta.get("config") if isinstance(meta.get("config"), dict) else {}
    return f"{sha}:in_key" if config.get("voicing") == "in_key" else sha


def load_clips(folders: Sequence[str | Path], sample_rate: int, splits: Sequence[str] = ("train",)) -> ClipSet:
    """The clips of `splits` in every folder (a `holdout_font` split is never a training split)."""
    if not folders:
        raise UserError("--data: expected at least one `musicsae data make` folder")
    rows: list[dict] = []
    audio: list[np.ndarray] = []
    notes = AudioNotes()
    identity: dict = {"splits": list(splits), "folders": {}}
    for folder in map(Path, folders):
        if not folder.is_dir():
            raise UserError(f"--data {folder}: not a folder")
        key = folder.resolve().name
        if key in identity["folders"]:
            raise UserError(f"--data {folder}: two data folders named {key!r}; give them different names")
        identity["folders"][key] = manifest_sha256(folder)
        for row in read_manifest(folder):
            if row.get("split") not in splits:
                continue
            wav = read_mono(folder / row["file"], sample_rate, notes, min_samples=sample_rate // 10)
            if wav is None:
                continue
            audio.append(np.round(np.clip(wav, -1.0, 1.0) * 32767.0).astype(np.int16))
            rows.append({**row, "data": key})
    if not rows:
        raise UserError(f"--data {', '.join(map(str, folders))}: no readable clips in split(s) {', '.join(splits)}")
    return ClipSet(rows, audio, sample_rate, identity, notes.lines())
