"""`musicsae models`: build small models in the real formats (RAVE `.ts`, MusicGen checkpoints)."""

from __future__ import annotations

import argparse

from training.cli.args import integer, seed_int


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "models",
        help="build tiny seeded models in the real formats",
        description="Build tiny seeded models in the formats users bring.",
    )
    kinds = parser.add_subparsers(dest="models_command", metavar="KIND", required=True)
    rave = kinds.add_parser(
        "rave",
        help="write a tiny untrained streaming RAVE .ts (acids-rave configs + `rave export --streaming`)",
        description="Build a RAVE from acids-rave's gin configs (default v2_small + causal at capacity 4), fit its "
        "latent PCA on a test signal and export it with acids-rave's own exporter. Untrained: for tests.",
    )
    rave.add_argument("--out", required=True, help="output .ts path")
    rave.add_argument("--seed", type=seed_int, default=0, help="weights seed (default 0)")
    rave.add_argument(
        "--config", action="append", default=None, help="acids-rave gin config, repeatable (default: v2_small, causal)"
    )
    rave.add_argument("--capacity", type=integer, default=4, help="CAPACITY binding (default 4)")
    rave.add_argument("--latent-size", type=integer, default=16, help="LATENT_SIZE binding (default 16)")
    rave.add_argument("--sample-rate", type=integer, default=44100, help="model sample rate (default 44100)")
    rave.add_argument(
        "--channels", type=integer, choices=(1, 2), default=1, help="audio channels (2: a stereo model; default 1)"
    )
    rave.add_argument("--no-streaming", action="store_true", help="export without cached convolutions")
    rave.set_defaults(func=run_rave)
    register_musicgen(kinds)


MAX_CAPACITY, MAX_LATENT, MAX_RATE = 256, 256, 192_000


def run_rave(args: argparse.Namespace) -> int:

    from sae.errors import UserError
    from sae.paths import check_output_file
    from training.rave.tiny_model import RaveBuildConfig, build_tiny_rave

    if not (1 <= args.capacity <= MAX_CAPACITY and 1 <= args.latent_size <= MAX_LATENT):
        raise UserError(
            f"--capacity {args.capacity} --latent-size {args.latent_size}: expected a capacity of 1 to {MAX_CAPACITY} "
            f"and a latent of 1 to {MAX_LATENT} (a tiny model: more is a typo)"
        )
    if args.latent_size & (args.latent_size - 1):  # the exporter crops the latent to a power of two
        raise UserError(f"--latent-size {args.latent_size}: expected a power of two (the export crops latents to one)")
    if not 8000 <= args.sample_rate <= MAX_RATE:  # 10 MHz ran for minutes at 2.3 GB to render 100 samples
        raise UserError(f"--sample-rate {args.sample_rate}: expected 8000 to {MAX_RATE} Hz")
    out = check_output_file(args.out, (".ts",))
    if out.exists():  # e.g. a trained model: an untrained one must not take its place
        raise UserError(f"--out {out}: exists; a tiny untrained model is written to a new file only")
    cfg = RaveBuildConfig(
        configs=tuple(args.config or ("v2_small", "causal")),
        seed=args.seed,
        bindings={"CAPACITY": args.capacity, "LATENT_SIZE": args.latent_size},
        sample_rate=args.sample_rate,
        channels=args.channels,
    )
    build_tiny_rave(out, cfg=cfg, streaming=not args.no_streaming)
    print(f"wrote {'streaming ' if not args.no_streaming else ''}RAVE export {out}")
    return 0


