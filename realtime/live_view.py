"""The rich live view of a running engine: concept states and meters, levels, CPU per block, xruns, latency,
and the last problem (a stall the engine recovered from, a model error) in plain words."""

from __future__ import annotations

import math
from typing import Any

from rich.console import Group
from rich.table import Table
from rich.text import Text

from realtime.engine import Engine, current_meters, stale

MODE_STYLES = {"off": "red", "on": "green", "clamp": "green", "scale": "cyan"}
"""The colour of a concept's mode in the view (`none`: dim)."""


def meter(peak: float, width: int = 24) -> Text:
    """A dBFS bar from -60 to 0 dB."""
    db = 20 * math.log10(peak) if peak > 1e-6 else -120.0
    filled = max(0, min(width, round((db + 60) / 60 * width)))
    style = "red" if db > -1 else "yellow" if db > -12 else "green"
    return Text("█" * filled, style=style) + Text("·" * (width - filled), style="dim") + Text(f" {db:6.1f} dB")


def presence(value: float | None, width: int = 16) -> Text:
    """A 0..1 concept meter bar."""
    if value is None:
        return Text("no probe in the bank", style="dim")
    filled = max(0, min(width, round(value * width)))
    style = "bold green" if value >= 0.5 else "green"
    return Text("█" * filled, style=style) + Text("·" * (width - filled), style="dim") + Text(f" {value:4.2f}")


PAST_S = 60.0
"""After this many seconds a last problem is shown dim, with its age: one hiccup in minute 3 read as the current
warning, in yellow, for the rest of a 3-hour set (hunt 210)."""


def clock(seconds: float) -> str:
    """H:MM:SS of `seconds`."""
    s = max(int(seconds), 0)
    return f"{s // 3600}:{s % 3600 // 60:02d}:{s % 60:02d}"


def problem(engine: Engine) -> tuple[str, str] | None:
    """(text, style) of what the performer should see first: every block failing, else the last event (dim, with
    its age, once `PAST_S` old)."""
    m = engine.model
    if engine.failing:
        return f"MODEL FAILING ({m.consecutive_errors} blocks in a row), playing dry: {m.last_error}", "bold red"
    if engine.events:
        e = engine.events[-1]
        warn = e.kind in ("resync", "late", "device")
        style = "red" if e.kind in ("error", "failing", "stuck") else "yellow" if warn else "green"
        age = engine.stream_s - e.at_s
        if age >= PAST_S and e.kind != "stuck":  # (a stuck block is said again when it returns)
            return f"{e.kind} at {e.at_s:.1f} s ({clock(age)} ago): {e.message}", "dim"
        return f"{e.kind} at {e.at_s:.1f} s: {e.message}", style
    return None


def _dry_said(engine: Engine) -> str:
    """The output the model missed while it was dry alone (bypassed, mix 0), which played the input instead (no
    underrun: nothing went silent), or nothing where there was none."""
    dry = engine.counters.dry_frames
    return f"; {1e3 * dry / engine.sr:.0f} ms late, played dry" if dry else ""


def status_line(engine: Engine, osc: Any | None = None) -> str:
    """One plain line (for logs and `--no-view`)."""
    s = engine.model.stats
    budget = engine.blocksize / engine.sr
    c, m = engine.counters, engine.model
    line = (
        f"blocks {m.blocks} ({clock(engine.stream_s)} played)  cpu {100 * s.total_s / budget:5.1f}% of block, p99.9 "
        f"{1e3 * engine.block_time_quantile(0.999):.2f} ms "
        f"(rave {1e3 * s.rave_s:.2f} ms, sae {1e3 * s.sae_s:.3f} ms, edits {1e3 * s.edit_s:.3f} ms)  "
        f"xruns {c.xruns} (device {c.device_xruns}, underruns {c.underruns}{_dry_said(engine)})  "
        f"cycles skipped {c.skipped_cycles}  "
        f"late blocks {m.late_blocks}  "
        f"resyncs {m.resyncs} (skipped {1e3 * m.skipped_frames / engine.sr:.0f} ms)  "
        f"max gap {1e3 * c.max_gap_s:.1f} ms  errors {m.errors}"
    )
    if m.errors:
        line += f" (last: {m.last_error})"
    if nonfinite := getattr(engine.processor, "nonfinite_in", 0):
        line += f"  NaN/inf input samples {nonfinite} (played as silence)"
    if engine.failing:
        line = f"MODEL FAILING: every block fails, playing dry ({m.last_error})  " + line
    if osc is not None:
        line += f"  osc {osc.packets} packets, {osc.rejected} rejected"
        if osc.last_error:  # which one and why: the sender got an /error, the performer reading this did not
            line += f" (last: {osc.last_error if len(osc.last_error) <= 200 else osc.last_error[:199] + '…'})"
    if meters := current_meters(engine):
        line += "  meters " + " ".join(f"{n} {v:.2f}" for n, v in meters.items())
    return line


