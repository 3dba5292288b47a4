"""`train_lm`'s loss and held-out evaluation on a seeded tiny LM (one forward pass per description set, the same
numbers as two), and its one-line refusals of bad options."""

from __future__ import annotations

import pytest
import torch

from training.musicgen import train_lm
from training.musicgen.arch import LMSizes, build_lm
from training.musicgen.descriptions import UNKNOWN, DescriptionDropout, assign_surfaces, reachable

ROWS = [
    {"guitar": 1, "piano": 0, "strings": 0, "brass": 0, "bass": 1, "drums": 1, "voice": "male", "tempo": 117.3},
    {"guitar": 0, "piano": 1, "strings": 0, "brass": 0, "bass": 0, "drums": 1, "voice": "none", "tempo": 90.0},
    {"guitar": 0, "piano": 0, "strings": 1, "brass": 1, "bass": 0, "drums": 0, "voice": "female", "tempo": 140.0},
    {"guitar": 1, "piano": 1, "strings": 0, "brass": 0, "bass": 1, "drums": 0, "voice": "none", "tempo": 100.0},
]


def reference_lm_loss(lm, codes, texts, head=None, opening_weight=1.0):
    """The training loss written out independently of `train_lm` (the reference): per codebook, the weighted mean of
    −log p(code) over the valid delay-pattern positions of the first `head` frames, frames before HEAD_FRAMES
    weighing `opening_weight`; then the mean over codebooks."""
    from audiocraft.modules.conditioners import ConditioningAttributes

    out = lm.compute_predictions(codes, [ConditioningAttributes(text={"description": t}) for t in texts])
    T = out.logits.shape[-2] if head is None else head
    logp = out.logits[..., :T, :].log_softmax(-1)
    valid = out.mask[..., :T]  # invalid positions of the delay pattern hold NaN logits
    nll = torch.where(valid, -logp.gather(-1, codes[..., :T].unsqueeze(-1)).squeeze(-1), 0.0)  # [B, K, T]
    frame_w = torch.where(torch.arange(T) < train_lm.HEAD_FRAMES, opening_weight, 1.0)
    w = valid.float() * frame_w
    return ((nll * w).sum(dim=(0, 2)) / w.sum(dim=(0, 2))).mean()


@pytest.fixture
def tiny(toy_sizes):
    codec_sizes, lm_sizes = toy_sizes
    lm = build_lm(lm_sizes, codec_sizes, seed=3)
    lm.cfg_dropout.p = 0.0  # as in training
    train_lm.normalise_lut(lm)
    T = train_lm.frames(lm_sizes, codec_sizes)
    codes = torch.randint(
        0, codec_sizes.bins, (len(ROWS), codec_sizes.n_q, T), generator=torch.Generator().manual_seed(7)
    )
    surfaces = assign_surfaces(reachable(ROWS), lm_sizes.lut_bins)
    return lm, codes, surfaces


def test_training_loss_is_unchanged(tiny):
    lm, codes, surfaces = tiny
    texts = [surfaces[frozenset({"guitar", "drums"})], None, surfaces[frozenset({UNKNOWN})], None]
    assert codes.shape[-1] > train_lm.HEAD_FRAMES  # the opening weight has frames to weigh against
    for weight in (1.0, 4.0):
        grads = []
        for loss_fn in (train_lm.lm_loss, reference_lm_loss):
            lm.zero_grad(set_to_none=True)
            loss = loss_fn(lm.train(), codes, texts, opening_weight=weight)
            loss.backward()
            grads.append((loss.detach(), [p.grad.clone() for p in lm.parameters() if p.grad is not None]))
        (new, new_g), (ref, ref_g) = grads
        torch.testing.assert_close(new, ref, rtol=1e-6, atol=1e-6)
        assert len(new_g) == len(ref_g) > 0
        for a, b in zip(new_g, ref_g, strict=True):
            torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-6)


