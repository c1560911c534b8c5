"""Running `make demo` the ways a user does, for the demo's tests.

`MakeRun`: through a pipe, as a script or CI would. `TerminalMakeRun`: on a
pseudo-terminal that is the run's controlling terminal, so that typing Ctrl-C (byte 0x03
on the terminal) makes the kernel send SIGINT to the whole foreground process group,
make and the demo alike, exactly as in an interactive shell. `LinkCheck` fetches the URLs
the live summary prints while the demo serves them. `processes_under` finds what the demo
started, by the work directory every one of its commands names.
"""

from __future__ import annotations

import contextlib
import json
import os
import pty
import re
import shutil
import signal
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[3]
# Variables of an enclosing make (`make test`) or virtualenv that must not leak into the
# demo's own make and interpreter.
_DROPPED = ("MAKEFLAGS", "MFLAGS", "MAKELEVEL", "VIRTUAL_ENV", "PYTHONPATH", "PYTHONHOME")
FETCH_TIMEOUT_S = 10.0


def copy_checkout(target: Path) -> int:
    """The working tree's tracked and untracked, non-ignored files: what a clone of this
    tree would hold once committed (no .venv, caches or input logs)."""
    listed = subprocess.run(
        ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
        cwd=REPO,
        capture_output=True,
        check=True,
        timeout=60,
    ).stdout.decode()
    copied = 0
    for name in filter(None, listed.split("\0")):
        source = REPO / name
        if not source.is_file():  # tracked but deleted in the working tree
            continue
        destination = target / name
        destination.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(source, destination)
        copied += 1
    return copied


def demo_environment(tmp_dir: Path, **demo: str) -> dict[str, str]:
    """This environment without the test's venv and make, TMPDIR in `tmp_dir` (so that
    the demo's work directory, and every command naming it, is recognisable), plus the
    DEMO_* settings given."""
    env = {k: v for k, v in os.environ.items() if k not in _DROPPED}
    venv_bin = str(Path(sys.executable).parent)
    env["PATH"] = os.pathsep.join(p for p in env.get("PATH", "").split(os.pathsep) if p != venv_bin)
    env["TMPDIR"] = str(tmp_dir)
    env.update(demo)
    return env


def processes_under(root: Path) -> list[str]:
    """Live processes whose command line or working directory names `root`, as
    "PID (cwd ...): command"."""
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit() or int(entry) == os.getpid():
            continue
        try:
            cmdline = Path(f"/proc/{entry}/cmdline").read_bytes().replace(b"\0", b" ").decode()
            state = Path(f"/proc/{entry}/stat").read_text().rpartition(")")[2].split()[0]
        except (OSError, IndexError):
            continue  # exited meanwhile
        try:
            cwd = os.readlink(f"/proc/{entry}/cwd")
        except OSError:
            cwd = ""
        if state != "Z" and (str(root) in cmdline or cwd.startswith(str(root))):
            found.append(f"{entry} (cwd {cwd}): {cmdline.strip()}")
    return found


def kill_listed(processes: Sequence[str]) -> None:
    """SIGKILL what `processes_under` listed, so that nothing outlives a failed test."""
    for line in processes:
        with contextlib.suppress(ProcessLookupError, ValueError):
            os.kill(int(line.split()[0]), signal.SIGKILL)


def group_members(pgid: int) -> list[int]:
    """Live processes in process group `pgid`."""
    members = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            fields = Path(f"/proc/{entry}/stat").read_text().rpartition(")")[2].split()
        except OSError:
            continue
        if fields[0] != "Z" and int(fields[2]) == pgid:
            members.append(int(entry))
    return members


class MakeRun:
    """`make demo` in its own session, output through a pipe; every line with the time it
    arrived, each handed to `on_line` as it comes."""

    def __init__(
        self,
        cwd: Path,
        env: dict[str, str],
        timeout_s: float,
        on_line: Callable[[str], None] | None = None,
    ) -> None:
        self.started = time.monotonic()
        self.lines: list[tuple[float, str]] = []
        self.timed_out = False
        self._on_line = on_line
        self.process = subprocess.Popen(
            ["make", "demo"],
            cwd=cwd,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        self._timer = threading.Timer(timeout_s, self._stop)
        self._timer.start()

    def wait(self) -> int:
        assert self.process.stdout is not None
        try:
            for raw in self.process.stdout:
                line = raw.decode(errors="replace")
                self.lines.append((time.monotonic() - self.started, line))
                if self._on_line is not None:
                    self._on_line(line.rstrip("\n"))
            return self.process.wait()
        finally:
            self._timer.cancel()

    @property
    def output(self) -> str:
        return "".join(line for _, line in self.lines)

    def first(self, prefix: str) -> float | None:
        return next((at for at, line in self.lines if line.startswith(prefix)), None)

    def _stop(self) -> None:
        # SIGTERM to make's group: make passes it on and the demo stops what it started.
        self.timed_out = True
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.process.pid, signal.SIGTERM)
        try:
            self.process.wait(30)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.process.pid, signal.SIGKILL)


