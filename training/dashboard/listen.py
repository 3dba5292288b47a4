"""The concept page's listening table: one row per example, each file playable with a small spectrogram (one
brightness scale per row), and under each the judge's call on that very file when the judge heard it.

Input: `listen/listen.json` and its wavs, whose `kinds` say what a row holds:
- RAVE (`musicsae eval steering`, `training/rave/listen.py`): one held-out clip, original | through the model |
  concept off | concept on; the judge's calls come from its per-clip detections in `judge.json`.
- MusicGen (`musicsae eval musicgen`, `training/musicgen/listen.py`): one prompt and seed, plain | concept off |
  concept on; each row carries the judge's calls (`heard`).
"""

from __future__ import annotations

import html
import json
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from sae.jsonfile import is_number
from training.dashboard.render import log_spectrogram, mini_spectrogram, read_audio, site_name

KINDS = ("original", "model", "off", "on")  # RAVE's rows
MUSICGEN_KINDS = ("plain", "off", "on")  # MusicGen's rows: no original clip, the plain render instead


def _e(x: Any) -> str:
    return html.escape(str(x))


def listen_files(dirs: list[Path], concept: str) -> Iterator[tuple[Path, dict]]:
    """Every `listen.json` under `dirs` with rows for `concept`, in order: (its path, its data)."""
    for d in dirs:
        for path in sorted(d.rglob("listen.json")):
            try:
                data = json.loads(path.read_text())
            except (OSError, ValueError):
                continue
            concepts = data.get("concepts") if isinstance(data, dict) else None  # a list was a traceback (hunt 153)
            entry = concepts.get(concept) if isinstance(concepts, dict) else None
            if isinstance(entry, dict) and entry.get("rows"):
                yield path, data


def _judge_calls(judge: dict | None, concept: str, row: dict) -> dict[str, bool | None]:
    """The judge's detection of `concept` on each file of `row` (None: the judge did not render that one)."""
    calls: dict[str, bool | None] = dict.fromkeys(KINDS)
    entry = ((judge or {}).get("concepts") or {}).get(concept)
    if not isinstance(entry, dict):
        return calls
    per = entry.get("per_clip") or {}

    def pick(values: Any, i: Any) -> bool | None:
        if isinstance(values, dict):
            values = values.get(concept)
        return bool(values[i]) if isinstance(values, list) and isinstance(i, int) and i < len(values) else None

    k = row.get("judge_index")
    if row.get("with"):
        calls["model"] = pick(per.get("none_with"), k)
        calls["off"] = pick(per.get("off_with"), k)
    else:
        calls["model"] = pick(per.get("none_without"), k)
        calls["on"] = pick(per.get("on_without"), row.get("judge_on_index"))
    return calls


def _wanted(row: dict, kind: str) -> bool | None:
    """Whether the concept should be heard in a row's `kind` of file: gone after `off`, there after `on`, and through
    the model as in the original; None where the row does not say (a MusicGen plain render)."""
    if kind in ("off", "on"):
        return kind == "on"
    return bool(row["with"]) if isinstance(row.get("with"), bool) else None


def _row_calls(row: dict, kinds: tuple[str, ...]) -> dict[str, bool | None]:
    """The judge's calls a MusicGen row carries (`heard`: kind -> bool)."""
    heard = row.get("heard") if isinstance(row.get("heard"), dict) else {}
    return {k: bool(heard[k]) if k in heard else None for k in kinds}