def test_evaluate_is_one_forward_per_description_set_with_the_same_figures(tiny, monkeypatch):
    lm, codes, surfaces = tiny
    dropout = DescriptionDropout()
    # the reference: the six figures computed independently, two forward passes per description set
    lm.eval()
    full = [surfaces.get(dropout.describe(r)) for r in ROWS]
    texts = [t if t is not None else surfaces[frozenset({UNKNOWN})] for t in full]
    other = texts[2:] + texts[:2]
    ref = {}
    with torch.no_grad():
        for name, t in (("text", texts), ("other", other), ("null", [None] * len(ROWS))):
            ref[name] = reference_lm_loss(lm, codes, t)
            ref[f"head_{name}"] = reference_lm_loss(lm, codes, t, head=train_lm.HEAD_FRAMES)
    assert len({round(float(v), 4) for v in ref.values()}) == 6  # six distinct figures, so a mix-up shows

    calls = []
    forward = lm.compute_predictions

    def counted(*args, **kwargs):
        calls.append(1)
        return forward(*args, **kwargs)

    monkeypatch.setattr(lm, "compute_predictions", counted)
    got = train_lm.evaluate(lm, codes, ROWS, surfaces, dropout)
    assert len(calls) == 3  # text, other, null
    assert got == {f"eval_ce_{k}": round(float(v), 4) for k, v in ref.items()}
    assert lm.training  # evaluate hands the LM back in training mode
    # and unrounded, the split computation gives the reference's numbers
    with torch.no_grad():
        out = train_lm.predictions(lm.eval(), codes, texts)
        torch.testing.assert_close(train_lm.prediction_ce(out, codes), ref["text"], rtol=1e-6, atol=1e-6)
        head = train_lm.prediction_ce(out, codes, head=train_lm.HEAD_FRAMES)
        torch.testing.assert_close(head, ref["head_text"], rtol=1e-6, atol=1e-6)


@pytest.mark.parametrize(
    ("argv", "expected"),
    [
        (["--max-phrases", "0"], "--max-phrases 0: expected at least 1"),
        (["--max-phrases", "-2"], "--max-phrases -2: expected at least 1"),
        (["--opening-weight", "0"], "--opening-weight 0.0: expected a positive weight"),
        (["--opening-weight", "-1"], "--opening-weight -1.0: expected a positive weight"),
        (["--opening-weight", "nan"], "--opening-weight nan: expected a positive weight"),
        (["--opening-weight", "inf"], "--opening-weight inf: expected a positive weight"),
        (["--dim", "30", "--heads", "4"], "--dim 30 --heads 4 --layers 6: expected sizes >= 1, dim divisible by heads"),
        (["--layers", "0"], "--layers 0: expected sizes >= 1"),
        (["--dim", "48", "--lut-dim", "48"], "--lut-dim 48: must differ from --dim"),
        (["--p-keep", "0"], "--p-keep 0.0 --p-null 0.2: expected 0 < p-keep <= 1, 0 <= p-null < 1"),
        (["--p-null", "1"], "--p-keep 0.8 --p-null 1.0: expected 0 < p-keep <= 1, 0 <= p-null < 1"),
        # the edge values are accepted: the run then stops at the next check (no codec to learn from)
        (["--max-phrases", "1", "--opening-weight", "0.01"], "--codec-run: needed to start the LM run"),
    ],
)
def test_bad_options_are_one_line_and_exit_2(argv, expected, tmp_path, capsys):
    run = tmp_path / "run"
    assert train_lm.main(["--data", str(tmp_path / "data"), "--run", str(run), *argv]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("python -m training.musicgen.train_lm: error: ")
    assert expected in err[0]
    assert not run.exists()


def test_text_use_benchmark_runs_on_a_train_lm_run(toy_lm_run, toy_data):
    """bench/musicgen_text_use.py on the toy run: the own / another clip's / null cross-entropies of both parts."""
    import os
    import re
    import subprocess
    import sys
    from pathlib import Path

    root = Path(__file__).resolve().parents[2]
    done = subprocess.run(
        [sys.executable, str(root / "bench/musicgen_text_use.py"), "--run", str(toy_lm_run), "--data", str(toy_data)],
        env={**os.environ, "PYTHONPATH": str(root)}, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    for part in ("whole segment", "first frames"):
        figures = rf"{part}: own [\d.]+, another clip's [\d.]+ \([+-]\d+\.\d{{3}}\), null [\d.]+"
        assert re.search(figures, done.stdout), done.stdout


def test_a_segment_shorter_than_the_codebooks_delay_is_one_line_before_any_encoding(toy_data, toy_codec_run, tmp_path):
    """Hunt 108: `--segment 0.01` (0 frames) was an IndexError after every clip was encoded, and 3 frames of 4
    codebooks said the training diverged ("lower --lr"), at any --lr."""
    from sae.errors import UserError

    for segment in (0.01, 0.06):
        sizes = LMSizes(dim=32, num_heads=4, num_layers=2, lut_bins=2048, lut_dim=16, segment=segment)
        cfg = train_lm.LMTrainConfig([str(toy_data)], toy_codec_run, tmp_path / "run", sizes, steps=2, batch=2)
        with pytest.raises(UserError, match=rf"--segment {segment:g}: expected at least 4 frames \(0\.08 s at 50 Hz\)"):
            train_lm.train_lm(cfg, say=lambda *_: None)
        assert not (tmp_path / "run").exists()
