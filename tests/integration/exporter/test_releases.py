"""Release routes through a live sidecar with real model servers on 127.0.0.1: shadow
copies, a sticky canary, the fallback switched by the admin API, by Alertmanager
webhooks and by the circuit breaker; the route state across a restart; the records."""

from __future__ import annotations

import json
import sqlite3
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from exporter.serving.router import canary_side
from exporter.store.sqlite.log import SqliteLog
from tests.support.model_servers import ModelServer
from tests.support.processes import VENV_BIN, free_port, sidecar
from tests.support.raw_upstream import RawRequest, RawUpstream
from tests.support.releases import (
    admin,
    alert_payload,
    call,
    contrarian,
    failing,
    infer,
    token_file,
)
from tests.support.scrape import scrape, value, wait_for

ROWS = [[0.5, 1.0], [-3.0, 0.2], [2.0, 2.0]]


@pytest.fixture
def primary() -> Iterator[ModelServer]:
    with ModelServer("v2", model="iris", version="1") as server:
        yield server


def records(tmp_path: Path) -> list[dict[str, object]]:
    connection = sqlite3.connect(tmp_path / "mlmon.db")
    try:
        rows = connection.execute(
            "SELECT id, role, candidate, model_version, prediction_label FROM records ORDER BY id"
        ).fetchall()
    finally:
        connection.close()
    keys = ("id", "role", "candidate", "model_version", "label")
    return [dict(zip(keys, row, strict=True)) for row in rows]


def wait_records(tmp_path: Path, count: int, timeout: float = 20) -> list[dict[str, object]]:
    deadline = time.monotonic() + timeout
    found: list[dict[str, object]] = []
    while time.monotonic() < deadline:
        if (tmp_path / "mlmon.db").exists():
            try:
                found = records(tmp_path)
            except sqlite3.OperationalError:  # the table is not created yet
                found = []
            if len(found) >= count:
                return found
        time.sleep(0.1)
    return found


# ------------------------------------------------------------------------------ shadow


def test_shadow_answers_are_byte_identical_to_direct_and_compared(
    primary: ModelServer, tmp_path: Path
) -> None:
    with (
        contrarian() as candidate,
        sidecar(primary.url, tmp_path, args=["--shadow", f"m2={candidate.url}"]) as proxy,
    ):
        for i in range(10):
            via = infer(proxy.url, ROWS, f"req-{i}")
            direct = infer(primary.url, ROWS, f"req-{i}")
            assert (via.status, via.body) == (direct.status, direct.body)
            assert via.json()["model_version"] == "1"
        samples = wait_for(
            proxy.url,
            lambda s: value(s, "mlmon_shadow_agreement_total", result="disagree") >= 30,
        )
        labels = {"model": "iris", "candidate": "m2"}
        assert value(samples, "mlmon_shadow_requests_total", code="200", **labels) == 10
        assert value(samples, "mlmon_shadow_duration_seconds_count", **labels) == 10
        # The contrarian predicts the other class on every row, with p' = 1 - p.
        assert value(samples, "mlmon_shadow_agreement_total", result="disagree", **labels) == 30
        assert value(samples, "mlmon_shadow_agreement_total", result="agree", **labels) == 0
        assert value(samples, "mlmon_shadow_prediction_abs_diff_count", **labels) == 30
        # The shadow's answers are not the model's: its predictions are counted once.
        assert value(samples, "mlmon_predictions_total", model="iris") == 30
        assert value(samples, "mlmon_predictions_total", route="primary") == 30
        assert len(candidate.requests) == 10
        assert candidate.requests[0].body == primary.requests[0].body

        logged = wait_records(tmp_path, 60)
    primaries = [r for r in logged if r["role"] == "primary"]
    shadows = [r for r in logged if r["role"] == "shadow"]
    assert len(primaries) == len(shadows) == 30
    assert {r["candidate"] for r in shadows} == {"m2"}
    assert {r["candidate"] for r in primaries} == {""}
    assert {r["model_version"] for r in primaries} == {"1"}
    assert {r["model_version"] for r in shadows} == {"2"}
    assert "req-3:1:shadow:m2" in {r["id"] for r in shadows}
    assert "req-3:1" in {r["id"] for r in primaries}
    # The window readers leave the shadows out unless asked for them.
    with SqliteLog(tmp_path / "mlmon.db") as log:
        assert log.count_window("iris", 0, time.time() + 60) == 30
        window = log.read_window("iris", 0, time.time() + 60, role="shadow", candidate="m2")
        assert window.count == 30


