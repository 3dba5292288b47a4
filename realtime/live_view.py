"""The rich live view of a running engine: concept states, level meters, CPU per block, xruns, latency."""

from __future__ import annotations

import math
from typing import Any

from rich.console import Group
from rich.table import Table
from rich.text import Text

from realtime.engine import Engine


def meter(peak: float, width: int = 24) -> Text:
    """A dBFS bar from -60 to 0 dB."""
    db = 20 * math.log10(peak) if peak > 1e-6 else -120.0
    filled = max(0, min(width, round((db + 60) / 60 * width)))
    style = "red" if db > -1 else "yellow" if db > -12 else "green"
    return Text("█" * filled, style=style) + Text("·" * (width - filled), style="dim") + Text(f" {db:6.1f} dB")


def status_line(engine: Engine, osc: Any | None = None) -> str:
    """One plain line (for logs and `--no-view`)."""
    s = engine.model.stats
    budget = engine.blocksize / engine.sr
    c = engine.counters
    line = (
        f"blocks {engine.model.blocks}  cpu {100 * s.total_s / budget:5.1f}% of block "
        f"(rave {1e3 * s.rave_s:.2f} ms, sae {1e3 * s.sae_s:.3f} ms, edits {1e3 * s.edit_s:.3f} ms)  "
        f"xruns {c.xruns} (device {c.device_xruns}, underruns {c.underruns}, overflows {c.overflows})  "
        f"max gap {1e3 * c.max_gap_s:.1f} ms  errors {engine.model.errors}"
    )
    if osc is not None:
        line += f"  osc {osc.packets} packets, {osc.rejected} rejected"
    return line


def render(engine: Engine, osc: Any | None = None, title: str = "musicsae live") -> Group:
    """The whole view as one renderable (call again to refresh)."""
    view = engine.controls.view()
    s = engine.model.stats
    c = engine.counters
    budget = engine.blocksize / engine.sr

    head = Table.grid(padding=(0, 2))
    head.add_column(style="bold")
    head.add_column()
    head.add_row("latency", engine.latency.describe())
    head.add_row(
        "block",
        f"{engine.blocksize} frames ({1e3 * budget:.1f} ms), period {engine.period}, "
        f"{engine.channels} ch @ {engine.sr} Hz",
    )
    head.add_row("input", meter(s.in_peak))
    head.add_row("output", meter(s.out_peak))
    cpu = 100 * s.total_s / budget
    head.add_row(
        "cpu / block",
        Text(
            f"{cpu:5.1f}%  rave {1e3 * s.rave_s:.2f} ms · sae {1e3 * s.sae_s:.3f} ms · edits {1e3 * s.edit_s:.3f} ms "
            f"· worst {1e3 * engine.model.max_block_s:.2f} ms",
            style="red" if cpu > 80 else "yellow" if cpu > 50 else "green",
        ),
    )
    head.add_row(
        "xruns",
        f"{c.xruns} (device {c.device_xruns}, underruns {c.underruns}, overflows {c.overflows}) · "
        f"max callback gap {1e3 * c.max_gap_s:.1f} ms · model errors {engine.model.errors}",
    )
    mix = "BYPASS" if view["bypass"] else f"mix {view['mix']:.2f}"
    head.add_row("mode", mix)
    if osc is not None:
        head.add_row("osc", f"{osc.packets} packets, {osc.rejected} rejected {osc.last_error[:60]}")

    concepts = Table(title="concepts", expand=False)
    for col in ("concept", "mode", "strength", "gain"):
        concepts.add_column(col)
    for name, ctl in view["concepts"].items():
        style = {"off": "red", "on": "green", "scale": "cyan"}.get(ctl["mode"], "dim")
        concepts.add_row(name, Text(ctl["mode"], style=style), f"{ctl['strength']:.2f}", f"{ctl['gain']:.2f}")
    for index, gain in view["features"].items():
        concepts.add_row(f"feature {index}", Text("gain", style="cyan"), "", f"{gain:.2f}")
    return Group(Text(title, style="bold"), head, concepts)
