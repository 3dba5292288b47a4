"""What was measured on a RAVE model file (streaming check, first response, aligned delay), kept on disk.

Measuring the demo model's delays takes ~4 s, which every `render rave`, `live`, `export nn` and `eval` paid
again at start-up. The figures depend only on the file's bytes, the device, torch and the measuring code, so
they are kept in one small JSON file per (sha256, device) under the cache folder and reused when all four
match. A file that is unreadable, corrupt or from other code is measured again and overwritten; a cache
folder that cannot be written is skipped (nothing is ever refused because of the cache).

The folder: `$MUSICSAE_CACHE` (`off` keeps nothing), else `$XDG_CACHE_HOME/musicsae`, else
`~/.cache/musicsae`.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import torch

from sae.atomic import atomic_write_text

# Bump when the measuring code (`realtime.rave.measure_delay`, `realtime.alignment`, `RaveModel.is_streaming`)
# changes what it returns: files written by other code are then measured again.
MEASURE_VERSION = 1


def cache_dir() -> Path | None:
    """Where measured figures are kept (None: `MUSICSAE_CACHE=off`)."""
    chosen = os.environ.get("MUSICSAE_CACHE")
    if chosen:
        return None if chosen.lower() == "off" else Path(chosen).expanduser()
    try:
        base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
        return Path(base).expanduser() / "musicsae"
    except RuntimeError:  # no HOME and a user id /etc/passwd lacks (containers, CI): no cache, as "off" (hunt 156)
        return None


def _file(sha256: str, device: str) -> Path | None:
    folder = cache_dir()
    return None if folder is None else folder / "measured" / f"{sha256}-{device.replace(':', '_')}.json"


def _stamp() -> dict[str, Any]:
    return {"version": MEASURE_VERSION, "torch": torch.__version__}


def read(sha256: str, device: str) -> dict[str, Any]:
    """The figures kept for this model file and device ({} when none, or kept by other code)."""
    path = _file(sha256, device)
    try:
        kept = json.loads(path.read_text(encoding="utf-8")) if path else {}
    except (OSError, ValueError):
        return {}
    if not isinstance(kept, dict) or {k: kept.get(k) for k in _stamp()} != _stamp():
        return {}
    figures = kept.get("figures")
    return dict(figures) if isinstance(figures, dict) else {}


def write(sha256: str, device: str, figures: dict[str, Any]) -> None:
    """Keep `figures` (JSON values) for this model file and device; silently skipped where nothing can be written."""
    path = _file(sha256, device)
    if path is None:
        return
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        atomic_write_text(path, json.dumps({**_stamp(), "figures": figures}, indent=1))
    except OSError:
        pass
