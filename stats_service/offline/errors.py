"""What the offline commands (export, baseline --store, replay, check) raise for the CLI.

`OfflineError`: input a user can fix (printed as one line, exit code 2, like the CLI's
other errors); `GateFailed`: the command ran and a configured threshold was missed
(exit code 1, so a CI job fails on it).
"""

from __future__ import annotations


class OfflineError(Exception):
    """A command that cannot run as asked; the message says what to change."""


class GateFailed(Exception):  # noqa: N818 - an outcome, reported by the exit code
    """A check or a replay missed a threshold; what was missed is already printed."""
