"""The whole mlmon pipeline on 127.0.0.1, for the demo and the end-to-end test.

    with Stack(work_dir, StackOptions(prometheus=PrometheusOptions(...),
                                      alertmanager=AlertmanagerOptions(...))) as stack:
        traffic = stack.start_traffic(TrafficConfig(stack.urls.sidecar, drift_after_s=60))
        ...  # stack.urls, stack.notifications, traffic.drift_onset

Import it from the repository root (examples/ is not an installed package).

`start()` brings up, on free ports, each with its output in `work_dir/logs/NAME.log`:
the demo model server (`examples.model_server`, writing its training data to
`work_dir/training/`), the baseline built from that data (`mlmon-stats baseline`), the
sidecar in front of the model server (`mlmon-exporter`, the credit schema, the input log
in `work_dir/mlmon.db`), the stats service on that log (`mlmon-stats serve`, windows,
interval and min_samples from the options) and, when asked, Prometheus, Alertmanager and
a webhook receiver in this process that records Alertmanager's notifications. With
`StackOptions.candidate`, a second model server with a different model too
(`model_server --candidate`), the sidecar's shadow, and the sidecar's naive fallback from
the baseline with its admin listener (token in `work_dir/admin-token`; `StackUrls.admin`).

Prometheus scrapes jobs `mlmon-exporter`, `mlmon-stats`, `alertmanager` and `prometheus`
(the rules select mlmon's targets by those job names) and evaluates a copy of
prometheus/rules/*.yml, rendered as in docker-compose: runbook_url is
$MLMON_RUNBOOK_BASE_URL#<alert>, by default the copy of prometheus/README.md this
Prometheus serves at /user/README.md. Those rules wait 2 minutes to an hour (`for:`)
before an alert fires; `PrometheusOptions.for_override_s` rewrites every `for:` in the copy
to that many seconds, so that a test or a demo sees alerts within a minute. Alertmanager's
configuration is prometheus/alertmanager.yml.tmpl rendered with envsubst as documented, every
receiver keeping its name and only its webhook, pointed at the local receiver (there is no
SMTP server or Slack secret here: their sends would only fail and fill the log);
`AlertmanagerOptions` shortens group_wait, group_interval and repeat_interval on every
route that sets them.

Every wait is bounded (`startup_timeout_s`), a component that fails to start raises
StackError with the tail of its log, and `stop()` (also on leaving the `with` block, for
an exception or KeyboardInterrupt too) ends the traffic and kills each component's whole
process tree. Children run in their own sessions: a terminal's Ctrl-C reaches only this
process, whose KeyboardInterrupt stops them. A process killed with SIGKILL cannot stop
them; install a SIGTERM handler that raises (e.g. KeyboardInterrupt) to keep SIGTERM safe.
"""

from __future__ import annotations

import atexit
import secrets
import shutil
import sys
from collections.abc import Mapping
from pathlib import Path
from types import MappingProxyType, TracebackType

from examples import stack_components as components
from examples.credit_data import MODEL_NAME
from examples.stack_components import READY_PATH, Launch, Layout
from examples.stack_options import (
    AlertmanagerOptions,
    PrometheusOptions,
    StackOptions,
    StackUrls,
)
from examples.stack_processes import ManagedProcess, StackError, free_port, run_command
from examples.stack_traffic import TrafficRun
from examples.stack_webhook import Notification, NotifiedAlert, WebhookReceiver
from examples.traffic import TrafficConfig

__all__ = [
    "AlertmanagerOptions",
    "ManagedProcess",
    "Notification",
    "NotifiedAlert",
    "PrometheusOptions",
    "Stack",
    "StackError",
    "StackOptions",
    "StackUrls",
    "TrafficRun",
]