def listening_table(out: Path, concept: str, listen_path: Path, data: dict, judge: dict | None, depth: int = 1) -> str:
    """Copy the example files into OUT/audio/listen/<concept>/, draw their spectrograms into OUT/img/listen/,
    and return the table's HTML (links relative to a page `depth` folders below OUT)."""
    entry = data["concepts"][concept]
    strength = float(entry.get("strength_on", 1.0))
    musicgen = tuple(data.get("kinds") or ()) == MUSICGEN_KINDS
    kinds = MUSICGEN_KINDS if musicgen else KINDS
    titles = {
        "original": "original",
        "model": "through the model",
        "plain": "plain render (no edit)",
        "off": f"{concept} off",
        "on": f"{concept} on ({strength:g})",
    }
    up = "../" * depth
    audio_dir, img_dir = out / "audio" / "listen" / concept, out / "img" / "listen" / concept
    audio_dir.mkdir(parents=True, exist_ok=True)
    img_dir.mkdir(parents=True, exist_ok=True)
    body = []
    for n, row in enumerate(entry["rows"]):
        files = {k: listen_path.parent / row["files"][k] for k in kinds if k in row.get("files", {})}
        if set(files) != set(kinds) or not all(p.is_file() for p in files.values()):
            continue  # said under the table (rows of a half-copied folder went without a word)
        specs = {}
        for kind, src in files.items():
            y, sr = read_audio(str(src))
            specs[kind] = log_spectrogram(y, sr)
        vmax = max(float(s.max()) for s in specs.values())
        calls = _row_calls(row, kinds) if musicgen else _judge_calls(judge, concept, row)
        cells = []
        for kind in kinds:
            name = f"{n:02d}_{site_name(files[kind].name)}"
            shutil.copyfile(files[kind], audio_dir / name)
            mini_spectrogram(img_dir / (Path(name).stem + ".png"), specs[kind], vmax)
            call, want = calls[kind], _wanted(row, kind)
            mark = "" if want is None else " ✓" if call == want else " ✗"  # ✓: as this file should be, not "heard"
            said = (
                f"judge: {_e(concept)} {'heard' if call else 'not heard'}{mark}"
                if call is not None
                else ("&nbsp;" if kind == "original" else "not judged")
            )
            cells.append(
                f'<td data-kind="{kind}"><img src="{up}img/listen/{_e(concept)}/{_e(Path(name).stem)}.png" '
                f'width="240" height="72" alt="spectrogram, {_e(titles[kind])}">'
                f'<audio controls preload="metadata" src="{up}audio/listen/{_e(concept)}/{_e(name)}"></audio>'
                f'<div class="small muted">{said}</div></td>'
            )
        seconds = row.get("seconds")  # a number or nothing: a hand-edited listen.json's text went into the tag raw
        seconds = f"{seconds:g}" if is_number(seconds) else ""
        if musicgen:
            body.append(
                f'<tr data-prompt="{_e(row.get("prompt", ""))}" data-seed="{_e(row.get("seed", ""))}" '
                f'data-seconds="{seconds}"><td><b>{_e(row.get("prompt", ""))}</b>'
                f'<div class="small muted">seed {_e(row.get("seed", ""))}</div></td>{"".join(cells)}</tr>'
            )
            continue
        clip = Path(row.get("clip", files["original"].name))
        what = ", ".join(i.replace("_", " ") for i in str(row.get("instruments") or "").split("+") if i)
        if row.get("voice") not in (None, "", "none"):
            what = ", ".join(x for x in (what, f"{row['voice']} voice") if x)
        has = f"has {_e(concept)}" if row.get("with") else f"no {_e(concept)}"
        body.append(
            f'<tr data-clip="{_e(row.get("clip", ""))}" data-seconds="{seconds}">'
            f'<td><b>{_e(clip.stem)}</b><div class="small">{_e(what) or "&nbsp;"}</div>'
            f'<div class="small muted">{has}</div></td>{"".join(cells)}</tr>'
        )
    if not body:
        return ""
    left = len(entry["rows"]) - len(body)
    left = (
        f" {left} of {len(entry['rows'])} example(s) left out: their files are missing from {_e(listen_path.parent)}."
        if left
        else ""
    )
    head = "".join(f"<th>{_e(titles[k])}</th>" for k in kinds)
    edits = (
        f"<code>{_e(concept)}=off</code>, and with <code>{_e(concept)}=on:{strength:g}</code> (the judge's strength)"
    )
    about = (
        f"Renders the judge heard. Each row is one prompt and seed three ways: the plain render (no edit), "
        f"with {edits}."
        if musicgen
        else "Held-out clips, never used to find the concept. Each row is one clip four ways, aligned sample for "
        f"sample: as recorded, through the model with no edit, with {edits}."
    )
    return (
        f'<h2>Listen</h2><p class="small muted">{about} Spectrograms up to 8 kHz, one brightness scale per row. '
        f"Under each file the judge's call: ✓ where it is as that file should be ({_e(concept)} gone after off, "
        f"there after on{'' if musicgen else ', through the model as in the original'}), ✗ where not. "
        f"From {_e(listen_path.parent)}.{left}</p>"
        f'<table class="listen" data-concept="{_e(concept)}"><thead><tr><th>{"prompt" if musicgen else "clip"}</th>'
        f"{head}</tr></thead>"
        f"<tbody>{''.join(body)}</tbody></table>"
    )
