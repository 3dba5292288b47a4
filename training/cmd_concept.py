"""`musicsae concept find|list|remove`: concepts from example clips, and the concept bank."""

from __future__ import annotations

import argparse


def register(subparsers: argparse._SubParsersAction) -> None:
    f = subparsers.add_parser(
        "find",
        help="find a concept's SAE features from clips with and without it",
        description="Pool SAE features per clip, fit a sparse probe, report held-out AUROC next to two baselines on "
        "the raw latents (difference of means, logistic probe), and write the concept into the bank.",
    )
    f.add_argument("name", help="concept name (letters, digits, _ - .)")
    f.add_argument("--with", dest="with_dir", required=True, help="folder of clips featuring the concept")
    f.add_argument("--without", dest="without_dir", required=True, help="folder of clips without it")
    f.add_argument("--model", required=True,
                   help="streaming RAVE .ts export (or a MusicGen folder / hub id: the SAE's hook names the layer)")
    f.add_argument("--sae", required=True, help="SAE directory trained on that model's latents")
    f.add_argument("--bank", required=True, help="concept bank YAML (created if missing)")
    f.add_argument("--k", type=int, default=None, help="features in the probe (default: chosen by cross-validation)")
    f.add_argument("--min-examples", type=int, default=6, help="usable clips needed per side (default 6)")
    f.add_argument("--folds", type=int, default=5, help="cross-validation folds (default 5)")
    f.add_argument("--default", dest="mode", choices=["none", "off", "on", "scale"], default="none",
                   help="the concept's mode when a live session or render starts (default none: no edit until "
                        "switched, e.g. over OSC)")
    f.add_argument("--strength", type=float, default=1.0, help="default strength (on) / gain (scale)")
    f.add_argument("--no-replace", action="store_true", help="refuse if the bank already has this name")
    f.add_argument("--threads", type=int, default=1, help="torch CPU threads (default 1)")
    f.set_defaults(func=run_find)

    ls = subparsers.add_parser("list", help="show the concept bank as a table")
    ls.add_argument("--bank", required=True, help="concept bank YAML")
    ls.set_defaults(func=run_list)

    rm = subparsers.add_parser("remove", help="remove a concept from the bank")
    rm.add_argument("name")
    rm.add_argument("--bank", required=True, help="concept bank YAML")
    rm.set_defaults(func=run_remove)


def run_find(args: argparse.Namespace) -> int:
    import time
    from pathlib import Path

    import torch
    from rich.console import Console

    from sae.errors import UserError
    from training.concepts import FindConfig, find_concept

    if args.k is not None and args.k < 1:
        raise UserError(f"--k {args.k}: expected at least 1")
    if args.folds < 2:
        raise UserError(f"--folds {args.folds}: expected at least 2")
    torch.set_num_threads(max(1, args.threads))
    console = Console()
    model = Path(args.model)
    if model.suffix != ".ts":  # a MusicGen folder or hub id: its own finder
        from training.concepts_musicgen import find_musicgen_concept

        with console.status(f"finding {args.name!r} in MusicGen"):
            t0 = time.perf_counter()
            res = find_musicgen_concept(args.name, args.with_dir, args.without_dir, args.model, args.sae, args.bank,
                                        args.k, args.folds, args.mode, args.strength, not args.no_replace)
        _print_find(console, args.name, res.report, res.concept, [], args.bank, time.perf_counter() - t0)
        return 0
    cfg = FindConfig(args.name, args.with_dir, args.without_dir, args.model, args.sae, args.bank, args.k,
                     args.min_examples, args.folds, args.mode, args.strength, replace=not args.no_replace)
    with console.status(f"finding {args.name!r}"):
        res = find_concept(cfg)
    _print_find(console, args.name, res.report, res.concept, res.notes, res.bank_path, res.seconds)
    return 0


def _print_find(console, name: str, rep, concept, notes: list[str], bank_path, seconds: float) -> None:
    from rich.table import Table

    table = Table(title=f"{name}: held-out AUROC ({rep.folds}-fold, {rep.n_with} with / {rep.n_without} without)")
    table.add_column("probe")
    table.add_column("AUROC", justify="right")
    for key, label in (("sae_probe", f"SAE sparse probe ({len(concept.features)} features)"),
                       ("diff_means", "difference of means, raw activations"),
                       ("logistic_raw", "logistic probe, raw activations")):
        table.add_row(label, f"{rep.auroc[key]:.3f}")
    console.print(table)
    feats = ", ".join(f"{f.index} (w {f.weight:.2f}, typ {f.typical:.2f})" for f in concept.features)
    console.print(f"features on {concept.hook}: {feats}", highlight=False)
    for line in notes:
        console.print(f"note: {line}", highlight=False)
    console.print(f"wrote {name!r} to {bank_path} in {seconds:.1f} s", highlight=False)


def run_list(args: argparse.Namespace) -> int:
    from rich.console import Console

    from sae.bank import ConceptBank

    Console(width=200).print(ConceptBank.load(args.bank).rich_table())
    return 0


def run_remove(args: argparse.Namespace) -> int:
    from sae.bank import ConceptBank

    bank = ConceptBank.load(args.bank)
    bank.remove(args.name)
    bank.save()
    print(f"removed {args.name!r} from {bank.path}")
    return 0
