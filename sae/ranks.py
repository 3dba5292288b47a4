"""This process's place among the ranks a launcher started (torchrun, `--nproc`): its share of the inputs and its
GPU. One process alone is rank 0 of 1."""

from __future__ import annotations

import os
import socket
import uuid
from typing import TypeVar

from sae.errors import UserError

T = TypeVar("T")


def this_rank() -> tuple[int, int]:
    """(rank, world size) from the launcher's RANK / WORLD_SIZE."""
    rank, world = int(os.environ.get("RANK", "0")), int(os.environ.get("WORLD_SIZE", "1"))
    if world < 1 or not 0 <= rank < world:
        raise UserError(f"RANK={rank} WORLD_SIZE={world}: expected 0 <= RANK < WORLD_SIZE")
    return rank, world


RUN_ID = "MUSICSAE_RUN_ID"
"""The environment variable `musicsae --nproc` names its launch by (a uuid): what its ranks share."""
_OWN = uuid.uuid4().hex  # this process's, where no launcher names a run (a pid repeats across containers: hunt 208)


def run_id() -> str:
    """What every rank of one launch shares and no other process does: `--nproc`'s `RUN_ID`, else torchrun's run id
    with its rendezvous address (its default id, "none", is every launch's), else this process's own."""
    if own := os.environ.get(RUN_ID):
        return own
    if "TORCHELASTIC_RUN_ID" in os.environ:
        where = f"{os.environ.get('MASTER_ADDR')}:{os.environ.get('MASTER_PORT')}"
        return f"{os.environ['TORCHELASTIC_RUN_ID']} {where} {socket.gethostname()}"
    return f"{socket.gethostname()} {_OWN}"


def split_by_rank(items: list[T]) -> tuple[list[T], int, int]:
    """This process's share of `items` (every world-th from its rank), its rank and the world size."""
    rank, world = this_rank()
    return items[rank::world], rank, world


def rank_device(device: str) -> str:
    """`cuda` under a launcher is this rank's own GPU (LOCAL_RANK, else RANK); every other device as given."""
    rank, world = this_rank()
    if device == "cuda" and world > 1:
        return f"cuda:{int(os.environ.get('LOCAL_RANK', rank))}"
    return device