class Stack:
    """`start()` / `stop()`, or a context manager doing both."""

    def __init__(self, work_dir: Path, options: StackOptions | None = None) -> None:
        self.options = options or StackOptions()
        self.layout = Layout(Path(work_dir).resolve())
        self.model = MODEL_NAME
        self._processes: dict[str, ManagedProcess] = {}
        self._urls: StackUrls | None = None
        self._webhook: WebhookReceiver | None = None
        self._traffic: list[TrafficRun] = []

    @property
    def urls(self) -> StackUrls:
        if self._urls is None:
            raise StackError("the stack is not started")
        return self._urls

    @property
    def processes(self) -> Mapping[str, ManagedProcess]:
        """Running components by name: model_server, candidate (with `candidate`), sidecar,
        stats, prometheus, alertmanager."""
        return MappingProxyType(self._processes)

    @property
    def webhook(self) -> WebhookReceiver | None:
        return self._webhook

    @property
    def notifications(self) -> list[Notification]:
        """Alertmanager's notifications so far, in arrival order."""
        return self._webhook.notifications if self._webhook is not None else []

    @property
    def traffic(self) -> TrafficRun | None:
        """The latest traffic run."""
        return self._traffic[-1] if self._traffic else None

    @property
    def drift_onset(self) -> float | None:
        """Unix time of the latest traffic run's first drifted request."""
        return self.traffic.drift_onset if self.traffic is not None else None

    def __enter__(self) -> Stack:
        return self.start()

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        if error is not None and not isinstance(error, KeyboardInterrupt | StackError):
            # A StackError already carries the failing component's log.
            print(self.log_tails(), file=sys.stderr, flush=True)
        self.stop()

    def start(self) -> Stack:
        """Every component up and answering; on any failure (or Ctrl-C) all are stopped."""
        if self._urls is not None:
            raise StackError("the stack is already started")
        atexit.register(self.stop)
        try:
            self._start()
        except BaseException:
            self.stop()
            raise
        return self

    def stop(self) -> None:
        """Stops traffic, then every component (newest first), then the receiver. Safe to
        call more than once; an interruption while stopping still kills the rest."""
        atexit.unregister(self.stop)
        try:
            for run in self._traffic:
                try:
                    run.stop()
                except Exception as exc:  # reported: the processes must be stopped anyway
                    self._say(f"traffic ended with {exc!r}")
            while self._processes:
                self._processes.popitem()[1].stop(self.options.stop_grace_s)
        finally:
            for process in self._processes.values():
                process.stop(grace_s=0)
            self._processes.clear()
            if self._webhook is not None:
                self._webhook.stop()
            self._urls = None

    def start_traffic(self, config: TrafficConfig | None = None) -> TrafficRun:
        """`examples.traffic` in a thread; default: 20 requests/s to the sidecar, no drift,
        until `stop()`. Build one with `TrafficConfig(stack.urls.sidecar, ...)`."""
        config = config or TrafficConfig(url=self.urls.sidecar, duration_s=None)
        run = TrafficRun(config, self.options.log)
        self._traffic.append(run)
        return run.start()

    def check_alive(self) -> None:
        """StackError naming the first component that has exited, with its log's tail."""
        for process in self._processes.values():
            if not process.alive:
                raise process.failure(f"exited with code {process.popen.returncode}")

    def log_tails(self, lines: int = 30) -> str:
        """The last lines of every component's log, for a failure report."""
        return "\n".join(
            f"--- {process.name}: {process.log} ---\n{process.tail(lines)}"
            for process in self._processes.values()
        )

    def _start(self) -> None:
        options, layout = self.options, self.layout
        for directory in (layout.work_dir, layout.logs, layout.training):
            directory.mkdir(parents=True, exist_ok=True)
        ports = {name: free_port() for name in ("model_server", "sidecar", "stats")}
        releases = None
        if options.candidate:
            candidate = self._spawn(components.candidate_server(free_port()))
            token = layout.work_dir / "admin-token"
            token.write_text(secrets.token_urlsafe(24) + "\n")
            token.chmod(0o600)
            releases = components.Releases(candidate.url or "", free_port(), token)
        alertmanager_port = None
        # Prometheus and Alertmanager need nothing from the others: they start first and
        # get ready while the model trains.
        if options.alertmanager is not None and self._available(options.alertmanager):
            self._webhook = WebhookReceiver(on_notification=options.on_notification)
            self._webhook.start()
            alertmanager_port = free_port()
            self._spawn(
                components.alertmanager(
                    layout, options.alertmanager, alertmanager_port, self._webhook.url
                )
            )
        if options.prometheus is not None and self._available(options.prometheus):
            launch = components.prometheus(
                layout, options.prometheus, free_port(), ports, alertmanager_port
            )
            self._spawn(launch)
        model_server = self._spawn(components.model_server(layout, ports["model_server"]))
        model_server.wait_http(READY_PATH["model_server"], options.startup_timeout_s)
        self._say("building the baseline")
        baseline_log = layout.logs / "baseline.log"
        command = components.baseline_command(layout)
        run_command("baseline", command, baseline_log, options.startup_timeout_s)
        upstream = model_server.url or ""
        self._spawn(
            components.sidecar(layout, ports["sidecar"], upstream, options.stop_grace_s, releases)
        )
        self._spawn(components.stats(layout, ports["stats"], options))
        for process in self._processes.values():
            process.wait_http(READY_PATH[process.name], options.startup_timeout_s)
        self._urls = StackUrls(
            model_server=self._url("model_server") or "",
            sidecar=self._url("sidecar") or "",
            stats=self._url("stats") or "",
            prometheus=self._url("prometheus"),
            alertmanager=self._url("alertmanager"),
            webhook=self._webhook.url if self._webhook is not None else None,
            candidate=self._url("candidate"),
            admin=releases.admin_url if releases is not None else None,
            admin_token_file=str(releases.token_file) if releases is not None else None,
        )
        self._say("up: " + ", ".join(f"{n} {p.url}" for n, p in self._processes.items()))

    def _available(self, wanted: PrometheusOptions | AlertmanagerOptions) -> bool:
        binaries = [wanted.binary]
        if isinstance(wanted, AlertmanagerOptions):
            binaries.append(wanted.envsubst)
        missing = [binary for binary in binaries if shutil.which(binary) is None]
        if not missing:
            return True
        if wanted.required:
            raise StackError(f"not installed: {', '.join(missing)} (make test installs them)")
        self._say(f"not installed: {', '.join(missing)}; starting without them")
        return False

    def _spawn(self, launch: Launch) -> ManagedProcess:
        self._say(f"starting {launch.name}")
        log = self.layout.logs / f"{launch.name}.log"
        process = ManagedProcess(
            launch.name, launch.cmd, log, url=launch.url, env=launch.env, cwd=launch.cwd
        )
        self._processes[launch.name] = process
        return process

    def _url(self, name: str) -> str | None:
        process = self._processes.get(name)
        return process.url if process is not None else None

    def _say(self, message: str) -> None:
        if self.options.log is not None:
            self.options.log(f"stack: {message}")
