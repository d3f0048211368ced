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

from typing import Any

import numpy as np

__all__ = ["CHUNK_ROWS", "PAIR_TABLE_BYTES", "PathExplainer"]

#: Rows whose contributions are summed together (their running sums stay in cache).
CHUNK_ROWS = 8192
#: Largest table of tree-pair leaf combinations built; beyond it trees are added one by one.
PAIR_TABLE_BYTES = 64 * 2**20


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

    def _build(self) -> np.ndarray:
        dump = self.booster.dump_model()
        trees = dump["tree_info"]
        n_feat = len(dump["feature_names"])
        leaves = max((t["num_leaves"] for t in trees), default=1)
        table = np.zeros((len(trees), leaves, n_feat))
        bias = 0.0
        for t, info in enumerate(trees):
            root = info["tree_structure"]
            if "split_feature" not in root:  # a one-leaf tree is all bias
                bias += float(root.get("leaf_value", 0.0))
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
                    else:
                        stack.append((child, path))
        self._bias = bias
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

    def contributions(self, x: np.ndarray) -> np.ndarray:
        """An ``(n_rows, n_features)`` array; each row sums to raw score minus :attr:`bias`.

        Rows are summed in chunks of :data:`CHUNK_ROWS` so the running sums stay in
        cache while every tree (pair) adds its leaves' rows.
        """
        tables = self._paired()
        leaves = self._table.shape[1] if self._table is not None else 1
        leaf = np.asarray(self.booster.predict(x, pred_leaf=True), dtype=np.intp)
        if leaf.ndim == 1:
            leaf = leaf.reshape(len(x), -1)
        if self._group == 2:
            if leaf.shape[1] % 2:  # the last pair's second tree is all zeros
                leaf = np.concatenate([leaf, np.zeros((len(leaf), 1), np.intp)], axis=1)
            leaf = leaf[:, 0::2] * leaves + leaf[:, 1::2]
        index = np.ascontiguousarray(leaf.T)
        out = np.empty((index.shape[1], tables.shape[2]))
        buf = np.empty((min(CHUNK_ROWS, len(out)), tables.shape[2]))
        for start in range(0, len(out), CHUNK_ROWS):
            stop = min(start + CHUNK_ROWS, len(out))
            acc, tmp = out[start:stop], buf[: stop - start]
            acc[:] = 0.0
            for t in range(len(tables)):
                np.take(tables[t], index[t, start:stop], axis=0, out=tmp)
                acc += tmp
        return out
