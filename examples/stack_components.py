"""How each component of the local stack is launched: command, environment, URL.

Everything lands in one work directory (`Layout`): training data, baseline, input log,
generated configurations, Prometheus and Alertmanager storage, and one log per process.
"""

from __future__ import annotations

import os
import shutil
import sys
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from examples.credit_data import LABEL_COLUMN, MODEL_NAME, PREDICTION_COLUMN
from examples.stack_config import (
    EXPORTER_JOB,
    REPO,
    STATS_JOB,
    copy_rules,
    publish_runbooks,
    render_alertmanager_config,
    resolve_runbook_base_url,
    write_prometheus_config,
    write_stats_config,
)
from examples.stack_options import AlertmanagerOptions, PrometheusOptions, StackOptions
from examples.stack_processes import StackError

# The shadow's route name: the `candidate` label of its metrics and records.
CANDIDATE_NAME = "credit-v2"
# Readiness: the model server once trained (its training data written), the sidecar once
# the model server accepts connections, the stats service after its first evaluation,
# Prometheus once its storage is open, Alertmanager once its configuration is loaded.
READY_PATH = {
    "model_server": "/v2/health/ready",
    "candidate": "/v2/health/ready",
    "sidecar": "/readyz",
    "stats": "/readyz",
    "prometheus": "/-/ready",
    "alertmanager": "/-/ready",
}


@dataclass(frozen=True)
class Launch:
    name: str
    cmd: list[str]
    url: str
    env: Mapping[str, str] = field(default_factory=dict)
    cwd: Path | None = None


@dataclass(frozen=True)
class Layout:
    work_dir: Path

    @property
    def logs(self) -> Path:
        return self.work_dir / "logs"

    @property
    def training(self) -> Path:
        return self.work_dir / "training"

    @property
    def schema(self) -> Path:
        return self.training / "credit_schema.yaml"  # written by the model server

    @property
    def training_csv(self) -> Path:
        return self.training / "credit_train.csv"

    @property
    def baseline(self) -> Path:
        return self.work_dir / f"{MODEL_NAME}_baseline.json"

    @property
    def store(self) -> str:
        return f"sqlite:///{self.work_dir / 'mlmon.db'}"


def _local(port: int) -> str:
    return f"http://127.0.0.1:{port}"


def script(name: str) -> str:
    """An entry point of this environment (the venv's bin), else one on PATH."""
    beside = Path(sys.executable).parent / name
    found = str(beside) if beside.exists() else shutil.which(name)
    if found is None:
        raise StackError(f"{name} not found next to {sys.executable} or on PATH")
    return found


def model_server(layout: Layout, port: int) -> Launch:
    cmd = [sys.executable, "-m", "examples.model_server", "--port", str(port)]
    cmd += ["--write-training-data", str(layout.training)]
    # examples/ is not an installed package: it runs from the repository root.
    path = os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")]))
    return Launch("model_server", cmd, _local(port), {"PYTHONPATH": path}, cwd=REPO)


def candidate_server(port: int) -> Launch:
    """The demo's candidate model (`model_server --candidate`), the sidecar's shadow."""
    cmd = [sys.executable, "-m", "examples.model_server", "--port", str(port), "--candidate"]
    path = os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")]))
    return Launch("candidate", cmd, _local(port), {"PYTHONPATH": path}, cwd=REPO)


@dataclass(frozen=True)
class Releases:
    """The sidecar's release routes in the stack: a shadow, and the naive fallback from
    the baseline, switched on the admin listener with the token in `token_file`."""

    shadow_url: str
    admin_port: int
    token_file: Path

    def flags(self) -> list[str]:
        return ["--shadow", f"{CANDIDATE_NAME}={self.shadow_url}"]

    def env(self, layout: Layout) -> dict[str, str]:
        return {
            "MLMON_FALLBACK__BASELINE": str(layout.baseline),
            "MLMON_ADMIN__PORT": str(self.admin_port),
            "MLMON_ADMIN__TOKEN_FILE": str(self.token_file),
        }

    @property
    def admin_url(self) -> str:
        return _local(self.admin_port)


