"""Benchmark: the OSC thread's cost per packet, by kind, with the shipped concept bank and SAE.

Every packet that changes a control composes a new edit snapshot (`sae.steering.EditState.edit`) on the OSC
thread, which holds the GIL meanwhile: under a controller's burst that time is taken from the model thread and
the audio callback. Times `OscControl.handle` (parse, apply, compose, replies) for a query that composes nothing
(`/ping`: the baseline) and for packets that do, and prints microseconds per packet and the ratio to the
baseline. Figures are printed, never asserted.

    .venv/bin/python bench/osc_packets.py
    .venv/bin/python bench/osc_packets.py --packets 20000
"""

from __future__ import annotations

import statistics
import sys
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from realtime.controls import Controls  # noqa: E402
from realtime.osc import OscControl, encode_message  # noqa: E402
from sae.bank import ConceptBank  # noqa: E402
from sae.io import load_sae  # noqa: E402
from sae.steering import EditState  # noqa: E402
from training.cli.args import Parser, positive_int  # noqa: E402

PROG = "bench/osc_packets.py"
ASSETS = ROOT / "training" / "assets"


def per_packet_us(control: OscControl, packets: list[bytes], repeats: int) -> float:
    """Median over `repeats` passes of the mean time per packet, in microseconds."""
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        for p in packets:
            control.handle(p)
        times.append(1e6 * (time.perf_counter() - t0) / len(packets))
    return statistics.median(times)


def main() -> None:
    parser = Parser(prog=PROG, description=__doc__.split("\n\n")[0])
    parser.add_argument("--packets", type=positive_int, default=4000, help="packets per pass (default 4000)")
    parser.add_argument(
        "--repeats", type=positive_int, default=5, help="passes per kind; the median is printed (default 5)"
    )
    args = parser.parse_args()
    torch.set_num_threads(1)
    bank = ConceptBank.load(ASSETS / "demo_concepts.yaml")
    sae = load_sae(ASSETS / "demo_sae")
    control = OscControl(Controls(EditState.from_concepts(sae.cfg.d_sae, bank.concepts)))
    names = list(bank.concepts)
    n = args.packets
    kinds = {
        "/ping (baseline)": [encode_message("/ping", [i]) for i in range(n)],
        "/mix": [encode_message("/mix", [i / n]) for i in range(n)],
        "/concept/<c>/mode": [
            encode_message(f"/concept/{names[i % len(names)]}/mode", ["off" if i % 2 else "on:2"]) for i in range(n)
        ],
        "/feature/<i>/gain": [encode_message(f"/feature/{i % sae.cfg.d_sae}/gain", [0.5]) for i in range(n)],
    }
    print(f"{len(names)} concepts, d_sae {sae.cfg.d_sae}, {n} packets x {args.repeats} passes, one thread")
    base = None
    for kind, packets in kinds.items():
        us = per_packet_us(control, packets, args.repeats)
        base = base or us
        print(f"{kind:<20} {us:8.1f} us/packet  ratio {us / base:5.2f}x  ({1e6 / us:,.0f} packets/s)")
    print(f"rejected {control.rejected} of {control.packets} packets")


if __name__ == "__main__":
    from training.cli.main import guarded

    sys.exit(guarded(PROG, main))  # a UserError (a missing model, an unknown hook) is one line, exit 2
