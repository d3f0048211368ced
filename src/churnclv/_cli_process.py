"""The processes ``churnclv serve`` and ``churnclv ui`` start: BentoML and the MLflow UI."""

from __future__ import annotations

import os
import shutil
import sys
from pathlib import Path

from churnclv import ChurnclvError, InputError
from churnclv._cli_output import err
from churnclv._interrupt import forget_interrupts

__all__ = ["exec_mlflow_ui", "require_bentoml", "run_bentoml_serve"]

SERVICE = "churnclv.serving.service:ChurnService"


def _bentoml_exe() -> str | None:
    return shutil.which("bentoml", path=str(Path(sys.executable).parent))


def require_bentoml() -> None:
    """InputError (exit 2) when BentoML is not installed."""
    if _bentoml_exe() is None:
        try:
            import bentoml  # noqa: F401
        except ImportError:
            raise InputError("serving needs BentoML: pip install 'churnclv[serve]'") from None


def run_bentoml_serve(
    env: dict[str, str], host: str, port: int, keep_alive: int, graceful_shutdown: int
) -> None:
    """Run ``bentoml serve`` on the service until it exits; SIGTERM and Ctrl-C stop it.

    Raises
    ------
    ChurnclvError
        The server exited with a failure status.
    """
    import signal
    import subprocess

    cmd = [_bentoml_exe() or "bentoml", "serve", SERVICE]
    cmd += ["--host", host, "--port", str(port)]
    # (hidden options of `bentoml serve`, passed on to uvicorn; its keep-alive default is 5 s)
    cmd += ["--timeout-keep-alive", str(keep_alive)]
    cmd += ["--timeout-graceful-shutdown", str(graceful_shutdown)]
    proc = subprocess.Popen(cmd, env=env)
    signal.signal(signal.SIGTERM, lambda *_: proc.terminate())  # stop the server with us
    try:
        code = proc.wait()
    except KeyboardInterrupt:  # Ctrl-C is how a server is stopped: not a failure
        forget_interrupts()
        proc.terminate()
        code = proc.wait(timeout=30)
    if code not in (0, -15, 143):
        raise ChurnclvError(f"bentoml serve exited with status {code}")


def exec_mlflow_ui(uri: str, workdir: Path, host: str, port: int) -> None:
    """Replace this process with ``mlflow ui`` on the store at ``uri`` (checked first)."""
    if uri.startswith("sqlite:///"):
        store = Path(uri.removeprefix("sqlite:///"))
        if not store.is_file():
            raise InputError(
                f"no MLflow store at {store}: run `churnclv demo --workdir {workdir}` or "
                "`churnclv train` first, or pass --tracking-uri"
            )
    elif "://" not in uri and not Path(uri).exists():
        raise InputError(f"no MLflow store at {uri}")
    cmd = [sys.executable, "-m", "mlflow", "ui", "--backend-store-uri", uri]
    cmd += ["--host", host, "--port", str(port)]
    from churnclv.training._mlflow_views import training_runs_url

    runs = training_runs_url(uri, f"http://{host}:{port}")
    err.print(f"MLflow UI on http://{host}:{port} (store {uri}); training runs: {runs}")
    err.print("Ctrl+C stops it")
    sys.stdout.flush()
    sys.stderr.flush()
    os.execvp(cmd[0], cmd)
