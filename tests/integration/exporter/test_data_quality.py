"""Data-quality checks per row in a live sidecar, and the schemas that drive them."""

from __future__ import annotations

import http.client
import json
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from tests.support.processes import VENV_BIN, Sidecar, sidecar
from tests.support.raw_upstream import RawRequest, RawUpstream
from tests.support.scrape import analysed, value, wait_for

SCHEMA = """
model: credit
features:
  - {name: age, type: integer, range: [18, 100]}
  - {name: income, type: numeric, nullable: true}
  - {name: country, type: categorical, categories: [fr, de, us]}
  - {name: member, type: boolean}
  - {name: review, type: text, nullable: true}
prediction: {task: binary, classes: ["no", "yes"]}
"""
GOOD = {"age": 30, "income": 1000.5, "country": "fr", "member": True, "review": "fine"}


def predictions(req: RawRequest) -> bytes:
    rows = len(json.loads(req.body)["instances"])
    body = json.dumps({"predictions": [0.25] * rows}).encode()
    return b"HTTP/1.1 200 OK\r\ncontent-length: %d\r\n\r\n" % len(body) + body


@pytest.fixture(scope="module")
def upstream() -> Iterator[RawUpstream]:
    with RawUpstream(predictions) as server:
        yield server


def predict(url: str, rows: list[dict[str, object]], model: str = "credit") -> int:
    connection = http.client.HTTPConnection(url.removeprefix("http://"), timeout=10)
    body = json.dumps({"instances": rows})
    connection.request("POST", f"/v1/models/{model}:predict", body)
    response = connection.getresponse()
    response.read()
    return response.status


@pytest.fixture(scope="module")
def proxy(upstream: RawUpstream, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Sidecar]:
    directory = tmp_path_factory.mktemp("quality")
    schema = directory / "credit.yaml"
    schema.write_text(SCHEMA)
    with sidecar(upstream.url, directory, args=["--schema", str(schema)]) as running:
        yield running


@pytest.mark.parametrize(
    ("row", "feature", "kind"),
    [
        ({**GOOD, "age": None}, "age", "missing"),
        ({k: v for k, v in GOOD.items() if k != "country"}, "country", "missing_field"),
        ({**GOOD, "age": "thirty"}, "age", "type_mismatch"),
        ({**GOOD, "age": 30.5}, "age", "type_mismatch"),
        ({**GOOD, "income": "lots"}, "income", "type_mismatch"),
        ({**GOOD, "age": 150}, "age", "out_of_range"),
        ({**GOOD, "age": 3}, "age", "out_of_range"),
        ({**GOOD, "country": "zz"}, "country", "unseen_category"),
        ({**GOOD, "debug_flag": 1}, "debug_flag", "unexpected_field"),
    ],
)
def test_each_issue_kind_is_counted_for_its_feature(
    proxy: Sidecar, row: dict[str, object], feature: str, kind: str
) -> None:
    labels = {"model": "credit", "feature": feature, "kind": kind}
    before = wait_for(proxy.url, lambda s: True)
    assert predict(proxy.url, [GOOD, row, GOOD]) == 200
    samples = wait_for(
        proxy.url,
        lambda s: (
            value(s, "mlmon_feature_issues_total", **labels)
            > value(before, "mlmon_feature_issues_total", **labels)
        ),
    )
    assert value(samples, "mlmon_feature_issues_total", **labels) == (
        value(before, "mlmon_feature_issues_total", **labels) + 1
    )
    # exactly one issue in the whole batch: the good rows raised none
    assert value(samples, "mlmon_feature_issues_total") == (
        value(before, "mlmon_feature_issues_total") + 1
    )


def test_nullable_features_may_be_missing(proxy: Sidecar) -> None:
    before = wait_for(proxy.url, lambda s: True)
    row = {**GOOD, "income": None}
    del row["review"]
    assert predict(proxy.url, [row]) == 200
    count = value(before, "mlmon_batch_size_count") + 1
    samples = wait_for(proxy.url, lambda s: analysed(s, "mlmon_batch_size_count", count))
    assert value(samples, "mlmon_feature_issues_total") == value(
        before, "mlmon_feature_issues_total"
    )


def test_the_configured_schema_is_served(proxy: Sidecar) -> None:
    with urllib.request.urlopen(f"{proxy.url}/schema?model=credit") as response:
        document = yaml.safe_load(response.read())
    assert [f["name"] for f in document["features"]] == [
        "age",
        "income",
        "country",
        "member",
        "review",
    ]


def test_without_a_schema_one_is_inferred_from_traffic(
    upstream: RawUpstream, tmp_path: Path
) -> None:
    with sidecar(upstream.url, tmp_path) as running:
        with pytest.raises(urllib.error.HTTPError) as missing:
            urllib.request.urlopen(f"{running.url}/schema?model=credit")
        assert missing.value.code == 404
        rows = [{**GOOD, "age": 20 + i, "country": ["fr", "de"][i % 2]} for i in range(50)]
        assert predict(running.url, rows) == 200
        deadline = time.monotonic() + 10
        while True:
            try:
                with urllib.request.urlopen(f"{running.url}/schema?model=credit") as response:
                    text = response.read().decode()
                break
            except urllib.error.HTTPError:
                assert time.monotonic() < deadline, "no inferred schema within 10 s"
                time.sleep(0.2)
        assert text.startswith("# Inferred by mlmon-exporter")
        features = {f["name"]: f for f in yaml.safe_load(text)["features"]}
        assert features["age"]["type"] == "integer"
        assert features["income"]["type"] == "numeric"
        assert features["country"]["type"] == "categorical"
        assert sorted(features["country"]["categories"]) == ["de", "fr"]
        assert features["member"]["type"] == "boolean"
        # the inferred schema is a valid schema: the sidecar starts with it
        schema_file = tmp_path / "inferred.yaml"
        schema_file.write_text(text)
        with sidecar(upstream.url, tmp_path, args=["--schema", str(schema_file)]) as again:
            assert predict(again.url, rows) == 200


@pytest.mark.parametrize(
    ("schema_text", "expected"),
    [
        ("features:\n  - {name: age, type: flaot}\n", "features[0].type"),
        ("features:\n  - {name: a, type: numeric, range: [5, 1]}\n", "features[0].range"),
        ("features: []\nbogus: 1\n", "bogus"),
        (
            "features:\n  - {name: city, type: categorical, log: hash}\n",
            "key 'hash_key_file': expected a file with the secret key",
        ),
    ],
)
def test_bad_schema_stops_start_up_naming_the_file_and_key(
    tmp_path: Path, schema_text: str, expected: str
) -> None:
    schema = tmp_path / "bad-schema.yaml"
    schema.write_text(schema_text)
    result = subprocess.run(
        [str(VENV_BIN / "mlmon-exporter"), "--upstream", "http://127.0.0.1:1", "--schema",
         str(schema)],
        capture_output=True, text=True, timeout=30, check=False,
    )  # fmt: skip
    assert result.returncode == 2
    assert expected in result.stderr
    if "hash_key_file" not in expected:
        assert "bad-schema.yaml" in result.stderr