def test_a_slow_failing_or_down_candidate_changes_nothing_for_the_client(
    primary: ModelServer, tmp_path: Path
) -> None:
    slow = ModelServer("v2", model="iris", version="9", delay_s=1.0)
    config = f"""
shadow:
  - {{name: slow, url: "{{slow}}", timeout_s: 0.3, max_in_flight: 2}}
  - {{name: failing, url: "{{failing}}"}}
  - {{name: down, url: "http://127.0.0.1:{free_port()}", timeout_s: 0.5}}
"""
    with slow, failing() as broken:
        config = config.replace("{slow}", slow.url).replace("{failing}", broken.url)
        with sidecar(primary.url, tmp_path, config=config) as proxy:
            answers = [infer(proxy.url, ROWS, f"req-{i}") for i in range(6)]
            direct = infer(primary.url, ROWS, "req-x")
            samples = wait_for(
                proxy.url,
                lambda s: (
                    value(s, "mlmon_shadow_requests_total", candidate="slow") >= 2
                    and value(s, "mlmon_shadow_requests_total", candidate="down") >= 6
                ),
            )
    for answer in answers:
        assert answer.status == 200
        assert answer.body == direct.body
        # The client never waits for a candidate (the slow one takes 1 s).
        assert answer.seconds < 0.5
    assert value(samples, "mlmon_shadow_requests_total", candidate="failing", code="500") == 6
    assert value(samples, "mlmon_shadow_requests_total", candidate="down", code="error") == 6
    # Two copies at most out at once to the slow one: each timed out; the rest dropped.
    slow_timeouts = value(samples, "mlmon_shadow_requests_total", candidate="slow", code="timeout")
    dropped = value(samples, "mlmon_shadow_dropped_total", candidate="slow", reason="concurrency")
    assert slow_timeouts >= 2
    assert slow_timeouts + dropped == 6
    assert value(samples, "mlmon_requests_total", code="200", route="primary") == 6


# ------------------------------------------------------------------------------ canary


def test_canary_gets_its_share_and_a_sticky_key_always_lands_on_the_same_side(
    primary: ModelServer, tmp_path: Path
) -> None:
    weight = 0.3
    config = f"canary: {{weight: {weight}, sticky_header: x-user, name: m2}}\n"
    with ModelServer("v2", model="iris", version="2") as canary_server:
        args = ["--canary", f"{canary_server.url}@{weight}"]
        with sidecar(primary.url, tmp_path, config=config, args=args) as proxy:
            sides = {}
            for user in range(300):
                answer = infer(proxy.url, ROWS, f"r-{user}", **{"x-user": f"user-{user}"})
                sides[user] = answer.json()["model_version"]
            again = {
                user: infer(proxy.url, ROWS, f"again-{user}", **{"x-user": f"user-{user}"}).json()[
                    "model_version"
                ]
                for user in range(0, 300, 10)
            }
            samples = wait_for(
                proxy.url,
                lambda s: (
                    value(s, "mlmon_predictions_total", route="canary") > 0
                    and value(s, "mlmon_log_queue_depth") == 0
                ),
            )
        logged = wait_records(tmp_path, 330 * 3)
    on_canary = sum(1 for version in sides.values() if version == "2")
    expected = {user for user in sides if canary_side(f"user-{user}".encode(), weight)}
    assert {user for user, version in sides.items() if version == "2"} == expected
    assert abs(on_canary / 300 - weight) < 0.08  # 3.4 standard deviations of a binomial
    assert all(again[user] == sides[user] for user in again)
    assert value(samples, "mlmon_requests_total", route="canary") == on_canary + sum(
        1 for user in again if sides[user] == "2"
    )
    canary_records = [r for r in logged if r["role"] == "canary"]
    assert canary_records and {r["candidate"] for r in canary_records} == {"m2"}
    assert {r["model_version"] for r in canary_records} == {"2"}


