"""`musicsae dashboard` without --audio-root: the folder `collect rave` recorded in store.json (the store knows
where its clips came from; the flag was required all the same)."""

import json

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
    (store / "store.json").write_text(json.dumps({"collect": {"audio": {"chunk": 10}}}))  # a MusicGen store
    argv = ["dashboard", "--sae", str(tmp_path / "sae"), "--store", str(store), "--out", str(tmp_path / "site")]
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert (
        err
        == f"musicsae: error: --audio-root: store {store} records no audio folder; pass the folder its clips came from"
    )
