"""Champion operations: list the registered versions, promote one, roll the champion back.

Every alias move is recorded on the version that takes the alias, in version
tags: ``promoted_by`` (the user), ``promoted_at`` (ISO time, UTC),
``promotion`` (why) and ``previous_champion`` (the version it replaced).
:func:`promote` runs the champion gate of a training (``_registry._gate``) on
the validation rows the version's training stored (``validation/<kind>.parquet``
of its run): the version's out-of-time metric must be at least the champion's
on the same rows. :func:`champion_versions` reads the aliases cheaply, for the
service's hot-swap.
"""

from __future__ import annotations

import getpass
import sqlite3
import tempfile
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from churnclv._errors import InputError
from churnclv.training._registry import (
    _METRICS,
    _NAMES,
    ALIAS,
    CHURN_MODEL,
    UPLIFT_MODEL,
    VALUE_MODEL,
    _gate,
    configure_mlflow,
)

__all__ = [
    "VersionRow",
    "champion_versions",
    "list_versions",
    "log_validation",
    "promote_version",
    "rollback_champion",
]

#: Registered model name -> model kind.
_KINDS = {name: kind for kind, name in _NAMES.items()}
#: The label column of a stored validation frame.
_LABEL = "_label"


@dataclass(frozen=True)
class VersionRow:
    """One registered version as ``churnclv models list`` shows it (:func:`list_versions`).

    Examples
    --------
    >>> from churnclv.training import VersionRow
    >>> row = VersionRow("churnclv-churn", "2", ("champion",), "lightgbm", "churn_roc_auc",
    ...                  0.81, "promoted: ...", "ana", "2026-12-04T10:00:00+00:00", "run-1")
    >>> row.aliases
    ('champion',)
    """

    name: str
    version: str
    aliases: tuple[str, ...]
    model_kind: str
    metric: str
    score: float | None
    promotion: str
    promoted_by: str
    promoted_at: str
    run_id: str


def _missing_store(tracking_uri: str) -> Path | None:
    """The sqlite file of ``tracking_uri`` when it does not exist (None otherwise)."""
    path = Path(tracking_uri.removeprefix("sqlite:///"))
    return path if tracking_uri.startswith("sqlite:///") and not path.is_file() else None


def _client(tracking_uri: str) -> Any:
    """A registry client; an absent sqlite store is an input error, not a new empty store."""
    from mlflow import MlflowClient

    if (path := _missing_store(tracking_uri)) is not None:
        raise InputError(f"no tracking store at {path}; run `churnclv train` first")
    configure_mlflow(tracking_uri)
    return MlflowClient(tracking_uri, tracking_uri)


def _kind(name: str) -> str:
    if name not in _KINDS:
        raise InputError(f"unknown model {name!r}; the models are {CHURN_MODEL}, {VALUE_MODEL}")
    return _KINDS[name]


def _versions(client: Any, name: str) -> list[Any]:
    """Every version of ``name``, lowest first (empty when it is not registered)."""
    from mlflow.exceptions import MlflowException

    try:
        found = client.search_model_versions(f"name = '{name}'")
    except MlflowException:
        return []
    return sorted(found, key=lambda mv: int(mv.version))


def _current(client: Any, name: str) -> Any | None:
    from mlflow.exceptions import MlflowException

    try:
        return client.get_model_version_by_alias(name, ALIAS)
    except MlflowException:
        return None


def list_versions(tracking_uri: str) -> list[VersionRow]:
    """Every version of both registered models with aliases, metric and promotion tags.

    Examples
    --------
    A work directory without a store lists nothing (and creates no store):

    >>> import tempfile
    >>> from churnclv.training import list_versions, tracking_uri_for
    >>> list_versions(tracking_uri_for(tempfile.mkdtemp()))
    []
    """
    if _missing_store(tracking_uri) is not None:
        return []
    client = _client(tracking_uri)
    rows: list[VersionRow] = []
    for name in (CHURN_MODEL, VALUE_MODEL):
        metric = _METRICS[_KINDS[name]]
        versions = _versions(client, name)
        aliases: dict[str, list[str]] = {}
        if versions:
            for alias, version in client.get_registered_model(name).aliases.items():
                aliases.setdefault(str(version), []).append(alias)
        for mv in versions:
            try:
                score = client.get_run(mv.run_id).data.metrics.get(metric)
            except Exception:  # a run deleted from the store: the version still lists
                score = None
            tags = mv.tags or {}
            rows.append(
                VersionRow(
                    name=name,
                    version=str(mv.version),
                    aliases=tuple(sorted(aliases.get(str(mv.version), ()))),
                    model_kind=tags.get("model_kind", ""),
                    metric=metric,
                    score=None if score is None else float(score),
                    promotion=tags.get("promotion", ""),
                    promoted_by=tags.get("promoted_by", ""),
                    promoted_at=tags.get("promoted_at", ""),
                    run_id=str(mv.run_id),
                )
            )
    return rows


