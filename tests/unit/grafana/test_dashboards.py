"""The generated Grafana dashboards: in sync with the generator, provisioned datasources,
and PromQL that only names metrics and labels the sidecar and the stats service export."""

from __future__ import annotations

import fnmatch
import os
import re
import shutil
import subprocess
import sys
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import pytest
import yaml
from prometheus_client import CollectorRegistry
from prometheus_client.metrics import MetricWrapperBase

from exporter.metrics import make_metrics
from exporter.records import StoreColumns
from exporter.store.elasticsearch.config import ElasticsearchConfig, index_name
from exporter.store.elasticsearch.mapping import mappings
from grafana.generate import (
    DASHBOARDS_DIR,
    ELASTICSEARCH_UID,
    PROMETHEUS_UID,
    Generated,
    check,
    dashboards,
    panel_queries,
    panels,
    prometheus_panels,
    rendered,
    substitute,
)
from stats_service.service import collector
from tests.support.processes import require_binary

ROOT = Path(__file__).resolve().parents[3]
GRAFANA = ROOT / "grafana"
SCRAPE_LABELS = frozenset({"job", "instance"})  # added by Prometheus to every series
BUILTINS = frozenset({"__rate_interval", "__interval", "__range"})

# ---------------------------------------------------------------- what the code exports


def sidecar_series() -> dict[str, frozenset[str]]:
    """Series name -> label names, from a real `make_metrics` registry with one child each."""
    registry = CollectorRegistry()
    for metric in vars(make_metrics(registry)).values():
        assert isinstance(metric, MetricWrapperBase)
        if metric._labelnames:
            metric.labels(*("x" for _ in metric._labelnames))
    return {
        sample.name: frozenset(sample.labels)
        for family in registry.collect()
        for sample in family.samples
    }


def stats_series() -> dict[str, frozenset[str]]:
    """Series name -> label names of the stats service, from the collector's declarations
    (it cannot be scraped without a whole evaluation: a baseline and a window store)."""
    series = {family.name: frozenset(family.labels) for family in collector.FAMILIES}
    series.update({f"{name}_total": frozenset() for name in collector.COUNTERS})
    return series


@pytest.fixture(scope="module")
def known() -> dict[str, frozenset[str]]:
    stats = stats_series()
    for name in ("mlmon_feature_drift_score", "mlmon_window_samples", "mlmon_model_performance"):
        assert name in stats, f"{name} is not declared in stats_service.service.collector"
    return {**sidecar_series(), **stats}


# ---------------------------------------------------------------- a small PromQL reader

STRING = re.compile(r'"(?:[^"\\]|\\.)*"')
SELECTOR = re.compile(r"([a-zA-Z_:][\w:]*)?\s*\{([^}]*)\}")
MATCHER = re.compile(r'(\w+)\s*(=~|!~|!=|=)\s*("(?:[^"\\]|\\.)*")')
GROUPING = re.compile(r"\b(by|without|on|ignoring|group_left|group_right)\s*\(([^)]*)\)")
IDENTIFIER = re.compile(r"(?<![\w.:$])[a-zA-Z_:][\w:]*")
FUNCTIONS = frozenset(
    re.findall(
        r"\w+",
        """sum max min avg count topk bottomk quantile stddev stdvar count_values group
        rate increase irate delta idelta deriv histogram_quantile time vector scalar abs
        clamp_min clamp_max label_replace label_join absent absent_over_time sort sort_desc
        max_over_time min_over_time avg_over_time sum_over_time last_over_time round""",
    )
)
KEYWORDS = frozenset(("and", "or", "unless", "bool", "offset", "group_left", "group_right"))


def selectors(expr: str) -> list[tuple[str, list[tuple[str, str, str]]]]:
    """(metric name, [(label, operator, quoted value)]) of every selector in `expr`."""
    found = [
        (name, MATCHER.findall(body))
        for name, body in SELECTOR.findall(expr)
        if name not in FUNCTIONS  # `by (x)` is not a selector, `sum {...}` never appears
    ]
    stripped = GROUPING.sub(" ", SELECTOR.sub(" ", re.sub(r"\[[^\]]*\]", " ", expr)))
    stripped = STRING.sub(" ", stripped)
    for match in IDENTIFIER.finditer(stripped):
        rest = stripped[match.end() :].lstrip()
        word = match.group()
        if word in KEYWORDS or (rest.startswith("(") and word in FUNCTIONS):
            continue
        assert not rest.startswith("("), f"unknown function {word}() in {expr!r}"
        found.append((word, []))
    return found


