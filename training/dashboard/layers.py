"""Per-layer maps: reconstruction quality (FVU, L0, dead) and concept separability (held-out AUROC) per layer.

Reads each SAE directory's `cfg.json` (hook) and `metrics.json` (written by `musicsae sae train`; else the copy of
its figures in cfg.json), and the
AUROCs a concept bank records per concept, with their 95 % intervals and clip counts where the bank has them
(an older bank: the point values alone). A concept found on several layers may be saved under names
that end in its hook (`guitar.layer_4`, `guitar_layer_4`); those share one column.
"""

from __future__ import annotations

import html
import json
import os
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sae.bank import ConceptBank, ConceptClips
from sae.errors import UserError
from sae.io import CFG_FILE, cfg_hook, read_sae_cfg
from sae.jsonfile import is_number
from sae.plots import save_png

AUROC_METHOD = "sae_probe"


@dataclass
class LayerRow:
    hook: str
    sae_dir: Path
    fvu: float | None = None
    fvu_interval: tuple[float, float] | None = None  # 95 %, held-out sources resampled whole (older SAEs: none)
    on_training_rows: bool = False  # the FVU is on the training rows (`sae train --eval-fraction 0`: none held out)
    l0: float | None = None
    dead: float | None = None
    auroc: dict[str, float] = field(default_factory=dict)  # concept -> held-out AUROC
    interval: dict[str, tuple[float, float]] = field(default_factory=dict)  # concept -> its 95 % interval
    clips: dict[str, ConceptClips] = field(default_factory=dict)  # concept -> clips with / without it


def _natural(s: str) -> list:
    return [int(t) if t.isdigit() else t for t in re.split(r"(\d+)", s)]


def sae_dirs_beside(sae_dir: str | os.PathLike) -> list[Path]:
    """The SAE directory and its siblings that are SAE directories too (`sae train --out` makes one per hook)."""
    sae_dir = Path(sae_dir)
    found = {sae_dir.resolve()}
    if sae_dir.resolve().parent.is_dir():
        # os.path.isfile: a sibling folder this user may not open (another's, in /tmp) is no SAE, not an error
        found |= {p.resolve() for p in sae_dir.resolve().parent.iterdir() if os.path.isfile(p / CFG_FILE)}
    return sorted(found)


def concept_base(name: str, hook: str) -> str:
    for sep in ("_", "-", "."):
        if name.endswith(sep + hook) and len(name) > len(hook) + 1:
            return name[: -len(hook) - 1]
    return name


