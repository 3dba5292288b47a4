"""sae/describe.py: per-feature statistics against a brute-force encode, purity, store/SAE pairing."""

import json

import numpy as np
import pytest
import torch

from sae.describe import activation_curves, check_pair, clip_purity, feature_stats
from sae.errors import UserError
from sae.io import load_sae
from sae.store import ActivationStore, ActivationWriter


def _brute(store: ActivationStore, sae, hook: str):
    """Per source: all frames encoded, in frame order."""
    per: dict[str, dict[int, np.ndarray]] = {}
    for source, start, x in store.iter_segments(hook):
        with torch.no_grad():
            f = sae.encode(x).clamp_min(0).numpy()
        for i, row in enumerate(f):
            per.setdefault(source, {})[start + i] = row
    return {s: (np.array(sorted(d)), np.stack([d[k] for k in sorted(d)])) for s, d in per.items()}


def _check_against_brute(store, sae, hook, stats, top_n):
    brute = _brute(store, sae, hook)
    allf = np.concatenate([f for _, f in brute.values()])
    assert stats.frames == allf.shape[0]
    np.testing.assert_array_equal(stats.frame_fires, (allf > 0).sum(0))
    np.testing.assert_allclose(stats.max_act, allf.max(0), rtol=1e-6)
    np.testing.assert_allclose(stats.sum_act, allf.sum(0), rtol=1e-5)
    clip_max = {s: f.max(0) for s, (_, f) in brute.items()}
    np.testing.assert_array_equal(stats.clip_fires, sum((m > 0).astype(int) for m in clip_max.values()))
    assert stats.hist.sum(1).tolist() == stats.frame_fires.tolist()
    for j in range(sae.cfg.d_sae):
        want = sorted(((m[j], s) for s, m in clip_max.items() if m[j] > 0), reverse=True)[:top_n]
        got = stats.top_clips(j)
        np.testing.assert_allclose([c.value for c in got], [v for v, _ in want], rtol=1e-6)
        assert len({c.source for c in got}) == len(got)  # one entry per clip (ties may pick either clip)
        for c in got:
            assert clip_max[c.source][j] == pytest.approx(c.value, rel=1e-6)
        for c in got:  # the peak frame holds the peak value
            frames, f = brute[c.source]
            assert f[list(frames).index(c.frame), j] == pytest.approx(c.value, rel=1e-6)


def test_stats_match_brute_force(dash_inputs):
    store, sae = ActivationStore(dash_inputs.store), load_sae(dash_inputs.sae)
    hook = check_pair(store, sae)
    stats = feature_stats(store, sae, top_n=5, batch_rows=37)  # odd batches cross segment boundaries
    assert stats.clips == len(store.sources(hook)) == 20
    _check_against_brute(store, sae, hook, stats, 5)
    assert 0 < stats.live.size <= sae.cfg.d_sae
    rng = stats.in_clip_range(0.01, 0.25)
    assert all(0.01 <= stats.clip_rate[j] <= 0.25 for j in rng)
    assert set(rng) <= set(stats.live)


def test_clip_split_and_resumed_counts_once(dash_inputs, tmp_path):
    """A clip whose rows come in several segments (shard split, resumed later) is one clip."""
    sae = load_sae(dash_inputs.sae)
    g = torch.Generator().manual_seed(1)
    data = {s: torch.randn(30, 24, generator=g) * 2 for s in ("a.wav", "b.wav", "c.wav")}
    with ActivationWriter(
        tmp_path / "s",
        "mel",
        24,
        "float32",
        model={"name": "logmel24", "sha256": "0" * 64},
        frame_rate=10.0,
        sample_rate=16000,
        shard_rows=7,
    ) as w:
        w.add(data["a.wav"][:12], "a.wav", 0)
        w.add(data["b.wav"], "b.wav", 0)
        w.add(data["c.wav"][:20], "c.wav", 0)
    with ActivationWriter(tmp_path / "s", "mel", 24, "float32", shard_rows=7) as w:  # resumed: the rest
        w.add(data["a.wav"][12:], "a.wav", 12)
        w.add(data["c.wav"][20:], "c.wav", 20)
    store = ActivationStore(tmp_path / "s")
    stats = feature_stats(store, sae, top_n=3)
    assert stats.clips == 3
    _check_against_brute(store, sae, "mel", stats, 3)
    j = int(stats.live[0])
    curves = activation_curves(store, sae, {c.source: [j] for c in stats.top_clips(j)})
    for c in stats.top_clips(j):
        curve = curves[c.source][j]
        assert curve.shape == (30,)
        assert curve.max() == pytest.approx(c.value, rel=1e-6) and curve[c.frame] == pytest.approx(c.value, rel=1e-6)


