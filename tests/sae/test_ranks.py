"""This process's rank, its share of the inputs and its GPU under a launcher (`sae.ranks`)."""

import pytest

from sae.errors import UserError
from sae.ranks import rank_device, split_by_rank, this_rank


def test_one_process_is_rank_zero_of_one_and_keeps_everything(monkeypatch):
    for var in ("RANK", "WORLD_SIZE", "LOCAL_RANK"):
        monkeypatch.delenv(var, raising=False)
    assert this_rank() == (0, 1)
    assert split_by_rank(list("abcde")) == (list("abcde"), 0, 1)
    assert rank_device("cuda") == "cuda" and rank_device("cpu") == "cpu"


def test_ranks_take_disjoint_shares_and_their_own_gpu(monkeypatch):
    monkeypatch.setenv("WORLD_SIZE", "2")
    shares = []
    for rank, local in ((0, "1"), (1, "0")):  # LOCAL_RANK names the GPU on a node, whatever the global rank
        monkeypatch.setenv("RANK", str(rank))
        monkeypatch.setenv("LOCAL_RANK", local)
        shares.append(split_by_rank(list(range(7)))[0])
        assert rank_device("cuda") == f"cuda:{local}"
        assert rank_device("cuda:3") == "cuda:3" and rank_device("cpu") == "cpu"  # a device given stays
    assert sorted(shares[0] + shares[1]) == list(range(7)) and not set(shares[0]) & set(shares[1])
    monkeypatch.delenv("LOCAL_RANK")
    assert rank_device("cuda") == "cuda:1"  # without LOCAL_RANK: the rank


@pytest.mark.parametrize(("rank", "world"), [("2", "2"), ("-1", "2"), ("0", "0")])
def test_an_impossible_rank_is_refused(monkeypatch, rank, world):
    monkeypatch.setenv("RANK", rank)
    monkeypatch.setenv("WORLD_SIZE", world)
    with pytest.raises(UserError, match=rf"RANK={rank} WORLD_SIZE={world}: expected 0 <= RANK < WORLD_SIZE"):
        this_rank()


def test_a_run_id_is_a_launchs_and_no_other_processs(monkeypatch):
    """Hunt 208: the run id was the pid where no launcher named one: two collects in containers (each pid 1) were
    one writer, and plain torchrun names every launch "none"."""
    import subprocess
    import sys

    from sae.ranks import RUN_ID, run_id

    for name in (RUN_ID, "TORCHELASTIC_RUN_ID"):
        monkeypatch.delenv(name, raising=False)
    code = "from sae.ranks import run_id; print(run_id())"
    ids = {subprocess.run([sys.executable, "-c", code], capture_output=True, text=True).stdout for _ in range(2)}
    assert len(ids) == 2 and run_id() == run_id()  # one per process, the same within one
    monkeypatch.setenv("TORCHELASTIC_RUN_ID", "none")
    monkeypatch.setenv("MASTER_PORT", "29500")
    first = run_id()
    monkeypatch.setenv("MASTER_PORT", "29501")
    assert run_id() != first  # two torchrun launches of the default id
    monkeypatch.setenv(RUN_ID, "abc")
    assert run_id() == "abc"  # `musicsae --nproc`'s, shared by its ranks
