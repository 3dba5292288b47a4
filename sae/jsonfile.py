"""Reading the small JSON files of stores and SAE folders, with one-line errors."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from sae.errors import UserError


def read_json_object(path: Path, what: str) -> dict[str, Any]:
    """The JSON object in `path`; `what` names the file in the error (e.g. "manifest")."""
    try:
        with open(path) as fh:
            data = json.load(fh)
    except json.JSONDecodeError as exc:
        raise UserError(f"{path}: {what} is not valid JSON ({exc.msg})") from None
    if not isinstance(data, dict):
        raise UserError(f"{path}: expected a JSON object")
    return data
