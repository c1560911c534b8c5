"""Release route settings: the short forms of flags and variables, and what start-up refuses."""

from __future__ import annotations

from pathlib import Path

import pytest

from exporter import settings as settings_module
from exporter.errors import SettingsError
from exporter.release_settings import read_token

UPSTREAM = {"MLMON_UPSTREAM": "http://127.0.0.1:8080"}


def load(yaml: str = "", tmp_path: Path | None = None, **environ: str) -> settings_module.Settings:
    config = None
    if yaml:
        assert tmp_path is not None
        config = tmp_path / "settings.yaml"
        config.write_text(yaml)
    return settings_module.load(config, environ={**UPSTREAM, **environ})


def test_shadows_from_a_variable_and_from_yaml(tmp_path: Path) -> None:
    settings = load(MLMON_SHADOW="http://127.0.0.1:9001,m3=http://127.0.0.1:9002/base")
    assert [(s.label, s.url) for s in settings.shadow] == [
        ("127.0.0.1:9001", "http://127.0.0.1:9001"),
        ("m3", "http://127.0.0.1:9002/base"),
    ]
    settings = load(
        "shadow:\n  - {name: m2, url: 'http://127.0.0.1:9001', sample: 0.25, max_in_flight: 3}\n",
        tmp_path,
    )
    (shadow,) = settings.shadow
    assert (shadow.label, shadow.sample, shadow.max_in_flight, shadow.timeout_s) == (
        "m2", 0.25, 3, 5.0
    )  # fmt: skip


@pytest.mark.parametrize(
    ("yaml", "environ", "expected"),
    [
        ("", {"MLMON_SHADOW": "ftp://x"}, "key 'shadow[0].url': expected an http:// URL"),
        ("shadow: [{url: 'http://a:1', sample: 2}]", {}, "key 'shadow[0].sample': expected a"),
        ("shadow: [{url: 'http://a:1', colour: red}]", {}, "unknown key 'shadow[0].colour'"),
        ("shadow: [{name: m2}]", {}, "key 'shadow[0].url' is required"),
        ("shadow: [3]", {}, "key 'shadow[0]': expected a mapping"),
        ("shadow: [{url: 'http://a:1', name: 'bad name'}]", {}, "key 'shadow[0].name'"),
        ("", {"MLMON_SHADOW": "http://a:1,http://a:1"}, "a:1 is used twice"),
        ("canary: {weight: 0.2}", {}, "key 'canary.url': expected an http:// URL when"),
        ("canary: {url: 'http://a:1', weight: -0.1}", {}, "key 'canary.weight': expected"),
        ("fallback: {breaker: {enabled: true}}", {}, "key 'fallback.breaker.enabled'"),
        ("fallback: {url: 'http://a:1', baseline: b.json}", {}, "key 'fallback.baseline'"),
        ("admin: {port: 70000}", {}, "key 'admin.port': expected a port number"),
    ],
)
def test_invalid_release_settings_name_the_key(
    yaml: str, environ: dict[str, str], expected: str, tmp_path: Path
) -> None:
    with pytest.raises(SettingsError, match=expected.replace("(", r"\(").replace("[", r"\[")):
        load(yaml, tmp_path, **environ)


def test_the_admin_token_is_read_from_its_file(tmp_path: Path) -> None:
    assert read_token(load().admin) is None
    path = tmp_path / "token"
    path.write_text("  s3cret\n")
    assert read_token(load(MLMON_ADMIN__TOKEN_FILE=str(path)).admin) == "s3cret"
    path.write_text("\n")
    with pytest.raises(SettingsError, match=r"key 'admin\.token_file': expected a token"):
        read_token(load(MLMON_ADMIN__TOKEN_FILE=str(path)).admin)
