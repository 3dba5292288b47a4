"""`musicsae dashboard` without --audio-root: the folder `collect rave` recorded in store.json (the store knows
where its clips came from; the flag was required all the same)."""

import json

import torch

from sae.store import ActivationWriter
from training.cli import main
from training.cli.dashboard import stored_audio_root


def test_the_audio_root_defaults_to_the_folder_collect_recorded(tmp_path, capsys):
    store = tmp_path / "store"
    store.mkdir()
    (store / "store.json").write_text(json.dumps({"collect": {"rave": {"audio": "/data/my clips"}}}))
    assert stored_audio_root(str(store)) == "/data/my clips"
    (tmp_path / "one take.wav").write_bytes(b"")  # `collect rave --audio FILE` stores it by its name
    (store / "store.json").write_text(json.dumps({"collect": {"rave": {"audio": str(tmp_path / "one take.wav")}}}))
    assert stored_audio_root(str(store)) == str(tmp_path)
    with ActivationWriter(store, "h", 4, dtype="float32") as w:  # a store with rows, collected from prompts
        w.add(torch.zeros(3, 4), "prompt_0", 0)
    # a MusicGen store collected from audio records its folder too (it was "records no audio folder": hunt 83)
    (store / "store.json").write_text(json.dumps({"collect": {"audio": {"chunk": 10, "audio": "/data/takes"}}}))
    assert stored_audio_root(str(store)) == "/data/takes"
    argv = ["dashboard", "--sae", str(tmp_path / "sae"), "--store", str(store), "--out", str(tmp_path / "site")]
    assert main(argv) == 2  # gone (a project moved elsewhere): named, and what to do (hunt 214)
    err = capsys.readouterr().err.strip()
    assert err == (f"musicsae: error: --audio-root: store {store} was collected from /data/takes, which is not there "
                   "(moved?); pass --audio-root with the folder its clips are in now")  # fmt: skip
    (store / "store.json").write_text(json.dumps({"collect": {"prompts": {"duration": 10}}}))  # no clips: none
    assert stored_audio_root(str(store)) is None
    (store / "store.json").write_text(json.dumps({"collect": {}}))  # collected before the folder was recorded
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert (
        err
        == f"musicsae: error: --audio-root: store {store} records no audio folder; pass the folder its clips came from"
    )

    # no store at all is named as such, not as a missing audio folder
    argv[4] = str(tmp_path / "nope")
    assert main(argv) == 2
    assert f"--store {tmp_path / 'nope'}: no such folder" in capsys.readouterr().err