def _metrics(path: Path) -> dict[str, Any]:
    """An SAE folder's metrics.json; {} when absent or damaged (not JSON, not UTF-8, not an object): the map then
    shows "–" for that layer, as for an SAE trained elsewhere."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):  # ValueError: JSONDecodeError and UnicodeDecodeError
        return {}
    return data if isinstance(data, dict) else {}


def _cfg_metrics(cfg: dict[str, Any]) -> dict[str, Any]:
    """The metrics `sae train` copies into cfg.json (an SAE shared the SAELens way, cfg.json and weights only, as the
    demo's ships): fvu, l0 and dead_fraction, on the training rows where it held none out (`eval_fraction` 0; the copy
    records no split, and a training-rows FVU read as a held-out one)."""
    ours = cfg.get("musicsae") if isinstance(cfg.get("musicsae"), dict) else {}
    metrics = ours.get("metrics") if isinstance(ours.get("metrics"), dict) else {}
    train = ours.get("train_config") if isinstance(ours.get("train_config"), dict) else {}
    if not metrics:
        return {}
    return metrics | ({"split": "train"} if train.get("eval_fraction") == 0 else {})


def _finite(value: Any) -> float | None:
    """`value` as a float when it is a finite number (a hand-edited "0.1" or null shows as "–", not a traceback)."""
    return float(value) if is_number(value) else None


def layer_rows(
    sae_dirs: list[Path], bank: ConceptBank | None = None, note: Callable[[str], None] | None = None
) -> list[LayerRow]:
    """One row per SAE folder (labelled by its hook, and by hook and folder where two hold SAEs of one hook), with
    the AUROCs of the bank's concepts found with that very SAE; a folder whose cfg.json cannot be read (a sibling
    the map found, not an input) is left out with a `note`."""
    rows: dict[Path, LayerRow] = {}
    for d in sae_dirs:
        try:
            cfg = read_sae_cfg(d)
        except UserError as exc:
            if note is not None:
                note(f"per-layer map: left out {d.name} ({exc})")
            continue
        hook = cfg_hook(cfg) or d.name
        row = LayerRow(hook, d)
        m = _metrics(d / "metrics.json") or _cfg_metrics(cfg)  # cfg.json's copy where no metrics.json ships
        row.fvu, row.l0, row.dead = (_finite(m.get(key)) for key in ("fvu", "l0", "dead_fraction"))
        row.on_training_rows = m.get("split") == "train"
        iv = m.get("fvu_interval")
        if isinstance(iv, list) and len(iv) == 2 and all(_finite(v) is not None for v in iv):
            row.fvu_interval = (float(iv[0]), float(iv[1]))
        rows[d] = row
    if bank is not None:
        for d, row in rows.items():
            # a concept of this hook found with another SAE (a sibling, a draw) is not this row's
            try:
                mine = [c for c in bank if c.hook == row.hook and AUROC_METHOD in c.auroc and bank.uses_sae(c, d)]
            except UserError as exc:  # a sibling's weights unreadable (cut short, another's): the build failed at its
                if note is not None:  # end (hunt 157)
                    note(f"per-layer map: the concepts of {d.name} left out ({exc})")
                continue
            bases = [concept_base(c.name, c.hook) for c in mine]
            for c, base in zip(mine, bases, strict=True):
                # `bright` and `bright_l3` of one layer keep their names (one's AUROC took the other's place)
                base = c.name if bases.count(base) > 1 else base
                row.auroc[base] = c.auroc[AUROC_METHOD]
                if AUROC_METHOD in c.auroc_interval:
                    row.interval[base] = c.auroc_interval[AUROC_METHOD]
                if c.clips is not None:
                    row.clips[base] = c.clips
    hooks = [row.hook for row in rows.values()]  # before any row is relabelled
    for row in rows.values():
        if hooks.count(row.hook) > 1:  # two folders of one hook: was one row, the last folder's
            row.hook = f"{row.hook} ({row.sae_dir.name})"
    return sorted(rows.values(), key=lambda r: _natural(r.hook))


def _fmt(v: float | None, spec: str) -> str:
    return "–" if v is None else format(v, spec)


def _num_cell(v: float | None, spec: str) -> str:
    """A number cell that sorts as a number ("12.5%" sorted as text)."""
    return '<td class="num">–</td>' if v is None else f'<td class="num" data-v="{v:.6g}">{format(v, spec)}</td>'


def fvu_cell(row: LayerRow) -> str:
    """A layer's held-out FVU, with its 95 % interval where metrics.json records one; "(train)" where it is on
    the training rows (an SAE trained on every row: it was shown as held out)."""
    if row.fvu is None:
        return '<td class="num">–</td>'
    iv = f" [{row.fvu_interval[0]:.3f}, {row.fvu_interval[1]:.3f}]" if row.fvu_interval else ""
    train = ' <span class="small muted">(train)</span>' if row.on_training_rows else ""
    return f'<td class="num" data-v="{row.fvu:.6g}">{row.fvu:.3f}{iv}{train}</td>'


def auroc_cell(row: LayerRow, concept: str) -> str:
    """A concept's AUROC at a layer: `0.95 [0.90, 0.99]` and its clip counts, as far as the bank records them."""
    if concept not in row.auroc:
        return '<td class="num">–</td>'
    text = f"{row.auroc[concept]:.2f}"
    if concept in row.interval:
        lo, hi = row.interval[concept]
        text += f" [{lo:.2f}, {hi:.2f}]"
    if concept in row.clips:
        c = row.clips[concept]
        sources = f" from {c.sources} sources" if c.sources else ""  # grouped: the intervals rest on these (hunt 193)
        text += f'<br><span class="small muted">{c.with_} + {c.without} clips{sources}</span>'
    return f'<td class="num" data-v="{row.auroc[concept]:.6g}">{text}</td>'


