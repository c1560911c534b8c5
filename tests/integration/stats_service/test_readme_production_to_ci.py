"""README "From production to CI": its commands, exactly as written, against an input log
made by the real sidecar in front of a real model server, and a candidate on 127.0.0.1:9090."""

from __future__ import annotations

import contextlib
import http.client
import json
import re
import shlex
import subprocess
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import numpy as np
import pytest

from exporter.store.sqlite.log import SqliteLog
from tests.support.model_apps import APPS, AppRequest
from tests.support.model_servers import ModelServer
from tests.support.processes import VENV_BIN, sidecar

ROOT = Path(__file__).resolve().parents[3]
CANDIDATE_PORT = 9090  # the port the README's replay command names
SCHEMA = """
model: credit
features:
  - {name: x1, type: numeric}
  - {name: x2, type: numeric}
  - {name: country, type: categorical, categories: [fr, de, us]}
"""
ROWS = 400


def readme_commands() -> list[str]:
    text = (ROOT / "README.md").read_text()
    section = text.split("## From production to CI\n", 1)[1].split("\n## ", 1)[0]
    block = re.search(r"```sh\n(.*?)```", section, re.DOTALL)
    assert block is not None, "the section has no sh block"
    return [line for line in block[1].splitlines() if line.strip()]


@contextlib.contextmanager
def candidate() -> Iterator[None]:
    """The v1 test model on the README's fixed port (ModelServer picks a free one)."""

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
            headers = {k.lower(): v for k, v in self.headers.items()}
            status, payload = APPS["v1"](
                AppRequest("POST", self.path, headers, body), "credit", "2"
            )
            data = json.dumps(payload).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, *_: object) -> None:
            pass

    try:
        server = ThreadingHTTPServer(("127.0.0.1", CANDIDATE_PORT), Handler)
    except OSError:
        pytest.skip(f"port {CANDIDATE_PORT} is in use")
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)


def send_traffic(url: str) -> None:
    rng = np.random.default_rng(5)
    connection = http.client.HTTPConnection(url.removeprefix("http://"), timeout=30)
    for _ in range(ROWS // 20):
        rows = [
            {"x1": float(rng.normal()), "x2": float(rng.normal()), "country": str(c)}
            for c in rng.choice(["fr", "de", "us"], 20)
        ]
        connection.request("POST", "/v1/models/credit:predict", json.dumps({"instances": rows}))
        response = connection.getresponse()
        response.read()
        assert response.status == 200
    connection.close()


def wait_for_rows(db: Path, rows: int, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if db.is_file():
            with SqliteLog(db) as log:
                if log.count_window("credit", -np.inf, np.inf) >= rows:
                    return
        time.sleep(0.2)
    raise TimeoutError(f"{rows} records did not reach {db}")


def test_readme_commands_run_as_written(tmp_path: Path) -> None:
    (tmp_path / "credit.yaml").write_text(SCHEMA)
    with (
        ModelServer("v1", model="credit") as model,
        sidecar(model.url, tmp_path, args=["--schema", str(tmp_path / "credit.yaml")]) as proxy,
    ):
        send_traffic(proxy.url)
        wait_for_rows(tmp_path / "mlmon.db", ROWS)
    commands = readme_commands()
    assert [shlex.split(c)[1] for c in commands] == ["export", "baseline", "replay", "check"]
    with candidate():
        for command in commands:
            argv = shlex.split(command)
            result = subprocess.run(
                [str(VENV_BIN / argv[0]), *argv[1:]],
                cwd=tmp_path,
                capture_output=True,
                text=True,
                timeout=300,
                check=False,
            )
            assert result.returncode == 0, f"{command}\n{result.stdout}{result.stderr}"
            if argv[1] == "replay":
                assert json.loads(result.stdout)["agreement"] == 1.0
    assert (tmp_path / "served.parquet").is_file()
    assert (tmp_path / "served-baseline.json").is_file()
    assert b"<testcase" in (tmp_path / "check.xml").read_bytes()
