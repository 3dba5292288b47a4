"""Per-clip labels from a data manifest (`musicsae data make`: manifest.jsonl / manifest.csv), keyed by store source.

A store `source` is an audio path relative to the audio root; a manifest `file` is relative to the
manifest's folder. Rows are matched by resolved path, else by unique file name.
"""

from __future__ import annotations

import json
import os
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from sae.csvfile import parse_csv
from sae.errors import UserError

# manifest columns that are not content labels
NOT_LABELS = {
    "file",
    "index",
    "split",
    "font",
    "kind",
    "instruments",
    "tempo",
    "key",
    "mode",
    "duration",
    "sample_rate",
    "guitar_type",
    "voice",
}


def read_manifest(path: str | os.PathLike) -> list[dict]:
    """Rows of a manifest .jsonl or .csv (a folder means its manifest.jsonl / manifest.csv)."""
    path = Path(path)
    if path.is_dir():
        for name in ("manifest.jsonl", "manifest.csv"):
            if (path / name).is_file():
                path = path / name
                break
        else:
            raise UserError(f"manifest {path}: a folder without manifest.jsonl or manifest.csv")
    if not path.is_file():
        raise UserError(f"manifest {path}: no such file")
    try:
        text = path.read_text(encoding="utf-8-sig")  # a spreadsheet's CSV starts with a BOM: '\ufefffile'
        if path.suffix.lower() == ".csv":  # manifest.CSV too (it was read as JSON lines: "Expecting value")
            rows, _ = parse_csv(text, f"manifest {path}")
            rows = [r for r in rows if any(v not in ("", None) for v in r.values())]  # a spreadsheet's empty ",,"
        else:
            rows = [json.loads(line) for line in text.splitlines() if line.strip()]
    except (OSError, UnicodeDecodeError, ValueError) as exc:  # ValueError: JSON's, and a 5000-digit integer's
        raise UserError(f"manifest {path}: unreadable ({exc})") from None
    if not rows or not all(isinstance(r, dict) and "file" in r for r in rows):
        raise UserError(f"manifest {path}: expected rows with a 'file' column")
    for i, r in enumerate(rows):  # a null or a number there was a TypeError traceback
        if not isinstance(r["file"], str) or not r["file"] or "\0" in r["file"]:  # a NUL: realpath's ValueError
            raise UserError(f"manifest {path}: row {i + 1}: file {r['file']!r:.60}; expected a file name")
    return rows


def _flag(value: object) -> bool | None:
    if isinstance(value, bool):
        return value
    if isinstance(value, int) and value in (0, 1):
        return bool(value)
    if isinstance(value, str) and value in ("0", "1"):
        return value == "1"
    return None


def row_labels(row: dict) -> set[str]:
    """Content labels of one manifest row: its instruments, 0/1 columns set to 1, and the voice."""
    labels = {i for i in str(row.get("instruments") or "").split("+") if i}
    for key, value in row.items():
        if key in NOT_LABELS:
            continue
        flag = _flag(value)
        if flag:
            labels.add(key)
        elif flag is None and isinstance(value, str) and value not in ("", "none"):
            labels.add(f"{key}={value}")
    voice = str(row.get("voice") or "none")
    if voice != "none":
        labels |= {"voice", f"voice_{voice}"}
    return labels


@dataclass
class ClipLabels:
    """Labels and instruments per store source (only sources that matched a manifest row)."""

    labels: dict[str, set[str]] = field(default_factory=dict)
    instruments: dict[str, list[str]] = field(default_factory=dict)
    rows: dict[str, dict] = field(default_factory=dict)
    by_name: int = 0  # sources matched by file name alone (no row at their path under the audio root)

    def dominant_instruments(self, sources: list[str], top: int = 3) -> list[tuple[str, int]]:
        counts = Counter(i for s in sources for i in self.instruments.get(s, []))
        return counts.most_common(top)


def match_manifest(manifest: str | os.PathLike, audio_root: str | os.PathLike, sources: list[str]) -> ClipLabels:
    """Match manifest rows to store sources; unmatched sources simply have no labels."""
    path = Path(manifest)
    rows = read_manifest(path)
    base = path if path.is_dir() else path.parent
    by_path = {os.path.realpath(base / r["file"]): r for r in rows}
    names = Counter(Path(r["file"]).name for r in rows)
    by_name = {Path(r["file"]).name: r for r in rows if names[Path(r["file"]).name] == 1}
    out = ClipLabels()
    root = Path(audio_root)
    for s in sources:
        row = by_path.get(os.path.realpath(root / s))
        if row is None:
            row = by_name.get(Path(s).name)
            out.by_name += row is not None
        if row is None:
            continue
        out.rows[s] = row
        out.labels[s] = row_labels(row)
        out.instruments[s] = [i for i in str(row.get("instruments") or "").split("+") if i]
    return out
