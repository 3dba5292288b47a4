"""`--nproc N`: a command on N local processes (DDP), launched as `torchrun --standalone --nproc-per-node N` would
launch it, with torch's launcher kept quiet. Under torchrun each rank printed the same one line (an error,
"interrupted"), with the launcher's log lines and, on Ctrl-C, its own `SignalException` traceback; here rank 0's
line is printed once, another rank's only where it says something else, and the exit code is the ranks'
(`musicsae -v` keeps the launcher's log)."""

from __future__ import annotations

import argparse
import logging
import os
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path

from training.cli.args import positive_int

FLAG = "--nproc"
LINES = "MUSICSAE_RANK_LINES"  # where the ranks of a `--nproc` launch leave their one line for the launcher


def add_nproc(parser: argparse.ArgumentParser, what: str) -> None:
    """The `--nproc` option of a command that runs as DDP under torchrun."""
    parser.add_argument(
        FLAG,
        type=positive_int,
        default=1,
        help=f"local processes to run on, {what} (DDP, as `torchrun --standalone --nproc-per-node N`; default 1)",
    )


def wanted(args: argparse.Namespace) -> int:
    """The processes `args` asks for (0: none to launch, run here). Under a launcher (WORLD_SIZE set) this
    process is already one of its ranks: `--nproc` there is refused."""
    from sae.errors import UserError

    nproc = getattr(args, "nproc", 1)
    if nproc == 1:
        return 0
    if "WORLD_SIZE" in os.environ:
        raise UserError(f"{FLAG} {nproc}: this process is already rank {os.environ.get('RANK', '?')} of "
                        f"{os.environ['WORLD_SIZE']} under a launcher; leave {FLAG} out under torchrun")  # fmt: skip
    cores = os.cpu_count() or 1
    if nproc > cores:  # each rank loads torch and its model: 1000 of them took every byte of memory
        raise UserError(f"{FLAG} {nproc}: expected at most the {cores} cores of this machine")
    if str(getattr(args, "device", "cpu")).startswith("cuda"):
        import torch

        gpus = torch.cuda.device_count()
        if nproc > gpus:
            raise UserError(f"{FLAG} {nproc} with --device cuda: expected at most the {gpus} GPUs here (one per rank)")
    return nproc


def without_nproc(argv: Sequence[str]) -> list[str]:
    """`argv` without its `--nproc N` / `--nproc=N` (what each rank is started with)."""
    out, skip = [], False
    for a in argv:
        if skip:
            skip = False
        elif a == FLAG:
            skip = True
        elif not a.startswith(FLAG + "="):
            out.append(a)
    return out


def say(line: str) -> None:
    """A command's one line on stderr; under `--nproc` rank 0 prints it and every rank leaves it for the launcher,
    which prints what the other ranks said that rank 0 did not (`launch`)."""
    rank, folder = int(os.environ.get("RANK", "0")), os.environ.get(LINES)
    if rank == 0 or not folder:  # under torchrun itself every rank prints its own
        print(line, file=sys.stderr)
    if folder:
        with open(Path(folder) / f"{rank:05d}", "a") as f:
            f.write(line + "\n")


def _others(folder: Path) -> list[str]:
    """The lines ranks other than 0 left that no rank before them said, each naming its rank."""
    seen, out = set(), []
    for path in sorted(folder.iterdir()):
        for line in path.read_text().splitlines():
            if line not in seen and path.name != "00000":
                out.append(f"(rank {int(path.name)}) {line}")
            seen.add(line)
    return out


def launch(nproc: int, argv: Sequence[str], verbose: bool) -> int:
    """Run `musicsae argv` on `nproc` local ranks through torch's elastic launcher; returns the exit code: 0, the
    first failed rank's, or 128 + the signal that stopped the launcher (each rank has said what it kept)."""
    from torch.distributed.elastic.multiprocessing.api import SignalException
    from torch.distributed.elastic.multiprocessing.errors import ChildFailedError
    from torch.distributed.run import get_args_parser, run

    if not verbose:  # each of the launcher's modules sets its own logger's level (WARNING) as it is imported
        for name in list(logging.root.manager.loggerDict):
            if name.startswith("torch.distributed"):
                logging.getLogger(name).setLevel(logging.CRITICAL)
    os.environ.setdefault("OMP_NUM_THREADS", "1")  # torchrun's own default for several ranks (it warns otherwise)
    torchrun = ["--standalone", f"--nproc-per-node={nproc}", "--module", "training.cli", *argv]
    with tempfile.TemporaryDirectory(prefix="musicsae-ranks-") as folder:
        os.environ[LINES] = folder
        try:
            run(get_args_parser().parse_args(torchrun))
            code = 0
        except SignalException as stopped:
            code = 128 + int(stopped.sigval)
        except ChildFailedError as failed:
            codes = [f.exitcode for _, f in sorted(failed.failures.items())]
            code = next((c for c in codes if c > 0), 128 - min(codes) if codes and min(codes) < 0 else 1)
        finally:
            del os.environ[LINES]
        for line in _others(Path(folder)):
            print(line, file=sys.stderr)
    return code