def test_skip_sources(dash_inputs):
    store, sae = ActivationStore(dash_inputs.store), load_sae(dash_inputs.sae)
    skip = sorted(store.sources("mel"))[:3]
    stats = feature_stats(store, sae, skip_sources=skip)
    assert stats.clips == 17 and not set(skip) & set(stats.sources)
    assert all(c.source not in skip for j in stats.live for c in stats.top_clips(int(j)))


def test_purity_prefers_enriched_label():
    labels = {f"c{i}": {"drums"} | ({"guitar"} if i < 4 else set()) for i in range(20)}
    p = clip_purity(["c0", "c1", "c2", "c9"], labels)
    assert p.label == "guitar" and p.purity == 0.75 and p.base == 0.2 and p.lift == pytest.approx(3.75)
    # drums is on every clip: 100 % of the top clips, yet no enrichment, so guitar still wins
    assert clip_purity(["c0", "c9"], labels).label == "guitar"
    assert clip_purity(["c9", "c10"], labels).label == "drums"
    assert clip_purity(["zz"], labels).label is None


def test_pairing_refuses_other_models(dash_inputs, tmp_path):
    import shutil

    store_dir = tmp_path / "store"
    shutil.copytree(dash_inputs.store, store_dir)
    sae = load_sae(dash_inputs.sae)
    info = json.loads((store_dir / "store.json").read_text())
    info["model"]["name"] = "other.ts"
    (store_dir / "store.json").write_text(json.dumps(info))
    with pytest.raises(UserError, match=r"trained on model 'logmel24'.*'other.ts'"):
        check_pair(ActivationStore(store_dir), sae)
    # an SAE that records the weights' sha256: the same weights under another name are the same model (hunt 79)
    known = tmp_path / "sae_sha"
    shutil.copytree(dash_inputs.sae, known)
    cfg = json.loads((known / "cfg.json").read_text())
    cfg["musicsae"] = {**cfg.get("musicsae", {}), "model": {"name": "logmel24", "sha256": info["model"]["sha256"]}}
    (known / "cfg.json").write_text(json.dumps(cfg))
    assert check_pair(ActivationStore(store_dir), sae, str(known)) == "mel"
    with ActivationWriter(
        tmp_path / "narrow", "mel", 8, "float32", model={"name": "logmel24", "sha256": "0" * 64}
    ) as w:
        w.add(torch.zeros(4, 8), "x.wav")
    with pytest.raises(UserError, match=r"reads 24-dim activations.*8-dim"):
        check_pair(ActivationStore(tmp_path / "narrow"), sae)
    with ActivationWriter(tmp_path / "otherhook", "layer_3", 24, "float32") as w:
        w.add(torch.zeros(4, 24), "x.wav")
    with pytest.raises(UserError, match=r"hook 'mel'.*layer_3"):
        check_pair(ActivationStore(tmp_path / "otherhook"), sae)


def test_curves_leave_the_rows_readers_skip_at_zero_as_the_statistics_do(tmp_path):
    """The store keeps non-finite rows (readers skip them): `feature_stats` counts nothing there, but the curves
    encoded them as zero rows, which fire where the encoder's bias is positive, so the spectrograms showed
    activity the page's numbers denied (hunt 153)."""
    from sae.model import SAEConfig, SparseAutoencoder

    x = torch.randn(12, 8, generator=torch.Generator().manual_seed(0))
    x[4:7] = float("nan")
    x[9, 2] = float("inf")
    store = tmp_path / "store"
    with pytest.warns(UserWarning, match="4 rows with NaN/inf"), ActivationWriter(store, "latent", 8, "float32") as w:
        w.add(x, "clip.wav", 0)
    torch.manual_seed(1)
    sae = SparseAutoencoder(SAEConfig(d_in=8, d_sae=16, k=4, hook_name="latent"))
    with torch.no_grad():
        sae.b_enc.fill_(5.0)  # every feature fires on a zero row
    store = ActivationStore(tmp_path / "store")
    stats = feature_stats(store, sae)
    curves = activation_curves(store, sae, {"clip.wav": range(16)})["clip.wav"]
    skipped = [4, 5, 6, 9]
    assert all(curves[j][skipped].tolist() == [0.0] * 4 for j in range(16))
    kept = [i for i in range(12) if i not in skipped]
    assert any(curves[j][kept].max() > 0 for j in range(16))
    for j in range(16):  # the curves' peaks are the statistics' maxima
        assert curves[j].max() == pytest.approx(float(stats.max_act[j]), rel=1e-5)
