from __future__ import annotations

from pathlib import Path

import pytest

from exporter.errors import SettingsError
from stats_service.settings import WindowSpec, load, parse_window

BASELINE = {"MLMON_BASELINES": "credit=/data/credit.json"}


def test_yaml_file_then_environment_then_command_line(tmp_path: Path) -> None:
    config = tmp_path / "stats.yaml"
    config.write_text(
        "baselines: {credit: credit.json, churn: churn.json}\n"
        "windows: [5m, last_1000]\n"
        "drift:\n  floors: {psi: 0.2}\n  feature_methods: {income: psi}\n"
    )
    settings = load(
        config,
        environ={"MLMON_INTERVAL_S": "5", "MLMON_DRIFT__FALSE_ALARM_RATE": "0.05"},
        overrides={"port": 9100},
    )
    assert dict(settings.baselines) == {"credit": "credit.json", "churn": "churn.json"}
    assert settings.window_specs == (
        WindowSpec("5m", duration_s=300.0),
        WindowSpec("last_1000", rows=1000),
    )
    assert dict(settings.drift.floors) == {"psi": 0.2}
    assert dict(settings.drift.feature_methods) == {"income": "psi"}
    assert settings.drift.false_alarm_rate == 0.05
    assert settings.interval_s == 5.0
    assert settings.port == 9100


def test_mappings_from_environment_variables() -> None:
    settings = load(
        environ={
            "MLMON_BASELINES": "a=/x/a.json, b=/x/b.json",
            "MLMON_DRIFT__FEATURE_FLOORS": "age=0.2,income=0.3",
        }
    )
    assert dict(settings.baselines) == {"a": "/x/a.json", "b": "/x/b.json"}
    assert dict(settings.drift.feature_floors) == {"age": 0.2, "income": 0.3}


@pytest.mark.parametrize(
    ("name", "spec"),
    [
        ("30s", WindowSpec("30s", duration_s=30.0)),
        ("1h", WindowSpec("1h", duration_s=3600.0)),
        ("7d", WindowSpec("7d", duration_s=7 * 86400.0)),
        ("last_500", WindowSpec("last_500", rows=500)),
    ],
)
def test_window_names(name: str, spec: WindowSpec) -> None:
    assert parse_window(name) == spec


@pytest.mark.parametrize(
    ("environment", "expected"),
    [
        ({}, "key 'baselines' is required"),
        ({"MLMON_BASELINES": "credit"}, "key 'baselines': expected a mapping"),
        ({**BASELINE, "MLMON_WINDOWS": "5m,5x"}, "key 'windows': expected windows such as"),
        ({**BASELINE, "MLMON_WINDOWS": "5m,5m"}, "key 'windows': expected distinct window names"),
        ({**BASELINE, "MLMON_WINDOWS": "last_0"}, "expected windows longer than 0"),
        ({**BASELINE, "MLMON_DRIFT__FLOORS": "pvalue=0.1"}, "key 'drift.floors': expected"),
        ({**BASELINE, "MLMON_DRIFT__FLOORS": "psi=high"}, "key 'drift.floors.psi': expected"),
        ({**BASELINE, "MLMON_DRIFT__FEATURE_METHODS": "age=ks"}, "'drift.feature_methods'"),
        ({**BASELINE, "MLMON_DRIFT__FALSE_ALARM_RATE": "0.9"}, "'drift.false_alarm_rate'"),
        ({**BASELINE, "MLMON_DRIFT__NUMERIC_METHOD": "t-test"}, "'drift.numeric_method'"),
        ({**BASELINE, "MLMON_STORE": "ftp://x"}, "key 'store'"),
        ({**BASELINE, "MLMON_MIN_SAMPLES": "0"}, "key 'min_samples': expected an integer >= 1"),
    ],
)
def test_bad_settings_name_the_key_and_what_was_expected(
    environment: dict[str, str], expected: str
) -> None:
    with pytest.raises(SettingsError, match=expected.replace("(", r"\(")):
        load(environ=environment)
