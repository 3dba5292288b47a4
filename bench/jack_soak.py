"""Soak: `musicsae live` on a private JACK server (dummy backend, clocked like a sound card) for a long run
with OSC traffic, concept meters and injected model-thread stalls, measuring what a performer would hear.

- OSC traffic: every 20 ms a valid control change (concept modes / strengths, raw feature gains, mix), every
  second a `/state` query plus a deliberately bad message; the traffic client is the engine's last client,
  so it also receives `/meter/<name>` (at `--meter-rate`) and `/event` messages.
- Fault injection: the model thread sleeps `--stalls` seconds in turn every `--stall-every` seconds (default
  250 ms and 1 s, every minute).
- Alignment: the engine runs bypassed (the model, the SAE, the edits and the meters still run every block;
  the dry path shares the engine's timeline with the wet one) while a JACK probe fires an impulse every 0.5 s
  and measures each one's input→output delay on the JACK clock. Per stall: when it was reported, the input
  skipped, and the measured delay of the impulses after it. Bypassed, the audio callback plays the input where
  the model's output is late (hunt 209): the events say no output lost (the README's per-stall losses predate
  it), and the status line's "ms late, played dry" totals what the wet path would have lost.

Baseline, measured first in the same run and on the same JACK server: a plain `sounddevice` duplex stream
whose callback only copies input to output (no model, no OSC), for as long as the engine soak: what the
platform (VM scheduling, JACK's dummy clock, Python callbacks) costs on its own (`--no-baseline` skips it).
Figures are printed, never asserted. The machine's load average is printed at start and end.

    .venv/bin/python bench/jack_soak.py                   # 10 minutes, demo model + demo concepts, auto block
    .venv/bin/python bench/jack_soak.py --short           # 30 s
    .venv/bin/python bench/jack_soak.py --period 128 --minutes 10
    MUSICSAE_GC_FREEZE=0 .venv/bin/python bench/jack_soak.py --short --no-baseline   # without gc.freeze
"""

from __future__ import annotations

import argparse
import os
import random
import re
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from pythonosc.osc_message import OscMessage  # noqa: E402

from realtime.jackd import JackServer  # noqa: E402
from realtime.osc import encode_message  # noqa: E402
from training.cli.args import Parser, integer, nonneg_int, positive_float, positive_int  # noqa: E402

PROG = "bench/jack_soak.py"
DEMO = ROOT / "training" / "assets" / "demo_rave.ts"
DEMO_BANK = ROOT / "training" / "assets" / "demo_concepts.yaml"

PASSTHROUGH = """
import sys, time
import numpy as np
import sounddevice as sd
seconds, sr, period = float(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3])
state = {"xruns": 0, "calls": 0, "last": 0.0, "gap": 0.0}
def callback(indata, outdata, frames, time_info, status):
    now = time.perf_counter()
    if state["last"]:
        state["gap"] = max(state["gap"], now - state["last"])
    state["last"] = now
    state["calls"] += 1
    if status:
        state["xruns"] += 1
    outdata[:] = indata
sys.setswitchinterval(0.001)
with sd.Stream(samplerate=sr, blocksize=period, device="system", channels=1, dtype="float32", latency="low",
               callback=callback):
    time.sleep(seconds)
print(f"passthrough callbacks {state['calls']} xruns {state['xruns']} max gap {1e3 * state['gap']:.1f} ms")
"""


def _baseline(jack: JackServer, seconds: float, sr: int, period: int) -> tuple[int, float]:
    """(device xruns, max callback gap in ms) of a copy-only duplex stream on the same server."""
    run = subprocess.run([sys.executable, "-c", PASSTHROUGH, str(seconds), str(sr), str(period)], env=jack.env,
                         capture_output=True, text=True, timeout=seconds + 60)  # fmt: skip
    found = re.search(r"xruns (\d+) max gap ([\d.]+) ms", run.stdout)
    if run.returncode != 0 or not found:
        raise SystemExit(f"baseline stream failed: {run.stderr.strip()[-400:]}")
    print(run.stdout.strip(), flush=True)
    return int(found.group(1)), float(found.group(2))


