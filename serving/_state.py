"""What the service holds: champion, scorer, batcher, snapshot, model info.

Loaded defensively (:class:`ServingState` never raises at start-up); no
BentoML import.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from churnclv.serving._batcher import MicroBatcher, limit_threads
from churnclv.serving._scorer import OnlineScorer
from churnclv.serving._snapshot import ScoresSnapshot
from churnclv.training import Champion

__all__ = ["ServingState", "logger", "model_info", "redact"]


def model_info(
    champion: Champion, tracking_uri: str, model_uri: str | None = None
) -> dict[str, Any]:
    """Registered versions, run ids, training window (run params and tags) and run metrics."""
    from churnclv.training import CHURN_MODEL, VALUE_MODEL, run_record

    models: dict[str, Any] = {}
    for kind, name, version, run_id in (
        ("churn", CHURN_MODEL, champion.churn_version, champion.churn_run_id),
        ("value", VALUE_MODEL, champion.value_version, champion.value_run_id),
    ):
        models[kind] = {
            "registered_model": name,
            "alias": "champion",
            "version": version,
            "run_id": run_id,
            **run_record(tracking_uri, run_id, model_uri),
        }
    return {
        "model_version": champion.model_version,
        "tracking_uri": redact(tracking_uri),
        "churn_horizon_days": champion.churn_horizon_days,
        "value_horizon_days": champion.value_horizon_days,
        "training_window": {
            "as_of": models["churn"]["params"].get("as_of"),
            "data_window": models["churn"]["tags"].get("data_window"),
            "churn_validation_cutoff": models["churn"]["params"].get("churn_validation_cutoff"),
            "value_validation_cutoff": models["value"]["params"].get("value_validation_cutoff"),
        },
        "models": models,
    }


def redact(uri: str) -> str:
    """A URI without credentials (``user:password@`` becomes ``***@``)."""
    scheme, sep, rest = uri.partition("://")
    if sep and "@" in rest.split("/", 1)[0]:
        return f"{scheme}://***@{rest.split('@', 1)[1]}"
    return uri


logger = logging.getLogger("bentoml.churnclv")


class ServingState:
    """Everything the service holds, loaded defensively: it never raises at start-up.

    Parameters
    ----------
    tracking_uri : str
        The MLflow URI the champion is loaded from (configuration only).
    workdir : path-like
        Holds ``scores.parquet`` (the ``/lookup`` snapshot).
    policy_path : path-like or None
        Decision policy YAML; ``None`` = the shipped default.
    """

    def __init__(
        self,
        tracking_uri: str,
        workdir: str | os.PathLike[str],
        policy_path: str | os.PathLike[str] | None = None,
        model_uri: str | None = None,
    ) -> None:
        self.tracking_uri = tracking_uri
        self.model_uri = model_uri
        self.workdir = Path(workdir)
        self.policy_path = policy_path
        self.scorer: OnlineScorer | None = None
        self.batcher: MicroBatcher | None = None
        self.info: dict[str, Any] | None = None
        self.error: str | None = "not loaded yet"
        self.snapshot = ScoresSnapshot(self.workdir / "scores.parquet")
        self.executor = ThreadPoolExecutor(
            max_workers=1, thread_name_prefix="churnclv-rows", initializer=limit_threads
        )

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> ServingState:
        """Configure from ``CHURNCLV_WORKDIR``, ``CHURNCLV_TRACKING_URI``, ``CHURNCLV_POLICY``."""
        from churnclv.training import tracking_uri_for

        env = os.environ if env is None else env
        workdir = Path(env.get("CHURNCLV_WORKDIR") or "churnclv-work").resolve()
        uri = tracking_uri_for(workdir, env.get("CHURNCLV_TRACKING_URI") or None)
        return cls(
            uri, workdir, env.get("CHURNCLV_POLICY") or None, env.get("CHURNCLV_MODEL_URI") or None
        )

    @property
    def ready(self) -> bool:
        """Whether the champion and policy are loaded."""
        return self.scorer is not None

    def load(self) -> bool:
        """Load policy, champion and model info; on failure keep the reason in :attr:`error`.

        Logs only success: a failed attempt is the caller's to report, so a
        retry loop can say each distinct reason once.
        """
        from churnclv.decisions import load_policy
        from churnclv.training import champion_from_uri

        try:
            policy = load_policy(self.policy_path)
            champion = champion_from_uri(self.tracking_uri, self.model_uri)
            scorer = OnlineScorer(champion, policy)
            info = model_info(champion, self.tracking_uri, self.model_uri)
        except Exception as exc:  # the service must start and say why it is not ready
            self.error = f"{type(exc).__name__}: {exc}".splitlines()[0]
            return False  # the caller logs (the service: once per distinct reason)
        self.scorer, self.info, self.error = scorer, info, None
        self.batcher = MicroBatcher(scorer.score_customers)
        logger.info(
            "churnclv: champion %s loaded from %s; snapshot %s",
            champion.model_version,
            redact(self.tracking_uri),
            self.snapshot.path,
        )
        return True

    def not_ready_body(self) -> dict[str, Any]:
        """The 503 body of a prediction route before the champion is loaded."""
        return {"error": f"model not ready: {self.error}", "field": None}

    def close(self) -> None:
        """Stop the batcher and worker threads."""
        if self.batcher is not None:
            self.batcher.close()
        self.executor.shutdown(wait=False, cancel_futures=True)
        if self.scorer is not None:
            self.scorer.session.close()
