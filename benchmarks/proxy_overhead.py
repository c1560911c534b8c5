"""What the sidecar adds to a model call, against the model server direct and nginx.

Same load for each target: OIP v2 POST with a ~1 KB body to an upstream that
answers after 2 ms, driven by wrk at 1 and 8 connections on 127.0.0.1. Prints
p50/p99 latency, the latency added against direct, throughput, and the proxy's
CPU seconds per request (utime+stime of all its processes, from /proc); for the
sidecar also split into its serving and analysis processes.

    python benchmarks/proxy_overhead.py [--seconds 10] [--connections 1 8] [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from contextlib import ExitStack
from dataclasses import asdict, dataclass
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from tests.support.processes import free_port, running

BIN = Path(sys.executable).parent
HERE = Path(__file__).resolve().parent
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


def request_body() -> str:
    features = [round(0.1 * i, 3) for i in range(150)]
    body = {
        "id": "bench",
        "inputs": [
            {"name": "input-0", "shape": [1, len(features)], "datatype": "FP32", "data": features}
        ],
    }
    return json.dumps(body)


@dataclass
class Result:
    target: str
    connections: int
    requests: int
    rps: float
    p50_ms: float
    p99_ms: float
    added_p50_ms: float = 0.0
    added_p99_ms: float = 0.0
    cpu_us_per_request: float | None = None
    serving_us_per_request: float | None = None
    analysis_us_per_request: float | None = None


@dataclass(frozen=True)
class TreeCpu:
    """CPU seconds of a process tree, the sidecar's analysis processes apart."""

    total: float
    analysis: float


def process_tree_cpu(root_pid: int) -> TreeCpu:
    parents: dict[int, int] = {}
    ticks: dict[int, int] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            parents[int(entry.name)] = int(fields[1])
            ticks[int(entry.name)] = int(fields[11]) + int(fields[12])  # utime, stime
    depth = {root_pid: 0}
    changed = True
    while changed:  # /proc lists children before parents at times: settle by passes
        changed = False
        for pid, parent in parents.items():
            if pid not in depth and parent in depth:
                depth[pid] = depth[parent] + 1
                changed = True
    # Serving processes are the root (one worker) or its children (uvicorn --workers);
    # each spawns its analysis process, so the analysis is the deepest spawned level.
    spawned = [pid for pid in depth if pid != root_pid and _is_spawned(pid)]
    deepest = max((depth[pid] for pid in spawned), default=-1)
    analysis = sum(ticks.get(pid, 0) for pid in spawned if depth[pid] == deepest)
    total = sum(ticks.get(pid, 0) for pid in depth)
    return TreeCpu(total / CLOCK_TICKS, analysis / CLOCK_TICKS)


def _is_spawned(pid: int) -> bool:
    try:
        return b"spawn_main" in Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return False


_UNIT = {"us": 1e-3, "ms": 1.0, "s": 1e3}


def run_wrk(
    url: str, connections: int, seconds: int, script: Path
) -> tuple[int, float, float, float]:
    out = subprocess.run(
        [
            "wrk",
            f"-t{min(connections, 2)}",
            f"-c{connections}",
            f"-d{seconds}s",
            "--latency",
            "-s",
            str(script),
            url,
        ],
        capture_output=True,
        text=True,
        check=True,
        timeout=seconds + 30,
    ).stdout

    def pct(name: str) -> float:
        match = re.search(rf"^\s+{name}%\s+([\d.]+)(us|ms|s)\s*$", out, re.M)
        if not match:
            raise RuntimeError(f"no {name}% in wrk output:\n{out}")
        return float(match.group(1)) * _UNIT[match.group(2)]

    requests = int(re.search(r"(\d+) requests in", out).group(1))  # type: ignore[union-attr]
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))  # type: ignore[union-attr]
    errors = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    if errors:
        raise RuntimeError(f"{url}: {errors.group(1)} error responses")
    return requests, rps, pct("50"), pct("99")