# ------------------------------------------------------------------------------ fallback


def fallback_sidecar_args(tmp_path: Path, fallback_url: str, admin_port: int) -> list[str]:
    return [
        "--fallback",
        fallback_url,
        "--admin-port",
        str(admin_port),
        "--admin-token-file",
        str(token_file(tmp_path)),
    ]


def test_admin_switches_to_the_fallback_and_back_and_refuses_bad_calls(
    primary: ModelServer, tmp_path: Path
) -> None:
    port = free_port()
    admin_url = f"http://127.0.0.1:{port}"
    with ModelServer("v2", model="iris", version="0") as old:
        old_url = old.url
        args = fallback_sidecar_args(tmp_path, old_url, port)
        with sidecar(primary.url, tmp_path, args=args) as proxy:
            assert infer(proxy.url, ROWS, "a").json()["model_version"] == "1"
            switch = {"route": "fallback"}
            assert admin(admin_url, "POST", "/routes/iris", switch, token=None).status == 401
            assert admin(admin_url, "POST", "/routes/iris", switch, token="wrong").status == 401
            assert admin(admin_url, "GET", "/routes", token="wrong").status == 401
            assert infer(proxy.url, ROWS, "b").json()["model_version"] == "1"
            state = admin(admin_url, "GET", "/routes").json()
            assert state["models"] == {}
            assert state["routes"]["fallback"]["url"] == old.url
            assert admin(admin_url, "POST", "/routes/iris", b"{not json").status == 400
            assert admin(admin_url, "POST", "/routes/iris", {"route": "elsewhere"}).status == 400
            assert infer(proxy.url, ROWS, "c").json()["model_version"] == "1"

            answer = admin(admin_url, "POST", "/routes/iris", switch)
            assert answer.status == 200 and answer.json()["switched"] is True
            assert infer(proxy.url, ROWS, "d").json()["model_version"] == "0"
            assert admin(admin_url, "GET", "/routes").json()["models"]["iris"]["reason"] == "admin"
            samples = scrape(proxy.url)
            assert value(samples, "mlmon_route_active", model="iris", route="fallback") == 1
            assert value(samples, "mlmon_route_active", model="iris", route="primary") == 0
            assert admin(admin_url, "POST", "/routes/iris", {"route": "primary"}).status == 200
            assert infer(proxy.url, ROWS, "e").json()["model_version"] == "1"
            samples = wait_for(
                proxy.url, lambda s: value(s, "mlmon_predictions_total", route="fallback") == 3
            )
            logged = wait_records(tmp_path, 15)
    counted = {
        code: value(samples, "mlmon_admin_requests_total", endpoint="routes", code=code)
        for code in ("401", "400", "200")
    }
    assert counted == {"401": 3, "400": 2, "200": 4}
    switches = "mlmon_route_switches_total"
    assert value(samples, switches, from_route="primary", to_route="fallback", reason="admin") == 1
    assert value(samples, switches, from_route="fallback", to_route="primary", reason="admin") == 1
    assert value(samples, "mlmon_requests_total", route="fallback") == 1
    roles = {str(r["id"]).split(":")[0]: (r["role"], r["candidate"]) for r in logged}
    assert roles["d"] == ("fallback", old_url.removeprefix("http://"))
    assert roles["c"] == roles["e"] == ("primary", "")


def test_the_route_state_survives_a_restart(primary: ModelServer, tmp_path: Path) -> None:
    port = free_port()
    admin_url = f"http://127.0.0.1:{port}"
    with ModelServer("v2", model="iris", version="0") as old:
        args = fallback_sidecar_args(tmp_path, old.url, port)
        with sidecar(primary.url, tmp_path, args=args) as proxy:
            assert admin(admin_url, "POST", "/routes/iris", {"route": "fallback"}).status == 200
        with sidecar(primary.url, tmp_path, args=args) as proxy:
            assert infer(proxy.url, ROWS, "after").json()["model_version"] == "0"
            samples = scrape(proxy.url)
            assert value(samples, "mlmon_route_active", model="iris", route="fallback") == 1
            assert admin(admin_url, "GET", "/routes").json()["models"]["iris"]["reason"] == "admin"