def render(engine: Engine, osc: Any | None = None, title: str = "musicsae live") -> Group:
    """The whole view as one renderable (call again to refresh): what a performer switches and what went wrong
    first, the levels and counters under them, the settings that never change last, since a terminal too short
    for the whole view shows only its top (rich's live display cuts the rest)."""
    view = engine.controls.view()
    s = engine.model.stats
    c, m = engine.counters, engine.model
    budget = engine.blocksize / engine.sr

    top = Table.grid(padding=(0, 2))
    top.add_column(style="bold")
    top.add_column()
    top.add_row("mode", "BYPASS" if view["bypass"] else f"mix {view['mix']:.2f}")
    top.add_row("playing", clock(engine.stream_s))
    shown = problem(engine)
    if shown is not None:
        top.add_row("last problem", Text(shown[0], style=shown[1]))

    names = getattr(engine.processor, "meter_names", None) or []
    values = current_meters(engine)
    concepts = Table(title="concepts", expand=False)
    for col in ("concept", "mode", "strength", "gain", "in the input"):
        concepts.add_column(col)
    for name, ctl in view["concepts"].items():
        style = MODE_STYLES.get(ctl["mode"], "dim")
        concepts.add_row(
            name,
            Text(ctl["mode"], style=style),
            f"{ctl['strength']:.3g}",
            f"{ctl['gain']:.3g}",
            presence(values.get(name, 0.0)) if name in names else presence(None),
        )
    for index, gain in view["features"].items():
        concepts.add_row(f"feature {index}", Text("gain", style="cyan"), "", f"{gain:.3g}", "")  # 0.004: not 0.00

    stats = Table.grid(padding=(0, 2))
    stats.add_column(style="bold")
    stats.add_column()
    quiet = stale(engine)  # the last block's levels were shown while nothing played
    stats.add_row("input", meter(0.0 if quiet else s.in_peak))
    stats.add_row("output", meter(0.0 if quiet else s.out_peak))
    cpu = 100 * s.total_s / budget
    stats.add_row(
        "cpu / block",
        Text(
            f"{cpu:5.1f}%  rave {1e3 * s.rave_s:.2f} ms · sae {1e3 * s.sae_s:.3f} ms · edits {1e3 * s.edit_s:.3f} ms "
            f"· worst {1e3 * m.max_block_s:.2f} ms",
            style="red" if cpu > 80 else "yellow" if cpu > 50 else "green",
        ),
    )
    stats.add_row(
        "xruns",
        f"{c.xruns} (device {c.device_xruns}, underruns {c.underruns}{_dry_said(engine)}) · "
        f"cycles skipped {c.skipped_cycles} · "
        f"late blocks {m.late_blocks} · "
        f"resyncs {m.resyncs} · max callback gap {1e3 * c.max_gap_s:.1f} ms · model errors {m.errors}",
    )
    if osc is not None:
        last = osc.last_error if len(osc.last_error) <= 300 else osc.last_error[:299] + "…"  # rich wraps it
        # Text: a sender's bytes are shown as sent, never read as rich markup ('/[/x]' stopped the view)
        stats.add_row(
            "osc", Text(f"{osc.packets} packets, {osc.rejected} rejected" + (f"; last: {last}" if last else ""))
        )
    stats.add_row("latency", engine.latency.describe())
    stats.add_row(
        "block",
        f"{engine.blocksize} frames ({1e3 * budget:.1f} ms), period {engine.period}, model budget "
        f"{1e3 * engine.budget / engine.sr:.1f} ms, {engine.channels} ch @ {engine.sr} Hz",
    )
    return Group(Text(title, style="bold"), top, concepts, stats)
