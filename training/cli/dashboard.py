"""`musicsae dashboard`: a static HTML site to look at and listen to what each SAE feature does.

musicsae dashboard --sae runs/sae/latent --store runs/acts --audio-root data/clips --out runs/site \\
    --bank runs/concepts.yaml --manifest data/manifest.jsonl
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from sae.controls import plain_float
from training.cli.args import add_device, positive_float, positive_int, top_clips
from training.cli.quiet import output_console


def _range(text: str) -> tuple[float, float]:
    try:
        lo, hi = (plain_float(t) for t in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r}: expected LO,HI shares of clips, e.g. 0.01,0.25") from None
    if not 0.0 <= lo <= hi <= 1.0:
        raise argparse.ArgumentTypeError(f"{text!r}: expected 0 <= LO <= HI <= 1")
    return lo, hi


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "dashboard",
        help="static HTML site of SAE features: top clips as audio + spectrograms, descriptions, concepts",
        description="Build a static site (opens from disk) from an activation store and an SAE: an index of "
        "live features, a page per described feature with its top-activating clips as playable snippets and "
        "spectrograms with the activation curve, concept pages from a bank, and a per-layer map.",
    )
    p.add_argument("--sae", required=True, help="SAE directory (SAELens layout)")
    p.add_argument("--store", required=True, help="the activation store the SAE was trained on")
    p.add_argument(
        "--audio-root",
        help="folder the store's source paths are relative to (default: the one `collect rave` or `collect musicgen "
        "--audio` read, from the store's store.json; none for a store collected from prompts)",
    )
    p.add_argument("--out", required=True, help="site folder (an existing dashboard there is replaced)")
    p.add_argument("--bank", help="concept bank YAML: concept pages and membership")
    p.add_argument("--manifest", help="data manifest (.jsonl/.csv or its folder): labels and purity")
    p.add_argument(
        "--eval-dir",
        help="steering evaluation folder: judge.json, listening examples (listen/), before/after wavs (default: "
        "BANK_DIR/eval, renders and judge, those that exist)",
    )
    p.add_argument("--top", type=top_clips, default=8, help="top clips per feature page, at most 1000 (default 8)")
    p.add_argument(
        "--max-pages",
        type=positive_int,
        default=100,
        help="feature pages at most (default 100); every feature of a --bank concept gets one all the same",
    )
    p.add_argument("--snippet", type=positive_float, default=3.0, help="seconds of audio per snippet (default 3)")
    p.add_argument(
        "--clip-range",
        type=_range,
        default=(0.01, 0.25),
        help="described features fire on this share of clips (default 0.01,0.25)",
    )
    add_device(p, "the SAE")
    p.set_defaults(func=run)


def stored_audio_root(store: str) -> str | None:
    """The audio folder `collect rave` or `collect musicgen --audio` recorded in the store's store.json; None for a
    store of prompts alone (no clip to play); one-line UserError when it records none (collected before the folder
    was recorded)."""
    from pathlib import Path

    from realtime.audio_files import audio_folder
    from sae.errors import UserError
    from sae.store import STORE_JSON, read_store_json

    path = Path(store) / STORE_JSON
    info = read_store_json(path) if path.is_file() else {}
    collect = info.get("collect") or {}
    kinds = [collect.get(k) for k in ("rave", "audio")]  # `collect rave`, `collect musicgen --audio`
    audio = next((k["audio"] for k in kinds if isinstance(k, dict) and isinstance(k.get("audio"), str)), None)
    if (not isinstance(audio, str) or not audio) and set(collect) == {"prompts"}:  # `collect musicgen --prompts`
        return None
    if not isinstance(audio, str) or not audio:
        raise UserError(f"--audio-root: store {store} records no audio folder; pass the folder its clips came from")
    return str(audio_folder(Path(audio)))  # older stores recorded one collected file itself


def run(args: argparse.Namespace) -> int:
    from sae.errors import UserError
    from sae.paths import check_output_dir
    from sae.store import open_store
    from training.dashboard import DashboardConfig, build_dashboard, check_site_out

    if args.eval_dir and not args.bank:  # it was taken and used nowhere (hunt 141)
        raise UserError("--eval-dir: its before/after renders go on the concept pages of --bank; pass --bank too")
    check_output_dir(args.out)
    check_site_out(Path(args.out))  # a foreign folder is refused before any input is read
    open_store(args.store, "--store")  # a missing or foreign store is named as such, before its audio folder
    console = output_console(stderr=True)
    if args.audio_root is None:
        args.audio_root = stored_audio_root(args.store)
        if args.audio_root is None:  # its sources are prompts: none is a file under any folder
            args.audio_root = args.store
            console.print("audio: none (the store was collected from prompts)", highlight=False)
        elif not Path(args.audio_root).is_dir():  # a project moved: "audio root /old/clips: not a directory"
            raise UserError(
                f"--audio-root: store {args.store} was collected from {args.audio_root}, which is not there (moved?); "
                "pass --audio-root with the folder its clips are in now"
            )
        else:
            console.print(f"audio: {args.audio_root} (where the store was collected from)", highlight=False)
    cfg = DashboardConfig(
        top_n=args.top,
        max_pages=args.max_pages,
        snippet_seconds=args.snippet,
        clip_range=args.clip_range,
        device=args.device,
        eval_dir=args.eval_dir,
    )
    index = build_dashboard(
        args.sae,
        args.store,
        args.audio_root,
        args.out,
        args.bank,
        args.manifest,
        cfg=cfg,
        console=console,
        progress=console.is_terminal,
    )
    data = json.loads((index.parent / "features.json").read_text())
    pages = sum(1 for f in data["features"] if "clips" in f)
    console.print(
        f"{data['live']} live of {data['d_sae']} features, {pages} feature pages, {data['clips']} clips "
        f"({len(data['skipped_audio'])} skipped)",
        highlight=False,
    )
    print(index)
    return 0
