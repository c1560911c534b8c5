from __future__ import annotations

from pathlib import Path

import pytest

from exporter import settings
from exporter.errors import SettingsError


def test_defaults_file_environment_and_overrides_in_that_order(tmp_path: Path) -> None:
    config = tmp_path / "sidecar.yaml"
    config.write_text(
        "upstream: http://127.0.0.1:9000\nport: 8100\nread_timeout_s: 5\n"
        "prediction:\n  task: binary\n  classes: ['no', 'yes']\n"
    )
    loaded = settings.load(
        config,
        environ={"MLMON_PORT": "8200", "MLMON_PREDICTION__THRESHOLD": "0.7"},
        overrides={"host": "127.0.0.2"},
    )
    assert loaded.port == 8200  # environment beats the file
    assert loaded.host == "127.0.0.2"
    assert loaded.read_timeout_s == 5.0
    assert loaded.connect_timeout_s == 1.0  # default
    assert loaded.prediction.task == "binary"
    assert loaded.prediction.classes == ("no", "yes")
    assert loaded.prediction.threshold == 0.7
    assert (loaded.upstream_host, loaded.upstream_port, loaded.upstream_prefix) == (
        "127.0.0.1",
        9000,
        "",
    )


def test_list_settings_accept_comma_separated_environment_values() -> None:
    loaded = settings.load(environ={"MLMON_UPSTREAM": "http://h:1/base/", "MLMON_MODELS": "a, b"})
    assert loaded.models == ("a", "b")
    assert loaded.upstream_prefix == "/base"


@pytest.mark.parametrize(
    ("yaml_text", "environ", "expected"),
    [
        ("upstream: http://x:1\nport: abc\n", {}, "key 'port': expected an integer, got 'abc'"),
        ("upstream: http://x:1\nport: 70000\n", {}, "key 'port': expected a port number"),
        ("upstream: http://x:1\nuptream: 3\n", {}, "unknown key 'uptream'; expected one of"),
        ("upstream: ftp://x\n", {}, "key 'upstream': expected an http:// URL"),
        (
            "upstream: http://x:1\nread_timeout_s: -1\n",
            {},
            "key 'read_timeout_s': expected a number > 0",
        ),
        (
            "upstream: http://x:1\nprotocol: grpc\n",
            {},
            "key 'protocol': expected one of 'auto', 'v2'",
        ),
        ("upstream: http://x:1\nprediction:\n  task: ranking\n", {}, "key 'prediction.task'"),
        ("upstream: http://x:1\nprediction: 3\n", {}, "key 'prediction': expected a mapping"),
        ("upstream: http://x:1\npreserve_host: maybe\n", {}, "expected true or false"),
        ("port: 1\n", {}, "key 'upstream' is required"),
        (
            "upstream: http://x:1\n",
            {"MLMON_WORKERS": "0"},
            "environment: key 'workers': expected an integer >= 1",
        ),
        ("upstream: http://x:1\nprotocol: generic\n", {}, "key 'generic.rows'"),
        (
            "upstream: http://x:1\ngeneric:\n  rows: records[0\n",
            {},
            "key 'generic.rows': expected a selector such as $.data[*]",
        ),
        ("upstream: [unclosed\n", {}, "line 1"),
        ("upstream: http://x:1\nprediction:\n  classes: [no, yes]\n", {}, "quote it"),
        ("- just\n- a list\n", {}, "expected a mapping of settings"),
    ],
)
def test_invalid_settings_name_the_key_and_what_was_expected(
    tmp_path: Path, yaml_text: str, environ: dict[str, str], expected: str
) -> None:
    config = tmp_path / "bad.yaml"
    config.write_text(yaml_text)
    with pytest.raises(SettingsError) as caught:
        settings.load(config, environ=environ)
    assert expected in str(caught.value)


def test_errors_from_the_file_name_the_file(tmp_path: Path) -> None:
    config = tmp_path / "named.yaml"
    config.write_text("upstream: http://x:1\nport: abc\n")
    with pytest.raises(SettingsError, match=r"named\.yaml"):
        settings.load(config, environ={})


def test_missing_config_file_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(SettingsError, match="cannot read config file"):
        settings.load(tmp_path / "absent.yaml", environ={})


def test_settings_are_frozen() -> None:
    loaded = settings.load(environ={"MLMON_UPSTREAM": "http://x:1"})
    with pytest.raises(AttributeError):
        loaded.port = 1  # type: ignore[misc]
