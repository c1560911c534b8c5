"""Errors that cross a boundary: start-up (settings) and the upstream call."""

from __future__ import annotations


class SettingsError(Exception):
    """A setting is missing or invalid; the message names the key and what was expected."""


# Bounded set: the `reason` label of mlmon_upstream_errors_total, and the status the
# client gets for it.
UPSTREAM_ERROR_STATUS = {
    "connect_refused": 502,
    "connect_timeout": 504,
    "connect_error": 502,
    "read_timeout": 504,
    "connection_reset": 502,
    "protocol_error": 502,
}


class UpstreamError(Exception):
    """The model server could not be reached or did not answer properly."""

    def __init__(self, reason: str, detail: str) -> None:
        if reason not in UPSTREAM_ERROR_STATUS:
            raise ValueError(f"unknown upstream error reason {reason!r}")
        super().__init__(f"{reason}: {detail}")
        self.reason = reason
        self.detail = detail

    @property
    def status(self) -> int:
        return UPSTREAM_ERROR_STATUS[self.reason]
