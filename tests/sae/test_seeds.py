"""Seeds past 2**32: their own numpy streams and a random_state scikit-learn takes."""


def test_a_seed_past_2_32_draws_its_own_stream_and_smaller_seeds_keep_theirs():
    """numpy read (2**32 + 5, 0) as (5, 1): `data make --seed 4294967301` rendered seed 5's clip 1 as its clip 0
    (hunt 148), and the recipes' batches of such a seed were another seed's one step on."""
    import numpy as np

    from sae.seeds import seeded
    from training.data.concept_clips import DataConfig, plan_clip

    def draws(rng):
        return rng.integers(0, 2**62, 4).tolist()

    assert draws(seeded(5, 3)) == draws(np.random.default_rng([5, 3]))  # the data of seeds below 2**32 is unchanged
    assert draws(seeded(2**32 + 5, 0)) != draws(seeded(5, 1))
    assert draws(seeded(2**33 + 7, 0)) != draws(seeded(7, 2))
    assert draws(seeded(2**32 + 5, 0)) != draws(seeded(2**32 + 5, 1))
    big, small = (plan_clip(i, DataConfig(n=4, seed=s)) for i, s in ((0, 2**32 + 5), (1, 5)))
    assert (big.instruments, big.tempo, big.key) != (small.instruments, small.tempo, small.key)


def test_a_seed_past_2_32_runs_the_probes_folds_and_solo_detector():
    """scikit-learn refuses a random_state of 2**32 and above: `eval hooks --seed 4294967296` trained its SAE, then
    ended in a traceback in the probe's folds (hunt 149). Seeds below keep their folds."""
    import numpy as np

    from sae.alone import fit_alone
    from sae.probe import _folds
    from sae.seeds import sklearn_seed

    y = np.r_[np.ones(10), np.zeros(10)].astype(int)
    assert sklearn_seed(7) == 7 and 0 <= sklearn_seed(2**32) < 2**32 and sklearn_seed(2**32) != sklearn_seed(2**33)
    folds = _folds(y, 5, 2**32)
    assert len(folds) == 5 and sorted(np.concatenate([te for _, te in folds]).tolist()) == list(range(20))
    assert [te.tolist() for _, te in _folds(y, 5, 7)] != [te.tolist() for _, te in folds]
    rng = np.random.default_rng(0)
    X, Xv = rng.standard_normal((40, 3)), rng.standard_normal((20, 3))
    yx, yv = np.r_[np.ones(20), np.zeros(20)], np.r_[np.ones(10), np.zeros(10)]
    assert len(fit_alone(X + yx[:, None], yx, Xv + yv[:, None], yv, 2**40)) == 4