LEGEND = (
    '<p class="small muted">FVU: on the held-out clips [95 % interval, clips resampled whole]; (train): on the '
    "training rows, the SAE held none out. AUROC: held out, "
    "SAE-feature probe, [95 % interval], on N + M clips with + without the concept; an older SAE or "
    "bank shows its point value alone (no interval or clip count recorded).</p>"
)


def layer_table_html(rows: list[LayerRow], link=None) -> str:
    """HTML table: one row per layer; `link(row)` may return an href for the hook cell. Each AUROC carries its
    95 % interval and clip counts when the bank has them (`LEGEND` says so below the table)."""
    concepts = sorted({c for r in rows for c in r.auroc})
    head = "".join(f"<th data-key>{h}</th>" for h in ("layer", "FVU", "L0", "dead"))
    head += "".join(f"<th data-key>AUROC {html.escape(c)}</th>" for c in concepts)
    body = []
    for r in rows:
        href = link(r) if link else None
        name = html.escape(r.hook)
        cells = [f'<td><a href="{href}">{name}</a></td>' if href else f"<td>{name}</td>"]
        cells.append(fvu_cell(r))
        cells += [_num_cell(v, s) for v, s in ((r.l0, ".1f"), (r.dead, ".1%"))]
        cells += [auroc_cell(r, c) for c in concepts]
        body.append("<tr>" + "".join(cells) + "</tr>")
    table = f'<table class="sortable"><thead><tr>{head}</tr></thead><tbody>{"".join(body)}</tbody></table>'
    return table + LEGEND


def plot_layers(rows: list[LayerRow], path: Path) -> Path:
    """PNG: FVU, L0, dead fraction and per-concept AUROC against layer (bars: 95 % intervals, where recorded)."""
    import matplotlib

    matplotlib.use("Agg", force=True)
    from matplotlib.figure import Figure

    fig = Figure(figsize=(12, 3.0), dpi=90)
    axes = fig.subplots(1, 4)
    x = list(range(len(rows)))
    names = [r.hook for r in rows]
    for ax, key, title in ((axes[0], "fvu", "FVU"), (axes[1], "l0", "L0"), (axes[2], "dead", "dead fraction")):
        ys = [getattr(r, key) for r in rows]
        pts = [(i, y) for i, y in zip(x, ys, strict=True) if y is not None]
        if pts:
            ax.plot([p[0] for p in pts], [p[1] for p in pts], "o-", lw=1.4)
        ax.set_title(title, fontsize=9)
    concepts = sorted({c for r in rows for c in r.auroc})
    lines = []
    for c in concepts:
        pts = [(i, r.auroc[c]) for i, r in zip(x, rows, strict=True) if c in r.auroc]
        (line,) = axes[3].plot([p[0] for p in pts], [p[1] for p in pts], "o-", lw=1.4)
        lines.append(line)
        bars = [(i, *r.interval[c]) for i, r in zip(x, rows, strict=True) if c in r.interval]
        if bars:
            axes[3].vlines([b[0] for b in bars], [b[1] for b in bars], [b[2] for b in bars], color=line.get_color())
    axes[3].set_title("held-out AUROC (SAE probe)\nbars: 95 % intervals", fontsize=9)
    axes[3].set_ylim(0.4, 1.02)
    if concepts:  # labels given: matplotlib leaves out a line whose label starts with "_" (hunt 153)
        axes[3].legend(lines, concepts, fontsize=7)
    for ax in axes:
        ax.set_xticks(x)
        ax.set_xticklabels(names, rotation=45, ha="right", fontsize=7)
        ax.tick_params(labelsize=7)
    fig.tight_layout()
    save_png(fig, path)
    return path
