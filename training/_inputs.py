"""A model's input schema and the float matrix it reads (shared by every model class).

A model records its input columns (``features_``) and the training categories
of its categorical ones (``categories_``) when it is fitted; :meth:`matrix`
then turns any feature frame, or a mapping of column arrays (the service's
small batches), into the float matrix the model reads.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
import pandas as pd

from churnclv.features._sql_events import is_value_feature
from churnclv.training._hybrid import BTYD_COLUMNS, btyd_column_arrays, btyd_columns
from churnclv.training._scorable import Columns

__all__ = ["InputSchema", "feature_columns"]

# r/f/m scores in a feature frame rank customers within that frame; they depend on who else
# is in the batch, so they are never model inputs (decisions rescore against the reference).
_NON_FEATURES = {"customer_id", "as_of", "churned", "future_value", "r_score", "f_score", "m_score"}
_MAX_CACHED_LOOKUPS = 256


def feature_columns(frame: pd.DataFrame) -> list[str]:
    """The model input columns of a feature frame (everything but keys and labels)."""
    return [c for c in frame.columns if c not in _NON_FEATURES]


def with_null_columns(frame: Columns, columns: list[str]) -> Columns:
    """``frame`` (a DataFrame or a mapping of arrays) plus all-null float ``columns``."""
    n = len(frame) if isinstance(frame, pd.DataFrame) else len(next(iter(frame.values())))
    nulls = {c: np.full(n, np.nan) for c in columns}
    return frame.assign(**nulls) if isinstance(frame, pd.DataFrame) else {**frame, **nulls}


class InputSchema:
    """Mixin: the input columns and categories of a fitted model and its input matrix.

    Attributes
    ----------
    features_ : list of str
        Input columns, in matrix order.
    categories_ : dict of str to list of str
        Training categories of the categorical inputs (coded by position).
    """

    features_: list[str]
    categories_: dict[str, list[str]]
    btyd_: dict[str, Any] | None

    def _set_schema(self, frame: pd.DataFrame) -> None:
        """Record the input columns of ``frame`` and the categories of the categorical ones."""
        self._clear_code_caches()
        self.features_ = feature_columns(frame)
        self.categories_ = {
            c: sorted(frame[c].dropna().astype(str).unique().tolist())
            for c in self.features_
            if not pd.api.types.is_numeric_dtype(frame[c])
            or isinstance(frame[c].dtype, pd.CategoricalDtype)
        }

    def _clear_code_caches(self) -> None:
        """Drop the category code lookups (they follow ``categories_``)."""
        self._category_lookup: dict[tuple[str, tuple[Any, ...]], np.ndarray] = {}
        self._category_positions: dict[str, dict[str, int]] = {}

    def with_btyd(self, frame: Columns) -> Columns:
        """``frame`` plus the BTYD feature columns the model needs and the frame lacks.

        ``frame`` is a DataFrame or a mapping of column arrays (what the service
        scores small batches with); the result is of the same kind.
        """
        need = [c for c in BTYD_COLUMNS if c in self.features_ and c not in frame]
        btyd = getattr(self, "btyd_", None)
        if not need or btyd is None:
            return frame
        if isinstance(frame, pd.DataFrame):
            return pd.concat([frame, btyd_columns(frame, btyd)[need]], axis=1)
        arrays = btyd_column_arrays(frame, btyd)
        return {**frame, **{c: arrays[c] for c in need}}

    def matrix(self, frame: Columns | np.ndarray) -> np.ndarray:
        """The model's float input matrix for ``frame`` (an ndarray passes through).

        ``frame`` is a DataFrame or a mapping of column arrays. Absent
        event-value features are null, other absent inputs an error. Numeric columns
        are taken in one block; categoricals are coded against the training
        categories (unknown or missing -> NaN). Build it once and pass it to
        ``predict`` and ``contributions`` to avoid repeating the work.
        """
        if isinstance(frame, np.ndarray):
            return frame
        frame = _with_absent_breadth(self.with_btyd(frame), self.features_)
        missing = [c for c in self.features_ if c not in frame]
        if any(is_value_feature(c) for c in missing):  # absent event values read as null
            frame = with_null_columns(frame, [c for c in missing if is_value_feature(c)])
            missing = [c for c in missing if not is_value_feature(c)]
        if missing:
            raise ValueError(f"feature frame lacks columns: {', '.join(missing[:10])}")
        numeric = [i for i, c in enumerate(self.features_) if c not in self.categories_]
        if not isinstance(frame, pd.DataFrame):
            return self._mapping_matrix(frame, numeric)
        # Filled column by column into a column-major matrix: each column is one contiguous
        # copy (a frame's mixed blocks interleaved row by row cost several times more).
        xt = np.empty((len(self.features_), len(frame)), dtype=float)
        for i in numeric:
            values = frame[self.features_[i]]
            try:
                if isinstance(values.dtype, np.dtype) and values.dtype.kind in "iufb":
                    xt[i] = values.to_numpy()  # cast while copied: no temporary column
                else:
                    xt[i] = values.to_numpy(dtype=float, na_value=np.nan)
            except (TypeError, ValueError):
                xt[i] = pd.to_numeric(values, errors="coerce").to_numpy(float, na_value=np.nan)
        for col, cats in self.categories_.items():
            xt[self.features_.index(col)] = self._codes(col, frame[col], cats)
        return xt.T

    def _mapping_matrix(self, columns: Mapping[str, Any], numeric: list[int]) -> np.ndarray:
        """:meth:`matrix` of a mapping of column arrays (numeric arrays, string categoricals)."""
        x = np.empty((len(columns[self.features_[0]]), len(self.features_)), dtype=float)
        for i in numeric:
            values = columns[self.features_[i]]
            try:
                x[:, i] = values
            except (TypeError, ValueError):
                x[:, i] = pd.to_numeric(pd.Series(values), errors="coerce").to_numpy(
                    float, na_value=np.nan
                )
        for col, cats in self.categories_.items():
            x[:, self.features_.index(col)] = self._codes(col, columns[col], cats)
        return x

    def _codes(self, col: str, values: Any, cats: list[str]) -> np.ndarray:
        """Training-category codes of ``values`` as floats (unseen or missing -> NaN)."""
        if not hasattr(self, "_category_lookup"):
            self._clear_code_caches()
        # get_indexer gives -1 for unseen and missing values (pd.Categorical with unknown
        # values is deprecated in pandas 3.1 and will raise).
        if isinstance(values, pd.Series) and isinstance(values.dtype, pd.CategoricalDtype):
            codes = self._categorical_codes(col, values, cats)
        elif isinstance(values, pd.Series):
            strings = values.astype("string").to_numpy(dtype=object, na_value=None)
            codes = pd.Index(cats, dtype=object).get_indexer(strings)
        else:  # an array or list (the service's small batches): strings, None or NaN
            position = self._category_positions.get(col)
            if position is None:
                position = self._category_positions[col] = {c: i for i, c in enumerate(cats)}
            codes = np.array(
                [
                    -1 if v is None or v is pd.NA or v != v else position.get(str(v), -1)
                    for v in values
                ]
            )
        return np.where(codes < 0, np.nan, codes).astype(float)

    def _categorical_codes(self, col: str, values: pd.Series, cats: list[str]) -> np.ndarray:
        """Codes of a categorical Series: its few categories coded once (cached), then
        looked up per row (-1 for unseen or missing)."""
        own_cats = tuple(values.cat.categories)
        cache = self._category_lookup
        lookup = cache.get((col, own_cats))
        if lookup is None:
            if len(cache) > _MAX_CACHED_LOOKUPS:
                cache.clear()
            strings = np.array([str(c) for c in own_cats], dtype=object)
            lookup = pd.Index(cats, dtype=object).get_indexer(strings)
            cache[(col, own_cats)] = lookup
        own = values.cat.codes.to_numpy()
        # own code -1 is a missing value (and the lookup may be empty)
        codes = lookup[own] if len(lookup) else np.full(len(own), -1)
        return np.where(own >= 0, codes, -1)


def _with_absent_breadth(frame: Columns, features: list[str]) -> Columns:
    """``frame`` plus NaN breadth columns (``n_categories``, ...) the model has and it lacks:
    inputs without a category or channel column score with those features missing."""
    from churnclv.features._sql_breadth import BREADTH_COLUMNS

    optional = {c for cols in BREADTH_COLUMNS.values() for c in cols}
    absent = [c for c in features if c in optional and c not in frame]
    if not absent:
        return frame
    if isinstance(frame, pd.DataFrame):
        return frame.assign(**{c: np.nan for c in absent})
    n = len(next(iter(frame.values()))) if frame else 0
    return {**frame, **{c: np.full(n, np.nan) for c in absent}}
