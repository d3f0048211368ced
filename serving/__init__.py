"""Scoring and serving (DESIGN §7, §8): plain functions the CLI and the service share."""

from churnclv.serving._batch import SCORE_COLUMNS, score_features
from churnclv.serving._score import score

__all__ = ["SCORE_COLUMNS", "score", "score_features"]
