"""Activation store: format, atomic appends, resumable writes, streaming reads, split, bad input."""

import errno
import json
import os
import shutil
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import load_file

import sae.store as store_mod
from sae.errors import UserError
from sae.store import BLOCK_ROWS, ActivationStore, ActivationWriter


def _write(root, hook="layer.0", dim=8, n_sources=5, rows=700, shard_rows=1000, dtype="float16"):
    data = {}
    with ActivationWriter(
        root,
        hook,
        dim,
        dtype=dtype,
        model={"name": "tiny", "sha256": "ab"},
        frame_rate=21.5,
        sample_rate=44100,
        shard_rows=shard_rows,
    ) as w:
        for i in range(n_sources):
            x = torch.randn(rows, dim) + i
            data[f"clip{i}.wav"] = x
            w.add(x, f"clip{i}.wav", 0)
    return data


def test_layout_manifest_and_segments(tmp_path):
    data = _write(tmp_path)
    info = json.loads((tmp_path / "store.json").read_text())
    assert info == {"model": {"name": "tiny", "sha256": "ab"}, "frame_rate": 21.5, "sample_rate": 44100}
    man = json.loads((tmp_path / "layer.0" / "manifest.json").read_text())
    assert (man["hook"], man["dim"], man["dtype"]) == ("layer.0", 8, "float16")
    assert [s["rows"] for s in man["shards"]] == [1000, 1000, 1000, 500]
    for s in man["shards"]:
        t = load_file(tmp_path / "layer.0" / s["file"])["activations"]
        assert t.dtype == torch.float16 and t.shape == (s["rows"], 8)
        assert sum(p["rows"] for p in s["provenance"]) == s["rows"]
    st = ActivationStore(tmp_path)
    assert st.hooks == ["layer.0"] and st.dim("layer.0") == 8 and st.rows("layer.0") == 3500
    assert st.info["frame_rate"] == 21.5
    assert st.complete_sources("layer.0") == set(data)
    # segments reassemble each source exactly (fp16 rounding), frames in order
    got: dict[str, list] = {}
    for src, start, x in st.iter_segments("layer.0"):
        got.setdefault(src, []).append((start, x))
    for src, parts in got.items():
        starts = [s for s, _ in parts]
        assert starts == sorted(starts) and starts[0] == 0
        full = torch.cat([x for _, x in parts])
        torch.testing.assert_close(full, data[src].half().float())


def test_resume_skips_stored_frames_and_complete_sources(tmp_path):
    _write(tmp_path, n_sources=3)
    with ActivationWriter(tmp_path, "layer.0", 8, shard_rows=1000) as w:
        assert w.complete_sources == {"clip0.wav", "clip1.wav", "clip2.wav"}
        assert w.add(torch.randn(700, 8), "clip2.wav", 0) == 0  # already stored: dropped
        assert w.add(torch.randn(800, 8), "clip2.wav", 600) == 700  # frames 700..1399 are new
        w.add(torch.randn(300, 8), "clip3.wav", 0)
    st = ActivationStore(tmp_path)
    assert st.sources("layer.0") == {"clip0.wav": 700, "clip1.wav": 700, "clip2.wav": 1400, "clip3.wav": 300}
    assert st.rows("layer.0") == 3100
    with pytest.raises(UserError, match="dim 8, not 16"):
        ActivationWriter(tmp_path, "layer.0", 16)
    with pytest.raises(UserError, match="frame_rate"):
        ActivationWriter(tmp_path, "layer.1", 16, frame_rate=50.0)


def test_a_store_of_another_model_is_named_in_words(tmp_path):
    """Collecting with a second model into a store says which model it holds (name and hash), not two dicts."""
    with ActivationWriter(tmp_path, "latent", 4, model={"name": "demo_rave.ts", "sha256": "91ae76d46047df65"}) as w:
        w.add(torch.randn(10, 4), "a.wav", 0)
    with pytest.raises(UserError) as err:
        ActivationWriter(tmp_path, "latent", 4, model={"name": "tiny.ts", "sha256": "60d6d9e4f3793f88"})
    assert str(err.value) == (
        f"store {tmp_path}: holds activations of demo_rave.ts (sha256 91ae76d46047…), not tiny.ts "
        "(sha256 60d6d9e4f379…); collect into another --out folder (one store per model)"
    )


def test_the_same_weights_under_another_folder_name_are_the_same_model(tmp_path):
    """Hunt 78: `collect musicgen --model .` recorded the name "" and a later `--model tiny_ac` (the same weights)
    was refused "holds activations of  (sha256 6190e9ebea43…), not tiny_ac (sha256 6190e9ebea43…)"."""
    from realtime.musicgen.base import folder_name

    model = {"name": "tiny_ac", "sha256": "6190e9ebea43", "backend": "audiocraft"}
    with ActivationWriter(tmp_path / "s", "layer.0", 4, model=model) as w:
        w.add(torch.randn(10, 4), "a.wav", 0)
    with ActivationWriter(tmp_path / "s", "layer.0", 4, model={**model, "name": "tiny_ac_copy"}) as w:
        w.add(torch.randn(10, 4), "b.wav", 0)
    for other in ({**model, "sha256": "ab12"}, {**model, "backend": "transformers"}):
        with pytest.raises(UserError, match="holds activations of tiny_ac"):
            ActivationWriter(tmp_path / "s", "layer.0", 4, model=other)
    assert folder_name(".") == Path.cwd().name