def _version(client: Any, name: str, version: str) -> Any:
    """Version ``version`` of ``name``, or an InputError naming the versions that exist."""
    known = {str(mv.version): mv for mv in _versions(client, name)}
    if not known:
        raise InputError(f"no registered model {name}; run `churnclv train` first")
    if str(version) not in known:
        raise InputError(
            f"{name} has no version {version}; versions: {', '.join(sorted(known, key=int))}"
        )
    return known[str(version)]


def _move_alias(client: Any, name: str, version: str, why: str, previous: str | None) -> None:
    """Give ``version`` the champion alias and record who, when, why and what it replaced."""
    tags = {
        "promoted_by": getpass.getuser(),
        "promoted_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "promotion": why,
    }
    if previous is not None:
        tags["previous_champion"] = previous
    for key, value in tags.items():
        client.set_model_version_tag(name, version, key, value)
    client.set_registered_model_alias(name, ALIAS, version)


def log_validation(validation: dict[str, tuple[pd.DataFrame, np.ndarray]]) -> None:
    """Store each kind's validation rows and labels in the active run (``validation/``).

    :func:`promote_version` judges the current champion on them later; a
    frame Parquet cannot hold is skipped (that version then needs ``--force``).
    """
    import mlflow

    with tempfile.TemporaryDirectory() as tmp:
        for kind, (rows, y) in validation.items():
            if rows.empty:
                continue
            frame = rows.reset_index(drop=True).assign(**{_LABEL: np.asarray(y)})
            path = Path(tmp) / f"{kind}.parquet"
            try:
                frame.to_parquet(path, index=False)
            except (ValueError, TypeError, ImportError):  # promote then says none was stored
                continue
            mlflow.log_artifact(str(path), "validation")


def _stored_validation(run_id: str, kind: str) -> tuple[pd.DataFrame, np.ndarray] | None:
    import mlflow

    with tempfile.TemporaryDirectory() as tmp:
        try:
            path = mlflow.artifacts.download_artifacts(
                run_id=run_id, artifact_path=f"validation/{kind}.parquet", dst_path=tmp
            )
        except Exception:  # trained before validation rows were stored, or none to store
            return None
        frame = pd.read_parquet(path)
    return frame.drop(columns=[_LABEL]), frame[_LABEL].to_numpy()


def _judge(client: Any, name: str, mv: Any) -> tuple[bool, str]:
    """The training's champion gate for version ``mv`` on its own run's validation rows."""
    kind = _kind(name)
    run = client.get_run(mv.run_id)
    stored = _stored_validation(str(mv.run_id), kind)
    fallback = run.data.tags.get(f"fallback_{kind}")
    if stored is None and fallback is None:
        return False, (f"the run of version {mv.version} stored no validation rows to compare on")
    valid, y = stored if stored is not None else (pd.DataFrame(), np.array([]))
    new = run.data.metrics.get(_METRICS[kind], float("nan"))
    return _gate(name, kind, float(new), fallback, valid, y, at_least=True)


