"""`musicsae render rave`: a file through a RAVE model with concept edits from a bank."""

from __future__ import annotations

import argparse


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "rave",
        help="render an audio file through RAVE with concept edits",
        description="Stream --in block by block through the RAVE model, editing the latents in SAE space "
        "(error term kept), and write --out aligned with the input. Without --set the render is the plain "
        "model (no edit).",
    )
    p.add_argument("--in", dest="inp", required=True, help="input audio file")
    p.add_argument("--out", required=True, help="output audio file (format from the suffix)")
    p.add_argument("--model", required=True, help="streaming RAVE .ts export")
    p.add_argument("--bank", help="concept bank YAML")
    p.add_argument("--sae", help="SAE directory (default: the one the bank's concepts were found with)")
    p.add_argument("--set", dest="sets", action="append", default=[], metavar="NAME=MODE",
                   help="concept edit: NAME=off, NAME=on[:STRENGTH], NAME=scale:GAIN, NAME=none (repeatable)")
    p.add_argument("--block", type=int, default=None,
                   help="samples per model call, a multiple of the ratio (default about 16384)")
    p.add_argument("--seed", type=int, default=0, help="seed of the decoder's noise fill")
    p.add_argument("--no-align", action="store_true", help="keep the model's own delay in the output")
    p.add_argument("--threads", type=int, default=1, help="torch CPU threads (default 1)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    import torch
    from rich.console import Console
    from rich.progress import Progress

    from realtime.render_rave import render_file

    torch.set_num_threads(max(1, args.threads))
    console = Console(stderr=True)
    with Progress(console=console, transient=True) as progress:
        task = progress.add_task("rendering", total=None)
        report = render_file(args.inp, args.out, args.model, args.bank, args.sets, args.sae, args.block, args.seed,
                             not args.no_align, lambda i, n: progress.update(task, completed=i, total=n))
    for line in report.notes:
        console.print(f"note: {line}", highlight=False)
    edits = ", ".join(args.sets) or "no edit"
    console.print(f"wrote {args.out}: {report.seconds_audio:.2f} s of audio ({edits}) in {report.seconds_wall:.2f} s "
                  f"(RTF {report.rtf:.2f}, delay {report.delay} samples removed)", highlight=False)
    return 0