def register_musicgen(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "musicgen",
        help="write a tiny seeded MusicGen checkpoint (audiocraft or transformers format)",
        description="Write a tiny random MusicGen (seeded) in a real format: audiocraft (state_dict.bin + "
        "compression_state_dict.bin, for MusicGen.get_pretrained(DIR)) or transformers (save_pretrained, "
        "with a small word-level tokenizer). For tests and offline demos; no download.",
    )
    parser.add_argument("--out", required=True, help="output folder")
    parser.add_argument(
        "--backend",
        choices=["audiocraft", "transformers"],
        default="audiocraft",
        help="checkpoint format (default audiocraft)",
    )
    parser.add_argument("--seed", type=seed_int, default=0, help="weights seed (default 0)")
    parser.add_argument("--layers", type=integer, default=4, help="transformer layers (default 4)")
    parser.add_argument("--dim", type=integer, default=32, help="transformer width (default 32)")
    parser.add_argument("--heads", type=integer, default=4, help="attention heads (default 4)")
    parser.add_argument(
        "--stereo",
        action="store_true",
        help="a musicgen-stereo-like model: 8 codebooks (4 per channel, interleaved), 2-channel audio",
    )
    parser.set_defaults(func=run_musicgen)


MAX_LAYERS, MAX_DIM = 48, 2048  # musicgen-large


def run_musicgen(args: argparse.Namespace) -> int:
    from sae.errors import UserError
    from sae.paths import check_output_dir
    from training.musicgen.tiny_model import TinyMusicGenConfig, save_tiny_musicgen

    if args.layers < 1 or args.heads < 1 or args.dim < args.heads or args.dim % args.heads:
        raise UserError(
            f"--dim {args.dim} --heads {args.heads} --layers {args.layers}: expected positive "
            "sizes with dim a multiple of heads"
        )
    if args.dim < 4 or args.dim % 2:  # sinusoidal positions: half the width in sines, half in cosines
        raise UserError(f"--dim {args.dim}: expected an even width of at least 4 (MusicGen's sinusoidal positions)")
    if args.layers > MAX_LAYERS or args.dim > MAX_DIM:  # beyond musicgen-large is no tiny model: a typo
        raise UserError(
            f"--dim {args.dim} --layers {args.layers}: expected at most dim {MAX_DIM} and {MAX_LAYERS} layers "
            "(musicgen-large's sizes)"
        )
    out = check_output_dir(args.out)
    # the other format's files beside these would make a folder that loads as one of them without a word
    held = {"audiocraft": ("state_dict.bin", "compression_state_dict.bin"), "transformers": ("config.json",)}
    for backend, files in held.items():
        if backend != args.backend and any((out / f).exists() for f in files):
            article = "an" if backend == "audiocraft" else "a"
            raise UserError(
                f"--out {args.out}: holds {article} {backend} MusicGen already; write the {args.backend} one "
                "into another folder"
            )
    writes = {
        "audiocraft": {"state_dict.bin", "compression_state_dict.bin"},
        "transformers": {"config.json", "generation_config.json", "model.safetensors", "tokenizer.json",
                         "tokenizer_config.json"},
    }[args.backend]  # fmt: skip
    weights = {"audiocraft": held["audiocraft"], "transformers": ("config.json", "model.safetensors")}[args.backend]
    if out.is_dir() and any((out / f).exists() for f in weights):  # a fine-tuned or saved model's weights
        raise UserError(
            f"--out {args.out}: holds a MusicGen already; a tiny untrained model is written to a new or empty "
            "folder only"
        )
    other = sorted(p.name for p in out.iterdir() if p.name not in writes) if out.is_dir() else []
    if other:  # a trained package's weights would be replaced, its descriptions and training record left behind
        raise UserError(f"--out {args.out}: holds other files ({', '.join(other[:3])}); a tiny model's weights would "
                        "replace what is there: write it into a new or empty folder")  # fmt: skip
    channels = 2 if args.stereo else 1
    cfg = TinyMusicGenConfig(
        dim=args.dim, num_heads=args.heads, num_layers=args.layers, seed=args.seed, channels=channels
    )
    save_tiny_musicgen(out, args.backend, cfg)
    kind = "stereo " if channels == 2 else ""
    print(f"wrote tiny {kind}{args.backend} MusicGen ({args.layers} layers, dim {args.dim}, seed {args.seed}) to {out}")
    return 0
