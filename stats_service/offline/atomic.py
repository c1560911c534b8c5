"""Output files that appear complete or not at all: written under a temporary name, renamed.

A command that fails half-way (the store went down, the disk filled up, Ctrl-C) must not
leave a file under the final name that a CI job would take for a whole export.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path


class OutputError(OSError):
    """The output path cannot be written; the message names it and why."""


@contextlib.contextmanager
def atomic_output(path: Path) -> Iterator[Path]:
    """A temporary path next to `path` (same file system: the rename is atomic), renamed
    to `path` when the block succeeds, removed when it raises."""
    directory = path.parent if str(path.parent) else Path(".")
    if path.is_dir():
        raise OutputError(f"{path}: is a directory; expected a file name")
    try:
        handle, name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".partial", dir=directory)
    except OSError as exc:
        raise OutputError(f"{path}: cannot be written ({exc.strerror or exc})") from exc
    os.close(handle)
    temporary = Path(name)
    # mkstemp makes it private (0600); the result gets the mode a plain open() would give.
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(temporary, 0o666 & ~umask)
    try:
        yield temporary
        os.replace(temporary, path)
    except BaseException:
        temporary.unlink(missing_ok=True)
        raise
