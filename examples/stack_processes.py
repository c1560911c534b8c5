"""Child processes of the local stack: a log file each, bounded waits, whole-tree stops.

Each child starts in its own session (process group), so stopping it reaches whatever it
spawned (the sidecar's analysis process, uvicorn workers) without signalling the caller;
children that left the group are found through /proc. Standard library only.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Mapping, Sequence
from pathlib import Path

_POLL_S = 0.1


class StackError(RuntimeError):
    """A component did not start (or stopped); the message carries its log's tail."""


def free_port() -> int:
    """A port free on 127.0.0.1 right now (the OS picks it; a race is possible but rare)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def tail(path: Path, lines: int = 30) -> str:
    try:
        text = path.read_text(errors="replace")
    except OSError:
        return ""
    return "\n".join(text.splitlines()[-lines:])


class ManagedProcess:
    """One started child: `popen`, its `log` file, and `url` when it serves HTTP."""

    def __init__(
        self,
        name: str,
        cmd: Sequence[str],
        log: Path,
        *,
        url: str | None = None,
        env: Mapping[str, str] | None = None,
        cwd: Path | None = None,
    ) -> None:
        self.name = name
        self.cmd = list(cmd)
        self.log = log
        self.url = url
        log.parent.mkdir(parents=True, exist_ok=True)
        with open(log, "ab") as out:  # the child keeps its own copy of the descriptor
            self.popen = subprocess.Popen(
                self.cmd,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                env={**os.environ, **(env or {})},
                cwd=cwd,
                start_new_session=True,
            )

    @property
    def pid(self) -> int:
        return self.popen.pid

    @property
    def alive(self) -> bool:
        return self.popen.poll() is None

    def tail(self, lines: int = 30) -> str:
        return tail(self.log, lines)

    def failure(self, what: str) -> StackError:
        return StackError(
            f"{self.name}: {what}\ncommand: {' '.join(self.cmd)}\n"
            f"--- last lines of {self.log} ---\n{self.tail()}"
        )

    def wait_http(self, path: str, timeout_s: float) -> None:
        """Until GET url+path answers 200; StackError if the process exits or time runs out."""
        if self.url is None:
            raise ValueError(f"{self.name} serves no URL")
        deadline = time.monotonic() + timeout_s
        last = "no answer"
        while time.monotonic() < deadline:
            if not self.alive:
                raise self.failure(f"exited with code {self.popen.returncode} while starting")
            try:
                with urllib.request.urlopen(self.url + path, timeout=2) as response:
                    if response.status == 200:
                        return
                    last = f"HTTP {response.status}"
            except urllib.error.HTTPError as exc:
                last = f"HTTP {exc.code}"
            except OSError as exc:
                last = str(exc)
            time.sleep(_POLL_S)
        raise self.failure(f"{self.url}{path} not ready within {timeout_s:g} s ({last})")

    def stop(self, grace_s: float) -> None:
        """SIGTERM the whole tree, SIGKILL whatever is left after `grace_s`. Idempotent."""
        members = _tree(self.pid)
        _signal_group(self.pid, signal.SIGTERM)
        deadline = time.monotonic() + grace_s
        while time.monotonic() < deadline and any(_exists(pid) for pid in members):
            self.popen.poll()  # reap the direct child, or it stays a zombie that "exists"
            time.sleep(_POLL_S)
        members |= _tree(self.pid)
        _signal_group(self.pid, signal.SIGKILL)
        for pid in members:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.kill(pid, signal.SIGKILL)
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.popen.wait(5)


def run_command(name: str, cmd: Sequence[str], log: Path, timeout_s: float) -> None:
    """A short-lived command (the baseline build) with the same logging and tree kill."""
    process = ManagedProcess(name, cmd, log)
    try:
        code = process.popen.wait(timeout_s)
    except subprocess.TimeoutExpired:
        raise process.failure(f"did not finish within {timeout_s:g} s") from None
    finally:
        process.stop(grace_s=1.0)
    if code != 0:
        raise process.failure(f"failed with exit code {code}")


def _signal_group(pid: int, signum: int) -> None:
    # The child leads its own session, so its group id is its pid; it may be gone already.
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pid, signum)


def _exists(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as stat:
            return stat.read().rpartition(")")[2].split()[0] != "Z"
    except OSError:
        return False


def _tree(root: int) -> set[int]:
    """`root` and its descendants, from /proc (children that started their own group too)."""
    parents: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as stat:
                ppid = int(stat.read().rpartition(")")[2].split()[1])
        except (OSError, ValueError, IndexError):
            continue  # exited while listing
        parents.setdefault(ppid, []).append(int(entry))
    found, todo = {root}, [root]
    while todo:
        for child in parents.get(todo.pop(), []):
            if child not in found:
                found.add(child)
                todo.append(child)
    return found
