"""Elasticsearch- and OpenSearch-API servers for tests, and a proxy that fails on cue.

noida-db is a single binary from PyPI that speaks the Elasticsearch REST API; it lacks
ILM, `percentiles`, `sampler` aggregations and rollover of plainly named indices, which
the backend does not need. osmem-server (PyPI `osmem-server`) is an in-memory server that
speaks the OpenSearch API and reports OpenSearch 3.8: like a real OpenSearch it refuses the
8.x client's compatibility media type (406), so it exercises `elasticsearch.flavor`.
Every server here binds 127.0.0.1 and is stopped by whoever started it.

`ENGINES` are the targets every Elasticsearch test runs against: both engines, and the
cluster at ELASTICSEARCH_URL ("external") when that is set; `engine_url` starts one.
"""

from __future__ import annotations

import contextlib
import http.client
import importlib.resources
import importlib.util
import json
import os
import signal
import subprocess
import threading
import urllib.request
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from elasticsearch import Elasticsearch

from exporter.store.elasticsearch.config import config_from_url, make_client
from exporter.store.elasticsearch.log import ElasticsearchLog
from tests.support.processes import free_port, require_binary, wait_until_http

READY_TIMEOUT_S = 30.0
STOP_TIMEOUT_S = 10.0

ENGINES = ["noida", "osmem", *(["external"] if os.environ.get("ELASTICSEARCH_URL") else [])]


def noida_binary() -> str:
    """The server binary inside the installed `noida_db` package (its `noida-db` script is
    a Python wrapper that does not pass signals on), else a `noida-db` on PATH; skips
    without either, except under CI=true."""
    if importlib.util.find_spec("noida_db") is not None:
        binary = Path(str(importlib.resources.files("noida_db").joinpath("noida-db")))
        if os.access(binary, os.X_OK):
            return str(binary)
    return require_binary("noida-db")


class _EngineProcess:
    """A test engine's process in a session of its own: `stop` signals the whole group
    (wrappers included), SIGTERM then SIGKILL."""

    url: str
    log: Path
    _process: subprocess.Popen[bytes] | None

    def _launch(self, cmd: list[str]) -> None:
        with open(self.log, "ab") as log:
            self._process = subprocess.Popen(
                cmd, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
            )
        try:
            wait_until_http(f"{self.url}/", READY_TIMEOUT_S, self._process)
        except (RuntimeError, TimeoutError):
            self.stop()
            raise

    def stop(self) -> None:
        process, self._process = self._process, None
        if process is None:
            return
        for sig in (signal.SIGTERM, signal.SIGKILL):
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, sig)
            try:
                process.wait(STOP_TIMEOUT_S)
                return
            except subprocess.TimeoutExpired:
                continue


class Noida(_EngineProcess):
    """A noida-db process serving only Elasticsearch; `stop` and `start` keep the port and
    data directory, as a restarted cluster would."""

    def __init__(self, binary: str, data_dir: Path, port: int | None = None) -> None:
        self.binary = binary
        self.data_dir = data_dir
        self.port = port if port is not None else free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log = data_dir.parent / f"noida-{self.port}.log"
        self._process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        cmd = [
            self.binary,
            "start",
            "--host",
            "127.0.0.1",
            "--only",
            "elasticsearch",
            "--elasticsearch-port",
            str(self.port),
            "--data-dir",
            str(self.data_dir),
        ]
        self._launch(cmd)

    def count(self, index: str) -> int:
        """Documents in `index` (a name or pattern) after a refresh: for tests and benchmarks,
        the backend itself never refreshes."""
        return refresh_and_count(self.url, index)


@contextmanager
def noida_server(directory: Path) -> Iterator[Noida]:
    directory.mkdir(parents=True, exist_ok=True)
    server = Noida(noida_binary(), directory / "data")
    server.start()
    try:
        yield server
    finally:
        server.stop()


def osmem_binary() -> str:
    """The server binary bundled in the installed `osmem_server` package (or the one
    OSMEM_SERVER_BIN names), else an `osmem-server` on PATH; skips without either, except
    under CI=true."""
    if importlib.util.find_spec("osmem_server") is not None:
        from osmem_server import OsmemError, resolve_binary  # type: ignore[import-untyped]

        try:
            binary = str(resolve_binary())
        except OsmemError:
            binary = ""
        if binary and os.access(binary, os.X_OK):
            return binary
    return require_binary("osmem-server")


class Osmem(_EngineProcess):
    """An osmem-server process (OpenSearch API, in memory: a restart starts empty)."""

    def __init__(self, binary: str, log_dir: Path, port: int | None = None) -> None:
        self.binary = binary
        self.port = port if port is not None else free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log = log_dir / f"osmem-{self.port}.log"
        self._process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        cmd = [
            self.binary,
            "--addr",
            f"127.0.0.1:{self.port}",
            "--no-stdin-watch",
            "--parent-pid",  # exits with the test process, however that ends
            str(os.getpid()),
            "--no-ja",
        ]
        self._launch(cmd)


