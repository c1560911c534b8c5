"""The sidecar as a service: start-up errors, shutdown, metrics exposition, workers."""

from __future__ import annotations

import functools
import http.client
import json
import signal
import subprocess
import threading
import time
from pathlib import Path

import pytest

from tests.support.processes import VENV_BIN, free_port, sidecar
from tests.support.raw_upstream import RawRequest, RawUpstream
from tests.support.scrape import analysed, assert_promtool_accepts, scrape, value, wait_for

V2_RESPONSE = (
    b'{"model_name":"iris","model_version":"7","outputs":[{"name":"probabilities",'
    b'"shape":[2,3],"datatype":"FP32","data":[0.1,0.7,0.2,0.8,0.1,0.1]}]}'
)
V2_REQUEST = b'{"inputs":[{"name":"x","shape":[2,2],"datatype":"FP32","data":[1,2,3,4]}]}'


def ok(body: bytes, delay: float = 0.0) -> RawUpstream:
    def respond(_: RawRequest) -> bytes:
        time.sleep(delay)
        return (
            b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: "
            + str(len(body)).encode()
            + b"\r\n\r\n"
            + body
        )

    return RawUpstream(respond)


def post(url: str, path: str, body: bytes) -> tuple[int, bytes]:
    connection = http.client.HTTPConnection(url.removeprefix("http://"), timeout=30)
    connection.request("POST", path, body=body, headers={"content-type": "application/json"})
    response = connection.getresponse()
    return response.status, response.read()


@pytest.mark.parametrize(
    ("args", "environment", "expected"),
    [
        (["--upstream", "ftp://nowhere"], {}, "key 'upstream': expected an http:// URL"),
        (["--upstream", "http://127.0.0.1:1", "--protocol", "grpc"], {}, "key 'protocol'"),
        ([], {}, "key 'upstream' is required"),
        (["--upstream", "http://127.0.0.1:1", "--store", "ftp://x"], {}, "key 'store': expected"),
        (["--upstream", "http://127.0.0.1:1", "--store", "http://127.0.0.1:1"],
         {"MLMON_ELASTICSEARCH__INDEX_PREFIX": "_bad"},
         "key 'elasticsearch': elasticsearch index_prefix"),
    ],
)  # fmt: skip
def test_invalid_settings_stop_start_up_with_a_message_naming_the_key(
    args: list[str], environment: dict[str, str], expected: str
) -> None:
    result = subprocess.run(
        [str(VENV_BIN / "mlmon-exporter"), *args],
        capture_output=True,
        check=False,
        text=True,
        timeout=30,
        env={"PATH": "/usr/bin:/bin", **environment},
    )
    assert result.returncode == 2
    assert expected in result.stderr


