"""`musicsae models musicgen`: write a tiny seeded MusicGen (audiocraft or transformers format).

The lead's `training/cmd_models.py` calls `register_musicgen(subparsers)` under `musicsae models`.
"""

from __future__ import annotations

import argparse


def register_musicgen(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "musicgen",
        help="write a tiny seeded MusicGen checkpoint (audiocraft or transformers format)",
        description="Write a tiny random MusicGen (seeded) in a real format: audiocraft (state_dict.bin + "
        "compression_state_dict.bin, for MusicGen.get_pretrained(DIR)) or transformers (save_pretrained, "
        "with a small word-level tokenizer). For tests and offline demos; no download.",
    )
    parser.add_argument("--out", required=True, help="output folder")
    parser.add_argument("--backend", choices=["audiocraft", "transformers"], default="audiocraft",
                        help="checkpoint format (default audiocraft)")
    parser.add_argument("--seed", type=int, default=0, help="weights seed (default 0)")
    parser.add_argument("--layers", type=int, default=4, help="transformer layers (default 4)")
    parser.add_argument("--dim", type=int, default=32, help="transformer width (default 32)")
    parser.add_argument("--heads", type=int, default=4, help="attention heads (default 4)")
    parser.set_defaults(func=run_musicgen)


def run_musicgen(args: argparse.Namespace) -> int:
    from pathlib import Path

    from sae.errors import UserError
    from training.tiny_musicgen import TinyMusicGenConfig, save_tiny_musicgen

    if args.layers < 1 or args.heads < 1 or args.dim < args.heads or args.dim % args.heads:
        raise UserError(f"--dim {args.dim} --heads {args.heads} --layers {args.layers}: expected positive "
                        "sizes with dim a multiple of heads")
    out = Path(args.out)
    if out.exists() and not out.is_dir():
        raise UserError(f"--out {out}: exists and is not a folder")
    cfg = TinyMusicGenConfig(dim=args.dim, num_heads=args.heads, num_layers=args.layers, seed=args.seed)
    save_tiny_musicgen(out, args.backend, cfg)
    print(f"wrote tiny {args.backend} MusicGen ({args.layers} layers, dim {args.dim}, seed {args.seed}) to {out}")
    return 0
