"""`musicsae models`: build small models in the real formats (RAVE `.ts`, MusicGen checkpoints)."""

from __future__ import annotations

import argparse

from training.cmd_models_musicgen import register_musicgen


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("models", help="build tiny seeded models in the real formats",
                                   description="Build tiny seeded models in the formats users bring.")
    kinds = parser.add_subparsers(dest="models_command", metavar="KIND", required=True)
    rave = kinds.add_parser(
        "rave", help="write a tiny untrained streaming RAVE .ts (acids-rave configs + `rave export --streaming`)",
        description="Build a RAVE from acids-rave's gin configs (default v2_small + causal at capacity 4), fit its "
        "latent PCA on a test signal and export it with acids-rave's own exporter. Untrained: for tests.")
    rave.add_argument("--out", required=True, help="output .ts path")
    rave.add_argument("--seed", type=int, default=0, help="weights seed (default 0)")
    rave.add_argument("--config", action="append", default=None,
                      help="acids-rave gin config, repeatable (default: v2_small, causal)")
    rave.add_argument("--capacity", type=int, default=4, help="CAPACITY binding (default 4)")
    rave.add_argument("--latent-size", type=int, default=16, help="LATENT_SIZE binding (default 16)")
    rave.add_argument("--sample-rate", type=int, default=44100, help="model sample rate (default 44100)")
    rave.add_argument("--no-streaming", action="store_true", help="export without cached convolutions")
    rave.set_defaults(func=run_rave)
    register_musicgen(kinds)


def run_rave(args: argparse.Namespace) -> int:
    from pathlib import Path

    from sae.errors import UserError
    from training.tiny_rave import RaveBuildConfig, build_tiny_rave

    if args.capacity < 1 or args.latent_size < 1 or args.sample_rate < 8000:
        raise UserError("--capacity/--latent-size must be >= 1 and --sample-rate >= 8000")
    out = Path(args.out)
    if out.suffix != ".ts":
        raise UserError(f"--out {out}: expected a path ending in .ts")
    cfg = RaveBuildConfig(configs=tuple(args.config or ("v2_small", "causal")), seed=args.seed,
                          bindings={"CAPACITY": args.capacity, "LATENT_SIZE": args.latent_size},
                          sample_rate=args.sample_rate)
    build_tiny_rave(out, cfg=cfg, streaming=not args.no_streaming)
    print(f"wrote {'streaming ' if not args.no_streaming else ''}RAVE export {out}")
    return 0
