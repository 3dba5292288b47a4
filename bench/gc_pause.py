"""Benchmark: how long a garbage-collection pass holds the GIL (and so the audio callback) with the live stack
loaded, without and with `gc.freeze()` (what the engine does after set-up, `realtime/engine.py` `_GcGuard`).

Loads what `musicsae live` loads (demo model + shipped concepts, SAE, processor, OSC, the live view), then times
full passes (`gc.collect(2)`) on that heap as it is (the baseline: what an automatic full pass costs), then
frozen; then streams `--blocks` blocks through the engine in file mode (OSC-free: the model thread's own garbage)
and times the engine's periodic passes (gen 0 every block, gen 1 every 64, gen 2 every 8192) on what survived
since the freeze. Figures are printed, never asserted.

    .venv/bin/python bench/gc_pause.py
    .venv/bin/python bench/gc_pause.py --blocks 4000 --blocksize 512
"""

from __future__ import annotations

import argparse
import gc
import os
import sys
import time
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from training.cli.args import Parser, positive_int  # noqa: E402

PROG = "bench/gc_pause.py"
DEMO = ROOT / "training" / "assets" / "demo_rave.ts"
DEMO_BANK = ROOT / "training" / "assets" / "demo_concepts.yaml"


def _times(generation: int, repeats: int) -> list[float]:
    out = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        gc.collect(generation)
        out.append(1e3 * (time.perf_counter() - t0))
    return out


def _show(label: str, ms: list[float]) -> float:
    print(f"  {label}: median {np.median(ms):.2f} ms, max {max(ms):.2f} ms over {len(ms)} passes", flush=True)
    return float(np.median(ms))


def main() -> None:
    p = Parser(prog=PROG, description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", type=Path, default=DEMO)
    p.add_argument("--bank", type=Path, default=DEMO_BANK)
    p.add_argument("--blocksize", type=positive_int, default=512)
    p.add_argument(
        "--blocks", type=positive_int, default=2000, help="blocks streamed before timing the engine's passes"
    )
    p.add_argument("--repeats", type=positive_int, default=5)
    args = p.parse_args()
    torch.set_num_threads(1)
    import rich.live  # noqa: F401  (what the live command has loaded too)

    from realtime import osc  # noqa: F401
    from realtime.audio_io import run_file
    from realtime.session import LiveConfig, build_live

    load = os.getloadavg()
    session = build_live(LiveConfig(args.model, bank=args.bank, blocksize=args.blocksize, headroom=1.0))
    engine = session.engine
    gc.collect()
    print(f"live stack loaded: {len(gc.get_objects())} tracked objects; load average {load[0]:.1f} "
          f"({os.cpu_count()} CPUs, shared)")  # fmt: skip
    base = _show("full pass, not frozen (baseline)", _times(2, args.repeats))
    gc.freeze()
    print(f"frozen: {gc.get_freeze_count()} objects left out of collections")
    frozen = _show("full pass, frozen", _times(2, args.repeats))
    gc.unfreeze()
    sr = engine.sr
    data = (0.3 * np.sin(2 * np.pi * 220 * np.arange(args.blocks * args.blocksize) / sr)).astype(np.float32)
    with engine:  # freezes, collects young garbage between blocks
        run_file(engine, np.repeat(data[:, None], engine.channels, axis=1))  # the same tone on every channel
        tracked = len(gc.get_objects())
        print(f"after {engine.model.blocks} blocks streamed: {tracked} tracked objects outside the freeze")
        young = _show("gen 0 pass (every block)", _times(0, args.repeats))
        mid = _show("gen 1 pass (every 64 blocks)", _times(1, args.repeats))
        full = _show("full pass on what is not frozen (every 8192 blocks)", _times(2, args.repeats))
    ms = 1e3 * args.blocksize / sr
    print(
        f"full pass {base:.1f} ms not frozen → {frozen:.2f} ms frozen (ratio {base / max(frozen, 0.01):.0f}x at the "
        f"0.01 ms timer floor); the engine's passes take "
        f"{young:.2f} / {mid:.2f} / {full:.2f} ms of a {ms:.1f} ms block; load average {os.getloadavg()[0]:.1f}"
    )


if __name__ == "__main__":
    from training.cli.main import guarded

    sys.exit(guarded(PROG, main))  # a UserError (a missing model, an unknown hook) is one line, exit 2