def nginx_config(workdir: Path, port: int, upstream_port: int) -> Path:
    config = workdir / "nginx.conf"
    config.write_text(f"""
daemon off;
master_process off;
worker_processes 1;
pid {workdir}/nginx.pid;
error_log {workdir}/nginx-error.log warn;
events {{ worker_connections 1024; }}
http {{
    access_log off;
    client_body_temp_path {workdir};
    proxy_temp_path {workdir};
    upstream model {{ server 127.0.0.1:{upstream_port}; keepalive 32; }}
    server {{
        listen 127.0.0.1:{port};
        location / {{
            proxy_pass http://model;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
        }}
    }}
}}
""")
    return config


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=int, default=10, help="wrk duration per run")
    parser.add_argument("--delay-ms", type=float, default=2.0)
    parser.add_argument("--workers", type=int, default=1, help="sidecar server processes")
    parser.add_argument("--connections", type=int, nargs="+", default=[1, 8])
    parser.add_argument("--json", help="also write the results here")
    args = parser.parse_args()
    for tool in ("wrk", "nginx"):
        if shutil.which(tool) is None:
            print(f"{tool} not found: `make debs` installs it", file=sys.stderr)
            return 2

    results: list[Result] = []
    with tempfile.TemporaryDirectory() as tmp, ExitStack() as stack:
        workdir = Path(tmp)
        script = workdir / "post.lua"
        script.write_text(
            'wrk.method = "POST"\n'
            f"wrk.body = {json.dumps(request_body())}\n"
            'wrk.headers["Content-Type"] = "application/json"\n'
        )
        upstream_port, sidecar_port, nginx_port = free_port(), free_port(), free_port()
        path = "/v2/models/bench/infer"
        stack.enter_context(
            running(
                [
                    sys.executable,
                    str(HERE / "slow_upstream.py"),
                    str(upstream_port),
                    str(args.delay_ms),
                ],
                ready_url=f"http://127.0.0.1:{upstream_port}/",
            )
        )
        sidecar = stack.enter_context(
            running(
                [
                    str(BIN / "mlmon-exporter"),
                    "--upstream",
                    f"http://127.0.0.1:{upstream_port}",
                    "--port",
                    str(sidecar_port),
                    "--workers",
                    str(args.workers),
                ],
                ready_url=f"http://127.0.0.1:{sidecar_port}/healthz",
                # The input log on, as in production: SQLite in this run's directory.
                env={
                    "MLMON_STORE": f"sqlite:///{workdir}/inputs.db",
                    "MLMON_SPOOL_DIR": str(workdir / "spool"),
                },
            )
        )
        nginx = stack.enter_context(
            running(
                ["nginx", "-c", str(nginx_config(workdir, nginx_port, upstream_port))],
                ready_url=f"http://127.0.0.1:{nginx_port}/",
            )
        )
        bare_port = free_port()
        bare = stack.enter_context(
            running(
                [sys.executable, str(HERE / "bare_proxy.py"), str(bare_port), str(upstream_port)],
                ready_url=f"http://127.0.0.1:{bare_port}/",
            )
        )
        targets = {
            "direct": (upstream_port, None),
            "sidecar": (sidecar_port, sidecar.pid),
            "nginx": (nginx_port, nginx.pid),
            # The floor of a Python proxy (benchmarks/bare_proxy.py): no metrics, no capture.
            "bare-py": (bare_port, bare.pid),
        }
        for connections in args.connections:
            for name, (port, pid) in targets.items():
                url = f"http://127.0.0.1:{port}{path}"
                run_wrk(url, connections, 2, script)  # warm-up: pools, caches
                time.sleep(0.5)  # let the sidecar's worker drain the warm-up
                before = process_tree_cpu(pid) if pid else TreeCpu(0.0, 0.0)
                requests, rps, p50, p99 = run_wrk(url, connections, args.seconds, script)
                time.sleep(0.5)  # include the background worker's share of this run
                result = Result(name, connections, requests, rps, p50, p99)
                if pid:
                    after = process_tree_cpu(pid)
                    per_request = 1e6 / requests
                    result.cpu_us_per_request = (after.total - before.total) * per_request
                    if name == "sidecar":
                        analysis = (after.analysis - before.analysis) * per_request
                        result.analysis_us_per_request = analysis
                        result.serving_us_per_request = result.cpu_us_per_request - analysis
                results.append(result)
        for result in results:
            direct = next(
                r for r in results if r.target == "direct" and r.connections == result.connections
            )
            result.added_p50_ms = result.p50_ms - direct.p50_ms
            result.added_p99_ms = result.p99_ms - direct.p99_ms

    print(
        f"upstream delay {args.delay_ms} ms, ~1 KB OIP v2 body, {args.seconds} s per run, "
        f"sidecar workers {args.workers}, {os.cpu_count()} CPUs"
    )
    print(
        f"{'target':8} {'conns':>5} {'req/s':>9} {'p50 ms':>8} {'p99 ms':>8} "
        f"{'+p50 ms':>8} {'+p99 ms':>8} {'CPU µs/req':>10} {'serving':>8} {'analysis':>8}"
    )
    for r in results:
        print(
            f"{r.target:8} {r.connections:5d} {r.rps:9.0f} {r.p50_ms:8.3f} {r.p99_ms:8.3f} "
            f"{r.added_p50_ms:8.3f} {r.added_p99_ms:8.3f} {_cell(r.cpu_us_per_request, 10)} "
            f"{_cell(r.serving_us_per_request, 8)} {_cell(r.analysis_us_per_request, 8)}"
        )
    if args.json:
        Path(args.json).write_text(json.dumps([asdict(r) for r in results], indent=2))
    return 0


def _cell(value: float | None, width: int) -> str:
    return f"{value:{width}.0f}" if value is not None else f"{'-':>{width}}"


if __name__ == "__main__":
    sys.exit(main())
