"""A model folder's training record, `training.json` (the demo MusicGen's package writes it: steps, CPU hours, data
and sizes of the codec's and the LM's trainings). One reader for every use: the LM's segment, whether a folder is
a package, the demo's report."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from sae.errors import UserError

TRAINING_FILE = "training.json"


def training_record(folder: str | Path) -> dict[str, Any] | None:
    """`folder`'s training record, or None when it has none; one that is not a readable JSON object is refused in
    one line (read as none, it made 10 s the default of a model trained on 2 s, and a package without its
    descriptions pass for a plain model)."""
    path = Path(folder) / TRAINING_FILE
    if not path.is_file():
        return None
    try:
        record = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError) as exc:
        why = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise UserError(f"{path}: not a readable training record ({why}); restore it from the package") from None
    if not isinstance(record, dict):
        raise UserError(f"{path}: a {type(record).__name__}, expected a training record (an object)")
    return record


def is_package(record: dict[str, Any] | None) -> bool:
    """Whether a training record is a package's: it records both trainings, the LM's and the codec's."""
    return record is not None and "lm" in record and "codec" in record
