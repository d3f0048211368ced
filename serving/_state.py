"""What the service holds: champion, scorer, batcher, snapshot, model info.

Loaded defensively (:class:`ServingState` never raises at start-up); no
BentoML import. The scorer, its micro-batcher and the model info are one
immutable :class:`Live` object, replaced as a whole when a new champion is
swapped in (:meth:`ServingState.reload`): a request takes it once and finishes
on it, so no answer mixes model versions.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from churnclv.serving._batcher import MicroBatcher, limit_threads
from churnclv.serving._scorer import OnlineScorer
from churnclv.serving._snapshot import ScoresSnapshot
from churnclv.training import Champion

__all__ = ["Live", "ServingState", "logger", "model_info", "redact", "reload_seconds"]


def model_info(
    champion: Champion, tracking_uri: str, model_uri: str | None = None
) -> dict[str, Any]:
    """Registered versions, run ids, training window (run params and tags) and run metrics."""
    from churnclv.training import CHURN_MODEL, VALUE_MODEL, run_record
    from churnclv.training._registry import UPLIFT_MODEL

    models: dict[str, Any] = {}
    for kind, name, version, run_id in (
        ("churn", CHURN_MODEL, champion.churn_version, champion.churn_run_id),
        ("value", VALUE_MODEL, champion.value_version, champion.value_run_id),
    ):
        if run_id is None:  # no such champion: its columns are null
            continue
        models[kind] = {
            "registered_model": name,
            "alias": "champion",
            "version": version,
            "run_id": run_id,
            **run_record(tracking_uri, run_id, model_uri),
        }
    if champion.uplift is not None:
        models["uplift"] = {
            "registered_model": UPLIFT_MODEL,
            "alias": "champion",
            "version": champion.uplift_version,
            "decision": dict(champion.uplift.decision_ or {}),
        }
    empty: dict[str, dict[str, Any]] = {"params": {}, "tags": {}}
    churn, value = models.get("churn", empty), models.get("value", empty)
    first = models.get("churn", models.get("value", empty))
    return {
        "model_version": champion.model_version,
        "tracking_uri": redact(tracking_uri),
        "churn_horizon_days": champion.churn_horizon_days,
        "value_horizon_days": champion.value_horizon_days,
        "missing_models": champion.missing,
        "training_window": {
            "as_of": first["params"].get("as_of"),
            "data_window": first["tags"].get("data_window"),
            "churn_validation_cutoff": churn["params"].get("churn_validation_cutoff"),
            "value_validation_cutoff": value["params"].get("value_validation_cutoff"),
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

#: Default seconds between checks of the registry's champion aliases.
RELOAD_S = 30.0


def reload_seconds(env: Mapping[str, str]) -> float:
    """``CHURNCLV_RELOAD_S`` (default 30; 0 or less = never reload); bad values give 30."""
    try:
        value = float(env.get("CHURNCLV_RELOAD_S") or RELOAD_S)
    except ValueError:
        return RELOAD_S
    return max(value, 0.0)


@dataclass(frozen=True)
class Live:
    """The serving champion: its scorer, the micro-batcher bound to it, and its model info."""

    scorer: OnlineScorer
    batcher: MicroBatcher
    info: dict[str, Any]


class ServingState:
    """Everything the service holds, loaded defensively: it never raises at start-up.

    Without a model URI the champion aliases are checked every ``reload_s``
    seconds (:meth:`reload`); a new champion is swapped in whole, and one that
    fails to load leaves the current one serving (:attr:`reload_error`).

    Parameters
    ----------
    tracking_uri : str
        The MLflow URI the champion is loaded from (configuration only).
    workdir : path-like
        Holds ``scores.parquet`` (the ``/lookup`` snapshot).
    policy_path : path-like or None
        Decision policy YAML; ``None`` = the shipped default.
    model_uri : str or None
        A bundle or ``models:/`` URI to serve instead of the registry champion.
    reload_s : float
        Seconds between champion alias checks (0 = off).
    """

    def __init__(
        self,
        tracking_uri: str,
        workdir: str | os.PathLike[str],
        policy_path: str | os.PathLike[str] | None = None,
        model_uri: str | None = None,
        reload_s: float = RELOAD_S,
    ) -> None:
        self.tracking_uri = tracking_uri
        self.model_uri = model_uri
        self.workdir = Path(workdir)
        self.policy_path = policy_path
        self.live: Live | None = None
        self.error: str | None = "not loaded yet"
        #: Seconds between alias checks; 0 when off (and always with a model URI).
        self.reload_s = 0.0 if model_uri else reload_s
        #: Why the latest champion found in the registry could not be swapped in.
        self.reload_error: str | None = None
        self.snapshot = ScoresSnapshot(self.workdir / "scores.parquet")
        self.executor = ThreadPoolExecutor(
            max_workers=1, thread_name_prefix="churnclv-rows", initializer=limit_threads
        )

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> ServingState:
        """Configure from ``CHURNCLV_WORKDIR``, ``CHURNCLV_TRACKING_URI``, ``CHURNCLV_POLICY``,
        ``CHURNCLV_MODEL_URI`` and ``CHURNCLV_RELOAD_S``."""
        from churnclv.training import tracking_uri_for

        env = os.environ if env is None else env
        workdir = Path(env.get("CHURNCLV_WORKDIR") or "churnclv-work").resolve()
        uri = tracking_uri_for(workdir, env.get("CHURNCLV_TRACKING_URI") or None)
        return cls(
            uri,
            workdir,
            env.get("CHURNCLV_POLICY") or None,
            env.get("CHURNCLV_MODEL_URI") or None,
            reload_seconds(env),
        )

    @property
    def ready(self) -> bool:
        """Whether the champion and policy are loaded."""
        return self.live is not None

    @property
    def scorer(self) -> OnlineScorer | None:
        """The serving scorer (None before the champion is loaded)."""
        return None if self.live is None else self.live.scorer

    @property
    def batcher(self) -> MicroBatcher | None:
        """The micro-batcher bound to the serving scorer."""
        return None if self.live is None else self.live.batcher

    @property
    def info(self) -> dict[str, Any] | None:
        """The serving champion's model info (``/model``), with ``reload_error`` when set."""
        if self.live is None:
            return None
        if self.reload_error is None:
            return self.live.info
        return {**self.live.info, "reload_error": self.reload_error}

    def _build(self) -> Live:
        """Load policy and champion into a new :class:`Live` (raises on failure)."""
        from churnclv.decisions import load_policy
        from churnclv.training import champion_from_uri

        policy = load_policy(self.policy_path)
        champion = champion_from_uri(self.tracking_uri, self.model_uri)
        scorer = OnlineScorer(champion, policy)
        info = model_info(champion, self.tracking_uri, self.model_uri)
        return Live(scorer, MicroBatcher(scorer.score_customers), info)

    def load(self) -> bool:
        """Load policy, champion and model info; on failure keep the reason in :attr:`error`.

        Logs only success: a failed attempt is the caller's to report, so a
        retry loop can say each distinct reason once.
        """
        try:
            live = self._build()
        except Exception as exc:  # the service must start and say why it is not ready
            self.error = _reason(exc)
            return False  # the caller logs (the service: once per distinct reason)
        self.live, self.error = live, None
        logger.info(
            "churnclv: champion %s loaded from %s; snapshot %s",
            live.scorer.champion.model_version,
            redact(self.tracking_uri),
            self.snapshot.path,
        )
        return True

    def serving_versions(self) -> tuple[str | None, ...] | None:
        """The ``(churn, value[, uplift])`` versions being served (None before loading)."""
        if self.live is None:
            return None
        champion = self.live.scorer.champion
        pair = champion.churn_version, champion.value_version
        return pair if champion.uplift_version is None else (*pair, champion.uplift_version)

    def reload(self) -> MicroBatcher | None:
        """Swap in the registry's champion when its aliases moved; the batcher it replaced.

        Runs off the event loop (it loads models). The new scorer, batcher and
        info replace the old ones in one assignment; the caller closes the old
        batcher once its queued requests are answered. A champion that cannot
        be loaded leaves the current one serving and sets :attr:`reload_error`
        (cleared once the aliases point at what is served again). Does nothing
        with a model URI, before the first load, or when the aliases did not move.
        """
        from churnclv.training import champion_versions

        if self.model_uri or self.live is None:
            return None
        try:
            wanted = champion_versions(self.tracking_uri)
        except Exception as exc:  # a store that is briefly unreachable: keep serving
            self.reload_error = f"cannot read the champion aliases: {_reason(exc)}"
            return None
        if wanted is None or wanted == self.serving_versions():
            self.reload_error = None
            return None
        before = self.live
        try:
            live = self._build()
        except Exception as exc:
            named = "+".join(
                f"{kind}:v{v}"
                for kind, v in zip(("churn", "value", "uplift"), wanted, strict=False)
                if v is not None
            )
            self.reload_error = f"champion {named} not loaded: {_reason(exc)}"
            return None
        self.live, self.reload_error = live, None
        logger.info(
            "churnclv: champion swapped %s -> %s",
            before.scorer.champion.model_version,
            live.scorer.champion.model_version,
        )
        return before.batcher

    def not_ready_body(self) -> dict[str, Any]:
        """The 503 body of a prediction route before the champion is loaded."""
        return {"error": f"model not ready: {self.error}", "field": None}

    def close(self) -> None:
        """Stop the batcher and worker threads."""
        if self.live is not None:
            self.live.batcher.close()
        self.executor.shutdown(wait=False, cancel_futures=True)
        if self.live is not None:
            self.live.scorer.session.close()


def _reason(exc: BaseException) -> str:
    """One line saying what went wrong."""
    return f"{type(exc).__name__}: {exc}".splitlines()[0]