def problems_in(expr: str, known: Mapping[str, frozenset[str]]) -> list[str]:
    problems = []
    found = selectors(expr)
    assert found, f"no metric in {expr!r}"
    labels_in_expr = set(SCRAPE_LABELS)
    for name, matchers in found:
        if name not in known:
            problems.append(f"unknown metric {name}")
            continue
        labels_in_expr |= known[name]
        for label, _, _ in matchers:
            if label not in known[name] | SCRAPE_LABELS:
                problems.append(f"{name} has no label {label}")
    for _, group in GROUPING.findall(expr):
        for label in filter(None, (part.strip() for part in group.split(","))):
            if label not in labels_in_expr:
                problems.append(f"grouping by {label}, which no metric here has")
    return problems


# ---------------------------------------------------------------- the dashboards


@pytest.fixture(scope="module")
def generated() -> tuple[Generated, ...]:
    return dashboards()


def label_values(query: str) -> tuple[str, str]:
    """(selector, label) of a `label_values(selector, label)` variable query."""
    match = re.fullmatch(r"label_values\((.+),\s*(\w+)\)", query)
    assert match, query
    return match.group(1), match.group(2)


def variables(board: Generated) -> dict[str, str]:
    """Variable name -> the label its query lists."""
    return {
        variable["name"]: label_values(variable["query"])[1]
        for variable in board.model["templating"]["list"]
    }


def targets(board: Generated) -> Iterator[tuple[dict[str, Any], dict[str, Any]]]:
    for panel in panels(board.model):
        for target in panel["targets"]:
            yield panel, target


def provisioned_datasources() -> dict[str, dict[str, Any]]:
    path = GRAFANA / "provisioning" / "datasources" / "datasources.yml"
    document = yaml.safe_load(path.read_text(encoding="utf-8"))
    return {source["uid"]: source for source in document["datasources"]}


def test_committed_json_is_the_generators_output() -> None:
    assert check(DASHBOARDS_DIR) == [], "run: make dashboards"