def baseline_command(layout: Layout) -> list[str]:
    """The command the model server prints after writing its training data."""
    cmd = [script("mlmon-stats"), "baseline", "--schema", str(layout.schema)]
    cmd += ["--data", str(layout.training_csv), "--out", str(layout.baseline)]
    return [*cmd, "--prediction-column", PREDICTION_COLUMN, "--label-column", LABEL_COLUMN]


def sidecar(
    layout: Layout,
    port: int,
    upstream: str,
    stop_grace_s: float,
    releases: Releases | None = None,
) -> Launch:
    metrics_dir = layout.work_dir / "sidecar-metrics"
    metrics_dir.mkdir(exist_ok=True)
    cmd = [script("mlmon-exporter"), "--upstream", upstream, "--port", str(port)]
    cmd += ["--schema", str(layout.schema), "--store", layout.store]
    if releases is not None:
        cmd += releases.flags()
    env = {
        "MLMON_SPOOL_DIR": str(layout.work_dir / "spool"),
        # Here rather than in the temporary directory the sidecar removes at exit, which a
        # killed sidecar would leave behind.
        "PROMETHEUS_MULTIPROC_DIR": str(metrics_dir),
        "MLMON_SHUTDOWN_TIMEOUT_S": f"{min(5.0, stop_grace_s):g}",
        **(releases.env(layout) if releases is not None else {}),
    }
    return Launch("sidecar", cmd, _local(port), env)


def stats(layout: Layout, port: int, options: StackOptions) -> Launch:
    config = write_stats_config(
        layout.work_dir / "stats.yaml",
        windows=options.windows,
        interval_s=options.stats_interval_s,
        min_samples=options.min_samples,
        drift=options.drift,
    )
    cmd = [script("mlmon-stats"), "serve", "--config", str(config)]
    cmd += ["--baseline", f"{MODEL_NAME}={layout.baseline}", "--store", layout.store]
    return Launch("stats", [*cmd, "--port", str(port)], _local(port))


def prometheus(
    layout: Layout,
    options: PrometheusOptions,
    port: int,
    targets: Mapping[str, int],
    alertmanager_port: int | None,
) -> Launch:
    """`targets`: component -> port, for "sidecar" and "stats". Alerts link to their
    runbooks at $MLMON_RUNBOOK_BASE_URL, else in the copy of prometheus/README.md this
    Prometheus serves (as in docker-compose)."""
    directory = layout.work_dir / "prometheus"
    runbooks = publish_runbooks(directory / "user-assets")
    rules = copy_rules(
        directory / "rules",
        options.for_override_s,
        runbook_base_url=resolve_runbook_base_url(_local(port)),
    )
    jobs = {
        "prometheus": f"127.0.0.1:{port}",
        EXPORTER_JOB: f"127.0.0.1:{targets['sidecar']}",
        STATS_JOB: f"127.0.0.1:{targets['stats']}",
    }
    alertmanager = None if alertmanager_port is None else f"127.0.0.1:{alertmanager_port}"
    if alertmanager is not None:
        jobs["alertmanager"] = alertmanager
    config = write_prometheus_config(
        directory / "prometheus.yml",
        targets=jobs,
        rule_files=rules,
        scrape_interval_s=options.scrape_interval_s,
        evaluation_interval_s=options.evaluation_interval_s,
        alertmanager=alertmanager,
    )
    cmd = [options.binary, f"--config.file={config}", f"--storage.tsdb.path={directory}/data"]
    cmd += [f"--web.user-assets={runbooks}", f"--web.listen-address=127.0.0.1:{port}"]
    return Launch("prometheus", cmd, _local(port))


def alertmanager(
    layout: Layout, options: AlertmanagerOptions, port: int, webhook_url: str
) -> Launch:
    directory = layout.work_dir / "alertmanager"
    directory.mkdir(exist_ok=True)
    config = render_alertmanager_config(
        directory / "alertmanager.yml",
        envsubst=options.envsubst,
        webhook_url=webhook_url,
        group_wait_s=options.group_wait_s,
        group_interval_s=options.group_interval_s,
        repeat_interval_s=options.repeat_interval_s,
    )
    cmd = [options.binary, f"--config.file={config}", f"--storage.path={directory}/data"]
    # No cluster: a single local instance must neither listen for peers nor wait on them.
    cmd += [f"--web.listen-address=127.0.0.1:{port}", "--cluster.listen-address="]
    return Launch("alertmanager", cmd, _local(port))
