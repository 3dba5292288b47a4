"""Soak: `musicsae live` on a private JACK server (dummy backend, clocked like a sound card) for a long run
while OSC traffic flows, counting xruns and the longest gap between audio callbacks.

OSC traffic: every 20 ms a valid control change (concept modes / strengths, raw feature gains, mix), and
every second a `/state` query (its reply carries the engine's xrun count) plus a deliberately bad message.
Goal from the issue: 0 xruns at block 2048 on an idle machine. Figures are printed, never asserted.

Baseline, measured first in the same run and on the same JACK server: a plain `sounddevice` duplex stream
whose callback only copies input to output (no model, no OSC), for as long as the engine soak. Its device
xruns and callback gaps are what the platform (VM scheduling, JACK's dummy clock, Python callbacks) costs
on its own, so the engine's figures can be read against them (`--no-baseline` skips it).

    .venv/bin/python bench/jack_soak.py                  # 10 minutes, demo model if present, else a tiny RAVE
    .venv/bin/python bench/jack_soak.py --short          # 30 s
    .venv/bin/python bench/jack_soak.py --model m.ts --bank concepts.yaml --minutes 60 --blocksize 2048
"""

from __future__ import annotations

import argparse
import random
import re
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from pythonosc.osc_message import OscMessage  # noqa: E402

from realtime.jackd import JackServer  # noqa: E402
from realtime.osc import encode_message  # noqa: E402

DEMO = ROOT / "training" / "assets" / "demo_rave.ts"


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
    """A random TopK SAE on the model's latent (expansion 16) and a bank of two concepts: realistic load."""
    import torch

    from realtime.rave import RaveModel
    from sae.bank import Concept, ConceptBank, ConceptDefault, ConceptFeature, ModelRef
    from sae.io import save_sae
    from sae.model import SAEConfig, SparseAutoencoder

    latent = RaveModel(model).latent_size
    torch.manual_seed(0)
    save_sae(SparseAutoencoder(SAEConfig(d_in=latent, d_sae=16 * latent, k=8, hook_name="latent")), tmp / "sae")
    bank = ConceptBank(tmp / "concepts.yaml")
    ref = ModelRef.of_file(model)
    for i, name in enumerate(("alpha", "beta")):
        feats = [ConceptFeature(j, 1.0, 1.5) for j in range(i, 8, 2)]
        bank.add(Concept(name, ref, "latent", "sae", feats, ConceptDefault("none", 1.0)))
    return bank.save()


class Traffic(threading.Thread):
    """Sends OSC control changes and queries; collects /state/xruns and /error replies."""

    def __init__(self, port: int, concepts: list[str]):
        super().__init__(daemon=True)
        self.port, self.concepts = port, concepts
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.settimeout(0.02)
        self.sent = self.errors = 0
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


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", type=Path)
    p.add_argument("--bank", type=Path, help="concept bank (default: a random SAE and two concepts)")
    p.add_argument("--minutes", type=float, default=10.0)
    p.add_argument("--short", action="store_true", help="30 seconds (CI)")
    p.add_argument("--blocksize", type=int, default=2048)
    p.add_argument("--period", type=int, default=256, help="JACK period and audio callback size")
    p.add_argument("--headroom", type=float, default=1.0)
    p.add_argument("--no-baseline", action="store_true", help="skip the copy-only baseline stream")
    args = p.parse_args()
    seconds = 30.0 if args.short else args.minutes * 60

    with tempfile.TemporaryDirectory() as tmp:
        model = _model(args.model, Path(tmp))
        sr = _sample_rate(model)
        bank = args.bank or _random_bank(model, Path(tmp))
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        with JackServer(sr=sr, period=args.period) as jack:
            base = None
            if not args.no_baseline:
                print(f"baseline: copy-only duplex stream for {seconds:.0f} s", flush=True)
                base = _baseline(jack, seconds, sr, args.period)
            cmd = [sys.executable, "-m", "training.cli", "live", "--model", str(model), "--device", "system",
                   "--blocksize", str(args.blocksize), "--period", str(args.period), "--headroom", str(args.headroom),
                   "--osc-port", str(port), "--no-view", "--duration", str(seconds), "--bank", str(bank)]  # fmt: skip
            proc = subprocess.Popen(cmd, env=jack.env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                                    cwd=ROOT)  # fmt: skip
            concepts: list[str] = []
            for line in proc.stdout:
                print(line, end="", flush=True)
                if "concepts:" in line:
                    names = line.split("concepts:", 1)[1].strip()
                    concepts = [] if names == "none" else [n.strip() for n in names.split(",")]
                if line.startswith("latency"):
                    break
            else:
                raise SystemExit(f"live did not start: {proc.stderr.read()[-800:]}")
            traffic = Traffic(port, concepts)
            t0 = time.monotonic()
            traffic.start()
            out, err = proc.communicate(timeout=seconds + 120)
            traffic.running = False
            traffic.join(timeout=2)
            took = time.monotonic() - t0
    print(out, end="")
    final = [line for line in out.splitlines() if line.startswith("blocks")]
    summary = final[-1] if final else ""
    xruns = re.search(r"xruns (\d+)", summary)
    gap = re.search(r"max gap ([\d.]+) ms", summary)
    budget_ms = 1e3 * args.blocksize / sr
    print(f"\nsoak: {took:.0f} s at block {args.blocksize} ({budget_ms:.1f} ms), JACK period {args.period}")
    print(f"  xruns: {xruns.group(1) if xruns else '?'}   max callback gap: {gap.group(1) if gap else '?'} ms "
          f"(period {1e3 * args.period / sr:.1f} ms, ratio {float(gap.group(1)) / (1e3 * args.period / sr):.1f}x)"
          if gap else "  no final status line")  # fmt: skip
    if base is not None:
        print(
            f"  baseline (copy-only stream, same server, same length): xruns {base[0]}   max callback gap "
            f"{base[1]:.1f} ms"
        )
    print(
        f"  OSC: {traffic.sent} messages sent, {traffic.errors} /error replies (rate-limited), "
        f"xruns reported over OSC: {traffic.xruns_reported[-1] if traffic.xruns_reported else '?'}"
    )
    if proc.returncode not in (0, None):
        print(f"  live exited {proc.returncode}: {err.strip()[-400:]}")


if __name__ == "__main__":
    main()
