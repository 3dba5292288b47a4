"""`musicsae export nn`: the RAVE, the SAE and a switch per concept as one TorchScript file for nn~."""

from __future__ import annotations

import argparse
from pathlib import Path

from training.cli.args import add_threads, comma_names, gate_levels, meter_seconds


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "nn",
        help="write one nn~ model (Max/MSP, Pure Data): RAVE + SAE + one attribute per concept",
        description="Write a TorchScript file IRCAM's nn~ loads: methods forward (audio -> steered audio), encode "
        "(audio -> posterior-mean latents), decode (latents -> steered audio) and meter (audio -> one signal per "
        "concept, when the bank stores calibrated probes); one attribute per concept taking a mode and a value "
        "([set guitar off 0( / [set guitar on 2( / [set guitar clamp 2(, modes none|off|on|clamp|scale), plus mix, "
        "bypass, gate (0/1) and gate_db (lo hi). Concepts on an inner layer (encoder.net.N, decoder.net.N) run the "
        "model in two parts around it.",
    )
    p.add_argument("--model", type=Path, required=True, help="streaming RAVE .ts export")
    p.add_argument("--bank", type=Path, required=True, help="concept bank YAML")
    p.add_argument("--concepts", help="comma-separated concept names (default: every concept found on --model)")
    p.add_argument("--sae", type=Path, help="SAE directory (default: the one the concepts were found with)")
    p.add_argument("--out", type=Path, required=True, help="the .ts file to write")
    p.add_argument(
        "--meter-seconds",
        type=meter_seconds,
        default=0.5,
        help="time constant of the meter's running mean, in seconds (default 0.5)",
    )
    p.add_argument(
        "--gate-db",
        type=gate_levels,
        default=(-60.0, -45.0),
        metavar="LO,HI",
        help="edits act on frames louder than LO dBFS, fully above HI (default: --gate-db=-60,-45; the file's "
        "gate_db attribute)",
    )
    p.add_argument("--no-gate", action="store_true", help="start with the gate off (the file's gate attribute 0)")
    add_threads(p)
    p.set_defaults(func=run_nn)


def run_nn(args: argparse.Namespace) -> int:
    import torch

    from sae.errors import UserError
    from sae.steering import Gate
    from training.cli.quiet import new_console
    from training.rave.nn_export import NnExportConfig, export_nn

    torch.set_num_threads(args.threads)
    console = new_console(stderr=True, soft_wrap=True)

    def say(line: str) -> None:
        console.print(line, highlight=False, markup=False)

    names = list(comma_names(args.concepts)) if args.concepts is not None else None
    if names == []:
        raise UserError(f"--concepts {args.concepts!r}: no concept names (leave it out for every concept on --model)")
    gate = Gate(*args.gate_db, enabled=not args.no_gate)
    cfg = NnExportConfig(args.model, args.bank, args.out, names, args.sae, args.meter_seconds, gate)
    report = export_nn(cfg, say=say)
    for name, attr in report.attributes.items():
        note = "" if name == attr else f"  (concept {name!r})"
        say(f"attribute {attr}: mode none|off|on|clamp|scale, value{note}")
    state = "on" if gate.enabled else "off"
    say(f"attribute gate: {state} (edits act above {gate.lo_db:g} dBFS, fully above {gate.hi_db:g}: gate_db)")
    if report.hook != "latent":
        say(f"the SAE edits {report.hook}: the model runs in two parts around it")
    methods = ", ".join(f"{m} {p}" for m, p in report.methods.items())
    say(f"methods [in_dim, in_ratio, out_dim, out_ratio]: {methods}")
    if not report.meters:
        say("no meter method: the bank's concepts carry no calibrated probe")
    say(
        f"wrote {report.out} in {report.seconds:.1f} s: {report.sample_rate} Hz, {report.ratio} samples per latent "
        f"frame, model delay {report.delay} samples ({1000 * report.delay / report.sample_rate:.1f} ms, where its "
        f"notes come out; the dry signal of mix is delayed by as much; first response {report.first_response} = "
        f"{1000 * report.first_response / report.sample_rate:.1f} ms)"
    )
    return 0