def test_a_second_writer_of_the_same_hook_and_rank_is_refused(tmp_path, monkeypatch):
    """Two collects into one store at once each stored every source (twice the rows, silently); torchrun ranks,
    which take disjoint shares of the sources, still write one hook together."""
    with ActivationWriter(tmp_path, "layer.0", 8) as w:
        with pytest.raises(UserError, match=f"{tmp_path / 'layer.0'}: another collect of 'layer.0' is writing"):
            ActivationWriter(tmp_path, "layer.0", 8)
        monkeypatch.setenv("RANK", "1")
        monkeypatch.setenv("WORLD_SIZE", "2")
        with ActivationWriter(tmp_path, "layer.0", 8) as other_rank:
            other_rank.add(torch.randn(10, 8), "clip1.wav", 0)
        w.add(torch.randn(10, 8), "clip0.wav", 0)
    monkeypatch.delenv("RANK")
    monkeypatch.delenv("WORLD_SIZE")
    with ActivationWriter(tmp_path, "layer.0", 8) as again:  # released on close
        assert again.complete_sources == {"clip0.wav", "clip1.wav"}


def test_failed_shard_write_leaves_nothing_readers_trust(tmp_path, monkeypatch):
    _write(tmp_path, n_sources=2, rows=500)  # one shard of 1000 rows
    real_save = store_mod.save_file

    def disk_full(tensors, filename, metadata=None):
        with open(filename, "wb") as fh:
            fh.write(b"\x00" * 100)  # a partial file, then the disk is full
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(store_mod, "save_file", disk_full)
    with (
        pytest.raises(UserError, match="No space left on device"),
        ActivationWriter(tmp_path, "layer.0", 8, shard_rows=9) as w,
    ):
        w.add(torch.randn(1000, 8), "clip9.wav", 0)
    names = [".lock", ".writer_0.lock", "manifest.json", "shard_00000.safetensors"]
    assert sorted(os.listdir(tmp_path / "layer.0")) == names
    st = ActivationStore(tmp_path)
    assert st.rows("layer.0") == 1000 and "clip9.wav" not in st.sources("layer.0")
    monkeypatch.setattr(store_mod, "save_file", real_save)
    with ActivationWriter(tmp_path, "layer.0", 8, shard_rows=1000) as w:
        w.add(torch.randn(1000, 8), "clip9.wav", 0)
    assert ActivationStore(tmp_path).rows("layer.0") == 2000


def test_sigkilled_writer_leaves_a_consistent_store(tmp_path):
    script = textwrap.dedent(f"""
        import torch, time
        from sae.store import ActivationWriter
        with ActivationWriter({str(tmp_path)!r}, "h", 4, dtype="float32", shard_rows=256) as w:
            for i in range(100000):
                w.add(torch.full((100, 4), float(i)), f"s{{i}}", 0)
    """)
    proc = subprocess.Popen([sys.executable, "-c", script])
    man = tmp_path / "h" / "manifest.json"
    deadline = time.time() + 60
    while time.time() < deadline:
        if man.exists() and len(json.loads(man.read_text())["shards"]) >= 5:
            break
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    st = ActivationStore(tmp_path)
    n = st.rows("h")
    assert n >= 5 * 256
    complete = st.complete_sources("h")
    for src, _start, x in st.iter_segments("h"):  # every listed row reads back as written
        assert torch.all(x == float(src[1:]))
    for src in complete:
        assert st.sources("h")[src] == 100
    # resuming: the same deterministic collection adds only what is missing
    with ActivationWriter(tmp_path, "h", 4, dtype="float32", shard_rows=256) as w:
        for i in range(len(complete) + 10):
            if f"s{i}" not in complete:
                w.add(torch.full((100, 4), float(i)), f"s{i}", 0)
    st = ActivationStore(tmp_path)
    assert all(v == 100 for v in st.sources("h").values())


def _batches(st, **kw):
    return [b.clone() for b in st.iter_batches("layer.0", 64, **kw)]


def test_shuffle_is_deterministic_and_covers_the_split(tmp_path):
    _write(tmp_path, n_sources=20, rows=2000, shard_rows=BLOCK_ROWS * 2, dtype="float32")
    st = ActivationStore(tmp_path)
    a = _batches(st, seed=3, shuffle_buffer=5000, eval_fraction=0.2)
    b = _batches(st, seed=3, shuffle_buffer=5000, eval_fraction=0.2)
    c = _batches(st, seed=4, shuffle_buffer=5000, eval_fraction=0.2)
    assert all(torch.equal(x, y) for x, y in zip(a, b, strict=True))
    assert not torch.equal(torch.cat(a), torch.cat(c))
    train = torch.cat(a)
    ev = torch.cat(_batches(st, split="eval", eval_fraction=0.2, shuffle_buffer=0))
    allrows = torch.cat(_batches(st, split="all", shuffle_buffer=0))
    assert allrows.shape[0] == 40000
    assert ev.shape[0] + train.shape[0] + 63 >= 40000 and train.shape[0] % 64 == 0
    # held-out rows never appear in training batches
    tr = {tuple(r) for r in train[:, :3].tolist()}
    assert not any(tuple(r) in tr for r in ev[:, :3].tolist())
    block = st.block_rows("layer.0")
    assert block == 512 and abs(ev.shape[0] - 0.2 * 40000) <= block  # the split is close to the fraction
    # the held-out split does not depend on the seed
    ev2 = torch.cat(_batches(st, split="eval", eval_fraction=0.2, shuffle_buffer=0, seed=9))
    assert torch.equal(ev, ev2)


