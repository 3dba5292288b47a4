"""Measure the demo MusicGen: codec fidelity on a held-out font, prompt adherence; JSON + Markdown reports.

    python -m training.musicgen.evaluate codec --model DIR_OR_CODEC_RUN --data EVAL_DATA --out OUT
    python -m training.musicgen.evaluate adherence --model DIR --judge-data DATA1 --judge-data DATA2 --out OUT

`codec` writes OUT/codec_fidelity.json|md (`codec_fidelity.py`), `adherence` OUT/adherence.json|md
(`adherence.py`).
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Sequence
from pathlib import Path

from sae.atomic import atomic_write_text
from sae.stats import Interval


def _write(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_text(path, text if text.endswith("\n") else text + "\n")


def adherence_markdown(r: dict) -> str:
    def iv(d: dict, fmt: str = ".0f") -> str:
        return Interval(**d).text(fmt)

    lines = [
        f"Prompt adherence of {r['model']['name']} (sha256 {r['model']['sha256'][:12]}): renders of "
        f"{r['duration']:g} s, guidance {r['cfg_coef']:g}; outside judge trained on {r['judge']['trained_on']}. "
        f"Goal: the prompted instrument heard at least {r['goal_points']:g} points more often than in the same "
        "prompt without it (paired over prompt pairs × seeds; met only when the whole 95 % interval is).",
        "",
        "| concept | heard, prompted | heard, not prompted | rise | verdict | pairs |",
        "| --- | --- | --- | --- | --- | --- |",
    ]
    for c, e in r["concepts"].items():
        pairs = "; ".join(f"{w!r} / {wo!r}" for w, wo in e["pairs"])
        lines.append(
            f"| {c} | {iv(e['with'])} | {iv(e['without'])} | {iv(e['rise'], '+.0f')} | {e['verdict']} | {pairs} |"
        )
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    import torch

    from training.musicgen import runs

    p = argparse.ArgumentParser(prog="python -m training.musicgen.evaluate", description=__doc__.split("\n")[0])
    sub = p.add_subparsers(dest="what", required=True)
    c = sub.add_parser("codec", help="codec fidelity on a held-out font")
    c.add_argument("--model", required=True, help="MusicGen folder or train_codec run folder")
    c.add_argument("--data", required=True, help="a `musicsae data make --holdout-font F` folder")
    c.add_argument("--out", type=Path, required=True)
    c.add_argument("--max-clips", type=int, default=0, help="clips per set (default 0: all)")
    a = sub.add_parser("adherence", help="prompt adherence, judged")
    a.add_argument("--model", required=True, help="MusicGen folder with descriptions.json")
    a.add_argument(
        "--judge-data", action="append", required=True, help="data folder(s) whose train clips train the judge"
    )
    a.add_argument("--out", type=Path, required=True)
    a.add_argument("--pairs", type=int, default=6, help="prompt pairs per concept (default 6)")
    a.add_argument("--seeds", type=int, default=4, help="renders per prompt (default 4)")
    a.add_argument("--duration", type=float, default=4.0)
    a.add_argument("--concepts", default="guitar,drums,piano")
    a.add_argument(
        "--seed", type=int, default=0, help="first random seed (another one draws other renders: a validation set)"
    )
    args = p.parse_args(argv)
    torch.set_num_threads(1)

    def run() -> None:
        if args.what == "codec":
            from training.musicgen.codec_fidelity import CodecFidelityConfig, evaluate_codec, markdown

            result = evaluate_codec(CodecFidelityConfig(args.data, args.model, max_clips=args.max_clips))
            _write(args.out / "codec_fidelity.json", json.dumps(result, indent=2))
            _write(args.out / "codec_fidelity.md", markdown(result))
            print(markdown(result))
        else:
            from training.musicgen.adherence import AdherenceConfig, evaluate_adherence

            concepts = tuple(x.strip() for x in args.concepts.split(",") if x.strip())
            cfg = AdherenceConfig(
                args.model, args.judge_data, concepts, args.pairs, args.seeds, args.duration, seed=args.seed
            )
            result = evaluate_adherence(cfg)
            _write(args.out / "adherence.json", json.dumps(result, indent=2))
            _write(args.out / "adherence.md", adherence_markdown(result))
            print(adherence_markdown(result))

    return runs.guarded(p.prog, run)


if __name__ == "__main__":
    raise SystemExit(main())