def promote_version(
    tracking_uri: str, name: str, version: str | int, *, force: bool = False
) -> str:
    """Move ``name``'s champion alias to ``version``; the reason recorded.

    Without ``force`` the version must pass the champion gate (see the module
    doc); a refusal raises :class:`InputError` with the gate's reason, as do
    an unknown model name or version.

    Examples
    --------
    >>> import tempfile
    >>> from churnclv import InputError
    >>> from churnclv.training import promote_version, tracking_uri_for
    >>> try:
    ...     promote_version(tracking_uri_for(tempfile.mkdtemp()), "churnclv-nope", 1)
    ... except InputError as exc:
    ...     print(exc)
    unknown model 'churnclv-nope'; the models are churnclv-churn, churnclv-value
    """
    _kind(name)
    client = _client(tracking_uri)
    mv = _version(client, name, str(version))
    current = _current(client, name)
    if current is not None and str(current.version) == str(mv.version):
        return f"version {mv.version} is already the champion"
    if force:
        why = "promoted: forced (`churnclv models promote --force`), gate skipped"
    else:
        win, reason = _judge(client, name, mv)
        if not win:
            raise InputError(
                f"{name} version {mv.version} not promoted: {reason}; "
                "use --force to promote it anyway"
            )
        why = f"promoted: {reason}"
    previous = None if current is None else str(current.version)
    _move_alias(client, name, str(mv.version), why, previous)
    return why


def _was_champion(mv: Any) -> bool:
    tags = mv.tags or {}
    return "promoted_at" in tags or str(tags.get("promotion", "")).startswith("promoted")


def rollback_champion(tracking_uri: str, name: str) -> tuple[str, str]:
    """Give ``name``'s champion alias back to the previous champion; ``(from, to)`` versions.

    The previous champion is the version recorded as ``previous_champion`` on
    the current one, or else the highest version below it that was champion
    once (a ``promoted...`` reason or a ``promoted_at`` tag). Raises
    :class:`InputError` when there is no champion or nothing to go back to.

    Examples
    --------
    >>> import tempfile
    >>> from churnclv import InputError
    >>> from churnclv.training import rollback_champion, tracking_uri_for
    >>> try:
    ...     rollback_champion(tracking_uri_for(tempfile.mkdtemp()), "churnclv-churn")
    ... except InputError as exc:
    ...     print(str(exc).split("; ")[1])
    run `churnclv train` first
    """
    _kind(name)
    client = _client(tracking_uri)
    versions = {str(mv.version): mv for mv in _versions(client, name)}
    current = _current(client, name)
    if current is None:
        raise InputError(f"{name} has no champion; nothing to roll back")
    now = str(current.version)
    target = (current.tags or {}).get("previous_champion")
    if target not in versions or target == now:
        below = [v for v, mv in versions.items() if int(v) < int(now) and _was_champion(mv)]
        target = max(below, key=int) if below else None
    if target is None:
        raise InputError(f"{name} version {now} has no previous champion to roll back to")
    _move_alias(client, name, target, f"promoted: rollback from version {now}", None)
    return now, target


def champion_versions(tracking_uri: str) -> tuple[str | None, ...] | None:
    """The versions holding the champion aliases ``(churn, value)``; None when none is set.

    A missing churn or value champion is None in the tuple (scoring runs on the
    champions that exist). With an uplift champion (``churnclv-uplift@champion``)
    its version follows: ``(churn, value, uplift)``, so a service notices a new
    uplift champion too.

    A sqlite store is read directly and read-only (no MLflow client, no
    schema migration), so a service can poll it every few seconds.

    Examples
    --------
    >>> import tempfile
    >>> from churnclv.training import champion_versions, tracking_uri_for
    >>> print(champion_versions(tracking_uri_for(tempfile.mkdtemp())))
    None
    """
    if tracking_uri.startswith("sqlite:///"):
        path = Path(tracking_uri.removeprefix("sqlite:///"))
        if _missing_store(tracking_uri) is not None:
            return None
        try:
            con = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=5)
            try:
                found = dict(
                    con.execute(
                        "SELECT name, version FROM registered_model_aliases "
                        "WHERE alias = ? AND name IN (?, ?, ?)",
                        (ALIAS, CHURN_MODEL, VALUE_MODEL, UPLIFT_MODEL),
                    ).fetchall()
                )
            finally:
                con.close()
        except sqlite3.Error:
            return None
    else:
        client = _client(tracking_uri)
        found = {}
        for name in (CHURN_MODEL, VALUE_MODEL, UPLIFT_MODEL):
            mv = _current(client, name)
            if mv is not None:
                found[name] = mv.version
    if not found:
        return None
    pair = tuple(None if n not in found else str(found[n]) for n in (CHURN_MODEL, VALUE_MODEL))
    return pair if UPLIFT_MODEL not in found else (*pair, str(found[UPLIFT_MODEL]))