def test_the_held_out_split_is_whole_sources(tmp_path):
    """No clip has rows on both sides (rows of one clip are alike: a split by rows would flatter the held-out
    metrics), also where a clip crosses a block or shard boundary; a hook of too few sources for the fraction (of
    one, here) is split by blocks."""
    with ActivationWriter(tmp_path, "layer.0", 2, dtype="float32", shard_rows=1000) as w:
        for i in range(20):  # 300 rows a source: sources straddle the 256-row blocks and the 1000-row shards
            w.add(torch.stack([torch.full((300,), float(i)), torch.arange(300.0)], 1), f"take {i}.wav", 0)
    st = ActivationStore(tmp_path)
    assert st.block_rows("layer.0") == 256
    train = torch.cat(_batches(st, eval_fraction=0.2, shuffle_buffer=0, drop_last=False))
    ev = torch.cat(_batches(st, split="eval", eval_fraction=0.2, shuffle_buffer=0))
    held = {int(v) for v in ev[:, 0].tolist()}
    assert len(held) == 4 and ev.shape[0] == 4 * 300  # a fifth of the sources, each whole
    assert not held & {int(v) for v in train[:, 0].tolist()} and train.shape[0] == 16 * 300
    assert st.held_sources("layer.0", 0.2) == {f"take {i}.wav" for i in held}
    assert len(st.held_sources("layer.0", 0.99)) == 19  # never all
    assert st.held_sources("layer.0", 0.03) and st.held_sources("layer.0", 0.02) is None  # 0.4 source: by blocks

    prompts = tmp_path / "prompts"  # collect musicgen --prompts: a prompt's repeats are other draws of one text
    with ActivationWriter(prompts, "layer.0", 2, dtype="float32") as w:
        for i in range(20):
            for k, name in enumerate((f"song {i}", f"song {i} #2", f"song {i} #3")):
                w.add(torch.tensor([[float(i), float(k)]]).repeat(50, 1), name, 0)
    held = ActivationStore(prompts).held_sources("layer.0", 0.2)
    assert len(held) == 12 and all({f"song {n}", f"song {n} #2", f"song {n} #3"} <= held for n in
                                   {int(h.split()[1]) for h in held})  # fmt: skip

    one = tmp_path / "one"
    with ActivationWriter(one, "layer.0", 2, dtype="float32") as w:
        w.add(torch.stack([torch.zeros(6000), torch.arange(6000.0)], 1), "the only take.wav", 0)
    st = ActivationStore(one)
    assert st.held_sources("layer.0", 0.2) is None
    ev = torch.cat(_batches(st, split="eval", eval_fraction=0.2, shuffle_buffer=0))
    assert 0 < ev.shape[0] < 6000


def test_stream_resumes_exactly_from_state(tmp_path):
    _write(tmp_path, n_sources=6, rows=2000, dtype="float32")
    st = ActivationStore(tmp_path)
    s1 = st.iter_batches("layer.0", 100, seed=1, shuffle_buffer=1500, eval_fraction=0.0, loop=True)
    it = iter(s1)
    ref = [next(it).clone() for _ in range(300)]  # crosses several rounds and epochs
    s2 = st.iter_batches("layer.0", 100, seed=1, shuffle_buffer=1500, eval_fraction=0.0, loop=True)
    it2 = iter(s2)
    for _ in range(137):
        next(it2)
    state = s2.state_dict()
    s3 = st.iter_batches("layer.0", 100, seed=1, shuffle_buffer=1500, eval_fraction=0.0, loop=True)
    s3.load_state_dict(state)
    it3 = iter(s3)
    for i in range(137, 300):
        assert torch.equal(next(it3), ref[i])


def test_a_saved_stream_state_holds_its_leftover_rows_not_the_shuffle_buffer(tmp_path):
    """Hunt 71: the carried rows were a view of the round's buffer, so every checkpoint (and the ranks' gather)
    serialised the whole shuffle buffer: 7.8 MB for 344 rows of 64 floats."""
    import io

    _write(tmp_path, n_sources=6, rows=2000, dtype="float32")
    stream = ActivationStore(tmp_path).iter_batches("layer.0", 100, seed=1, shuffle_buffer=1550, loop=True)
    it = iter(stream)
    carried = 0
    for _ in range(60):  # several rounds of 1550 rows: 50 left over each time
        next(it)
        carry = stream.state_dict()["carry"]
        if carry is not None and carry.shape[0]:
            carried += 1
            assert carry.untyped_storage().nbytes() == carry.numel() * carry.element_size()
            saved = io.BytesIO()
            torch.save(stream.state_dict(), saved)
            assert saved.tell() < 4096 + carry.numel() * carry.element_size()
    assert carried


