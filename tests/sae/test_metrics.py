"""Held-out metrics by source: the same figures as row batches, and an FVU interval that resamples clips whole."""

from __future__ import annotations

import pytest
import torch

from sae.metrics import evaluate, evaluate_by_source
from sae.model import SAEConfig, SparseAutoencoder


def _sae() -> SparseAutoencoder:
    torch.manual_seed(0)  # model seed; the data below have their own generators
    return SparseAutoencoder(SAEConfig(d_in=8, d_sae=32, k=4))


def _clips(n: int, spread: float, seed: int) -> list[tuple[str, torch.Tensor]]:
    """`n` clips of 40 rows; each clip's rows sit around its own offset (`spread` apart): rows of a clip are alike."""
    g = torch.Generator().manual_seed(seed)
    return [
        (f"clip{i}.wav", spread * torch.randn(1, 8, generator=g) + 0.1 * torch.randn(40, 8, generator=g))
        for i in range(n)
    ]


def test_by_source_equals_by_batches_and_its_interval_is_over_clips():
    sae = _sae()
    clips = _clips(30, 1.0, seed=1)
    rows = torch.cat([x for _, x in clips])
    by_rows = evaluate(sae, [rows[:500], rows[500:]])
    by_source = evaluate_by_source(sae, clips)
    assert by_source["fvu"] == pytest.approx(by_rows["fvu"]) and by_source["l0"] == by_rows["l0"]
    assert by_source["sources"] == 30 and by_source["rows"] == 1200
    lo, hi = by_source["fvu_interval"]
    assert lo < by_source["fvu"] < hi
    # the interval resamples clips, not rows: 1200 rows of 30 clips are not 1200 independent rows, so splitting each
    # clip into 40 one-row "sources" (what a split by rows assumes) gives a narrower, overconfident interval
    rows_as_sources = [(f"{name}:{j}", x[j : j + 1]) for name, x in clips for j in range(len(x))]
    lo_r, hi_r = evaluate_by_source(sae, rows_as_sources)["fvu_interval"]
    assert hi_r - lo_r < 0.5 * (hi - lo)


def test_nonfinite_rows_are_skipped_and_counted_and_one_source_has_no_interval():
    sae = _sae()
    x = torch.randn(50, 8, generator=torch.Generator().manual_seed(2))
    x[3, 1] = float("nan")
    out = evaluate_by_source(sae, [("only.wav", x)], max_rows=20)
    assert out["nonfinite_rows"] == 1 and out["rows"] == 20 and out["fvu_interval"] is None


def test_sources_with_no_variance_give_no_interval_rather_than_a_huge_one():
    """Hunt 105: clips of one frame among the held-out sources: a resample that drew only them had no variance, and
    its sse / 1e-30 made the upper bound 2e30 (printed in full by `sae train`'s table, which it squeezed)."""
    sae = _sae()
    one = torch.randn(1, 8, generator=torch.Generator().manual_seed(5))
    few = [*_clips(2, 1.0, seed=4), ("short1.wav", one), ("short2.wav", one.clone())]
    out = evaluate_by_source(sae, few)
    assert out["sources"] == 4 and out["fvu"] == out["fvu"] and out["fvu_interval"] is None
    many = [*_clips(20, 1.0, seed=4), ("short1.wav", one)]  # a resample of it alone: 1 in 20**21, defined
    lo, hi = evaluate_by_source(sae, many)["fvu_interval"]
    assert lo < evaluate_by_source(sae, many)["fvu"] < hi < 10


def test_evaluate_takes_rows_in_any_leading_shape():
    """[batch, time, d] batches, which `encode` / `decode` take, made `evaluate` raise a broadcast error."""
    sae = _sae()
    x = torch.randn(4, 10, 8, generator=torch.Generator().manual_seed(3))
    flat, shaped = evaluate(sae, [x.reshape(-1, 8)]), evaluate(sae, [x])
    assert shaped == flat and shaped["rows"] == 40
    assert evaluate(sae, [x], max_rows=25)["rows"] == 25


def test_evaluate_twice_on_one_stream_measures_the_same_rows(tmp_path):
    from sae.store import ActivationStore, ActivationWriter

    with ActivationWriter(tmp_path, "h", 8, dtype="float32") as w:
        for i in range(6):
            w.add(torch.randn(200, 8, generator=torch.Generator().manual_seed(i)), f"c{i}.wav", 0)
    stream = ActivationStore(tmp_path).iter_batches("h", 64, "all", shuffle_buffer=0, drop_last=False)
    first = evaluate(_sae(), stream, max_rows=300)
    assert evaluate(_sae(), stream, max_rows=300) == first and first["rows"] == 300


def test_one_held_out_row_has_no_fvu_not_one_of_1e31():
    """Hunt 62: a held-out split of one row (a clip of one frame) has no variance; FVU was sse / 1e-30."""
    import math

    sae, g = _sae(), torch.Generator().manual_seed(1)
    x = torch.randn(1, 8, generator=g) + 3
    one = evaluate(sae, [x])
    assert one["rows"] == 1 and math.isnan(one["fvu"]) and math.isnan(one["explained_variance"])
    two = evaluate(sae, [torch.cat([x, torch.randn(1, 8, generator=g)])])
    assert math.isfinite(two["fvu"]) and two["fvu"] < 1e6