def _model(path: Path | None, tmp: Path) -> Path:
    if path is not None:
        return path
    if DEMO.exists():
        return DEMO
    from training.rave.tiny_model import build_tiny_rave

    print("demo model not found: building the tiny RAVE", flush=True)
    return build_tiny_rave(tmp / "tiny_rave.ts")


def _sample_rate(model: Path) -> int:
    from realtime.rave import RaveModel

    return RaveModel(model).sr


def _random_bank(model: Path, tmp: Path) -> Path:
    """A random TopK SAE on the model's latent (expansion 16) and a bank of two concepts with probes."""
    import torch

    from realtime.rave import RaveModel
    from sae.bank import Concept, ConceptBank, ConceptDefault, ConceptFeature, ConceptProbe, ModelRef
    from sae.io import save_sae
    from sae.model import SAEConfig, SparseAutoencoder

    latent = RaveModel(model).latent_size
    torch.manual_seed(0)
    save_sae(SparseAutoencoder(SAEConfig(d_in=latent, d_sae=16 * latent, k=8, hook_name="latent")), tmp / "sae")
    bank = ConceptBank(tmp / "concepts.yaml")
    ref = ModelRef.of_file(model)
    for i, name in enumerate(("alpha", "beta")):
        feats = [ConceptFeature(j, 1.0, 1.5) for j in range(i, 8, 2)]
        probe = ConceptProbe(-1.0, {f.index: 0.5 for f in feats})
        bank.add(Concept(name, ref, "latent", "sae", feats, ConceptDefault("none", 1.0), probe=probe))
    return bank.save()


class Traffic(threading.Thread):
    """Sends OSC control changes and queries; collects /state/xruns, /error, /event and /meter replies."""

    def __init__(self, port: int, concepts: list[str]):
        super().__init__(daemon=True)
        self.port, self.concepts = port, concepts
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.settimeout(0.02)
        self.sent = self.errors = self.meters = 0
        self.events: list[tuple[float, list]] = []
        self.xruns_reported: list[int] = []
        self.running = True
        self.rng = random.Random(0)

    def _message(self) -> bytes:
        r = self.rng
        choice = r.random()
        if self.concepts and choice < 0.4:
            name = r.choice(self.concepts)
            return r.choice([
                encode_message(f"/concept/{name}/mode", [r.choice(["none", "on", "off", "scale"])]),
                encode_message(f"/concept/{name}/strength", [r.uniform(0, 4)]),
                encode_message(f"/concept/{name}/gain", [r.uniform(0, 2)]),
            ])  # fmt: skip
        if choice < 0.7:
            return encode_message(f"/feature/{r.randrange(8)}/gain", [r.uniform(0, 2)])
        return encode_message("/mix", [r.uniform(0.5, 1.0)])

    def run(self) -> None:
        target = ("127.0.0.1", self.port)
        last_query = time.monotonic()
        while self.running:
            self.sock.sendto(self._message(), target)
            self.sent += 1
            if time.monotonic() - last_query > 1.0:
                last_query = time.monotonic()
                self.sock.sendto(encode_message("/state", []), target)
                self.sock.sendto(encode_message("/mix", [7.0]), target)  # out of range: an /error reply
                self.sent += 2
            deadline = time.monotonic() + 0.02
            while time.monotonic() < deadline:
                try:
                    data, _ = self.sock.recvfrom(65536)
                except TimeoutError:
                    continue
                msg = OscMessage(data)
                if msg.address == "/state/xruns":
                    self.xruns_reported.append(int(msg.params[0]))
                elif msg.address == "/error":
                    self.errors += 1
                elif msg.address == "/event":
                    self.events.append((time.monotonic(), list(msg.params)))
                elif msg.address.startswith("/meter/"):
                    self.meters += 1


def _impulse_delays(
    rec: np.ndarray, impulses: list[int], fired: dict[int, int], spacing: int
) -> list[tuple[int, int | None]]:
    """(position, delay or None) per impulse, counted from where it went out (`LatencyProbe.fired`: a cycle the probe
    missed sends it in the next one; counted from its position, that delay read longer than it was)."""
    out = []
    for at in impulses:
        sent = fired.get(at)
        hits = np.nonzero(np.abs(rec[sent : sent + spacing]) > 0.5)[0] if sent is not None else []
        out.append((at, int(hits[0]) if len(hits) else None))
    return out


