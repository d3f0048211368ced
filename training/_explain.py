"""Per-feature contributions of a LightGBM booster by decision path (Saabas attribution).

Each tree's output is split along the path a row takes from the root to its
leaf: every split hands the change in node value (child minus parent) to the
feature it tests. The contributions of a row sum, with the bias (the sum of
root values), to the booster's raw score exactly, like TreeSHAP's do.

Why not LightGBM's ``pred_contrib`` (TreeSHAP): its cost grows with leaves x
depth squared per tree and row, which dominates the cost of explaining a
batch. Path attribution needs only the leaf each row lands in (``pred_leaf``,
as cheap as a prediction) and a table of per-leaf contributions built once
per model.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

import numpy as np

__all__ = ["CHUNK_ROWS", "PAIR_TABLE_BYTES", "SCAN_ROWS", "PathExplainer"]

T = TypeVar("T")

#: Rows whose contributions are summed together (their running sums stay in cache).
CHUNK_ROWS = 16_384
#: Largest table of tree-pair leaf combinations built; beyond it trees are added one by one.
PAIR_TABLE_BYTES = 64 * 2**20
#: Rows per task of :meth:`PathExplainer.scan` (one thread each, LightGBM on one core).
SCAN_ROWS = 32_768


class PathExplainer:
    """Path contributions of one booster; the per-leaf table is built on first use.

    Parameters
    ----------
    booster : lightgbm.Booster
        A fitted single-output booster (binary or regression objective).
    """

    def __init__(self, booster: Any) -> None:
        self.booster = booster
        self._table: np.ndarray | None = None
        self._pairs: np.ndarray | None = None
        self._group = 1
        self._bias = 0.0
        self._leaf_values: np.ndarray | None = None
        self._used: list[tuple[list[int], np.ndarray]] | None = None

    def _build(self) -> np.ndarray:
        dump = self.booster.dump_model()
        trees = dump["tree_info"]
        n_feat = len(dump["feature_names"])
        leaves = max((t["num_leaves"] for t in trees), default=1)
        table = np.zeros((len(trees), leaves, n_feat))
        values = np.zeros((len(trees), leaves))
        bias = 0.0
        for t, info in enumerate(trees):
            root = info["tree_structure"]
            if "split_feature" not in root:  # a one-leaf tree is all bias
                bias += float(root.get("leaf_value", 0.0))
                values[t, :] = float(root.get("leaf_value", 0.0))
                continue
            bias += float(root["internal_value"])
            stack: list[tuple[dict[str, Any], np.ndarray]] = [(root, np.zeros(n_feat))]
            while stack:
                node, acc = stack.pop()
                for side in ("left_child", "right_child"):
                    child = node[side]
                    leaf = "split_feature" not in child
                    value = float(child["leaf_value"] if leaf else child["internal_value"])
                    path = acc.copy()
                    path[node["split_feature"]] += value - float(node["internal_value"])
                    if leaf:
                        table[t, int(child.get("leaf_index", 0))] = path
                        values[t, int(child.get("leaf_index", 0))] = value
                    else:
                        stack.append((child, path))
        self._bias = bias
        self._leaf_values = values
        return table

    @property
    def bias(self) -> float:
        """The raw score every row starts from (the sum of the trees' root values)."""
        if self._table is None:
            self._table = self._build()
        return self._bias

    def _paired(self) -> np.ndarray:
        """Per-leaf tables of consecutive tree pairs: row ``a * leaves + b`` of pair ``p`` is
        leaf ``a`` of tree ``2p`` plus leaf ``b`` of tree ``2p + 1``; one gather per pair
        halves the passes over the rows. The leaf tables themselves when the pairs would
        take more than :data:`PAIR_TABLE_BYTES`."""
        if self._pairs is None:
            if self._table is None:
                self._table = self._build()
            table = self._table
            trees, leaves, n_feat = table.shape
            pairs = (trees + 1) // 2
            if pairs * leaves * leaves * n_feat * 8 > PAIR_TABLE_BYTES or trees < 2:
                self._pairs, self._group = table, 1
            else:
                even = table[0::2]
                odd = np.zeros_like(even)
                odd[: trees // 2] = table[1::2]
                both = even[:, :, None, :] + odd[:, None, :, :]
                self._pairs, self._group = both.reshape(pairs, leaves * leaves, n_feat), 2
        return self._pairs

    def leaves(self, x: np.ndarray, **params: Any) -> np.ndarray:
        """The leaf each row lands in, per tree: an ``(n_rows, n_trees)`` index array."""
        leaf = np.asarray(self.booster.predict(x, pred_leaf=True, **params))
        if leaf.ndim == 1:
            leaf = leaf.reshape(len(x), -1)
        return leaf.astype(np.intp)

    def raw_score(self, leaf: np.ndarray) -> np.ndarray:
        """The booster's raw score from :meth:`leaves`: leaf values summed tree by tree,
        in LightGBM's order (so the sums are the same floats)."""
        return self._raw(np.ascontiguousarray(leaf.T, dtype=np.intp))

    def _raw(self, by_tree: np.ndarray) -> np.ndarray:
        """:meth:`raw_score` of leaves laid out tree by tree (``(n_trees, n_rows)``)."""
        if self._table is None:
            self._table = self._build()
        values = self._leaf_values
        assert values is not None
        raw = np.zeros(by_tree.shape[1])
        for t in range(len(by_tree)):
            raw += values[t][by_tree[t]]
        return raw

    def contributions(self, x: np.ndarray) -> np.ndarray:
        """An ``(n_rows, n_features)`` array; each row sums to raw score minus :attr:`bias`.

        Rows are summed in chunks of :data:`CHUNK_ROWS` so the running sums stay in
        cache while every tree (pair) adds its leaves' rows.
        """
        return self.leaf_contributions(self.leaves(x))

    def leaf_contributions(self, leaf: np.ndarray) -> np.ndarray:
        """:meth:`contributions` of the rows whose :meth:`leaves` are ``leaf``.

        Sums feature by feature: a tree (pair) adds only the features it splits on;
        the others' entries are zero, and adding a zero to a sum that started at
        ``0.0`` leaves it unchanged, so the sums equal those over every feature.
        """
        return self._contributions(np.ascontiguousarray(leaf.T, dtype=np.intp))

    def _contributions(self, by_tree: np.ndarray) -> np.ndarray:
        """:meth:`leaf_contributions` of leaves laid out tree by tree."""
        tables = self._paired()
        columns = self._columns()
        leaves = self._table.shape[1] if self._table is not None else 1
        index = by_tree
        if self._group == 2:
            index = by_tree[0::2] * leaves
            index[: len(by_tree) // 2] += by_tree[1::2]  # an odd last tree pairs with leaf 0
        n = index.shape[1]
        out = np.empty((n, tables.shape[2]))
        buf = np.empty(min(CHUNK_ROWS, n))
        for start in range(0, n, CHUNK_ROWS):
            stop = min(start + CHUNK_ROWS, n)
            acc, tmp = np.zeros((tables.shape[2], stop - start)), buf[: stop - start]
            for t, (used, values) in enumerate(columns):
                rows = index[t, start:stop]
                for j, f in enumerate(used):
                    np.take(values[j], rows, out=tmp)
                    acc[f] += tmp
            out[start:stop] = acc.T
        return out

    def _columns(self) -> list[tuple[list[int], np.ndarray]]:
        """Per tree (pair): the features it splits on and their leaf columns, feature-major."""
        if self._used is None:
            tables = self._paired()
            used = [np.flatnonzero((t != 0).any(axis=0)) for t in tables]
            self._used = [
                (u.tolist(), np.ascontiguousarray(t[:, u].T))
                for t, u in zip(tables, used, strict=True)
            ]
        return self._used

    def scan(
        self, x: np.ndarray, reduce: Callable[[np.ndarray], T], threads: int | None = None
    ) -> tuple[np.ndarray, list[T]]:
        """Raw scores of all rows and ``reduce`` of each chunk's contributions.

        One pass over the trees (``pred_leaf``) gives both; chunks of
        :data:`SCAN_ROWS` rows run on ``threads`` threads (default: one per
        core), so the full contribution matrix never exists.
        """
        self._paired()
        threads = threads or os.cpu_count() or 1

        def task(start: int) -> tuple[np.ndarray, T]:
            part = x[start : start + SCAN_ROWS]
            params = {"num_threads": 1} if threads > 1 else {}
            leaf = np.asarray(self.booster.predict(part, pred_leaf=True, **params))
            by_tree = np.ascontiguousarray(leaf.reshape(len(part), -1).T, dtype=np.intp)
            return self._raw(by_tree), reduce(self._contributions(by_tree))

        starts = range(0, len(x), SCAN_ROWS)
        if threads > 1 and len(starts) > 1:
            with ThreadPoolExecutor(threads) as pool:
                done = list(pool.map(task, starts))
        else:
            done = [task(s) for s in starts]
        raw = np.concatenate([d[0] for d in done]) if done else np.zeros(0)
        return raw, [d[1] for d in done]
