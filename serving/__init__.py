"""Scoring and serving (DESIGN §7, §8): plain functions the CLI and the service share."""

from churnclv.serving._batch import SCORE_COLUMNS, score_features
from churnclv.serving._requests import CustomerIn, validate_customers
from churnclv.serving._score import score
from churnclv.serving._scorer import OnlineScorer

__all__ = [
    "SCORE_COLUMNS",
    "CustomerIn",
    "OnlineScorer",
    "score",
    "score_features",
    "validate_customers",
]
