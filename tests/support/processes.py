"""Start real processes for tests on 127.0.0.1 and always stop them."""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

import pytest

VENV_BIN = Path(sys.executable).parent


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def require_binary(name: str) -> str:
    """The binary's path; skip without it, except under CI=true where it must exist."""
    path = shutil.which(name)
    if path is None:
        if os.environ.get("CI") == "true":
            pytest.fail(f"{name} is required in CI (make test installs it)")
        pytest.skip(f"{name} is not installed (make test installs it)")
    return path


def wait_until_http(
    url: str,
    timeout: float,
    process: subprocess.Popen[bytes] | None = None,
    ok_statuses: Sequence[int] = (200,),
) -> None:
    deadline = time.monotonic() + timeout
    last = ""
    while time.monotonic() < deadline:
        if process is not None and process.poll() is not None:
            raise RuntimeError(f"process exited with {process.returncode} before {url} answered")
        try:
            with urllib.request.urlopen(url, timeout=1) as response:
                if response.status in ok_statuses:
                    return
        except urllib.error.HTTPError as exc:
            if exc.code in ok_statuses:
                return
            last = str(exc)
        except OSError as exc:
            last = str(exc)
        time.sleep(0.05)
    raise TimeoutError(f"{url} did not answer within {timeout} s: {last}")


def stop_process(process: subprocess.Popen[bytes], timeout: float = 10) -> None:
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(5)


def kill_tree(pid: int) -> None:
    """SIGKILL a process and its children (the sidecar's analysis process), no cleanup."""
    children = subprocess.run(
        ["ps", "-o", "pid=", "--ppid", str(pid)], capture_output=True, text=True, check=False
    ).stdout.split()
    for target in [pid, *map(int, children)]:
        with contextlib.suppress(ProcessLookupError):
            os.kill(target, signal.SIGKILL)


@contextmanager
def running(
    cmd: Sequence[str],
    *,
    ready_url: str,
    timeout: float = 20,
    env: dict[str, str] | None = None,
    log: Path | None = None,
) -> Iterator[subprocess.Popen[bytes]]:
    out = open(log, "wb") if log is not None else subprocess.DEVNULL  # noqa: SIM115
    process = subprocess.Popen(
        list(cmd), stdout=out, stderr=subprocess.STDOUT, env={**os.environ, **(env or {})}
    )
    try:
        wait_until_http(ready_url, timeout, process)
        yield process
    finally:
        stop_process(process)
        if log is not None:
            out.close()  # type: ignore[union-attr]


class Sidecar:
    """A running `mlmon-exporter` process."""

    def __init__(self, process: subprocess.Popen[bytes], url: str, log: Path) -> None:
        self.process = process
        self.url = url
        self.log = log

    def output(self) -> str:
        return self.log.read_text(errors="replace")


@contextmanager
def sidecar(
    upstream: str,
    tmp_path: Path,
    *,
    config: str = "",
    args: Sequence[str] = (),
    env: dict[str, str] | None = None,
    port: int | None = None,
) -> Iterator[Sidecar]:
    """A live mlmon-exporter; its input log and spool default to files under tmp_path."""
    port = port or free_port()
    cmd = [str(VENV_BIN / "mlmon-exporter"), "--upstream", upstream, "--port", str(port), *args]
    if config:
        config_path = tmp_path / f"sidecar-{port}.yaml"
        config_path.write_text(config)
        cmd += ["--config", str(config_path)]
    log = tmp_path / f"sidecar-{port}.log"
    url = f"http://127.0.0.1:{port}"
    environment = {
        "MLMON_STORE": f"sqlite:///{tmp_path}/mlmon.db",
        "MLMON_SPOOL_DIR": str(tmp_path / "spool"),
        **(env or {}),
    }
    with running(cmd, ready_url=f"{url}/healthz", env=environment, log=log) as process:
        yield Sidecar(process, url, log)


@contextmanager
def stats_service(
    tmp_path: Path,
    *,
    baselines: dict[str, Path],
    store: str,
    config: str = "",
    port: int | None = None,
) -> Iterator[str]:
    """A live `mlmon-stats serve`; yields its URL once the first evaluation is done."""
    port = port or free_port()
    cmd = [str(VENV_BIN / "mlmon-stats"), "serve", "--port", str(port), "--store", store]
    for model, path in baselines.items():
        cmd += ["--baseline", f"{model}={path}"]
    if config:
        config_path = tmp_path / f"stats-{port}.yaml"
        config_path.write_text(config)
        cmd += ["--config", str(config_path)]
    url = f"http://127.0.0.1:{port}"
    with running(cmd, ready_url=f"{url}/readyz", timeout=60, log=tmp_path / f"stats-{port}.log"):
        yield url