def test_ranks_read_disjoint_units(tmp_path):
    _write(tmp_path, n_sources=10, rows=BLOCK_ROWS // 2, shard_rows=BLOCK_ROWS, dtype="float32")
    st = ActivationStore(tmp_path)
    r0 = torch.cat(list(st.iter_batches("layer.0", 512, split="all", seed=0, rank=0, world_size=2)))
    r1 = torch.cat(list(st.iter_batches("layer.0", 512, split="all", seed=0, rank=1, world_size=2)))
    assert r0.shape[0] > 0 and r1.shape[0] > 0
    s0 = {tuple(r) for r in r0[:, :2].tolist()}
    assert not any(tuple(r) in s0 for r in r1[:, :2].tolist())


def test_nonfinite_rows_are_counted_and_skipped(tmp_path):
    x = torch.randn(1000, 4)
    x[[3, 50, 999], 1] = float("nan")
    x[7, 0] = float("inf")
    with ActivationWriter(tmp_path, "h", 4, dtype="float32") as w, pytest.warns(UserWarning, match="4 rows"):
        w.add(x, "a.wav")
        w.close()
    st = ActivationStore(tmp_path)
    stream = st.iter_batches("h", 100, split="all", drop_last=False)
    rows = torch.cat(list(stream))
    assert rows.shape[0] == 996 and torch.isfinite(rows).all()
    assert stream.nonfinite_rows == 4
    looping = st.iter_batches("h", 100, split="all", loop=True)
    it = iter(looping)
    for _ in range(30):  # three epochs: skipped rows are counted once
        assert torch.isfinite(next(it)).all()
    assert looping.nonfinite_rows == 4
    with ActivationWriter(tmp_path, "bad", 4, dtype="float32") as w, pytest.warns(UserWarning):
        w.add(torch.full((300, 4), float("nan")), "a.wav")
        w.close()
    with pytest.raises(UserError, match="every row this reader sees is NaN/inf"):
        next(iter(ActivationStore(tmp_path).iter_batches("bad", 10, split="all", loop=True)))
    with pytest.raises(UserError, match="hook 'bad': every row of the train split is NaN/inf"):
        ActivationStore(tmp_path).sample("bad", 10)  # what `sae train` draws first (it raised a torch error)


def test_bad_input_is_one_clear_error(tmp_path):
    with pytest.raises(UserError, match="not a directory"):
        ActivationStore(tmp_path / "missing")
    (tmp_path / "h").mkdir()
    (tmp_path / "h" / "manifest.json").write_text(json.dumps({"hook": "h", "dim": 4, "dtype": "float16", "shards": []}))
    st = ActivationStore(tmp_path)
    with pytest.raises(UserError, match="no rows"):
        st.iter_batches("h", 10)
    with pytest.raises(UserError, match="no hook 'nope'"):
        st.dim("nope")
    with ActivationWriter(tmp_path, "h", 4) as w, pytest.raises(UserError, match=r"expected \[N, 4\]"):
        w.add(np.zeros((3, 5), dtype=np.float32), "a")
    with pytest.raises(UserError, match="float16 range"), ActivationWriter(tmp_path, "h", 4) as w:
        w.add(torch.full((2, 4), 1e6), "b")
    # a shard whose width disagrees with the manifest (mixed dims)
    with ActivationWriter(tmp_path, "g", 4, dtype="float32") as w:
        w.add(torch.randn(10, 4), "a")
    man = json.loads((tmp_path / "g" / "manifest.json").read_text())
    man["dim"] = 6
    (tmp_path / "g" / "manifest.json").write_text(json.dumps(man))
    with pytest.raises(UserError, match="mixed dims"):
        list(ActivationStore(tmp_path).iter_segments("g"))
    with pytest.raises(UserError, match="eval fraction"):
        ActivationStore(tmp_path).iter_batches("g", 4, eval_fraction=1.5)


def test_shards_the_manifest_allows_but_the_reader_did_not_are_handled(tmp_path):
    """Hunt 62: an int32 shard in a float32 hook was read as numbers and trained on; a zero-row entry without
    `provenance` (which the manifest reader allows) was a KeyError; a --seed the CLI accepts (2e13) overflowed the
    shuffle's generator."""
    from safetensors.torch import save_file

    _write(tmp_path, n_sources=4, rows=300, dtype="float32")
    hook = tmp_path / "layer.0"
    man = json.loads((hook / "manifest.json").read_text())
    save_file({"activations": torch.zeros(0, 8)}, str(hook / "shard_empty.safetensors"))
    man["shards"].append({"file": "shard_empty.safetensors", "rows": 0})
    (hook / "manifest.json").write_text(json.dumps(man))
    st = ActivationStore(tmp_path)
    rows = [
        sum(b.shape[0] for b in st.iter_batches("layer.0", 64, seed=s, eval_fraction=0.25)) for s in (2 * 10**13, 3)
    ]
    assert rows[0] == rows[1] > 0
    first = man["shards"][0]["file"]
    data = load_file(str(hook / first))["activations"]
    save_file({"activations": data.to(torch.int32)}, str(hook / first))
    with pytest.raises(UserError, match=rf"{first}: I32 activations; expected a shard of float16 or float32"):
        list(ActivationStore(tmp_path).iter_batches("layer.0", 64))


def test_a_hook_folder_passed_as_the_store_names_the_store(tmp_path):
    """`--activations store/latent` (one hook's folder) read as an empty store; the line names the store to pass."""
    with ActivationWriter(tmp_path / "store", "latent", 4, dtype="float32") as w:
        w.add(torch.randn(10, 4), "a")
    with pytest.raises(
        UserError, match=r"latent is one hook's folder of the store .*store: pass that \(hook 'latent'\)"
    ):
        ActivationStore(tmp_path / "store" / "latent")


def test_a_full_disk_safetensors_reports_as_its_own_error_leaves_no_shard(tmp_path, monkeypatch):
    """safetensors reports ENOSPC as a SafetensorError: collect ended in its traceback, its temporary shard left."""
    from safetensors import SafetensorError

    def disk_full(tensors, filename, metadata=None):
        with open(filename, "wb") as fh:
            fh.write(b"\x00" * 100)
        raise SafetensorError("Error while serializing: I/O error: No space left on device (os error 28)")

    class Full:
        f_bavail, f_frsize, f_flag = 0, 4096, 0

    monkeypatch.setattr(store_mod, "save_file", disk_full)
    monkeypatch.setattr(os, "statvfs", lambda p: Full())
    full = r"writing a shard of 'layer.0' in .*: No space left on device \(Error while"
    with pytest.raises(UserError, match=full), ActivationWriter(tmp_path, "layer.0", 8, shard_rows=9) as w:
        w.add(torch.randn(10, 8), "clip0.wav", 0)
    assert not (tmp_path / "layer.0").exists()  # no shard, and no row stored: the hook this run added is gone


def test_new_settings_are_refused_only_for_a_kind_that_has_rows(tmp_path):
    """A prompt run stopped before its first rows, in a store holding audio rows, was refused when rerun with another
    duration ('its prompts rows were collected with other settings'): rows did not say which collection made them."""
    from sae.store import same_collect_settings

    root = tmp_path / "st"
    same_collect_settings(root, "audio", {"chunk": 10})
    with ActivationWriter(root, "layer.0", 4) as w:
        w.add(torch.randn(30, 4), "a.wav", 0, "audio")
    prov = json.loads((root / "layer.0" / "manifest.json").read_text())["shards"][0]["provenance"]
    assert prov == [{"source": "a.wav", "start_frame": 0, "rows": 30, "kind": "audio"}]
    same_collect_settings(root, "prompts", {"duration": 1e9})  # the run that stopped before its first rows
    same_collect_settings(root, "prompts", {"duration": 0.3})  # its corrected rerun
    with pytest.raises(UserError, match=r"its audio rows were collected with other settings \(chunk: 10 stored"):
        same_collect_settings(root, "audio", {"chunk": 5})
    with ActivationWriter(root, "layer.0", 4) as w:
        w.add(torch.randn(20, 4), "happy guitar", 0, "prompts")
    with pytest.raises(UserError, match=r"its prompts rows were collected with other settings"):
        same_collect_settings(root, "prompts", {"duration": 0.5})


def test_a_run_refused_at_a_later_hook_leaves_no_empty_hook_behind(tmp_path):
    """Hunt 89: `collect --layers new,old --dtype float16` on a float32 `old` was refused, but left `new` with an
    empty float16 manifest: `sae train` then said "hook 'new' has no rows", and collecting `new` in float32 was
    refused, until the folder was removed by hand."""
    import contextlib

    root = tmp_path / "st"
    with ActivationWriter(root, "old", 4, dtype="float32") as w:
        w.add(torch.randn(30, 4), "a.wav", 0, "rave")
    with pytest.raises(UserError, match="holds float32, not float16"), contextlib.ExitStack() as stack:
        for hook in ("new", "old"):
            stack.enter_context(ActivationWriter(root, hook, 4, dtype="float16"))
    assert sorted(p.name for p in root.iterdir()) == [".lock", "old", "store.json"]
    with ActivationWriter(root, "new", 4, dtype="float32") as w:  # what the store holds: taken
        w.add(torch.randn(30, 4), "a.wav", 0, "rave")
    with pytest.raises(RuntimeError, match="stop"), ActivationWriter(root, "other", 4) as w:
        w.add(torch.randn(3, 4), "a.wav", 0, "rave")  # buffered rows are valid rows: kept
        raise RuntimeError("stop")
    assert (root / "other" / "manifest.json").is_file()
    assert ActivationStore(root).hooks == ["new", "old", "other"]


def test_rows_stored_without_a_kind_count_as_every_kinds(tmp_path):
    """Stores written before rows carried their kind: which collection made them is unknown, so settings stay."""
    from sae.store import same_collect_settings

    root = tmp_path / "st"
    same_collect_settings(root, "prompts", {"duration": 0.3})
    _write(root, n_sources=1, rows=10)
    with pytest.raises(UserError, match="its prompts rows were collected with other settings"):
        same_collect_settings(root, "prompts", {"duration": 0.5})
    path = root / "layer.0" / "manifest.json"
    m = json.loads(path.read_text())
    m["shards"][0]["provenance"][0]["kind"] = 3
    path.write_text(json.dumps(m))
    with pytest.raises(UserError, match=r"shard 0: provenance: expected a list of \{source, start_frame, rows\[, k"):
        ActivationStore(root).manifest("layer.0")


def test_every_pass_over_a_stream_is_the_same_pass(tmp_path):
    """A stream kept its position: read again it gave no rows (a second `evaluate` on one stream measured other rows,
    a third none). Each `iter()` is now a pass from the start, or from a loaded state."""
    _write(tmp_path, n_sources=6, rows=300, dtype="float32")
    st = ActivationStore(tmp_path)
    stream = st.iter_batches("layer.0", 64, seed=2, shuffle_buffer=500, eval_fraction=0.0)
    first = [b.clone() for b in stream]
    assert len(first) == 28
    assert all(torch.equal(a, b) for a, b in zip(first, stream, strict=True))  # read again
    it = iter(stream)
    part = [next(it).clone() for _ in range(3)]  # a pass left after 3 batches
    assert all(torch.equal(a, b) for a, b in zip(part, first[:3], strict=True))
    resumed = st.iter_batches("layer.0", 64, seed=2, shuffle_buffer=500, eval_fraction=0.0)
    resumed.load_state_dict(stream.state_dict())  # goes on after those 3, in every pass of its own
    for _ in range(2):
        rest = [b.clone() for b in resumed]
        assert len(rest) == 25 and all(torch.equal(a, b) for a, b in zip(rest, first[3:], strict=True))
    assert len(list(stream)) == 28


def test_a_split_smaller_than_one_batch_is_refused_where_it_would_give_nothing(tmp_path):
    _write(tmp_path, n_sources=3, rows=100, dtype="float32")
    st = ActivationStore(tmp_path)
    with pytest.raises(UserError, match=r"the train split has 300 rows, fewer than one batch of 400"):
        st.iter_batches("layer.0", 400, eval_fraction=0.0)
    assert sum(len(b) for b in st.iter_batches("layer.0", 400, eval_fraction=0.0, drop_last=False)) == 300
    looped = iter(st.iter_batches("layer.0", 400, eval_fraction=0.0, loop=True))  # the remainder carries over
    assert next(looped).shape == (400, 8)


@pytest.mark.parametrize(
    ("args", "problem"),
    [
        ((Path("clips/a.wav"), 0), r"source PosixPath\('clips/a.wav'\), expected a non-empty str"),
        (("", 0), r"source '', expected a non-empty str"),
        (("a.wav", -5), r"from 'a.wav': start_frame -5, expected an integer >= 0"),
        (("a.wav", 1.5), r"start_frame 1.5, expected an integer >= 0"),
        (("a.wav", True), r"start_frame True, expected an integer >= 0"),
        (("a.wav", 0, 3), r"kind 3, expected a str or None"),
    ],
)
def test_writer_refuses_provenance_its_manifest_cannot_hold(tmp_path, args, problem):
    """`add(x, 'b.wav', start_frame=-5)` kept the rows and left a store that no longer opened; a Path source failed
    at `close()` with a JSON TypeError after its shard was in the folder, its rows lost."""
    with ActivationWriter(tmp_path, "h", 4, dtype="float32") as w:
        w.add(torch.randn(10, 4), "kept.wav", np.int64(0))
        with pytest.raises(UserError, match=problem):
            w.add(torch.randn(10, 4), *args)
    st = ActivationStore(tmp_path)
    assert [(s, f, len(x)) for s, f, x in st.iter_segments("h")] == [("kept.wav", 0, 10)]


def test_a_resumed_collect_clears_what_a_killed_writer_left(tmp_path):
    """A collect killed while writing its manifest left `.manifest.json.XXXXXXXX.tmp` (100 KB) that the resumed
    collect kept. Shards are written under this rank's own temporary names, so another rank's are never taken."""
    from sae.atomic import temp_beside

    _write(tmp_path, n_sources=2, rows=50, dtype="float32")
    hook = tmp_path / "layer.0"
    left = [Path(temp_beside(hook / "manifest.json")), Path(temp_beside(hook / "shard.rank0")),
            Path(temp_beside(tmp_path / "store.json"))]  # fmt: skip
    other_rank = Path(temp_beside(hook / "shard.rank1"))
    with ActivationWriter(tmp_path, "layer.0", 8, dtype="float32") as w:
        w.add(torch.randn(5, 8), "clip9.wav", 0)
    assert not any(p.exists() for p in left) and other_rank.exists()
    assert not list(hook.glob(".shard.rank0.*.tmp"))
    assert len(list(ActivationStore(tmp_path).iter_segments("layer.0"))) == 3


def test_the_sample_for_normalisation_is_drawn_from_the_whole_split(tmp_path):
    """Hunt 62: `sample` took the first shuffle round's rows, from 8 of 61 training clips; the scale it gave left
    E|x_n|^2 at 29 instead of d_in = 16. Clips here sit at their own offsets, as clips of one collection do."""
    g = torch.Generator().manual_seed(0)
    with ActivationWriter(tmp_path, "h", 4, "float32", shard_rows=65536) as w:
        for i in range(64):
            w.add(float(i) + 0.1 * torch.randn(8192, 4, generator=g), f"clip{i:02d}.wav", 0)
    st = ActivationStore(tmp_path)
    split = torch.cat(list(st.iter_batches("h", 8192, "train", 0.05, shuffle_buffer=0, drop_last=False)))
    x = st.sample("h", 4096, "train", 0.05, seed=3)
    assert x.shape == (4096, 4) and torch.unique(x, dim=0).shape[0] == 4096  # rows drawn without replacement
    assert abs(float(x.mean()) - float(split.mean())) < 0.05 * float(split.std())  # 18.5 / 64 = 0.29: 3 SE
    assert abs(float(x.std()) - float(split.std())) < 0.05 * float(split.std())
    assert torch.equal(x, st.sample("h", 4096, "train", 0.05, seed=3))


def test_a_store_of_one_block_names_the_option_that_holds_out_nothing(tmp_path):
    """Hunt 154: "... or use eval fraction 0" named no option a user could pass."""
    with ActivationWriter(tmp_path / "s", "latent", 4, "float32") as w:
        w.add(torch.randn(50, 4), "a.wav", 0)
    with pytest.raises(UserError, match=r"50 rows \(one block\); .* or hold out none \(--eval-fraction 0\)$"):
        ActivationStore(tmp_path / "s").split_units("latent", "train", 0.2)


def test_an_origin_goes_in_with_its_sources_first_rows_in_a_shard(tmp_path):
    """A source's file origin is recorded once rows of it are in a shard (not for a file whose rows a killed run
    never wrote: its edit would be refused for nothing), and kept across writers; a damaged one is one line."""
    origin = {"bytes": 10, "mtime_ns": 5, "sha256": "ab"}
    manifest = tmp_path / "h" / "manifest.json"
    with ActivationWriter(tmp_path, "h", 4, shard_rows=100) as w:
        w.set_origin("a", origin)
        w.set_origin("b", {**origin, "bytes": 11})  # read, not yet stored
        w.add(torch.randn(150, 4), "a")  # a shard of 100 rows holds a's first rows
        assert json.loads(manifest.read_text())["origins"] == {"a": origin}
        w.add(torch.randn(20, 4), "b")  # buffered only
        assert set(json.loads(manifest.read_text())["origins"]) == {"a"}
    assert set(json.loads(manifest.read_text())["origins"]) == {"a", "b"}
    with ActivationWriter(tmp_path, "h", 4, shard_rows=100) as w:
        assert w.origins["b"]["bytes"] == 11
    man = json.loads(manifest.read_text())
    man["origins"]["a"] = {"bytes": "10"}
    manifest.write_text(json.dumps(man))
    with pytest.raises(UserError, match=r"origins: expected an object of \{source: \{bytes, mtime_ns, sha256, "):
        ActivationStore(tmp_path).rows("h")


def test_rows_another_writer_stored_meanwhile_are_not_stored_twice(tmp_path, monkeypatch):
    """Hunt 206: a `collect --nproc 2` started beside a running collect had its rank 1 store its share while the
    first run stored the same sources again (121542 rows for 103440, reported as 103440). Under the manifest's lock
    a shard keeps only the rows no other writer stored since its writer opened."""
    data = torch.randn(100, 4)
    monkeypatch.setenv("WORLD_SIZE", "2")
    monkeypatch.setenv("RANK", "0")
    first = ActivationWriter(tmp_path, "layer.0", 4, shard_rows=1000)
    first.add(data, "a.wav", 0)  # buffered: not in a shard yet
    monkeypatch.setenv("RANK", "1")
    with ActivationWriter(tmp_path, "layer.0", 4, shard_rows=1000) as other:  # the other run's rank 1, meanwhile
        other.add(data[20:60], "a.wav", 20)
        other.add(torch.randn(10, 4), "b.wav", 0)
    first.close()
    assert first.rows_written == 60 and first.rows_skipped == 40
    st = ActivationStore(tmp_path)
    assert st.sources("layer.0") == {"a.wav": 100, "b.wav": 10} and st.rows("layer.0") == 110
    got = {}
    for _, start, x in st.iter_segments("layer.0", {"a.wav"}):
        got[start] = x
    torch.testing.assert_close(torch.cat([got[s] for s in sorted(got)]), data.half().float())  # every frame once


def test_a_collect_of_other_settings_is_refused_while_another_writes_into_the_store(tmp_path):
    """Hunt 206: two collects of two audio folders into one store both went on (the second rewrote the settings
    while the first had no shard yet): the store held rows of both under the same source names."""
    import subprocess
    import sys

    from sae.store import same_collect_settings

    root = tmp_path / "st"
    same_collect_settings(root, "rave", {"audio": "/songs/a"})
    (root / "latent").mkdir()
    lock = root / "latent" / ".writer_0.lock"
    hold = ("import fcntl, sys, time; f = open(sys.argv[1], 'a'); fcntl.flock(f, fcntl.LOCK_EX); "
            "open(sys.argv[1], 'w').write('pid 1'); print('held', flush=True); time.sleep(60)")  # fmt: skip
    other = subprocess.Popen([sys.executable, "-c", hold, str(lock)], stdout=subprocess.PIPE, text=True)
    try:
        assert other.stdout.readline().strip() == "held"
        with pytest.raises(UserError, match=r"another collect is writing rave rows into it with other settings"):
            same_collect_settings(root, "rave", {"audio": "/songs/b"})
        same_collect_settings(root, "rave", {"audio": "/songs/a"})  # the same settings: its rerun goes on
        with ActivationWriter(root, "other", 4) as w:  # rows of /songs/a: refused for them, not "wait for it" (208)
            w.add(torch.randn(3, 4), "a.wav", 0, "rave")
        with pytest.raises(UserError, match=r"its rave rows were collected with other settings"):
            same_collect_settings(root, "rave", {"audio": "/songs/b"})
        shutil.rmtree(root / "other")
    finally:
        other.kill()
        other.wait()
    same_collect_settings(root, "rave", {"audio": "/songs/b"})  # no one writing and no rows: the new settings


def test_a_recipes_store_is_collected_whole_or_not_at_all(tmp_path):
    """Hunt 207: `eval hooks` and the MusicGen experiment stopped in their collect stage and run again stored the
    same rows in other shards, so their SAEs drew other batches (blocks per shard) and the report other figures
    (FVU 0.651 vs 0.642, a verdict "tied" turned "baseline better") than an uninterrupted run's. The stage collects
    beside the store, which appears only once whole; a store already there is collected into (a rerun skips it)."""
    from sae.store import whole_store

    store = tmp_path / "store"
    data = torch.randn(50, 4)

    def collect(into: Path, stop: bool = False) -> None:
        with ActivationWriter(into, "h", 4, shard_rows=20) as w:
            for i in range(5):
                w.add(data[10 * i : 10 * i + 10], f"c{i}.wav", 0)
                if stop and i == 3:
                    raise KeyboardInterrupt  # two shards written

    with pytest.raises(KeyboardInterrupt), whole_store(store) as into:
        assert into != store
        collect(into, stop=True)
    assert not store.exists() and list(tmp_path.iterdir()) == []  # nothing of the stopped collection is kept
    with whole_store(store) as into:
        collect(into)
    with whole_store(tmp_path / "once") as into:  # an uninterrupted run's
        collect(into)
    shards = [json.loads((s / "h" / "manifest.json").read_text())["shards"] for s in (store, tmp_path / "once")]
    assert shards[0] == shards[1] and len(shards[0]) == 3

    # hunt 208: rows added to a store there (another hook, more prompts) are collected whole too
    def add_hook(into: Path, stop: bool = False) -> None:
        with ActivationWriter(into, "g", 4, shard_rows=20) as w:
            for i in range(5):
                w.add(data[10 * i : 10 * i + 10], f"c{i}.wav", 0)
                if stop and i == 3:
                    raise KeyboardInterrupt

    before = {p.relative_to(store): p.read_bytes() for p in store.rglob("*") if p.is_file()}
    with pytest.raises(KeyboardInterrupt), whole_store(store) as into:
        assert into != store
        add_hook(into, stop=True)
    assert {p.relative_to(store): p.read_bytes() for p in store.rglob("*") if p.is_file()} == before
    with whole_store(store) as into:
        add_hook(into)
    with whole_store(tmp_path / "once") as into:
        add_hook(into)
    shards = [json.loads((s / "g" / "manifest.json").read_text())["shards"] for s in (store, tmp_path / "once")]
    assert shards[0] == shards[1] and ActivationStore(store).rows("h") == 50


def test_a_moved_audio_folder_is_taken_only_where_the_old_one_is_gone_and_every_stored_file_is_known_by_its_bytes(
    tmp_path,
):
    """Hunt 214: a project moved elsewhere was refused for its audio folder's new path. Taken now where the recorded
    folder is gone and each source stored has its sha256 (the collector compares the bytes); a folder beside it, or
    rows of files known by their names alone (stores of before origins), still refused."""
    from sae.store import kind_sources, record_collect_settings, same_collect_settings

    gone, here = str(tmp_path / "gone"), str(tmp_path / "here")
    origin = {"bytes": 10, "mtime_ns": 1, "sha256": "ab" * 32}
    traced, named = tmp_path / "traced", tmp_path / "named"
    for root, with_origin in ((traced, True), (named, False)):
        same_collect_settings(root, "rave", {"audio": gone}, "audio")
        with ActivationWriter(root, "latent", 4) as w:
            if with_origin:
                w.set_origin("a.wav", origin)
            w.add(torch.randn(3, 4), "a.wav", 0, "rave")
    refused = r"its rave rows were collected with other settings \(audio: "
    with pytest.raises(UserError, match=refused):  # known by name alone
        same_collect_settings(named, "rave", {"audio": here}, "audio")
    with pytest.raises(UserError, match=refused):  # no folder key given: the settings as they were
        same_collect_settings(traced, "rave", {"audio": here})
    Path(gone).mkdir()
    with pytest.raises(UserError, match=refused):  # the recorded folder is there: this is another one
        same_collect_settings(traced, "rave", {"audio": here}, "audio")
    Path(gone).rmdir()
    assert same_collect_settings(traced, "rave", {"audio": here}, "audio") == gone
    # nothing written until the collector has checked the new folder (hunt 215: a refused run rewrote it)
    assert json.loads((traced / "store.json").read_text())["collect"]["rave"] == {"audio": gone}
    assert kind_sources(traced, "rave") == {"a.wav"} and kind_sources(traced, "prompts") == set()
    record_collect_settings(traced, "rave", {"audio": here})
    assert same_collect_settings(traced, "rave", {"audio": here}, "audio") is None  # recorded: no move now
