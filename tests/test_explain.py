"""Path (Saabas) contributions of LightGBM boosters: exact, additive, and only where split."""

from __future__ import annotations

import lightgbm as lgb
import numpy as np
import pytest

from churnclv.training._explain import PathExplainer


def _booster(objective: str, seed: int = 0, rounds: int = 30) -> tuple[lgb.Booster, np.ndarray]:
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(600, 5))
    x[:, 4] = 0.0  # constant: never split on
    x[rng.random(600) < 0.1, 2] = np.nan  # missing values take the default branch
    logit = 1.5 * x[:, 0] - x[:, 1] + np.nan_to_num(x[:, 2])
    y = (rng.random(600) < 1 / (1 + np.exp(-logit))).astype(float)
    if objective == "regression":
        y = np.exp(logit / 2)
    params = {"objective": objective, "verbose": -1, "num_leaves": 7, "seed": seed}
    return lgb.train(params, lgb.Dataset(x, y), num_boost_round=rounds), x


@pytest.mark.parametrize("objective", ["binary", "regression"])
def test_contributions_plus_bias_equal_the_raw_score(objective: str) -> None:
    """Every row's contributions sum, with the bias, to the booster's raw score."""
    booster, x = _booster(objective)
    ex = PathExplainer(booster)
    got = ex.contributions(x).sum(axis=1) + ex.bias
    np.testing.assert_allclose(got, booster.predict(x, raw_score=True), rtol=0, atol=1e-9)


def test_a_feature_never_split_on_contributes_nothing() -> None:
    """The constant column gets zero contribution on every row."""
    booster, x = _booster("binary")
    assert not np.any(PathExplainer(booster).contributions(x)[:, 4])


def test_a_single_split_hands_the_leaf_minus_root_change_to_its_feature() -> None:
    """On a one-split tree the split feature gets leaf value minus root value, others zero."""
    x = np.array([[0.0, 5.0]] * 50 + [[1.0, 5.0]] * 50)
    y = np.array([1.0] * 50 + [3.0] * 50)
    params = {"objective": "regression", "verbose": -1, "num_leaves": 2, "min_data_in_leaf": 10}
    booster = lgb.train(params, lgb.Dataset(x, y), num_boost_round=1)
    ex = PathExplainer(booster)
    c = ex.contributions(np.array([[0.0, 5.0], [1.0, 5.0]]))
    root = booster.dump_model()["tree_info"][0]["tree_structure"]["internal_value"]
    leaves = booster.predict(np.array([[0.0, 5.0], [1.0, 5.0]]), raw_score=True)
    np.testing.assert_allclose(c[:, 0], leaves - root, atol=1e-12)
    assert not c[:, 1].any()
    assert c[0, 0] < 0 < c[1, 0]


def test_contributions_of_a_row_do_not_depend_on_the_batch() -> None:
    """One row explained alone gets exactly the contributions it gets inside a batch."""
    booster, x = _booster("binary", seed=3)
    ex = PathExplainer(booster)
    np.testing.assert_array_equal(ex.contributions(x[7:8])[0], ex.contributions(x)[7])


def test_contributions_use_the_same_trees_as_predictions_after_early_stopping() -> None:
    """With a best iteration set, contributions add up to the prediction that uses it."""
    booster, x = _booster("binary", rounds=40)
    booster.best_iteration = 12
    ex = PathExplainer(booster)
    np.testing.assert_allclose(
        ex.contributions(x).sum(axis=1) + ex.bias, booster.predict(x, raw_score=True), atol=1e-9
    )


@pytest.mark.parametrize("rounds", [1, 2, 7, 30])
def test_paired_trees_and_chunks_equal_the_tree_by_tree_sum(
    rounds: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Summing trees in pairs and rows in chunks gives each tree's own leaf rows added one by
    one, for odd and even tree counts, and when the pair table is too large to build."""
    import churnclv.training._explain as explain

    booster, x = _booster("binary", rounds=rounds)
    x = np.concatenate([x] * 30)  # more rows than one chunk
    monkeypatch.setattr(explain, "CHUNK_ROWS", 1000)
    ex = PathExplainer(booster)
    got = ex.contributions(x)
    leaf = booster.predict(x, pred_leaf=True).reshape(len(x), -1)
    want = sum(ex._table[t][leaf[:, t]] for t in range(leaf.shape[1]))
    np.testing.assert_allclose(got, want, rtol=0, atol=1e-12)
    monkeypatch.setattr(explain, "PAIR_TABLE_BYTES", 0)
    single = PathExplainer(booster)
    np.testing.assert_allclose(single.contributions(x), want, rtol=0, atol=1e-12)
    assert single._group == 1
