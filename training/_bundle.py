"""Champion bundles: the champion models exported as MLflow model directories, and model URIs.

A bundle is a folder that scores and serves without the tracking store it came from::

    <bundle>/
        bundle.json      what the bundle holds: versions, run ids, horizons, run records
        churn/           MLflow model directory of the churn model (``mlflow.pyfunc``)
        value/           MLflow model directory of the value model
        uplift/          MLflow model directory of the uplift model (with an uplift champion)
        policy.yaml      the decision policy in force at export
        reference.json   the reference population decisions rank customers against
        schema.json      the input features (and categorical ones) of each model

``churn/``, ``value/`` and ``uplift/`` are the registered models' artifacts copied as
they are; each carries its own ``schema.json`` and reference inside, so ``reference.json``
and ``schema.json`` at the top are read-only views of them for people and other tools.
Exported from the ``@champion`` aliases, a bundle holds every champion that exists (at
least one): a store with only an uplift champion exports an uplift-only bundle.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from dataclasses import replace
from pathlib import Path
from typing import Any

from churnclv._errors import ChurnclvError, InputError
from churnclv.training._model import BoosterModel
from churnclv.training._registry import (
    ALIAS,
    CHURN_MODEL,
    UPLIFT_MODEL,
    VALUE_MODEL,
    Champion,
    configure_mlflow,
    load_champion,
)

__all__ = [
    "BUNDLE_FILE",
    "bundle_policy",
    "champion_from_uri",
    "export_bundle",
    "load_bundle",
    "run_record",
]

#: The manifest that makes a folder a churnclv bundle.
BUNDLE_FILE = "bundle.json"
_FORMAT = 1
_KINDS = {"churn": CHURN_MODEL, "value": VALUE_MODEL}


def export_bundle(
    tracking_uri: str,
    out_dir: str | os.PathLike[str],
    *,
    model_uri: str | None = None,
    policy: str | os.PathLike[str] | None = None,
    name: str | None = None,
) -> Path:
    """Write the champion models, the policy and reference population as a bundle folder.

    Parameters
    ----------
    tracking_uri : str
        MLflow tracking (and registry) URI holding the models.
    out_dir : path-like
        Folder the bundle is written into (created if missing).
    model_uri : str, optional
        Which pair to export (see :func:`champion_from_uri`); default the
        ``@champion`` aliases: every champion that exists, the uplift one
        included.
    policy : path-like, optional
        Decision policy YAML to bundle; default the shipped policy.
    name : str, optional
        Folder name of the bundle; default ``churnclv-churn-v<N>-value-v<M>``
        (``-uplift-v<K>`` added with an uplift model; missing models left out).

    Returns
    -------
    pathlib.Path
        The bundle folder ``out_dir/name``; an existing one is replaced whole.

    Raises
    ------
    InputError
        No such registered models, or a policy that does not load.

    Examples
    --------
    >>> from churnclv.training import export_bundle
    >>> export_bundle("sqlite:///nowhere/mlruns.db", "models")  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    churnclv._errors.InputError: no tracking store at ...nowhere/mlruns.db; ...
    """
    import mlflow

    from churnclv.decisions import load_policy

    load_policy(policy)  # a bad policy fails before anything is written
    pairs = _uri_models(tracking_uri, model_uri)
    if not pairs:
        raise InputError(
            f"no champion in {tracking_uri} to export; run `churnclv train --promote` "
            "(or `churnclv demo`) first"
        )
    versions = {kind: pair[1] for kind, pair in pairs.items()}
    tag = "+".join(f"{kind}:v{v}" for kind, v in versions.items())
    folder = Path(out_dir) / (
        name or "churnclv-" + "-".join(f"{kind}-v{v}" for kind, v in versions.items())
    )
    folder.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{folder.name}.", dir=folder.parent))
    tmp.chmod(0o755)  # mkdtemp's 0700 would hide the bundle from a service's user
    try:
        runs: dict[str, Any] = {}
        models: dict[str, Any] = {}
        for kind, (registered, version, run_id) in pairs.items():
            mlflow.artifacts.download_artifacts(
                artifact_uri=f"models:/{registered}/{version}",
                dst_path=str(tmp / kind),
                tracking_uri=tracking_uri,
                registry_uri=tracking_uri,
            )
            models[kind] = _load_pyfunc(tmp / kind, f"{registered} version {version}")
            runs[kind] = {
                "registered_model": registered,
                "version": version,
                "run_id": run_id,
                **run_record(tracking_uri, run_id),
            }
        empty: dict[str, Any] = {"params": {}}
        manifest = {
            "format": _FORMAT,
            "model_version": tag,
            "churn_horizon_days": _horizon(runs.get("churn", empty), "churn_horizon_days", 90),
            "value_horizon_days": _horizon(runs.get("value", empty), "value_horizon_days", 365),
            "models": runs,
        }
        (tmp / "policy.yaml").write_text(_policy_text(policy))
        ref_model = models.get("value", models.get("uplift", models.get("churn")))
        _write_json(tmp / "reference.json", getattr(ref_model, "reference_", None) or {})
        _write_json(
            tmp / "schema.json",
            {
                kind: {"features": list(m.features_), "categories": list(m.categories_)}
                for kind, m in models.items()
            },
        )
        _write_json(tmp / BUNDLE_FILE, manifest)  # last: a folder with it is complete
        _replace_dir(tmp, folder)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return folder


def load_bundle(path: str | os.PathLike[str]) -> Champion:
    """Load the champion models of a bundle written by :func:`export_bundle`.

    Needs no tracking store: versions, run ids and horizons come from
    ``bundle.json``, the models from the bundle's MLflow model directories.

    Parameters
    ----------
    path : path-like
        The bundle folder.

    Returns
    -------
    Champion

    Raises
    ------
    InputError
        ``path`` is not a bundle folder.
    ChurnclvError
        A model directory of the bundle cannot be loaded.

    Examples
    --------
    >>> from churnclv.training import load_bundle
    >>> load_bundle("no-such-bundle")
    Traceback (most recent call last):
    ...
    churnclv._errors.InputError: no-such-bundle is not a churnclv bundle (no bundle.json in it)
    """
    folder = Path(path)
    manifest = _manifest(folder)
    entries = manifest["models"]
    models = {k: _load_pyfunc(folder / k, f"{folder}/{k}") for k in entries}

    def field(kind: str, key: str) -> str | None:
        return str(entries[kind][key]) if kind in entries else None

    return Champion(
        churn=models.get("churn"),
        value=models.get("value"),
        churn_version=field("churn", "version"),
        value_version=field("value", "version"),
        churn_run_id=field("churn", "run_id"),
        value_run_id=field("value", "run_id"),
        churn_horizon_days=float(manifest["churn_horizon_days"]),
        value_horizon_days=float(manifest["value_horizon_days"]),
        uplift=models.get("uplift"),
        uplift_version=field("uplift", "version"),
    )


def champion_from_uri(tracking_uri: str, model_uri: str | None = None) -> Champion:
    """The models a model URI names: the churn and value pair, and the uplift model paired
    with them.

    Parameters
    ----------
    tracking_uri : str
        MLflow tracking (and registry) URI, used for ``models:/`` URIs and
        when ``model_uri`` is None.
    model_uri : str, optional
        - None or ``models:/churnclv-churn@champion``: every ``@champion`` model
          of the registry, the uplift one included (:func:`load_champion`).
        - A bundle folder (or ``file://`` URI) written by :func:`export_bundle`:
          the models it holds (the uplift model when it was exported with one).
        - ``models:/churnclv-churn@ALIAS`` or ``models:/churnclv-value@ALIAS``:
          ``churnclv-churn@ALIAS`` + ``churnclv-value@ALIAS`` and
          ``churnclv-uplift@ALIAS`` when that alias exists. An alias pairs the
          three models, as ``@champion`` does.
        - ``models:/churnclv-churn/N`` or ``models:/churnclv-value/N``: that
          version and the other model registered by the same training run, as
          ``churnclv train`` registers them. A version pairs no uplift model:
          the partner is found by training run, not by alias, and
          ``churnclv-uplift`` versions are registered by their own
          ``train-uplift`` runs; the uplift champion is not taken instead, as
          the value champion is not. Scoring then chooses actions by the
          policy formula; when the registry has an uplift champion,
          :attr:`Champion.uplift_note` says it was left out (the CLI prints it).

    Returns
    -------
    Champion

    Raises
    ------
    InputError
        A URI that names no bundle or registered pair.

    Examples
    --------
    >>> from churnclv.training import champion_from_uri
    >>> champion_from_uri("sqlite:///mlruns.db", "models:/other@champion")  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    churnclv._errors.InputError: model URI 'models:/other@champion': the registered model ...
    """
    if model_uri is None:
        return load_champion(tracking_uri)
    if model_uri.startswith("models:/"):
        if _parse_models_uri(model_uri)[1] == ALIAS:
            return load_champion(tracking_uri)  # the models the service and `score` use
        pairs = _uri_models(tracking_uri, model_uri)
        champion = _load_registered(tracking_uri, pairs)
        if "uplift" in pairs:
            return champion
        return replace(champion, uplift_note=_unpaired_uplift(tracking_uri, model_uri))
    return load_bundle(_local_path(model_uri))


def bundle_policy(model_uri: str | None) -> Path | None:
    """The policy file a bundle carries; None for ``models:/`` URIs and None.

    Examples
    --------
    >>> from churnclv.training import bundle_policy
    >>> print(bundle_policy("models:/churnclv-churn@champion"))
    None
    """
    if model_uri is None or model_uri.startswith("models:/"):
        return None
    folder = _local_path(model_uri)
    _manifest(folder)
    return folder / "policy.yaml"


def run_record(
    tracking_uri: str, run_id: str, model_uri: str | None = None
) -> dict[str, dict[str, Any]]:
    """Params, tags (without ``mlflow.*``) and metrics of a training run.

    For a bundle ``model_uri`` they come from its ``bundle.json`` (no store
    needed); otherwise from the tracking store at ``tracking_uri``.

    Examples
    --------
    >>> from churnclv.training import run_record
    >>> run_record("sqlite:///mlruns.db", "abc", "no-such-bundle")
    Traceback (most recent call last):
    ...
    churnclv._errors.InputError: no-such-bundle is not a churnclv bundle (no bundle.json in it)
    """
    if model_uri is not None and not model_uri.startswith("models:/"):
        for entry in _manifest(_local_path(model_uri))["models"].values():
            if entry["run_id"] == run_id:
                return {k: dict(entry[k]) for k in ("params", "tags", "metrics")}
        raise InputError(f"run {run_id} is not in bundle {model_uri}")
    from mlflow import MlflowClient

    run = MlflowClient(tracking_uri=tracking_uri, registry_uri=tracking_uri).get_run(run_id)
    return {
        "params": dict(run.data.params),
        "tags": {k: v for k, v in run.data.tags.items() if not k.startswith("mlflow.")},
        "metrics": {k: float(v) for k, v in sorted(run.data.metrics.items())},
    }


# ---- helpers --------------------------------------------------------------------------------
def _policy_text(policy: str | os.PathLike[str] | None) -> str:
    """The YAML text of ``policy`` (None: the shipped default)."""
    if policy is None:
        from importlib import resources

        return resources.files("churnclv").joinpath("default_policy.yaml").read_text()
    return Path(policy).read_text()


def _parse_models_uri(model_uri: str) -> tuple[str, str | None, str | None]:
    """``models:/NAME@ALIAS`` or ``models:/NAME/VERSION`` -> (name, alias, version)."""
    ref = model_uri.removeprefix("models:/").strip("/")
    if "@" in ref:
        registered, alias = ref.split("@", 1)
        version = None
    else:
        registered, _, version = ref.partition("/")
        alias = None
    if registered not in _KINDS.values():
        raise InputError(
            f"model URI {model_uri!r}: the registered model must be {CHURN_MODEL} or {VALUE_MODEL}"
        )
    if not (alias or (version and version.isdigit())):
        raise InputError(
            f"model URI {model_uri!r}: use models:/{registered}@ALIAS or models:/{registered}/N"
        )
    return registered, alias, version


def _registry_pair(tracking_uri: str, model_uri: str | None) -> dict[str, tuple[str, str, str]]:
    """kind -> (registered name, version, run id) of the pair ``model_uri`` names."""
    from mlflow import MlflowClient
    from mlflow.exceptions import MlflowException

    if model_uri is None:
        model_uri = f"models:/{CHURN_MODEL}@{ALIAS}"
    registered, alias, version = _parse_models_uri(model_uri)
    if tracking_uri.startswith("sqlite:///"):
        store = Path(tracking_uri.removeprefix("sqlite:///"))
        if not store.is_file():  # MLflow would create an empty store
            raise InputError(
                f"no tracking store at {store}; run `churnclv train --promote` "
                "(or `churnclv demo`) first"
            )
    configure_mlflow(tracking_uri)
    client = MlflowClient(tracking_uri=tracking_uri, registry_uri=tracking_uri)
    found: dict[str, tuple[str, str, str]] = {}
    try:
        if alias is not None:
            for kind, name in _KINDS.items():
                mv = _by_alias(client, name, alias)
                if mv is not None:  # a missing champion is left out (its columns are null)
                    found[kind] = (name, str(mv.version), str(mv.run_id))
            if not found and alias != ALIAS:
                raise InputError(
                    f"model URI {model_uri!r}: not found in {tracking_uri} "
                    f"(neither {CHURN_MODEL} nor {VALUE_MODEL} has the alias {alias!r})"
                )
        else:
            mv = client.get_model_version(registered, str(version))
            run_id = str(mv.run_id)
            for kind, name in _KINDS.items():
                if name == registered:
                    found[kind] = (name, str(mv.version), run_id)
                    continue
                partner = client.search_model_versions(f"name = '{name}' and run_id = '{run_id}'")
                if not partner:
                    raise InputError(
                        f"model URI {model_uri!r}: run {run_id} registered no {name} version"
                    )
                found[kind] = (name, str(partner[0].version), run_id)
    except MlflowException as exc:
        raise InputError(
            f"model URI {model_uri!r}: not found in {tracking_uri} ({str(exc).splitlines()[0]})"
        ) from None
    return found


def _uri_models(tracking_uri: str, model_uri: str | None) -> dict[str, tuple[str, str, str]]:
    """kind -> (registered name, version, run id) of every model ``model_uri`` names: the
    churn and value pair (:func:`_registry_pair`) and, for an alias (None: ``@champion``),
    ``churnclv-uplift`` at that alias (see :func:`champion_from_uri`)."""
    pairs = _registry_pair(tracking_uri, model_uri)
    alias = ALIAS if model_uri is None else _parse_models_uri(model_uri)[1]
    if alias is not None:
        pairs.update(_uplift_champion(tracking_uri, alias))
    return pairs


def _unpaired_uplift(tracking_uri: str, model_uri: str) -> str | None:
    """Why ``model_uri`` scores without the registry's uplift champion; None without one."""
    champion = _uplift_champion(tracking_uri, ALIAS).get("uplift")
    if champion is None:
        return None
    alias = _parse_models_uri(model_uri)[1]
    why = (
        f"{UPLIFT_MODEL} has no alias {alias!r}"
        if alias is not None
        else f"{UPLIFT_MODEL} versions come from their own train-uplift runs"
    )
    return (
        f"{model_uri} pairs no uplift model ({why}), so {UPLIFT_MODEL}@{ALIAS} "
        f"v{champion[1]} is left out and actions follow the policy formula; "
        f"models:/{CHURN_MODEL}@{ALIAS} scores with it"
    )


def _by_alias(client: Any, name: str, alias: str) -> Any:
    """The version of ``name`` holding ``alias``, or None."""
    from mlflow.exceptions import MlflowException

    try:
        return client.get_model_version_by_alias(name, alias)
    except MlflowException:
        return None


def _uplift_champion(tracking_uri: str, alias: str) -> dict[str, tuple[str, str, str]]:
    """``{"uplift": (name, version, run id)}`` of ``churnclv-uplift@alias``; empty without."""
    from mlflow import MlflowClient

    client = MlflowClient(tracking_uri=tracking_uri, registry_uri=tracking_uri)
    mv = _by_alias(client, UPLIFT_MODEL, alias)
    return {} if mv is None else {"uplift": (UPLIFT_MODEL, str(mv.version), str(mv.run_id))}


def _load_registered(tracking_uri: str, pairs: dict[str, tuple[str, str, str]]) -> Champion:
    """The Champion of registered models (any alias or version; an uplift one optional)."""
    models: dict[str, BoosterModel] = {}
    params: dict[str, dict[str, Any]] = {}
    for kind, (name, version, run_id) in pairs.items():
        with tempfile.TemporaryDirectory() as tmp:
            import mlflow

            path = mlflow.artifacts.download_artifacts(
                artifact_uri=f"models:/{name}/{version}",
                dst_path=tmp,
                tracking_uri=tracking_uri,
                registry_uri=tracking_uri,
            )
            models[kind] = _load_pyfunc(Path(path), f"{name} version {version}")
        if kind in _KINDS:  # the horizons are the churn and value runs' params
            params[kind] = run_record(tracking_uri, run_id)
    empty: dict[str, Any] = {"params": {}}

    def registered(kind: str) -> str | None:
        return pairs[kind][1] if kind in pairs else None

    return Champion(
        churn=models.get("churn"),
        value=models.get("value"),
        churn_version=registered("churn"),
        value_version=registered("value"),
        churn_run_id=pairs["churn"][2] if "churn" in pairs else None,
        value_run_id=pairs["value"][2] if "value" in pairs else None,
        churn_horizon_days=_horizon(params.get("churn", empty), "churn_horizon_days", 90),
        value_horizon_days=_horizon(params.get("value", empty), "value_horizon_days", 365),
        uplift=models.get("uplift"),
        uplift_version=registered("uplift"),
    )


def _horizon(record: dict[str, Any], key: str, default: float) -> float:
    return float(record["params"].get(key, default))


def _load_pyfunc(path: Path, what: str) -> BoosterModel:
    import mlflow

    try:
        model: BoosterModel = mlflow.pyfunc.load_model(str(path)).unwrap_python_model().model
    except Exception as exc:  # a corrupted artifact is not the user's input
        raise ChurnclvError(f"cannot load {what}: {exc}") from exc
    return model


def _local_path(model_uri: str) -> Path:
    if model_uri.startswith("file://"):
        from urllib.parse import unquote, urlparse

        return Path(unquote(urlparse(model_uri).path))
    return Path(model_uri)


def _manifest(folder: Path) -> dict[str, Any]:
    path = folder / BUNDLE_FILE
    if not path.is_file():
        raise InputError(f"{folder} is not a churnclv bundle (no {BUNDLE_FILE} in it)")
    manifest: dict[str, Any] = json.loads(path.read_text())
    if manifest.get("format") != _FORMAT:
        raise InputError(f"{path}: unsupported bundle format {manifest.get('format')!r}")
    return manifest


def _write_json(path: Path, obj: Any) -> None:
    path.write_text(json.dumps(obj, indent=2, sort_keys=True) + "\n")


def _replace_dir(new: Path, target: Path) -> None:
    """Move ``new`` onto ``target``, replacing a previous folder there whole."""
    old = None
    if target.exists():
        old = target.with_name(f".{target.name}.old-{os.getpid()}")
        os.replace(target, old)
    os.replace(new, target)
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)
