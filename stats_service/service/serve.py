"""`mlmon-stats serve`: prepare every model, run the evaluation loop, serve HTTP."""

from __future__ import annotations

import dataclasses
import sys
import threading
import time

from stats_service.settings import StatsSettings

STOP_TIMEOUT_S = 30.0


def serve(settings: StatsSettings) -> None:
    """Raises BaselineError or SettingsError before anything starts serving."""
    import uvicorn
    from a2wsgi import WSGIMiddleware

    from stats_service.service.app import create_app
    from stats_service.service.memory import return_freed_memory
    from stats_service.service.runner import Runner, prepare_models
    from stats_service.windows import open_window_reader
    from stats_service.windows.candidates import open_candidate_reader

    return_freed_memory()
    begun = time.perf_counter()
    contexts = prepare_models(settings)
    reader = open_window_reader(settings.store, **dataclasses.asdict(settings.elasticsearch))
    candidates = open_candidate_reader(settings.store, **dataclasses.asdict(settings.elasticsearch))
    runner = Runner(contexts, settings.window_specs, reader, candidates=candidates)
    print(
        f"mlmon-stats: {len(contexts)} model(s) prepared in {time.perf_counter() - begun:.1f} s; "
        f"serving http://{settings.host}:{settings.port}, windows {', '.join(settings.windows)} "
        f"every {settings.interval_s:g} s from {_redacted(settings.store)}",
        file=sys.stderr,
        flush=True,
    )
    stop = threading.Event()
    loop = threading.Thread(
        target=runner.run, args=(stop, settings.interval_s), name="evaluation", daemon=True
    )
    loop.start()
    try:
        uvicorn.run(
            WSGIMiddleware(create_app(runner, contexts), workers=4),  # type: ignore[arg-type]
            host=settings.host,
            port=settings.port,
            lifespan="off",
            access_log=False,
            log_level="warning",
            server_header=False,
        )
    finally:
        stop.set()
        loop.join(STOP_TIMEOUT_S)
        reader.close()
        if candidates is not None:
            candidates.close()


def _redacted(url: str) -> str:
    """The store URL without credentials, for the start-up line."""
    scheme, sep, rest = url.partition("://")
    return f"{scheme}{sep}{rest.rpartition('@')[2]}" if "@" in rest else url
