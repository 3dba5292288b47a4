"""End to end on the RAVE path: generated clips -> `collect rave` with the tiny RAVE (two hooks) -> SAEs ->
`musicsae dashboard` -> the site in headless Chromium, with a per-layer map of both hooks."""

import json

import pytest

from training.cli import main


@pytest.mark.slow
def test_rave_store_dashboard(tiny_rave_ts, tmp_path, capsys, browser):
    import torch

    from sae.store import ActivationStore
    from sae.train import TrainConfig, train_hook
    from training.data.concept_clips import DataConfig, make_dataset
    from training.rave.collect import RaveCollectConfig, collect_rave

    torch.set_num_threads(1)
    data = tmp_path / "data"
    make_dataset(data, DataConfig(n=12, seed=5, duration=2.0, sample_rate=44100), concepts=None)
    store = tmp_path / "store"
    collect_rave(RaveCollectConfig(str(tiny_rave_ts), str(data / "clips"), str(store), ("latent", "encoder.net.2")))
    for hook in ("latent", "encoder.net.2"):
        cfg = TrainConfig(
            k=4, expansion=4, steps=100, batch_size=256, eval_fraction=0.0, checkpoint_every=0, shuffle_buffer=4096
        )
        train_hook(ActivationStore(store), hook, tmp_path / "sae" / hook, cfg)
    out = tmp_path / "site"
    rc = main(
        [
            "dashboard",
            "--sae",
            str(tmp_path / "sae" / "latent"),
            "--store",
            str(store),
            "--audio-root",
            str(data / "clips"),
            "--out",
            str(out),
            "--manifest",
            str(data),
            "--top",
            "3",
            "--max-pages",
            "4",
        ]
    )
    assert rc == 0, capsys.readouterr().err
    site = json.loads((out / "features.json").read_text())
    assert site["hook"] == "latent" and site["clips"] == 12 and site["model"]["name"] == tiny_rave_ts.name
    described = [f for f in site["features"] if f.get("clips")]
    assert described and all(c["labels"] for f in described for c in f["clips"])  # manifest matched
    layers = (out / "layers.html").read_text()
    assert ">latent<" in layers and ">encoder.net.2<" in layers
    # the SAE of the second hook reads its own hook of the same store
    rc = main(
        [
            "dashboard",
            "--sae",
            str(tmp_path / "sae" / "encoder.net.2"),
            "--store",
            str(store),
            "--audio-root",
            str(data / "clips"),
            "--out",
            str(tmp_path / "o2"),
            "--top",
            "1",
            "--max-pages",
            "1",
        ]
    )
    assert rc == 0, capsys.readouterr().err  # its own hook is in the same store
    page = out / "features" / f"f{described[0]['index']:05d}.html"
    for p, n_audio in ((out / "index.html", 0), (page, len(described[0]["clips"])), (out / "layers.html", 0)):
        report, console = browser.load(p)
        browser.assert_clean(report, console, p, n_audio)
