"""Restart soak: `musicsae live` started again and again on one JACK server (dummy backend), each run returning
audio callbacks 7–20 ms late every quarter second while a JACK probe measures bypassed impulses. Prints, per
run, each impulse's delay against the latency `live` printed (0: in place; +256: a period late, a lost cycle
not seen; −256: a period early, a cycle counted that nobody skipped) and the cycles the engine counted as
skipped; then how many runs had an early impulse and the spread of the counts. Figures, never a verdict.

    .venv/bin/python bench/live_restart.py                 # 12 runs on one server, the tiny RAVE
    .venv/bin/python bench/live_restart.py --fresh --runs 8   # a new server per run
"""

from __future__ import annotations

import argparse
import re
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from realtime.jackd import JackServer  # noqa: E402
from realtime.latency import LatencyProbe  # noqa: E402
from training.cli.args import Parser, positive_int  # noqa: E402

PROG = "bench/live_restart.py"


def _run(server: JackServer, model: Path) -> tuple[list[int], int]:
    """(each impulse's delay minus the printed latency, cycles the engine counted as skipped) of one `live`."""
    cmd = [sys.executable, "-m", "training.cli", "live", "--device", "system", "--no-view", "--model", str(model),
           "--blocksize", "1024", "--bypass", "--no-osc", "--duration", "60", "--inject-stalls", "0.007,0.012,0.02",
           "--inject-into", "callback", "--inject-every", "0.25"]  # fmt: skip
    proc = subprocess.Popen(cmd, env=server.env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=ROOT)
    computed = None
    for line in proc.stdout:
        if line.startswith("latency"):
            computed = int(re.match(r"latency (\d+)", line).group(1))
        if line.startswith("streaming"):
            break
    if computed is None:
        proc.kill()
        raise SystemExit(f"live did not start: {proc.stderr.read().strip()[-400:]}")
    delays = LatencyProbe(server.name, "PortAudio:in_0", "PortAudio:out_0", seconds=5.0).run(spacing=0.25).delays
    proc.terminate()
    out, _ = proc.communicate(timeout=30)
    return [d - computed for d in delays], sum(int(m) for m in re.findall(r"skipped (\d+) cycle", out))


def main() -> None:
    p = Parser(prog=PROG, description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--runs", type=positive_int, default=12)
    p.add_argument("--fresh", action="store_true", help="a new JACK server for every run")
    p.add_argument("--model", type=Path, help="a RAVE .ts (default: the tiny RAVE, built here)")
    args = p.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        model = args.model
        if model is None:
            from training.rave.tiny_model import build_tiny_rave

            model = build_tiny_rave(Path(tmp) / "tiny_rave.ts", seed=0)
        shared = None if args.fresh else JackServer(sr=44100, period=256).start()
        early, counts = 0, []
        try:
            for i in range(args.runs):
                server = shared or JackServer(sr=44100, period=256).start()
                try:
                    rel, skipped = _run(server, model)
                finally:
                    if shared is None:
                        server.stop()
                early += any(r < 0 for r in rel)
                counts.append(skipped)
                print(f"run {i}: impulses {len(rel)}, delay − printed latency {rel}, cycles skipped {skipped}",
                      flush=True)  # fmt: skip
        finally:
            if shared is not None:
                shared.stop()
    print(f"{'a new server per run' if args.fresh else 'one server'}: {early} of {args.runs} runs had an impulse "
          f"a period early; cycles counted as skipped {min(counts)}–{max(counts)}")  # fmt: skip


if __name__ == "__main__":
    from training.cli.main import guarded

    sys.exit(guarded(PROG, main))  # a UserError (a missing model, an unknown hook) is one line, exit 2