@contextmanager
def osmem_server(directory: Path) -> Iterator[Osmem]:
    directory.mkdir(parents=True, exist_ok=True)
    server = Osmem(osmem_binary(), directory)
    server.start()
    try:
        yield server
    finally:
        server.stop()


@contextmanager
def engine_url(target: str, directory: Path) -> Iterator[str]:
    """The URL of one of `ENGINES`, started in `directory` for as long as this is open."""
    if target == "external":
        url = os.environ.get("ELASTICSEARCH_URL")
        if not url:
            pytest.fail("ELASTICSEARCH_URL is not set")
        yield url
        return
    server = noida_server if target == "noida" else osmem_server
    with server(directory) as running:
        yield running.url


@dataclass(frozen=True)
class ScratchLog:
    """An input log under a prefix of its own, and a client to the same cluster."""

    log: ElasticsearchLog
    client: Elasticsearch
    prefix: str

    def refresh(self) -> None:
        """Make what was written searchable (tests only: the sidecar never refreshes)."""
        self.client.indices.refresh(index=f"{self.prefix}-*")


@contextmanager
def scratch_log(url: str) -> Iterator[ScratchLog]:
    """A fresh input log on the cluster at `url`; its indices are deleted at the end."""
    prefix = f"mlmon-test-{uuid.uuid4().hex[:10]}"
    log = ElasticsearchLog.from_url(url, index_prefix=prefix)
    client = make_client(config_from_url(url))
    try:
        yield ScratchLog(log, client, prefix)
    finally:
        log.close()
        indices = client.indices.get_alias(index=f"{prefix}-*").body
        if indices:
            client.indices.delete(index=",".join(indices))
        client.close()


def refresh_and_count(url: str, index: str) -> int:
    """Documents in `index` after an explicit refresh, by plain HTTP any engine accepts."""
    for method, path in (("POST", "_refresh"), ("GET", "_count")):
        request = urllib.request.Request(f"{url}/{index}/{path}", method=method)
        with urllib.request.urlopen(request, timeout=10) as response:
            body = json.load(response)
    return int(body["count"])


class FlakyProxy:
    """Forwards to `upstream`, except the next `failures` bulk requests, which it answers
    itself: with HTTP `status` for the whole request, or (`per_item=True`) with 200 and
    that status for every item, as a busy cluster does. Counts the bulk requests it saw."""

    def __init__(self, upstream: str, *, failures: int, status: int = 429, per_item: bool = False):
        self.upstream = upstream.removeprefix("http://")
        self.failures = failures
        self.status = status
        self.per_item = per_item
        self.bulk_requests = 0
        self._lock = threading.Lock()
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}"
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    def __enter__(self) -> FlakyProxy:
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(5)

    def _fail_now(self, path: str) -> bool:
        if not path.split("?", maxsplit=1)[0].endswith("/_bulk"):
            return False
        with self._lock:
            self.bulk_requests += 1
            if self.failures <= 0:
                return False
            self.failures -= 1
            return True

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *_: object) -> None:
                pass

            def _handle(self) -> None:
                length = int(self.headers.get("content-length") or 0)
                body = self.rfile.read(length)
                if proxy._fail_now(self.path):
                    self._fail(body)
                    return
                connection = http.client.HTTPConnection(proxy.upstream, timeout=10)
                try:
                    headers = {key: value for key, value in self.headers.items()}
                    connection.request(self.command, self.path, body=body, headers=headers)
                    response = connection.getresponse()
                    self._reply(
                        response.status, response.read(), response.getheader("content-type")
                    )
                finally:
                    connection.close()

            def _fail(self, body: bytes) -> None:
                error = {"type": "es_rejected_execution_exception", "reason": "busy (test)"}
                if not proxy.per_item:
                    payload = {"error": error, "status": proxy.status}
                    self._reply(proxy.status, json.dumps(payload).encode(), "application/json")
                    return
                lines = [json.loads(line) for line in body.splitlines() if line.strip()]
                items = [
                    {op: {**meta, "status": proxy.status, "error": error}}
                    for action in lines[::2]
                    for op, meta in action.items()
                ]
                payload = {"took": 1, "errors": True, "items": items}
                self._reply(200, json.dumps(payload).encode(), "application/json")

            def _reply(self, status: int, payload: bytes, content_type: str | None) -> None:
                self.send_response(status)
                self.send_header("content-type", content_type or "application/json")
                self.send_header("x-elastic-product", "Elasticsearch")
                self.send_header("content-length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

            do_GET = do_POST = do_PUT = do_DELETE = do_HEAD = _handle  # noqa: N815

        return Handler
