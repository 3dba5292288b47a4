"""`--nproc N`: a command on N local processes (DDP), launched as `torchrun --standalone --nproc-per-node N` would
launch it, with torch's launcher kept quiet. Under torchrun each rank printed the same one line (an error,
"interrupted"), with the launcher's log lines and, on Ctrl-C, its own `SignalException` traceback; here rank 0's
line is printed once, another rank's only where it says something else, and the exit code is the ranks'
(`musicsae -v` keeps the launcher's log)."""

from __future__ import annotations

import argparse
import logging
import os
import signal
import sys
import tempfile
import uuid
from collections.abc import Sequence
from pathlib import Path

from sae.ranks import RUN_ID
from training.cli.args import positive_int

FLAG = "--nproc"
TERMINATED = 128 + 15  # a rank's exit code after SIGTERM
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
    """A command's one line on stderr; under `--nproc` every rank leaves it for the launcher, which prints rank 0's
    and what the other ranks said that no rank before them did (`launch`)."""
    rank, folder = int(os.environ.get("RANK", "0")), os.environ.get(LINES)
    if not folder:  # under torchrun itself every rank prints its own
        print(line, file=sys.stderr)
        return
    with open(Path(folder) / f"{rank:05d}", "a") as f:
        f.write(line + "\n")


def killed_lines(codes: dict[int, int]) -> list[str]:
    """A line for each rank a signal killed (torch's exit code: minus the signal), which leaves no line of its own:
    the OOM killer's SIGKILL left only the "terminated" of the ranks the launcher then stopped. SIGTERM is the
    launcher's own stop."""
    lines = []
    for rank, code in sorted(codes.items()):
        if code >= 0 or -code == signal.SIGTERM:
            continue
        try:
            name = signal.Signals(-code).name
        except ValueError:  # a real-time signal: no name
            name = f"signal {-code}"
        why = KILLED_BY.get(name, "sent by another process")
        lines.append(f"musicsae: rank {rank} was killed by {name} ({why}); the launcher stopped the other ranks")
    return lines


KILLED_BY = {
    "SIGKILL": "out of memory (the OOM killer), or kill -9",
    **dict.fromkeys(("SIGSEGV", "SIGBUS", "SIGILL", "SIGFPE", "SIGABRT"), "it crashed in native code"),
}
"""What likely sent a signal that killed a rank (`killed_lines`)."""


def rank_lines(folder: Path, failed: bool = False, killed: Sequence[str] = ()) -> list[str]:
    """The lines the ranks left: rank 0's, then those of other ranks that no rank before them said, each naming its
    rank; `killed` (`killed_lines`) first. After a rank `failed`, "terminated" is left out where another line says
    why: the launcher sends SIGTERM to the ranks left once one fails (the slower of two ranks refusing --k said
    "terminated" after the other's refusal, whichever rank it was)."""

    def terminated(line: str) -> bool:
        return line.partition(": ")[2].startswith("terminated")

    said = [(int(p.name), p.read_text().splitlines()) for p in sorted(folder.iterdir())]
    quiet = failed and (bool(killed) or not all(terminated(line) for _, lines in said for line in lines))
    seen, out = set(), list(killed)
    for rank, lines in said:
        for line in lines:
            if line not in seen and not (quiet and terminated(line)):
                out.append(f"(rank {rank}) {line}" if rank else line)
            seen.add(line)
    return out


def failed_code(codes: Sequence[int]) -> int:
    """The exit code of a launch whose ranks ended with `codes` (torch's: negative for a signal): a rank's own
    failure first, its exit code or 128 + the signal that killed it (an OOM kill, a segfault); 143 last, the code
    of the ranks the launcher's SIGTERM stopped once one had failed."""
    own = [c for c in codes if c > 0 and c != TERMINATED]
    if own:
        return own[0]
    killed = [c for c in codes if c < 0 and -c != signal.SIGTERM]  # SIGTERM: the launcher's own stop, as 143
    if killed:
        return 128 - killed[0]
    return TERMINATED if codes else 1


def forwarded_signals() -> str:
    """The stop signals torch's launcher takes over and passes to the ranks (its --signals-to-handle; it overwrites
    the environment's TORCHELASTIC_SIGNALS_TO_HANDLE: hunt 208): its own four, but one this process ignores
    (`nohup`'s SIGHUP), which it took over too, ending a nohup'd training when the SSH session dropped (hunt 205)."""
    stops = ("SIGTERM", "SIGINT", "SIGHUP", "SIGQUIT")
    return ",".join(s for s in stops if signal.getsignal(getattr(signal, s)) != signal.SIG_IGN)


def launch(nproc: int, argv: Sequence[str], verbose: bool) -> int:
    """Run `musicsae argv` on `nproc` local ranks through torch's elastic launcher; returns the exit code: 0, the
    failed ranks' (`failed_code`), or 128 + the signal that stopped the launcher (each rank has said what it
    kept)."""
    from torch.distributed.elastic.multiprocessing.api import SignalException
    from torch.distributed.elastic.multiprocessing.errors import ChildFailedError
    from torch.distributed.run import get_args_parser, run

    if not verbose:  # each of the launcher's modules sets its own logger's level (WARNING) as it is imported
        for name in list(logging.root.manager.loggerDict):
            if name.startswith("torch.distributed"):
                logging.getLogger(name).setLevel(logging.CRITICAL)
    os.environ.setdefault("OMP_NUM_THREADS", "1")  # torchrun's own default for several ranks (it warns otherwise)
    os.environ.setdefault(RUN_ID, uuid.uuid4().hex)  # what the ranks share and no other launch does (`run_id`)
    torchrun = ["--standalone", f"--nproc-per-node={nproc}", f"--signals-to-handle={forwarded_signals()}", "--module",
                "training.cli", *argv]  # fmt: skip
    with tempfile.TemporaryDirectory(prefix="musicsae-ranks-") as folder:
        os.environ[LINES] = folder
        failed_ranks, killed = False, []
        try:
            run(get_args_parser().parse_args(torchrun))
            code = 0
        except SignalException as stopped:
            code = 128 + int(stopped.sigval)
        except ChildFailedError as failed:
            failed_ranks = True
            code = failed_code([f.exitcode for _, f in sorted(failed.failures.items())])
            killed = killed_lines({rank: f.exitcode for rank, f in failed.failures.items()})
        finally:
            del os.environ[LINES]
        for line in rank_lines(Path(folder), failed_ranks, killed):
            print(line, file=sys.stderr)
    return code