def main() -> None:
    p = Parser(prog=PROG, description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", type=Path)
    p.add_argument("--bank", type=Path, help="concept bank (default: the demo concepts, else a random SAE)")
    p.add_argument("--minutes", type=positive_float, default=10.0)
    p.add_argument("--short", action="store_true", help="30 seconds (CI)")
    p.add_argument("--blocksize", type=positive_int, help="model block (default: the engine's own measured choice)")
    p.add_argument("--period", type=positive_int, default=256, help="JACK period and audio callback size")
    p.add_argument("--headroom", type=positive_float)
    p.add_argument("--stalls", default="0.25,1", help="injected model-thread stalls in seconds, in turn ('' = none)")
    p.add_argument("--stall-every", type=positive_float, default=60.0, help="seconds between stalls")
    p.add_argument("--meter-rate", type=positive_float, default=20.0)
    p.add_argument("--no-baseline", action="store_true", help="skip the copy-only baseline stream")
    p.add_argument("--rt-priority", type=integer, help="the model thread's (live's --rt-priority; 0: normal)")
    p.add_argument("--busy", type=nonneg_int, default=0, help="busy-loop processes running all along (a busy laptop)")
    args = p.parse_args()
    seconds = 30.0 if args.short else args.minutes * 60
    stall_every = min(args.stall_every, 10.0) if args.short else args.stall_every
    load_start = os.getloadavg()

    hogs = [subprocess.Popen([sys.executable, "-c", "while True: pass"]) for _ in range(args.busy)]
    try:
        _soak(args, seconds, stall_every, load_start)
    finally:
        for hog in hogs:
            hog.kill()
            hog.wait()


def _soak(args: argparse.Namespace, seconds: float, stall_every: float, load_start: tuple[float, ...]) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        model = _model(args.model, Path(tmp))
        sr = _sample_rate(model)
        bank = args.bank or (DEMO_BANK if model == DEMO and DEMO_BANK.exists() else _random_bank(model, Path(tmp)))
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        with JackServer(sr=sr, period=args.period) as jack:
            base = None
            if not args.no_baseline:
                print(f"baseline: copy-only duplex stream for {seconds:.0f} s", flush=True)
                base = _baseline(jack, seconds, sr, args.period)
            cmd = [sys.executable, "-m", "training.cli", "live", "--model", str(model), "--device", "system",
                   "--period", str(args.period), "--osc-port", str(port), "--no-view", "--bypass", "--duration",
                   str(seconds + 3), "--bank", str(bank), "--meter-rate", str(args.meter_rate)]  # fmt: skip
            if args.blocksize:
                cmd += ["--blocksize", str(args.blocksize)]
            if args.headroom:
                cmd += ["--headroom", str(args.headroom)]
            if args.rt_priority is not None:
                cmd += ["--rt-priority", str(args.rt_priority)]
            if args.stalls:
                cmd += ["--inject-stalls", args.stalls, "--inject-every", str(stall_every)]
            proc = subprocess.Popen(cmd, env=jack.env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                                    cwd=ROOT)  # fmt: skip
            concepts: list[str] = []
            computed = None
            for line in proc.stdout:
                print(line, end="", flush=True)
                if "concepts:" in line:
                    names = line.split("concepts:", 1)[1].strip()
                    concepts = [] if names == "none" else [n.strip() for n in names.split(",")]
                if line.startswith("latency"):
                    computed = int(re.match(r"latency (\d+) samples", line).group(1))
                    break
            else:
                raise SystemExit(f"live did not start: {proc.stderr.read()[-800:]}")
            lines: list[str] = []
            reader = threading.Thread(target=lambda: lines.extend(proc.stdout), daemon=True)
            reader.start()
            traffic = Traffic(port, concepts)
            traffic.start()
            t0 = time.monotonic()
            from realtime.latency import LatencyProbe

            probe = LatencyProbe(jack.name, "PortAudio:in_0", "PortAudio:out_0", seconds=seconds)
            spacing = sr // 2
            probe.impulses = list(range(sr, len(probe.rec) - spacing, spacing))
            probe._record()
            delays = _impulse_delays(probe.rec, probe.impulses, probe.fired, spacing)
            proc.wait(timeout=120)
            reader.join(timeout=5)
            err = proc.stderr.read()
            traffic.running = False
            traffic.join(timeout=2)
            took = time.monotonic() - t0
    load_end = os.getloadavg()
    for line in lines:
        print(line, end="")
    priority = next((line.strip() for line in lines if line.startswith("model thread:")), "model thread: ?")
    final = [line for line in lines if line.startswith("blocks")]
    summary = final[-1] if final else ""
    ms = 1000.0 / sr
    xruns = re.search(r"xruns (\d+) \(device (\d+), underruns (\d+)(?:; (\d+) ms late, played dry)?\)", summary)
    gap = re.search(r"max gap ([\d.]+) ms", summary)
    late = re.search(r"late blocks (\d+)", summary)
    cycles = re.search(r"cycles skipped (\d+)", summary)
    p999 = re.search(r"p99\.9 ([\d.]+) ms", summary)
    print(f"\nsoak: {took:.0f} s, JACK period {args.period} ({args.period * ms:.1f} ms), load average "
          f"{load_start[0]:.1f} at start, {load_end[0]:.1f} at end ({os.cpu_count()} CPUs, shared; {args.busy} busy "
          f"loop(s)); {priority}")  # fmt: skip
    if xruns:
        dry = f", {xruns.group(4)} ms of late output played dry" if xruns.group(4) else ""
        print(f"  xruns {xruns.group(1)} (device {xruns.group(2)}, underruns {xruns.group(3)}{dry}), device cycles the "
              f"callback missed {cycles.group(1) if cycles else '?'} (followed), late blocks "
              f"{late.group(1) if late else '?'}, max callback gap {gap.group(1) if gap else '?'} ms, model "
              f"compute p99.9 {p999.group(1) if p999 else '?'} ms")  # fmt: skip
    if base is not None:
        print(f"  baseline (copy-only stream, same server, same length): xruns {base[0]}, max callback gap "
              f"{base[1]:.1f} ms")  # fmt: skip
    measured = [d for _, d in delays if d is not None]
    if computed is not None:
        exact = sum(1 for d in measured if d == computed)
        print(f"  latency: computed {computed} samples = {computed * ms:.1f} ms; measured on {len(measured)} of "
              f"{len(delays)} impulses: {exact} exactly that, median {np.median(measured) if measured else '?'}, "
              f"others {sorted({d for d in measured if d != computed})[:8]}")  # fmt: skip
    resyncs = [(t - t0, e) for t, e in traffic.events if e and e[0] == "resync"]
    print(f"  stalls injected: {args.stalls or 'none'} every {stall_every:g} s; resync events {len(resyncs)}; "
          f"all events: {', '.join(sorted({e[0] for _, e in traffic.events})) or 'none'}")  # fmt: skip
    for when, e in resyncs[:10]:  # the first ten; a busy machine can make hundreds
        after = [(at, d) for at, d in delays if at / sr > when + 0.5][:3]
        print(f"    at {when:6.1f} s: {e[2]}; output lost {e[1]:.0f} ms; next impulses measured "
              f"{[d for _, d in after]} (computed {computed})")  # fmt: skip
    if len(resyncs) > 10:
        print(f"    ... and {len(resyncs) - 10} more resyncs")
    print(f"  OSC: {traffic.sent} messages sent, {traffic.errors} /error replies (rate-limited), {traffic.meters} "
          f"meter messages ({traffic.meters / max(took, 1e-9):.0f}/s), xruns reported over OSC: "
          f"{traffic.xruns_reported[-1] if traffic.xruns_reported else '?'}")  # fmt: skip
    if proc.returncode not in (0, None):
        print(f"  live exited {proc.returncode}: {err.strip()[-400:]}")


if __name__ == "__main__":
    from training.cli.main import guarded

    sys.exit(guarded(PROG, main))  # a UserError (a missing model, an unknown hook) is one line, exit 2