def test_make_dashboards_runs_the_generator_with_the_venvs_python() -> None:
    """The README's command, from a shell whose `python` is not the venv's (PATH without
    it, no VIRTUAL_ENV): `--check` so that nothing is written. `-o` keeps make from
    reinstalling the venv, and BIN names this interpreter's directory (the venv)."""
    if shutil.which("make") is None:
        pytest.skip("make is needed")
    venv_bin = str(Path(sys.executable).parent)
    path = [p for p in os.environ.get("PATH", "").split(os.pathsep) if p != venv_bin]
    env = {k: v for k, v in os.environ.items() if k not in ("VIRTUAL_ENV", "MAKEFLAGS")}
    command = ["make", "-s", "-o", ".venv/.installed", "dashboards", "ARGS=--check"]
    result = subprocess.run(
        [*command, f"BIN={venv_bin}"],
        cwd=ROOT,
        env={**env, "PATH": os.pathsep.join(path)},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    assert "`make dashboards`" in readme
    assert "`python -m grafana.generate`" not in readme  # a system python lacks the SDK


def test_generation_is_deterministic_with_stable_uids_and_ids() -> None:
    assert rendered() == rendered()
    assert sorted(rendered()) == [
        "data-quality.json",
        "drift.json",
        "performance.json",
        "pipeline.json",
        "predictions.json",
        "releases.json",
        "service-health.json",
    ]
    for board in dashboards():
        assert board.model["uid"] == board.uid and board.uid.startswith("mlmon-")
        ids = [panel["id"] for panel in board.model["panels"]]
        assert ids == list(range(1, len(ids) + 1)), board.uid


def test_datasources_are_provisioned_where_the_stack_runs_them() -> None:
    sources = provisioned_datasources()
    prometheus, elasticsearch = sources[PROMETHEUS_UID], sources[ELASTICSEARCH_UID]
    assert (prometheus["type"], prometheus["url"]) == ("prometheus", "http://prometheus:9090")
    assert (elasticsearch["type"], elasticsearch["url"]) == (
        "elasticsearch",
        "http://elasticsearch:9200",
    )
    # The index pattern covers the sidecar's per-model indices, with their time field.
    pattern = elasticsearch["jsonData"]["index"]
    for model in ("iris", "Credit Scoring/v2"):
        assert fnmatch.fnmatch(
            index_name(ElasticsearchConfig(url="http://elasticsearch:9200").index_prefix, model),
            pattern,
        )
    time_field = elasticsearch["jsonData"]["timeField"]
    mapping = mappings(StoreColumns(model="iris", numeric=("x",), categorical=("c",)))
    assert mapping["properties"][time_field]["type"] == "date"


def test_the_dashboard_provider_loads_the_generated_folder() -> None:
    path = GRAFANA / "provisioning" / "dashboards" / "dashboards.yml"
    (provider,) = yaml.safe_load(path.read_text(encoding="utf-8"))["providers"]
    assert provider["type"] == "file"
    assert provider["options"]["path"].startswith("/")
    assert provider["allowUiUpdates"] is False  # the JSON in git is the truth


def test_every_panel_has_a_title_a_description_a_unit_and_targets_on_a_provisioned_datasource(
    generated: tuple[Generated, ...],
) -> None:
    sources = provisioned_datasources()
    for board in generated:
        for panel in panels(board.model):
            where = f"{board.uid} / {panel.get('title')!r}"
            assert panel.get("title") and panel.get("description"), where
            assert panel["fieldConfig"]["defaults"].get("unit"), where
            assert panel["targets"], where
            source = sources[panel["datasource"]["uid"]]
            assert source["type"] == panel["datasource"]["type"], where
            for target in panel["targets"]:
                assert target["datasource"] == panel["datasource"], where
                assert target["refId"], where


def test_every_promql_expression_names_only_exported_metrics_and_labels(
    generated: tuple[Generated, ...], known: dict[str, frozenset[str]]
) -> None:
    problems = []
    for board in generated:
        for panel in prometheus_panels(board.model):
            for target in panel["targets"]:
                for problem in problems_in(target["expr"], known):
                    problems.append(f"{board.uid} / {panel['title']}: {problem}")
        for variable in board.model["templating"]["list"]:
            selector, label = label_values(variable["query"])
            for problem in problems_in(selector, known):
                problems.append(f"{board.uid} ${variable['name']}: {problem}")
            (name, _), *_ = selectors(selector)
            if label not in known.get(name, frozenset()):
                problems.append(f"{board.uid} ${variable['name']}: {name} has no label {label}")
    assert problems == []


def test_the_reader_catches_unknown_metrics_and_labels(known: dict[str, frozenset[str]]) -> None:
    assert problems_in('sum by (model) (rate(mlmon_requests_total{code="500"}[5m]))', known) == []
    assert problems_in("rate(mlmon_request_total[5m])", known) == [
        "unknown metric mlmon_request_total"
    ]
    assert problems_in('mlmon_upstream_errors_total{model=~"$model"}', known) == [
        "mlmon_upstream_errors_total has no label model"
    ]
    assert problems_in("sum by (feature) (mlmon_log_queue_depth)", known) == [
        "grouping by feature, which no metric here has"
    ]
    assert problems_in("model:mlmon_requests:rate5m", known) == [
        "unknown metric model:mlmon_requests:rate5m"
    ]


def test_every_template_variable_filters_panels_on_its_own_label(
    generated: tuple[Generated, ...],
) -> None:
    for board in generated:
        labels = variables(board)
        used: set[str] = set()
        for panel, target in targets(board):
            where = f"{board.uid} / {panel['title']}"
            if "expr" in target:
                expr = target["expr"]
                for label, operator, value in MATCHER.findall(expr):
                    if "$" in value:
                        # Regex matchers only: "All" is `.*` and multi-values are `a|b`.
                        name = value.strip('"').removeprefix("$")
                        assert (operator, labels.get(name)) == ("=~", label), where
                        used.add(name)
                leftover = re.findall(r"\$(\w+)", MATCHER.sub(" ", expr))
                assert set(leftover) <= BUILTINS, where
            else:  # Elasticsearch: Lucene `field:$variable`
                for field, name in re.findall(r"([\w.]+):\$(\w+)", target["query"]):
                    assert labels.get(name) == field, where
                    used.add(name)
        assert used == set(labels), f"{board.uid}: unused variables {set(labels) - used}"


def test_the_latest_inputs_table_reads_raw_documents_from_elasticsearch(
    generated: tuple[Generated, ...],
) -> None:
    (table,) = [
        panel
        for board in generated
        for panel in panels(board.model)
        if panel["datasource"]["uid"] == ELASTICSEARCH_UID
    ]
    (target,) = table["targets"]
    assert table["type"] == "table"
    assert [metric["type"] for metric in target["metrics"]] == ["raw_data"]
    assert target["timeField"] == "@timestamp"
    assert target["query"] == "model:$model"


def test_panel_queries_cover_every_prometheus_target_with_variables_substituted(
    generated: tuple[Generated, ...],
) -> None:
    queries = panel_queries()
    expected = [
        (board.uid, panel["title"])
        for board in generated
        for panel in prometheus_panels(board.model)
        for _ in panel["targets"]
    ]
    assert [(q.dashboard, q.panel) for q in queries] == expected
    for query in queries:
        assert "$" not in query.expr and "[[" not in query.expr, query
    by_panel = {(q.dashboard, q.panel): q for q in queries}
    drift_score = by_panel["mlmon-drift", "Feature drift score vs threshold"]
    assert 'feature=~".*"' in drift_score.expr and "[1m]" not in drift_score.expr
    assert by_panel["mlmon-drift", "Two-sample test p-values"].may_be_empty
    assert not by_panel["mlmon-service-health", "Request rate"].may_be_empty

    concrete = panel_queries({"model": "iris", "window": "5m"}, interval="30s")
    rate = next(q for q in concrete if q.panel == "Request rate by model and version")
    assert 'model=~"iris"' in rate.expr and 'model_version=~".*"' in rate.expr
    assert "[30s]" in rate.expr


def test_substitute_refuses_an_undefined_variable() -> None:
    assert substitute('x{a=~"${a}", b=~"[[b]]"}[$__range]', {"a": "1", "b": "2"}) == (
        'x{a=~"1", b=~"2"}[1h]'
    )
    with pytest.raises(ValueError, match=r"\$nope"):
        substitute('x{a=~"$nope"}', {"a": ".*"})


def test_every_panel_query_is_valid_promql(tmp_path: Path) -> None:
    """promtool parses each expression as a recording rule (no server involved)."""
    promtool = require_binary("promtool")
    rules = [
        {"record": f"mlmon_dashboard_check_{index}", "expr": query.expr}
        for index, query in enumerate(panel_queries())
    ]
    path = tmp_path / "panels.yml"
    path.write_text(yaml.safe_dump({"groups": [{"name": "panels", "rules": rules}]}))
    result = subprocess.run(
        [promtool, "check", "rules", str(path)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_the_estimate_is_drawn_in_its_band_next_to_the_realised_metric(
    generated: tuple[Generated, ...],
) -> None:
    """Grafana fills between two series named exactly: each repeated panel has one
    estimate, its lower and upper bound and the realised value of the same metric."""
    (board,) = [board for board in generated if board.uid == "mlmon-performance"]
    rows = [panel for panel in board.model["panels"] if panel["type"] == "row"]
    (row,) = [row for row in rows if row.get("repeat")]
    assert row["repeat"] == "window"  # one window per row, one metric per panel
    (panel,) = [p for p in panels(board.model) if p["title"].startswith("Estimated vs realised")]
    assert panel["repeat"] == "estimate"
    by_legend = {target["legendFormat"]: target["expr"] for target in panel["targets"]}
    metrics = {
        "estimated": "mlmon_estimated_performance{",
        "band lower": "mlmon_estimated_performance_lower{",
        "band upper": "mlmon_estimated_performance_upper{",
        "realised": "mlmon_model_performance{",
    }
    assert set(by_legend) == set(metrics)
    for legend, metric in metrics.items():
        assert metric in by_legend[legend] and 'metric=~"$estimate"' in by_legend[legend]
    overrides = {
        o["matcher"]["options"]: {p["id"]: p["value"] for p in o["properties"]}
        for o in panel["fieldConfig"]["overrides"]
        if o["matcher"]["id"] == "byName"
    }
    assert overrides["band upper"]["custom.fillBelowTo"] == "band lower"
    assert overrides["band upper"]["custom.fillOpacity"] > 0
    assert overrides["band lower"]["custom.lineWidth"] == 0


def test_label_delay_shows_each_exported_quantile_and_segments_join_into_one_table(
    generated: tuple[Generated, ...],
) -> None:
    (board,) = [board for board in generated if board.uid == "mlmon-performance"]
    by_title = {panel["title"]: panel for panel in panels(board.model)}
    (delay,) = by_title["Label delay"]["targets"]
    assert "by (model, window, quantile)" in delay["expr"]
    assert "{{quantile}}" in delay["legendFormat"]
    assert by_title["Label delay"]["fieldConfig"]["defaults"]["unit"] == "s"
    table = by_title["Segments"]
    assert [t["id"] for t in table["transformations"]] == ["merge", "organize"]
    assert all(t["instant"] and t["format"] == "table" for t in table["targets"])
    renamed = table["transformations"][1]["options"]["renameByName"]
    assert set(renamed.values()) == {"Rows", "Drifted share"}
