"""`musicsae collect rave`: RAVE latents (and encoder layers) of an audio folder into an activation store."""

from __future__ import annotations

import argparse


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "rave",
        help="collect RAVE latents / encoder activations from audio files",
        description="Run every audio file of --audio through a streaming RAVE export and store its deterministic "
        "latents (posterior mean) and, with --layers, encoder layer outputs (pooled per latent frame) in the "
        "activation store --out. Under torchrun each rank takes its share of the files.",
    )
    p.add_argument("--model", required=True, help="streaming RAVE .ts export")
    p.add_argument("--audio", required=True, help="folder of audio files (searched recursively) or one file")
    p.add_argument("--out", required=True, help="activation store directory (appended to; re-runs resume)")
    p.add_argument("--layers", default="latent",
                   help="comma-separated hooks: latent, encoder.net.N (default: latent); 'list' prints them")
    p.add_argument("--dtype", choices=["float32", "float16"], default="float32", help="on-disk dtype")
    p.add_argument("--chunk-seconds", type=float, default=10.0, help="audio per forward call (default 10)")
    p.add_argument("--device", default="cpu", help="cpu, cuda or cuda:N")
    p.add_argument("--threads", type=int, default=None, help="torch CPU threads")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    import torch
    from rich.console import Console
    from rich.progress import Progress

    from sae.errors import UserError
    from training.collect_rave import RaveCollectConfig, collect_rave, encoder_layers

    if args.threads:
        torch.set_num_threads(args.threads)
    if args.chunk_seconds <= 0:
        raise UserError(f"--chunk-seconds {args.chunk_seconds}: expected a positive number")
    console = Console(stderr=True)
    if args.layers.strip() == "list":
        from realtime.rave import RaveModel

        model = RaveModel.load(args.model, args.device)
        n = encoder_layers(model)
        names = ["latent", *(f"encoder.net.{i}" for i in range(n))]
        print("\n".join(names))
        return 0
    layers = tuple(x.strip() for x in args.layers.split(",") if x.strip())
    cfg = RaveCollectConfig(model=args.model, audio=args.audio, out=args.out, layers=layers, dtype=args.dtype,
                            chunk_seconds=args.chunk_seconds, device=args.device)
    with Progress(console=console, transient=True, disable=args.quiet) as progress:
        task = progress.add_task("collecting", total=None)
        report = collect_rave(cfg, lambda i, n: progress.update(task, completed=i, total=n))
    for line in report.notes.lines():
        console.print(f"note: {line}", highlight=False)
    rows = ", ".join(f"{h}: {n} rows" for h, n in report.rows.items()) or "no new rows"
    rank = f" (rank {report.rank} of {report.world_size})" if report.world_size > 1 else ""
    console.print(
        f"collected {report.collected} of {report.files} file(s){rank} into {args.out} in {report.seconds:.1f} s; "
        f"{rows}" + (f"; {report.resumed} already complete" if report.resumed else ""), highlight=False)
    return 0