def test_alertmanager_webhook_moves_traffic_and_the_resolved_alert_moves_it_back(
    primary: ModelServer, tmp_path: Path
) -> None:
    port = free_port()
    admin_url = f"http://127.0.0.1:{port}"
    with ModelServer("v2", model="iris", version="0") as old:
        args = fallback_sidecar_args(tmp_path, old.url, port)
        with sidecar(primary.url, tmp_path, args=args) as proxy:
            firing = alert_payload("firing", "MlmonHighErrorRate", "iris")
            assert admin(admin_url, "POST", "/alertmanager", firing, token=None).status == 401
            assert infer(proxy.url, ROWS, "a").json()["model_version"] == "1"
            assert admin(admin_url, "POST", "/alertmanager", {"alerts": "no"}).status == 400
            other = alert_payload("firing", "MlmonTrafficSurge", "iris")
            assert admin(admin_url, "POST", "/alertmanager", other).json()["actions"] == []
            assert infer(proxy.url, ROWS, "b").json()["model_version"] == "1"

            answer = admin(admin_url, "POST", "/alertmanager", firing)
            assert answer.json()["actions"][0]["action"] == "switched to fallback"
            assert infer(proxy.url, ROWS, "c").json()["model_version"] == "0"
            resolved = alert_payload("resolved", "MlmonHighErrorRate", "iris")
            answer = admin(admin_url, "POST", "/alertmanager", resolved)
            assert answer.json()["actions"][0]["action"] == "switched back to primary"
            assert infer(proxy.url, ROWS, "d").json()["model_version"] == "1"
            samples = scrape(proxy.url)
    switches = "mlmon_route_switches_total"
    assert value(samples, switches, to_route="fallback", reason="alert") == 1
    assert value(samples, switches, to_route="primary", reason="alert_resolved") == 1
    assert value(samples, "mlmon_admin_requests_total", endpoint="alertmanager", code="400") == 1
    assert value(samples, "mlmon_admin_requests_total", endpoint="alertmanager", code="401") == 1


def test_circuit_breaker_opens_on_a_failing_primary_and_recovers(tmp_path: Path) -> None:
    healthy = threading.Event()
    good = ModelServer("v2", model="iris", version="1")
    config = """
fallback:
  breaker: {enabled: true, error_rate: 0.5, window_s: 30, min_requests: 4, cooldown_s: 1,
            trial_successes: 2}
"""
    with good, ModelServer("v2", model="iris", version="0") as old:

        def respond(request: RawRequest) -> bytes:
            if healthy.is_set():
                return _forward(good.url, request)
            body = b'{"error": "down"}'
            return b"HTTP/1.1 503 X\r\ncontent-length: %d\r\n\r\n" % len(body) + body

        with (
            RawUpstream(respond) as flaky,
            sidecar(flaky.url, tmp_path, config=config, args=["--fallback", old.url]) as proxy,
        ):
            statuses = [infer(proxy.url, ROWS, f"f{i}").status for i in range(4)]
            assert statuses == [503] * 4
            # Open: the fallback answers, without a request to the failing primary.
            before = len(flaky.requests)
            assert infer(proxy.url, ROWS, "g").json()["model_version"] == "0"
            assert len(flaky.requests) == before
            healthy.set()
            time.sleep(1.2)  # the cool-down
            versions = [infer(proxy.url, ROWS, f"h{i}").json()["model_version"] for i in range(4)]
            samples = scrape(proxy.url)
    assert versions == ["1", "1", "1", "1"]  # two trials, then closed
    switches = "mlmon_route_switches_total"
    assert value(samples, switches, to_route="fallback", reason="circuit_breaker") == 1
    assert value(samples, switches, to_route="primary", reason="circuit_recovered") == 1
    assert value(samples, "mlmon_requests_total", route="primary", code="503") == 4


