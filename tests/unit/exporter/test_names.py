from __future__ import annotations

import pytest

from exporter.names import looks_secret, printable


def test_printable_replaces_what_no_label_or_store_takes() -> None:
    assert printable("credit-v2") == "credit-v2"
    assert printable("m\x00x") == "m\ufffdx"
    assert printable("a\ud800b\n") == "a\ufffdb\ufffd"
    assert printable("x" * 500, 200) == "x" * 200


@pytest.mark.parametrize(
    "name",
    ["password", "userPassword", "api_key", "apiKey", "AWS_SECRET_ACCESS_KEY", "auth.token",
     "session.token", "Authorization", "access_token", "refreshToken", "credentials.user",
     "pin", "db_passwd", "x-api-key"],
)  # fmt: skip
def test_credential_names_are_recognised(name: str) -> None:
    assert looks_secret(name)


@pytest.mark.parametrize(
    "name", ["age", "monkey", "num_tokens", "keyboard_layout", "passenger_count", "spinach",
             "income", "plan", "tokenizer"],
)  # fmt: skip
def test_ordinary_feature_names_are_not(name: str) -> None:
    assert not looks_secret(name)