def test_a_prompts_repeats_are_one_unit_of_the_interval():
    """The held-out split keeps a prompt's repeats ("rock", "rock #2": other draws of one text) together, but the
    interval resampled each as its own source: too narrow for stores of repeated prompts (hunt 81)."""
    sae = _sae()
    clips = _clips(12, 1.0, seed=3)
    repeats = [(f"prompt{i // 4}" + (f" #{i % 4 + 1}" if i % 4 else ""), x) for i, (_, x) in enumerate(clips)]
    out = evaluate_by_source(sae, repeats)
    assert out["sources"] == 3 and out["rows"] == 12 * 40
    alike = [(f"prompt{i // 4}", x) for i, (_, x) in enumerate(clips)]  # the same grouping, named as one source
    assert out["fvu_interval"] == evaluate_by_source(sae, alike)["fvu_interval"]


def test_rows_far_from_zero_keep_their_variance_and_a_batch_without_any_has_no_fvu():
    """Rows × 0.01 + 3000 read FVU NaN ('no variance'): the variance was the difference of two sums of squares
    1e9 times its size; the batch FVU of rows all alike was sse / 1e-30 in the history and the curves (hunt 161)."""
    import math

    from sae.metrics import RunningMetrics, batch_fvu

    sae, g = _sae(), torch.Generator().manual_seed(2)
    x = 0.01 * torch.randn(300, 8, generator=g, dtype=torch.float64) + 3000
    x_hat = x + 0.005 * torch.randn(300, 8, generator=g, dtype=torch.float64)
    m = RunningMetrics(32)
    for part, part_hat in zip(x.split(64), x_hat.split(64), strict=True):
        m.update(part, part_hat, torch.zeros(len(part), 32))
    two_pass = float((x - x_hat).pow(2).sum() / (x - x.mean(0)).pow(2).sum())
    assert m.result()["fvu"] == pytest.approx(two_pass, rel=1e-6)
    by_source = evaluate_by_source(sae, [(f"c{i}", 0.01 * torch.randn(40, 8, generator=g) + 3000) for i in range(6)])
    assert math.isfinite(by_source["fvu"]) and by_source["fvu_interval"] is not None
    assert math.isnan(batch_fvu(torch.ones(1, 8), torch.zeros(1, 8)))
    assert math.isnan(batch_fvu(torch.ones(64, 8), torch.ones(64, 8) + 1e-3))
    assert batch_fvu(x.float(), x_hat.float()) == pytest.approx(two_pass, rel=1e-3)


def test_the_normalisation_is_scale_free_down_to_tiny_activations():
    """Rows of norm 1e-10 got a scale clamped at sqrt(d_in / 1e-12): they stayed at 1e-4 after it, where Adam's steps
    swamped them and 97 % of the features never fired, without a word (hunt 161)."""
    g = torch.Generator().manual_seed(3)
    x = torch.randn(500, 8, generator=g) + 0.5
    scales = {}
    for mul in (1.0, 1e-10):
        sae = _sae()
        sae.init_from_sample(x * mul, normalize="scale")
        scales[mul] = float(sae.scale)
    assert scales[1e-10] == pytest.approx(1e10 * scales[1.0], rel=1e-5)
    silent = _sae()
    silent.init_from_sample(torch.zeros(50, 8), normalize="scale")
    assert float(silent.scale) == 1.0


def test_held_out_rows_without_variance_are_said_not_left_as_a_bare_nan():
    """A held-out source of digital silence printed 'FVU nan' and '97 % never fired' with no note; rows all NaN were
    explained (hunt 161)."""
    import math

    from sae.train import unmeasured

    assert "the eval rows have no variance (silence, or rows all alike)" in unmeasured({"rows": 40, "fvu": math.nan},
                                                                                        "eval")  # fmt: skip
    assert "no finite eval rows" in unmeasured({"rows": 0, "fvu": math.nan}, "eval")
    assert unmeasured({"rows": 40, "fvu": 0.2}, "eval") is None


def test_a_source_in_several_segments_counts_whole_in_the_interval():
    """Hunt 212: a source stored in several segments kept only its last in the FVU interval, unseen."""
    torch.manual_seed(0)
    sae = SparseAutoencoder(SAEConfig(d_in=8, d_sae=32, k=4))
    g = torch.Generator().manual_seed(1)
    clips = [(f"c{i}", torch.randn(1, 8, generator=g) + 0.1 * torch.randn(40, 8, generator=g)) for i in range(10)]
    halves = [(n, x[:20]) for n, x in clips] + [(n, x[20:]) for n, x in clips]
    whole = evaluate_by_source(sae, clips)["fvu_interval"]
    assert evaluate_by_source(sae, halves)["fvu_interval"] == pytest.approx(whole)
