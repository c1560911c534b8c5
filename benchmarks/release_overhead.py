"""What a shadow candidate costs, and how fast an alert moves traffic to the fallback.

1. The same load with no shadow and with one shadow (sample 1.0): OIP v2 POST with a
   ~1 KB body to an upstream that answers after 2 ms (the candidate: another one), driven
   by wrk at 1 connection on 127.0.0.1. Prints p50/p99 latency, the p50 added by the
   shadow, and the sidecar's CPU per request (utime+stime from /proc), in all and split
   into the serving and the analysis process. Aims: within 0.1 ms p50 and 25% more CPU.
2. Seconds from an alert firing in Prometheus to traffic on the fallback, through real
   Alertmanager with the timers of the shipped template's fallback route.

    python benchmarks/release_overhead.py [--seconds 10] [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
import time
from contextlib import ExitStack
from dataclasses import asdict, dataclass
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks.proxy_overhead import process_tree_cpu, request_body, run_wrk
from tests.support.processes import free_port, running
from tests.support.release_stack import (
    MODEL,
    Traffic,
    release_stack,
    shipped_fallback_timing,
    wait,
)

BIN = Path(sys.executable).parent
HERE = Path(__file__).resolve().parent
TEMPLATE = HERE.parent / "prometheus" / "alertmanager.yml.tmpl"
PATH = "/v2/models/bench/infer"


@dataclass
class Run:
    shadow: bool
    requests: int
    rps: float
    p50_ms: float
    p99_ms: float
    cpu_us_per_request: float
    serving_us_per_request: float
    analysis_us_per_request: float


def measure(workdir: Path, shadow_url: str | None, upstream: str, seconds: int) -> Run:
    script = workdir / "post.lua"
    port = free_port()
    args = ["--upstream", upstream, "--port", str(port)]
    if shadow_url:
        args += ["--shadow", f"candidate={shadow_url}"]
    name = "shadow" if shadow_url else "plain"
    env = {"MLMON_STORE": f"sqlite:///{workdir}/{name}.db", "MLMON_SPOOL_DIR": str(workdir / name)}
    with running(
        [str(BIN / "mlmon-exporter"), *args],
        ready_url=f"http://127.0.0.1:{port}/healthz",
        env=env,
    ) as sidecar:
        url = f"http://127.0.0.1:{port}{PATH}"
        run_wrk(url, 1, 2, script)  # warm-up: pools, caches
        time.sleep(0.5)
        before = process_tree_cpu(sidecar.pid)
        requests, rps, p50, p99 = run_wrk(url, 1, seconds, script)
        time.sleep(0.5)  # the analysis process's share of this run
        after = process_tree_cpu(sidecar.pid)
    per_request = 1e6 / requests
    cpu = (after.total - before.total) * per_request
    analysis = (after.analysis - before.analysis) * per_request
    return Run(bool(shadow_url), requests, rps, p50, p99, cpu, cpu - analysis, analysis)


def alert_to_fallback(workdir: Path) -> tuple[float, float]:
    """(seconds from firing to the fallback, the fallback route's group_wait)."""
    timing = shipped_fallback_timing(TEMPLATE)
    with release_stack(workdir / "stack", timing) as stack, Traffic(stack.sidecar.url):
        time.sleep(2)
        stack.primary.failing.set()
        fired = wait(lambda: stack.alert_state() == "firing", 60)
        wait(lambda: MODEL in stack.routes()["models"], timing.group_wait + 60)
        return stack.routes()["models"][MODEL]["since"] - fired, timing.group_wait


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=int, default=10, help="wrk duration per run")
    parser.add_argument("--delay-ms", type=float, default=2.0)
    parser.add_argument("--json", help="also write the results here")
    args = parser.parse_args()
    for tool in ("wrk", "prometheus", "prometheus-alertmanager"):
        if shutil.which(tool) is None:
            print(f"{tool} not found: `make debs` installs it", file=sys.stderr)
            return 2
    with tempfile.TemporaryDirectory() as tmp, ExitStack() as stack:
        workdir = Path(tmp)
        (workdir / "post.lua").write_text(
            'wrk.method = "POST"\n'
            f"wrk.body = {json.dumps(request_body())}\n"
            'wrk.headers["Content-Type"] = "application/json"\n'
        )
        upstreams = []
        for _ in range(2):  # the primary, the candidate
            port = free_port()
            stack.enter_context(
                running(
                    [sys.executable, str(HERE / "slow_upstream.py"), str(port), str(args.delay_ms)],
                    ready_url=f"http://127.0.0.1:{port}/",
                )
            )
            upstreams.append(f"http://127.0.0.1:{port}")
        plain = measure(workdir, None, upstreams[0], args.seconds)
        shadowed = measure(workdir, upstreams[1], upstreams[0], args.seconds)
        seconds, group_wait = alert_to_fallback(workdir)

    print(
        f"upstream delay {args.delay_ms} ms, ~1 KB OIP v2 body, 1 connection, "
        f"{args.seconds} s per run, {os.cpu_count()} CPUs"
    )
    print(
        f"{'shadow':8} {'req/s':>9} {'p50 ms':>8} {'p99 ms':>8} {'CPU µs/req':>10} "
        f"{'serving':>8} {'analysis':>8}"
    )
    for run in (plain, shadowed):
        print(
            f"{'on' if run.shadow else 'off':8} {run.rps:9.0f} {run.p50_ms:8.3f} "
            f"{run.p99_ms:8.3f} {run.cpu_us_per_request:10.0f} "
            f"{run.serving_us_per_request:8.0f} {run.analysis_us_per_request:8.0f}"
        )
    added = shadowed.p50_ms - plain.p50_ms
    more_cpu = shadowed.cpu_us_per_request / plain.cpu_us_per_request - 1
    print(f"one shadow adds {added:+.3f} ms p50 (aim <= 0.1) and {more_cpu:+.0%} CPU (aim <= 25%)")
    print(
        f"alert firing in Prometheus -> traffic on the fallback: {seconds:.1f} s "
        f"(Alertmanager group_wait {group_wait:g} s; aim < 60 s)"
    )
    if args.json:
        results = {
            "runs": [asdict(run) for run in (plain, shadowed)],
            "added_p50_ms": added,
            "cpu_increase": more_cpu,
            "alert_to_fallback_s": seconds,
        }
        Path(args.json).write_text(json.dumps(results, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
