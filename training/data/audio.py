"""Audio inputs of a collection: this process's share of the files under torchrun.

The project's one audio reader (list, read at a model's rate, skip or raise, resample) is
`realtime/audio_files.py`; its names are re-exported here for code written before it moved (import them
from `realtime.audio_files`).
"""

from __future__ import annotations

import os
from pathlib import Path

from realtime.audio_files import AUDIO_EXTENSIONS, AudioNotes, list_audio, read_mono
from sae.errors import UserError

__all__ = ["AUDIO_EXTENSIONS", "AudioNotes", "list_audio", "read_mono", "split_by_rank"]


def split_by_rank(files: list[Path]) -> tuple[list[Path], int, int]:
    """This process's share of `files` under torchrun (RANK / WORLD_SIZE env; one process otherwise)."""
    rank, world = int(os.environ.get("RANK", "0")), int(os.environ.get("WORLD_SIZE", "1"))
    if world < 1 or not 0 <= rank < world:
        raise UserError(f"RANK={rank} WORLD_SIZE={world}: expected 0 <= RANK < WORLD_SIZE")
    return files[rank::world], rank, world