def _forward(url: str, request: RawRequest) -> bytes:
    answer = call(url, "POST", request.url, request.body)
    head = f"HTTP/1.1 {answer.status} X\r\ncontent-length: {len(answer.body)}\r\n\r\n"
    return head.encode() + answer.body


def test_naive_fallback_answers_the_majority_class_from_a_baseline(
    primary: ModelServer, tmp_path: Path
) -> None:
    baseline = tmp_path / "baseline.json"
    prediction = {"kind": "categorical", "name": "prediction", "categories": ["0", "1"],
                  "proportions": [0.3, 0.7]}  # fmt: skip
    baseline.write_text(json.dumps({"prediction": prediction}))
    port = free_port()
    args = ["--admin-port", str(port), "--admin-token-file", str(token_file(tmp_path))]
    config = f"fallback: {{baseline: {baseline}}}\n"
    with sidecar(primary.url, tmp_path, config=config, args=args) as proxy:
        url = f"http://127.0.0.1:{port}"
        assert admin(url, "POST", "/routes/iris", {"route": "fallback"}).status == 200
        answer = infer(proxy.url, ROWS, "naive-1")
        samples = wait_for(
            proxy.url, lambda s: value(s, "mlmon_predictions_total", route="fallback") == 3
        )
        logged = wait_records(tmp_path, 3)
    assert answer.status == 200
    output = answer.json()["outputs"][0]
    assert output["data"] == ["1", "1", "1"] and answer.json()["model_version"] == "naive"
    assert value(samples, "mlmon_predictions_total", route="fallback", **{"class": "1"}) == 3
    assert {(r["role"], r["candidate"], r["model_version"]) for r in logged} == {
        ("fallback", "naive", "naive")
    }
    assert len(primary.requests) == 0


# ------------------------------------------------------------------------------ bad input


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (["--shadow", "ftp://nowhere"], "key 'shadow[0].url': expected an http:// URL"),
        (["--shadow", "m2=http://127.0.0.1:99999"], "key 'shadow[0].url': expected an http"),
        (["--canary", "http://127.0.0.1:9@1.5"], "key 'canary.weight': expected a number between"),
        (["--canary", "http://127.0.0.1:9@lots"], "key 'canary.weight': expected a number"),
        (["--canary", "http://127.0.0.1:9"], "key 'canary': expected URL@FRACTION"),
        (["--fallback", "localhost:9"], "key 'fallback.url': expected an http:// URL"),
        (["--admin-token-file", "/nonexistent/token"], "key 'admin.token_file': expected a"),
    ],
)
def test_invalid_release_settings_stop_start_up_naming_the_key(
    args: list[str], expected: str, tmp_path: Path
) -> None:
    result = subprocess.run(
        [str(VENV_BIN / "mlmon-exporter"), "--upstream", "http://127.0.0.1:1", *args],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=tmp_path,
        check=False,
    )
    assert result.returncode == 2
    assert expected in result.stderr


def test_with_several_workers_a_switch_reaches_every_one(
    primary: ModelServer, tmp_path: Path
) -> None:
    port = free_port()
    admin_url = f"http://127.0.0.1:{port}"
    with ModelServer("v2", model="iris", version="0") as old:
        args = [*fallback_sidecar_args(tmp_path, old.url, port), "--workers", "2"]
        with sidecar(primary.url, tmp_path, args=args) as proxy:
            assert admin(admin_url, "POST", "/routes/iris", {"route": "fallback"}).status == 200
            time.sleep(1.0)  # each worker reads the route state every 0.5 s
            # New connections are spread over both workers: every one answers from the fallback.
            versions = {infer(proxy.url, ROWS, f"w{i}").json()["model_version"] for i in range(20)}
            assert versions == {"0"}
            assert admin(admin_url, "POST", "/routes/iris", {"route": "primary"}).status == 200
            time.sleep(1.0)
            versions = {infer(proxy.url, ROWS, f"x{i}").json()["model_version"] for i in range(20)}
            assert versions == {"1"}
