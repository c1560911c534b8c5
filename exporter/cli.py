"""`mlmon-exporter`: run the sidecar in front of a model server."""

from __future__ import annotations

import argparse
import atexit
import os
import shutil
import signal
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from exporter.errors import SettingsError
from exporter.settings import Settings

METRICS_ROOT = "mlmon-metrics"
_FLAGS = ("upstream", "host", "port", "workers", "protocol", "model", "schemas", "store", "shadow")


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="mlmon-exporter",
        description="Sidecar proxy: forwards traffic to a model server and exports metrics.",
    )
    parser.add_argument("--upstream", help="model server URL, e.g. http://127.0.0.1:8080")
    parser.add_argument("--host", help="address to bind (default 127.0.0.1)")
    parser.add_argument("--port", type=int, help="port to listen on (default 8000)")
    parser.add_argument("--config", help="YAML settings file (MLMON_* variables override it)")
    parser.add_argument("--workers", type=int, help="server processes (default 1)")
    parser.add_argument("--protocol", help="auto (default), v2, v1, mlflow, seldon or generic")
    parser.add_argument("--model", help="model name for protocols whose path carries none")
    parser.add_argument(
        "--store",
        help="input log: sqlite:///path.db (default sqlite:///./mlmon.db) or an "
        "http(s):// Elasticsearch URL",
    )
    parser.add_argument(
        "--schema",
        dest="schemas",
        action="append",
        help="feature schema YAML (repeat for several models); without one a schema is "
        "inferred from traffic and served at /schema",
    )
    parser.add_argument(
        "--shadow",
        action="append",
        help="candidate model URL (or NAME=URL) sent a copy of every request; repeatable",
    )
    parser.add_argument(
        "--canary", help="URL@FRACTION: a candidate answering that share of clients for real"
    )
    parser.add_argument("--fallback", help="URL of a safe model that traffic can be moved to")
    parser.add_argument("--admin-port", type=int, help="admin listener port (default 8001)")
    parser.add_argument(
        "--admin-token-file", help="bearer token of the admin listener; without it, none"
    )
    args = parser.parse_args(argv)
    overrides: dict[str, Any] = {name: getattr(args, name) for name in _FLAGS}
    overrides["fallback.url"] = args.fallback
    overrides["admin.port"] = args.admin_port
    overrides["admin.token_file"] = args.admin_token_file

    from exporter import settings as settings_module
    from exporter.analysis.schemas import SchemaSet

    # Nothing that imports prometheus_client here: serve() must set its folder first.
    from exporter.release_settings import read_token
    from exporter.serving.naive import NaiveAnswer
    from exporter.store import check_store

    try:
        overrides.update(canary_overrides(args.canary))
        settings = settings_module.load(args.config, overrides=overrides)
        SchemaSet.from_settings(settings)
        check_store(settings)
        read_token(settings.admin)
        if settings.fallback.baseline:
            NaiveAnswer.from_baseline(settings.fallback.baseline)
    except SettingsError as exc:
        print(f"mlmon-exporter: error: {exc}", file=sys.stderr)
        return 2
    serve(settings, args.config, overrides)
    return 0


def canary_overrides(flag: str | None) -> dict[str, str]:
    """`--canary URL@FRACTION` as the settings canary.url and canary.weight."""
    if flag is None:
        return {}
    url, sep, weight = flag.rpartition("@")
    if not sep or not url:
        raise SettingsError(
            f"command line: key 'canary': expected URL@FRACTION such as "
            f"http://127.0.0.1:9002@0.1, got {flag!r}"
        )
    return {"canary.url": url, "canary.weight": weight}


def serve(settings: Settings, config_file: str | None, overrides: dict[str, Any]) -> None:
    import uvicorn

    _prepare_multiprocess_dir()
    # uvicorn restores the handler it found once shut down and raises SIGTERM again: exit
    # through Python then, so that atexit removes this sidecar's metrics folder.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(128 + signal.SIGTERM))

    options: dict[str, Any] = {
        "host": settings.host,
        "port": settings.port,
        "loop": "uvloop",
        "http": "exporter.serving.protocol:SidecarHttpProtocol",
        "lifespan": "on",
        "access_log": False,
        "server_header": False,
        "date_header": False,
        "log_level": "warning",
        "proxy_headers": False,
        "timeout_graceful_shutdown": settings.shutdown_timeout_s,
    }
    print(
        f"mlmon-exporter: proxying http://{settings.host}:{settings.port} -> "
        f"{settings.upstream} ({settings.workers} worker(s))",
        file=sys.stderr,
        flush=True,
    )
    if settings.workers == 1:
        from exporter.app import create_app

        uvicorn.run(create_app(settings), **options)
        return
    # Several processes: each rebuilds the same settings from the environment.
    if config_file:
        os.environ["MLMON_CONFIG_FILE"] = os.path.abspath(config_file)
    for name, value in overrides.items():
        variable = f"MLMON_{name.upper().replace('.', '__')}"
        if isinstance(value, list | tuple):
            os.environ[variable] = ",".join(value)
        elif value is not None:
            os.environ[variable] = str(value)
    uvicorn.run(
        "exporter.app:app_from_environment", factory=True, workers=settings.workers, **options
    )


def _prepare_multiprocess_dir() -> None:
    """Metrics are written by the server process(es) and their analysis processes,
    and aggregated at scrape time (prometheus_client multiprocess mode)."""
    directory = os.environ.get("PROMETHEUS_MULTIPROC_DIR")
    if directory:
        # Files left by an earlier run would be summed into this one's counters.
        for stale in Path(directory).glob("*.db"):
            stale.unlink()
        return
    # One folder the sidecars own, a subfolder per running sidecar named by its pid: a
    # sidecar stopped by a signal skips atexit, so each start removes what dead ones left.
    root = Path(tempfile.gettempdir()) / METRICS_ROOT
    root.mkdir(mode=0o700, exist_ok=True)
    for left in root.iterdir():
        if left.name.isdigit() and not _alive(int(left.name)):
            shutil.rmtree(left, ignore_errors=True)
    own = root / str(os.getpid())
    shutil.rmtree(own, ignore_errors=True)  # a pid reused since a dead sidecar had it
    own.mkdir(mode=0o700)
    os.environ["PROMETHEUS_MULTIPROC_DIR"] = str(own)
    atexit.register(shutil.rmtree, own, ignore_errors=True)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's process
        return True
    return True


if __name__ == "__main__":
    sys.exit(main())