class TerminalMakeRun:
    """`cmd` as the session leader of a new session whose controlling terminal is a
    pseudo-terminal (util-linux `setsid --ctty`: the child is no group leader, so setsid
    does not fork and `process` is make itself); `interrupt()` types Ctrl-C on it."""

    def __init__(self, cmd: Sequence[str], cwd: Path, env: dict[str, str]) -> None:
        self._master, slave = pty.openpty()
        self._text = ""
        self._changed = threading.Condition()
        try:
            self.process = subprocess.Popen(
                ["setsid", "--ctty", *cmd],
                cwd=cwd,
                env=env,
                stdin=slave,
                stdout=slave,
                stderr=slave,
            )
        finally:
            os.close(slave)  # only the child holds the terminal: EOF once its session is done
        self._reader = threading.Thread(target=self._read, name="pty-reader", daemon=True)
        self._reader.start()

    @property
    def output(self) -> str:
        with self._changed:
            return self._text

    def wait_for(self, pattern: str, timeout_s: float) -> bool:
        """Until `pattern` (a regular expression) is in the output, the process ends, or
        `timeout_s` passes; whether it was seen."""
        deadline = time.monotonic() + timeout_s
        with self._changed:
            while not re.search(pattern, self._text):
                remaining = deadline - time.monotonic()
                if remaining <= 0 or self.process.poll() is not None:
                    return bool(re.search(pattern, self._text))
                self._changed.wait(min(remaining, 1.0))
            return True

    def interrupt(self) -> None:
        """Ctrl-C as typed: the terminal's line discipline turns it into SIGINT for the
        foreground process group."""
        os.write(self._master, b"\x03")

    def wait(self, timeout_s: float) -> int | None:
        """make's exit status (negative: killed by that signal), None if still running."""
        try:
            code = self.process.wait(timeout_s)
        except subprocess.TimeoutExpired:
            return None
        self._reader.join(timeout_s)
        return code

    def kill(self) -> None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.process.pid, signal.SIGKILL)
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.process.wait(10)

    def close(self) -> None:
        self._reader.join(10)
        with contextlib.suppress(OSError):
            os.close(self._master)

    def _read(self) -> None:
        while True:
            try:
                chunk = os.read(self._master, 65536)
            except OSError:  # EIO: every holder of the terminal's other end has exited
                chunk = b""
            with self._changed:
                self._text += chunk.decode(errors="replace").replace("\r\n", "\n")
                self._changed.notify_all()
            if not chunk:
                return


# "  label   http://127.0.0.1:PORT/path": the lines under "open:" in the live summary.
_URL_LINE = re.compile(r"^  (\S.*?)\s{2,}(http://127\.0\.0\.1:\d+\S*)$")


@dataclass(frozen=True)
class Fetched:
    label: str
    url: str
    status: int | str  # HTTP status, or why there was none
    body: str


class LinkCheck:
    """Fetches every URL of one `open:` block of the live summary, while the demo runs:
    the first block once `ready(line)` has held for a line (e.g. an alert is firing, so
    that the pages have something to show)."""

    def __init__(self, ready: Callable[[str], bool]) -> None:
        self._ready = ready
        self._armed = False
        self._block: list[tuple[str, str]] | None = None
        self.fetched: list[Fetched] = []

    def feed(self, line: str) -> None:
        if self.fetched:
            return
        if not self._armed:
            self._armed = self._ready(line)
        if line == "open:":
            self._block = [] if self._armed else None
            return
        if self._block is None:
            return
        match = _URL_LINE.match(line)
        if match:
            self._block.append((match[1].strip(), match[2]))
            return
        block, self._block = self._block, None
        if block:
            self.fetched = [fetch(label, url) for label, url in block]

    def finish(self) -> None:
        """A block that ended the output (the last one before the final summary)."""
        if not self.fetched and self._block:
            self.fetched = [fetch(label, url) for label, url in self._block]


def fetch(label: str, url: str) -> Fetched:
    try:
        with urllib.request.urlopen(url, timeout=FETCH_TIMEOUT_S) as response:
            return Fetched(label, url, response.status, response.read().decode(errors="replace"))
    except urllib.error.HTTPError as exc:
        return Fetched(label, url, exc.code, exc.read().decode(errors="replace"))
    except OSError as exc:
        return Fetched(label, url, str(exc), "")


def json_or_none(text: str) -> Any:
    try:
        return json.loads(text)
    except ValueError:
        return None