def test_bad_config_file_names_the_file_and_key(tmp_path: Path) -> None:
    config = tmp_path / "sidecar.yaml"
    config.write_text("upstream: http://127.0.0.1:1\nqueue_max_items: lots\n")
    result = subprocess.run(
        [str(VENV_BIN / "mlmon-exporter"), "--config", str(config)],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert result.returncode == 2
    assert f"{config}: key 'queue_max_items': expected an integer, got 'lots'" in result.stderr


def test_sigterm_finishes_in_flight_requests_then_exits(tmp_path: Path) -> None:
    with ok(V2_RESPONSE, delay=1.0) as upstream, sidecar(upstream.url, tmp_path) as running:
        results: list[tuple[int, bytes]] = []
        client = threading.Thread(
            target=lambda: results.append(post(running.url, "/v2/models/iris/infer", V2_REQUEST))
        )
        client.start()
        time.sleep(0.3)  # the request is now waiting on the upstream
        running.process.send_signal(signal.SIGTERM)
        client.join(10)
        assert results == [(200, V2_RESPONSE)]
        # uvicorn re-raises the signal once shut down: the status says "ended by SIGTERM"
        assert running.process.wait(10) == 128 + signal.SIGTERM
        with pytest.raises(OSError):
            post(running.url, "/v2/models/iris/infer", V2_REQUEST)


def test_metrics_after_known_traffic(tmp_path: Path) -> None:
    config = "prediction:\n  classes: [setosa, versicolor, virginica]\n"
    with ok(V2_RESPONSE) as upstream, sidecar(upstream.url, tmp_path, config=config) as running:
        for _ in range(5):
            assert post(running.url, "/v2/models/iris/infer", V2_REQUEST)[0] == 200
        samples = wait_for(running.url, lambda s: analysed(s, "mlmon_predictions_total", 10))
        v = functools.partial(value, samples)
        # the version is learnt from the first response, then used for request counts
        assert v("mlmon_requests_total", model="iris", protocol="v2", code="200") == 5
        assert v("mlmon_model_info", model="iris", model_version="7") == 1
        first_seen = v(
            "mlmon_model_version_first_seen_timestamp_seconds", model="iris", model_version="7"
        )
        assert time.time() - 60 < first_seen <= time.time()
        assert v("mlmon_request_duration_seconds_count", model="iris", protocol="v2") == 5
        assert v("mlmon_upstream_duration_seconds_count", model="iris") == 5
        assert v("mlmon_proxy_overhead_seconds_count", model="iris") == 5
        assert v("mlmon_request_size_bytes_sum", model="iris") == 5 * len(V2_REQUEST)
        assert v("mlmon_response_size_bytes_sum", model="iris") == 5 * len(V2_RESPONSE)
        assert v("mlmon_batch_size_count", model="iris") == 5
        assert v("mlmon_batch_size_sum", model="iris") == 10
        assert v("mlmon_predictions_total", model="iris", **{"class": "versicolor"}) == 5
        assert v("mlmon_predictions_total", model="iris", **{"class": "setosa"}) == 5
        assert v("mlmon_prediction_confidence_sum", model="iris") == pytest.approx(5 * 1.5)
        assert v("mlmon_prediction_confidence_bucket", model="iris", le="0.7") == 5
        assert v("mlmon_prediction_confidence_bucket", model="iris", le="0.8") == 10
        assert v("mlmon_in_flight_requests") == 0
        assert v("mlmon_log_queue_depth") == 0
        assert v("mlmon_upstream_errors_total") == 0
        overhead = v("mlmon_proxy_overhead_seconds_sum", model="iris")
        assert 0 < overhead < v("mlmon_request_duration_seconds_sum", model="iris")


def test_label_values_are_bounded(tmp_path: Path) -> None:
    with (
        ok(V2_RESPONSE) as upstream,
        sidecar(upstream.url, tmp_path, env={"MLMON_MAX_LABEL_VALUES": "3"}) as running,
    ):
        for i in range(10):
            post(running.url, f"/v2/models/client-made-{i}/infer", V2_REQUEST)
        samples = scrape(running.url)
        models = {
            dict(labels)["model"] for name, labels in samples if name == "mlmon_requests_total"
        }
        assert models == {"client-made-0", "client-made-1", "client-made-2", "__other__"}
        assert value(samples, "mlmon_requests_total", model="__other__") == 7


def test_full_queue_drops_are_counted_and_the_client_is_unaffected(tmp_path: Path) -> None:
    with (
        ok(V2_RESPONSE) as upstream,
        sidecar(upstream.url, tmp_path, env={"MLMON_QUEUE_MAX_BYTES": "100"}) as running,
    ):
        for _ in range(3):
            assert post(running.url, "/v2/models/iris/infer", V2_REQUEST) == (200, V2_RESPONSE)
        samples = scrape(running.url)
        assert value(samples, "mlmon_log_queue_dropped_total", reason="bytes") == 3
        assert value(samples, "mlmon_requests_total", code="200") == 3


def test_metrics_pass_promtool_check_metrics(tmp_path: Path) -> None:
    with ok(V2_RESPONSE) as upstream, sidecar(upstream.url, tmp_path) as running:
        post(running.url, "/v2/models/iris/infer", V2_REQUEST)
        post(running.url, "/v2/models/iris/infer", b"not json")
        wait_for(running.url, lambda s: value(s, "mlmon_payload_parse_errors_total") == 1)
        text = http.client.HTTPConnection(running.url.removeprefix("http://"))
        text.request("GET", "/metrics")
        exposition = text.getresponse().read()
    assert b"mlmon_requests_total" in exposition
    assert_promtool_accepts(exposition)


def test_healthz_and_readyz(tmp_path: Path) -> None:
    with ok(V2_RESPONSE) as upstream, sidecar(upstream.url, tmp_path) as running:
        connection = http.client.HTTPConnection(running.url.removeprefix("http://"))
        connection.request("GET", "/readyz")
        response = connection.getresponse()
        assert response.status == 200
        assert json.loads(response.read())["status"] == "ready"
    with sidecar(f"http://127.0.0.1:{free_port()}", tmp_path) as running:
        connection = http.client.HTTPConnection(running.url.removeprefix("http://"))
        connection.request("GET", "/readyz")
        response = connection.getresponse()
        assert response.status == 503
        assert json.loads(response.read())["status"] == "upstream unreachable"


def test_several_workers_aggregate_their_metrics(tmp_path: Path) -> None:
    with (
        ok(V2_RESPONSE) as upstream,
        sidecar(upstream.url, tmp_path, args=["--workers", "2"]) as running,
    ):
        for _ in range(40):
            # a new connection each time, so both processes take some of the load
            assert post(running.url, "/v2/models/iris/infer", V2_REQUEST)[0] == 200
        # The worker that answers the scrape flushes its request metrics first; the other
        # one writes them within a second (METRICS_FLUSH_INTERVAL_S).
        samples = wait_for(
            running.url,
            lambda s: (
                analysed(s, "mlmon_batch_size_count", 40)
                and value(s, "mlmon_requests_total", code="200") == 40
            ),
        )
        assert value(samples, "mlmon_requests_total", code="200") == 40
        assert value(samples, "mlmon_batch_size_count") == 40
        assert value(samples, "mlmon_predictions_total") == 80
        assert value(samples, "mlmon_in_flight_requests") == 0


def test_request_counts_carry_the_version_the_responses_name(tmp_path: Path) -> None:
    # The path names no version; MLServer-style responses do ("model_version": "7").
    with ok(V2_RESPONSE) as upstream, sidecar(upstream.url, tmp_path) as running:
        assert post(running.url, "/v2/models/iris/infer", V2_REQUEST)[0] == 200
        wait_for(running.url, lambda s: value(s, "mlmon_model_info", model_version="7") == 1)
        time.sleep(0.3)  # the version reaches the serving process with the analysis feedback
        for _ in range(5):
            assert post(running.url, "/v2/models/iris/infer", V2_REQUEST)[0] == 200
        samples = scrape(running.url)
    assert value(samples, "mlmon_requests_total", model="iris", model_version="7") == 5


def test_a_sidecar_stopped_by_a_signal_leaves_no_metrics_folder(tmp_path: Path) -> None:
    import tempfile

    from exporter.cli import METRICS_ROOT

    root = Path(tempfile.gettempdir()) / METRICS_ROOT
    with ok(V2_RESPONSE) as upstream:
        with sidecar(upstream.url, tmp_path) as first:
            assert (root / str(first.process.pid)).is_dir()
            first.process.kill()  # no atexit, no shutdown
            first.process.wait(10)
        assert (root / str(first.process.pid)).is_dir()
        with sidecar(upstream.url, tmp_path) as second:
            assert not (root / str(first.process.pid)).exists()
            assert (root / str(second.process.pid)).is_dir()
        assert not (root / str(second.process.pid)).exists()  # SIGTERM: cleaned too
