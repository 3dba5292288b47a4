"""Per-layer maps: reconstruction quality (FVU, L0, dead) and concept separability (held-out AUROC) per layer.

Reads each SAE directory's `cfg.json` (hook) and `metrics.json` (written by `musicsae sae train`), and the
AUROCs a concept bank records per concept. A concept found on several layers may be saved under names
that end in its hook (`guitar.layer_4`, `guitar_layer_4`); those share one column.
"""

from __future__ import annotations

import html
import json
import os
import re
from dataclasses import dataclass, field
from pathlib import Path

from sae.bank import ConceptBank
from sae.io import CFG_FILE, read_sae_cfg

AUROC_METHOD = "sae_probe"


@dataclass
class LayerRow:
    hook: str
    sae_dir: Path
    fvu: float | None = None
    l0: float | None = None
    dead: float | None = None
    auroc: dict[str, float] = field(default_factory=dict)  # concept -> held-out AUROC


def _natural(s: str) -> list:
    return [int(t) if t.isdigit() else t for t in re.split(r"(\d+)", s)]


def sae_dirs_beside(sae_dir: str | os.PathLike) -> list[Path]:
    """The SAE directory and its siblings that are SAE directories too (`sae train --out` makes one per hook)."""
    sae_dir = Path(sae_dir)
    found = {sae_dir.resolve()}
    if sae_dir.resolve().parent.is_dir():
        found |= {p.resolve() for p in sae_dir.resolve().parent.iterdir() if (p / CFG_FILE).is_file()}
    return sorted(found)


def concept_base(name: str, hook: str) -> str:
    for sep in ("_", "-", "."):
        if name.endswith(sep + hook) and len(name) > len(hook) + 1:
            return name[: -len(hook) - 1]
    return name


def layer_rows(sae_dirs: list[Path], bank: ConceptBank | None = None) -> list[LayerRow]:
    rows: dict[str, LayerRow] = {}
    for d in sae_dirs:
        cfg = read_sae_cfg(d)
        hook = (cfg.get("metadata") or {}).get("hook_name") or cfg.get("hook_name") or d.name
        row = LayerRow(hook, d)
        mfile = d / "metrics.json"
        if mfile.is_file():
            try:
                m = json.loads(mfile.read_text())
            except (OSError, json.JSONDecodeError):
                m = {}
            row.fvu, row.l0, row.dead = m.get("fvu"), m.get("l0"), m.get("dead_fraction")
        rows[hook] = row
    if bank is not None:
        for c in bank:
            if c.hook in rows and AUROC_METHOD in c.auroc:
                rows[c.hook].auroc[concept_base(c.name, c.hook)] = c.auroc[AUROC_METHOD]
    return [rows[h] for h in sorted(rows, key=_natural)]


def _fmt(v: float | None, spec: str) -> str:
    return "–" if v is None else format(v, spec)


def layer_table_html(rows: list[LayerRow], link=None) -> str:
    """HTML table: one row per layer; `link(row)` may return an href for the hook cell."""
    concepts = sorted({c for r in rows for c in r.auroc})
    head = "".join(f"<th data-key>{h}</th>" for h in ("layer", "FVU", "L0", "dead"))
    head += "".join(f"<th data-key>AUROC {html.escape(c)}</th>" for c in concepts)
    body = []
    for r in rows:
        href = link(r) if link else None
        name = html.escape(r.hook)
        cells = [f'<td><a href="{href}">{name}</a></td>' if href else f"<td>{name}</td>"]
        cells += [f'<td class="num">{_fmt(v, s)}</td>' for v, s in ((r.fvu, ".3f"), (r.l0, ".1f"), (r.dead, ".1%"))]
        cells += [f'<td class="num">{_fmt(r.auroc.get(c), ".3f")}</td>' for c in concepts]
        body.append("<tr>" + "".join(cells) + "</tr>")
    return f'<table class="sortable"><thead><tr>{head}</tr></thead><tbody>{"".join(body)}</tbody></table>'


def plot_layers(rows: list[LayerRow], path: Path) -> Path:
    """PNG: FVU, L0, dead fraction and per-concept AUROC against layer."""
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
    for c in concepts:
        pts = [(i, r.auroc[c]) for i, r in zip(x, rows, strict=True) if c in r.auroc]
        axes[3].plot([p[0] for p in pts], [p[1] for p in pts], "o-", lw=1.4, label=c)
    axes[3].set_title("held-out AUROC (SAE probe)", fontsize=9)
    axes[3].set_ylim(0.4, 1.02)
    if concepts:
        axes[3].legend(fontsize=7)
    for ax in axes:
        ax.set_xticks(x)
        ax.set_xticklabels(names, rotation=45, ha="right", fontsize=7)
        ax.tick_params(labelsize=7)
    fig.tight_layout()
    tmp = path.with_name(f".{path.stem}.tmp.png")
    fig.savefig(tmp)
    os.replace(tmp, path)
    return path
