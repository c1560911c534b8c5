"""Names and texts that come from clients, made safe to publish, label and log.

Model names arrive in URL paths and response bodies, field names in request bodies:
any of them may hold a NUL, a control character, a lone surrogate (which no UTF-8
encoder accepts) or thousands of characters. `printable` gives one spelling that
Prometheus, SQLite, Elasticsearch and YAML all take. `looks_secret` tells which field
names are credentials, whose values schemaless mode never publishes or logs in clear.
"""

from __future__ import annotations

import re

MAX_LABEL_LENGTH = 200
REPLACEMENT = "\ufffd"

# Substrings that name a credential wherever they appear ("userPassword", "apikey").
_SECRET_PARTS = (
    "password",
    "passwd",
    "passphrase",
    "secret",
    "apikey",
    "credential",
    "authorization",
    "accesstoken",
    "authtoken",
    "refreshtoken",
    "privatekey",
)
# Words that name a credential when they stand alone: "api_key", "auth.token", but not
# "monkey" or "num_tokens".
_SECRET_WORDS = frozenset(
    {"key", "token", "pwd", "pass", "auth", "pin", "otp", "cvv", "ssn", "cookie", "session",
     "sessionid", "jwt", "bearer"}
)  # fmt: skip
_WORD = re.compile(r"[A-Z]?[a-z]+|[A-Z]+(?![a-z])|\d+")


def printable(text: str, limit: int = MAX_LABEL_LENGTH) -> str:
    """`text` with every non-printable character (controls, NUL, lone surrogates, ...)
    replaced by U+FFFD, cut to `limit` characters."""
    if text.isprintable() and len(text) <= limit:
        return text
    return "".join(c if c.isprintable() else REPLACEMENT for c in text[:limit])


def looks_secret(name: str) -> bool:
    """Whether a (dotted) field name names a password, token, key or other credential."""
    folded = re.sub(r"[^a-z0-9]", "", name.lower())
    if any(part in folded for part in _SECRET_PARTS):
        return True
    return any(word.lower() in _SECRET_WORDS for word in _WORD.findall(name))
