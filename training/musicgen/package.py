"""Package a trained demo MusicGen: an audiocraft release folder, and its transformers conversion.

    python -m training.musicgen.package --lm-run RUN --out DIR             # audiocraft: MusicGen.get_pretrained(DIR)
    python -m training.musicgen.package --convert DIR --out DIR_TF          # transformers: from_pretrained(DIR_TF)

`--convert` also checks that both backends compute the same (`convert.backend_agreement`: codes, every layer's
residual stream, decoded audio) and writes the differences to DIR_TF/backend_agreement.json.

The audiocraft folder holds `state_dict.bin` (the LM) and `compression_state_dict.bin` (the codec the LM run
learned from), release packages as audiocraft's exporter writes them, plus `descriptions.json` (the
descriptions the model knows) and `training.json` (steps, CPU hours and data of both trainings). Every
lookup-table row no trained description uses is set to the `unknown` row, so any other text (even passed
to audiocraft directly, bypassing musicsae's prompt mapping) is played as `unknown` unless it happens to
hash onto a trained row.
"""

from __future__ import annotations

from pathlib import Path

import torch

from realtime.musicgen.record import TRAINING_FILE
from sae.atomic import atomic_torch_save, folder_replacing
from sae.errors import UserError
from training.cli.args import Parser
from training.musicgen import runs
from training.musicgen.arch import (
    CODEC_FILE,
    LM_FILE,
    codec_xp_cfg,
    lm_xp_cfg,
    release_package,
)
from training.musicgen.convert import CHECK_FILE
from training.musicgen.descriptions import lut_row


def unknown_rows(state: dict, texts: list[str], unknown: str) -> dict:
    """A copy of the LM state whose lookup-table rows outside `texts` all equal the `unknown` row."""
    key = "condition_provider.conditioners.description.embed.weight"
    lut = state[key].clone()
    bins = lut.shape[0]
    used = torch.zeros(bins, dtype=torch.bool)
    for t in [*texts, unknown]:
        used[lut_row(t, bins)] = True
    lut[~used] = lut[lut_row(unknown, bins)].clone()
    return {**state, key: lut}


def package(lm_run: Path, out: Path, say=print) -> Path:
    """Write the audiocraft folder of an LM run (and the codec it learned from) into `out`; a note for a training
    that stopped short of its --steps."""
    from training.musicgen.train_lm import load_lm_run

    if runs.training_now(lm_run):  # it said the run "stopped at step 900 ... resume it to finish"
        raise UserError(f"--lm-run {lm_run}: an LM training is writing there now; package it once it ends, or stop it "
                        "(Ctrl-C keeps a checkpoint) and package that")  # fmt: skip
    loaded = load_lm_run(lm_run)
    lm, codec = loaded["record"]["lm"], loaded["record"]["codec"]
    for what, rec in ((f"the LM run {lm_run}", lm), ("the codec run it learned from", codec)):
        note = runs.unfinished(what, rec["step"], rec.get("target"))
        if note:
            say(note)
    vocab = loaded["vocab"]
    lm_state = unknown_rows(loaded["lm_state"], list(vocab.descriptions), vocab.unknown)
    codec_sizes, lm_sizes = loaded["codec_sizes"], loaded["lm_sizes"]
    with folder_replacing(out) as tmp:  # the LM and the codec of one training, never one of each
        atomic_torch_save(release_package(lm_state, lm_xp_cfg(lm_sizes, codec_sizes)), tmp / LM_FILE)
        atomic_torch_save(release_package(loaded["codec_state"], codec_xp_cfg(codec_sizes)), tmp / CODEC_FILE)
        vocab.save(tmp)
        runs.write_json(tmp / TRAINING_FILE, loaded["record"])
    return out


TRANSFORMERS_FILES = ("config.json", "model.safetensors")  # what marks a transformers MusicGen folder


def check_package_out(text: str, convert: Path | None) -> Path:
    """OUT is new, empty, or this step's earlier output (an audiocraft package for `--lm-run`, its transformers
    conversion for `--convert`), and not the folder converted: anything else would be overwritten or mixed."""
    from sae.paths import check_not_source, check_output_dir

    out = check_output_dir(text)
    if convert is not None:
        check_not_source(out, convert, "--out", "--convert", "write the transformers folder beside it")
    if not out.is_dir() or not any(out.iterdir()):
        return out
    # what marks this step's output, and what marks the other format's
    own, other = ((TRAINING_FILE, LM_FILE), "config.json") if convert is None else (TRANSFORMERS_FILES, LM_FILE)
    missing = [f for f in own if not (out / f).exists()]
    if missing or (out / other).exists():
        kind = "audiocraft package" if convert is None else "transformers conversion"
        why = f"no {missing[0]}" if missing else f"it has {other}"
        raise UserError(f"--out {out}: holds files that are not an earlier {kind} ({why}); "
                        "write into a new or empty folder")  # fmt: skip
    return out


def main(argv: list[str] | None = None) -> int:
    parser = Parser(prog="python -m training.musicgen.package", description=__doc__.split("\n")[0])
    src = parser.add_mutually_exclusive_group(required=True)
    src.add_argument("--lm-run", type=Path, help="a train_lm run folder: write its audiocraft folder")
    src.add_argument("--convert", type=Path, help="an audiocraft folder written by --lm-run: convert it")
    parser.add_argument("--out", required=True, help="output folder")
    args = parser.parse_args(argv)

    def run() -> None:
        args.out = check_package_out(args.out, args.convert)
        if args.lm_run is not None:
            package(args.lm_run, args.out)
            print(f"wrote audiocraft MusicGen {args.out} (MusicGen.get_pretrained({str(args.out)!r}))")
        else:
            from training.musicgen.convert import backend_agreement, to_transformers

            checks = []

            def check(folder: Path) -> None:  # on the new folder, before it replaces --out
                checks.append(backend_agreement(args.convert, folder))
                runs.write_json(folder / CHECK_FILE, checks[-1])

            to_transformers(args.convert, args.out, finish=check)
            print(f"wrote transformers MusicGen {args.out} (MusicgenForConditionalGeneration.from_pretrained)")
            print(f"both backends: {checks[-1]} ({CHECK_FILE})")

    torch.set_num_threads(1)
    return runs.guarded(parser.prog, run, "")  # the package is written whole or not at all


if __name__ == "__main__":
    raise SystemExit(main())
