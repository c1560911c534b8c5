"""docker-compose.yml, the reference stack: validated by `docker-compose config` (no Docker
engine needed) and checked against what the rest of the repository expects of it: pinned
images, healthchecks and start order, loopback-only ports, Prometheus and Grafana pointing
at services that exist on the ports they listen on, real MLMON_* settings, a Dockerfile
whose COPY sources reach the build. Tests run the one-shot steps' commands for real on
127.0.0.1 (the demo model server and the baseline build; the Alertmanager render; the
rules render, whose runbook links must reach prometheus/README.md as Prometheus serves it)."""

from __future__ import annotations

import dataclasses
import ipaddress
import os
import re
import shlex
import subprocess
import sys
import tomllib
import typing
from collections.abc import Iterator, Mapping
from pathlib import Path, PurePosixPath
from typing import Any
from urllib.parse import urlsplit

import pytest
import yaml
from packaging.requirements import Requirement

from exporter import settings as exporter_settings
from exporter.analysis.schemas import SchemaSet
from exporter.config import ENV_PREFIX
from exporter.schema import load_schema
from exporter.store import check_store
from stats_service import settings as stats_settings
from stats_service.baseline.files import load_baseline
from stats_service.service.runner import prepare_models
from tests.integration.prometheus.runbooks import (
    RULES_DIR,
    RUNBOOKS,
    assert_promtool_accepts,
    github_anchors,
    runbook_urls,
    split_runbook_url,
)
from tests.support.processes import VENV_BIN, free_port, require_binary, running

ROOT = Path(__file__).resolve().parents[3]
COMPOSE_FILE = ROOT / "docker-compose.yml"
# What the Alertmanager render step writes with the defaults (prometheus/README.md).
ALERTMANAGER_EXAMPLE = ROOT / "prometheus" / "alertmanager.example.yml"
DOCKERIGNORE = ROOT / ".dockerignore"
PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
# An exact release: 1.2.3, v1.2.3, 1.2.3-alpine (not "latest", "1.27", "11").
EXACT_TAG = re.compile(r"^v?\d+\.\d+\.\d+(?:[-.][A-Za-z0-9.]+)?$")
ONE_SHOT = "service_completed_successfully"
HEALTHY = "service_healthy"
LOOPBACK = {"127.0.0.1", "localhost"}
# What starts after what (the brief of the reference stack); checked as a subset.
START_ORDER = {
    "baseline": {"model-server": HEALTHY},
    "stats": {"baseline": ONE_SHOT, "elasticsearch": HEALTHY},
    "exporter": {"model-server": HEALTHY},
    "traffic": {"exporter": HEALTHY},
    "alertmanager": {"alertmanager-config": ONE_SHOT},
    "prometheus": {"alertmanager": HEALTHY, "prometheus-rules": ONE_SHOT},
    "grafana": {"prometheus": HEALTHY, "elasticsearch": HEALTHY},
}
SETTINGS = {
    "mlmon-exporter": exporter_settings.Settings,
    "mlmon-stats": stats_settings.StatsSettings,
}
ADMIN_PORT = "MLMON_ADMIN__PORT"
# Where a compose secret is mounted in the containers that list it.
SECRETS_DIR = PurePosixPath("/run/secrets")
# Settings that name files or directories inside the containers: checked syntactically.
PATH_SETTINGS = {"schemas", "spool_dir", "hash_key_file", "baselines"}

Service = dict[str, Any]


@pytest.fixture(scope="module")
def compose() -> str:
    return require_binary("docker-compose")


def resolve(compose: str, settings: Mapping[str, str]) -> dict[str, Any]:
    """The configuration as docker-compose resolves it (anchors, variables, paths), with
    `settings` as the only MLMON_* variables of the environment."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("MLMON_")}
    result = subprocess.run(
        [compose, "-f", str(COMPOSE_FILE), "config"],
        cwd=ROOT,
        env={**env, **settings},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    resolved = yaml.safe_load(result.stdout)
    assert isinstance(resolved, dict)
    return resolved


@pytest.fixture(scope="module")
def stack(compose: str) -> dict[str, Any]:
    """With the defaults: no MLMON_* variable set."""
    return resolve(compose, {})


@pytest.fixture(scope="module")
def services(stack: dict[str, Any]) -> dict[str, Service]:
    found = stack["services"]
    assert isinstance(found, dict)
    return found


# --- reading the resolved configuration -------------------------------------------------


def ours(service: Service) -> bool:
    """Built from docker/Dockerfile: the mlmon image."""
    return "build" in service


def command(service: Service) -> list[str]:
    value = service.get("command") or []
    # docker-compose prints a literal `$` escaped as `$$`.
    args = shlex.split(value) if isinstance(value, str) else [str(a) for a in value]
    return [arg.replace("$$", "$") for arg in args]


def option(args: list[str], name: str) -> str | None:
    """The value of `--name=V` or `--name V`."""
    for i, arg in enumerate(args):
        if arg.startswith(f"{name}="):
            return arg.split("=", 1)[1]
        if arg == name and i + 1 < len(args):
            return args[i + 1]
    return None


def environment(service: Service) -> dict[str, str]:
    env = service.get("environment") or {}
    if isinstance(env, list):
        env = dict(item.split("=", 1) for item in env)
    return {str(k): "" if v is None else str(v) for k, v in env.items()}


def depends_on(service: Service) -> dict[str, str]:
    deps = service.get("depends_on") or {}
    if isinstance(deps, list):  # the short form: no condition, i.e. only "started"
        return dict.fromkeys(deps, "service_started")
    return {name: spec.get("condition", "service_started") for name, spec in deps.items()}


def one_shots(services: dict[str, Service]) -> set[str]:
    """Services others wait to have completed: run once, not long-running."""
    return {
        dep
        for service in services.values()
        for dep, condition in depends_on(service).items()
        if condition == ONE_SHOT
    }


@dataclasses.dataclass(frozen=True)
class Port:
    host_ip: str
    published: str
    target: int


def published_ports(service: Service) -> list[Port]:
    ports = []
    for entry in service.get("ports") or []:
        if isinstance(entry, dict):  # the long syntax (docker compose v2 prints it)
            ports.append(
                Port(
                    entry.get("host_ip", ""), str(entry.get("published", "")), int(entry["target"])
                )
            )
            continue
        parts = str(entry).split("/")[0].rsplit(":", 2)
        host_ip, published, target = ["", "", *parts][-3:]
        ports.append(Port(host_ip, published, int(target)))
    return ports


def declared_ports(service: Service) -> set[int]:
    """Container ports the file says the service listens on (ports and expose)."""
    exposed = {int(str(p).split("/")[0]) for p in service.get("expose") or []}
    return exposed | {port.target for port in published_ports(service)}


def listening_ports(service: Service) -> set[int]:
    """Ours: what the command, MLMON_PORT or MLMON_ADMIN__PORT (the sidecar's admin
    listener) makes it bind; others: what the file declares."""
    if not ours(service):
        return declared_ports(service)
    env = environment(service)
    ports = {option(command(service), "--port"), env.get("MLMON_PORT"), env.get(ADMIN_PORT)}
    return {int(p) for p in ports if p}


@dataclasses.dataclass(frozen=True)
class Mount:
    source: str  # a volume name, or an absolute host path for a bind mount
    target: str
    read_only: bool

    @property
    def bind(self) -> bool:
        return self.source.startswith("/")


def mounts(service: Service) -> list[Mount]:
    found = []
    for entry in service.get("volumes") or []:
        if isinstance(entry, dict):
            source, target = str(entry.get("source", "")), str(entry["target"])
            found.append(Mount(source, target, bool(entry.get("read_only"))))
            continue
        source, target, *mode = str(entry).split(":")
        found.append(Mount(source, target, "ro" in (mode[0].split(",") if mode else [])))
    return found


def mount_of(service: Service, path: str) -> Mount | None:
    """The mount `path` lies on inside the container (the deepest one)."""
    candidates = [m for m in mounts(service) if PurePosixPath(path).is_relative_to(m.target)]
    return max(candidates, key=lambda m: len(m.target), default=None)


def host_path(service: Service, path: str) -> Path:
    """Where a bind-mounted container path comes from in the repository."""
    mount = mount_of(service, path)
    assert mount is not None and mount.bind, f"{path} is not bind-mounted from the repository"
    return Path(mount.source) / PurePosixPath(path).relative_to(mount.target)


def endpoint(url: str) -> tuple[str, int]:
    parts = urlsplit(url if "://" in url else f"http://{url}")
    assert parts.hostname and parts.port, f"{url}: expected host:port"
    return parts.hostname, parts.port


def assert_reaches_service(services: dict[str, Service], url: str, what: str) -> str:
    host, port = endpoint(url)
    assert host in services, f"{what}: {url} names no compose service ({sorted(services)})"
    listening = listening_ports(services[host])
    assert port in listening, f"{what}: {url}, but {host} listens on {sorted(listening)}"
    return host


def healthcheck_urls(service: Service) -> list[str]:
    test = service["healthcheck"]["test"]
    text = test if isinstance(test, str) else " ".join(str(t) for t in test)
    return re.findall(r"https?://[^\s'\"]+", text)


# --- the checks ---------------------------------------------------------------------------


def test_compose_file_is_valid_with_every_profile(compose: str) -> None:
    profiles = {None} | {
        profile
        for service in yaml.safe_load(COMPOSE_FILE.read_text())["services"].values()
        for profile in service.get("profiles", [])
    }
    for profile in profiles:
        args = ["--profile", profile] if profile else []
        result = subprocess.run(
            [compose, "-f", str(COMPOSE_FILE), *args, "config", "-q"],
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        assert result.returncode == 0, f"profile {profile}: {result.stderr}"


def test_every_image_is_pinned_to_an_exact_version(services: dict[str, Service]) -> None:
    for name, service in services.items():
        image = service.get("image", "")
        repository, _, tag = image.rpartition(":")
        assert repository and "/" not in tag, f"{name}: {image!r} has no tag"
        assert EXACT_TAG.match(tag), f"{name}: {image!r} is not pinned to an exact version"
        if ours(service):
            assert image == f"mlmon:{PYPROJECT['version']}", f"{name}: {image}"
            assert service["build"]["dockerfile"] == "docker/Dockerfile"
            assert Path(service["build"]["context"]).resolve() == ROOT


def test_long_running_services_have_healthchecks(services: dict[str, Service]) -> None:
    runs_once = one_shots(services)
    for name, service in services.items():
        if name in runs_once:
            restart = service.get("restart", "no")
            assert restart in ("no", "on-failure"), f"{name} runs once; restart: {restart}"
            continue
        check = service.get("healthcheck")
        assert check and not check.get("disable"), f"{name}: long-running, no healthcheck"
        assert check["test"] and check["test"][0] != "NONE", f"{name}: {check['test']}"
        assert service.get("restart") == "unless-stopped", f"{name}: not restarted"


def test_healthchecks_probe_the_port_the_service_listens_on(
    services: dict[str, Service],
) -> None:
    for name, service in services.items():
        if "healthcheck" not in service:
            continue
        urls = healthcheck_urls(service)
        assert urls, f"{name}: healthcheck probes no URL"
        for url in urls:
            host, port = endpoint(url)
            target = name if host in LOOPBACK else host
            assert target in services, f"{name}: healthcheck {url} names no service"
            assert port in listening_ports(services[target]), f"{name}: healthcheck {url}"


def test_start_order(services: dict[str, Service]) -> None:
    runs_once = one_shots(services)
    for name, service in services.items():
        for dep, condition in depends_on(service).items():
            assert dep in services, f"{name} depends on unknown {dep}"
            expected = {ONE_SHOT} if dep in runs_once else {HEALTHY, "service_started"}
            assert condition in expected, f"{name} -> {dep}: {condition}"
    for name, expected_deps in START_ORDER.items():
        assert depends_on(services[name]).items() >= expected_deps.items(), name


def test_published_ports_bind_loopback_only(services: dict[str, Service]) -> None:
    published = 0
    for name, service in services.items():
        for port in published_ports(service):
            assert port.host_ip == "127.0.0.1", f"{name}: {port} is published on every interface"
            published += 1
    assert published >= 4  # at least Grafana, Prometheus, Alertmanager, the sidecar


def test_our_services_bind_all_interfaces_of_their_container_on_declared_ports(
    services: dict[str, Service],
) -> None:
    """Other containers (and the published ports) reach them only through eth0."""
    for name, service in services.items():
        if not ours(service) or not listening_ports(service):
            continue
        env = environment(service)
        hosts = [option(command(service), "--host") or env.get("MLMON_HOST")]
        if ADMIN_PORT in env:
            hosts.append(env.get("MLMON_ADMIN__HOST"))
        for host in hosts:
            assert host is not None and ipaddress.ip_address(host) == ipaddress.IPv4Address(0), (
                f"{name} binds {host}: unreachable from other containers"
            )
        assert listening_ports(service) == declared_ports(service), name


def test_prometheus_scrapes_and_alerts_services_that_exist(
    services: dict[str, Service],
) -> None:
    prometheus = services["prometheus"]
    config_path = option(command(prometheus), "--config.file")
    assert config_path is not None
    config = yaml.safe_load(host_path(prometheus, config_path).read_text())
    targets = [
        (job["job_name"], target)
        for job in config["scrape_configs"]
        for static in job.get("static_configs", [])
        for target in static["targets"]
    ]
    jobs = {}
    for job, target in targets:
        host, port = endpoint(target)
        if host in LOOPBACK:  # Prometheus itself
            assert port in listening_ports(prometheus), target
            continue
        jobs[job] = assert_reaches_service(services, target, f"job {job}")
    # The rules find mlmon's services by these job names (prometheus/README.md).
    assert jobs["mlmon-exporter"] == "exporter" and jobs["mlmon-stats"] == "stats"
    alertmanagers = [
        target
        for am in config["alerting"]["alertmanagers"]
        for static in am["static_configs"]
        for target in static["targets"]
    ]
    for target in alertmanagers:
        host = assert_reaches_service(services, target, "alerting")
        assert depends_on(prometheus).get(host) == HEALTHY
    # It must run while the sidecar or the stats service is down: that is what it alerts on.
    assert not {"exporter", "stats"} & depends_on(prometheus).keys()
    # The rules are read from the volume the one-shot prometheus-rules renders them into
    # (what it writes there: test_rules_render_step_links_every_alert_to_its_served_runbook).
    config_dir = PurePosixPath(config_path).parent
    render = services["prometheus-rules"]
    for pattern in config["rule_files"]:
        mount = mount_of(prometheus, str(config_dir / pattern))
        assert mount is not None and not mount.bind, f"rule_files {pattern}: not on a volume"
        assert any(m.source == mount.source and not m.read_only for m in mounts(render))


def test_grafana_datasources_and_dashboards_are_mounted_and_reachable(
    services: dict[str, Service],
) -> None:
    grafana = services["grafana"]
    provisioning = host_path(grafana, "/etc/grafana/provisioning")
    datasources = [
        source
        for path in sorted((provisioning / "datasources").glob("*.y*ml"))
        for source in yaml.safe_load(path.read_text())["datasources"]
    ]
    assert datasources
    exporter = exporter_settings.load(environ=environment(services["exporter"]))
    for source in datasources:
        host = assert_reaches_service(services, source["url"], f"datasource {source['name']}")
        assert depends_on(grafana).get(host) == HEALTHY, f"grafana starts before {host}"
        if source["type"] == "elasticsearch":
            index = source["jsonData"]["index"]
            assert index.startswith(f"{exporter.elasticsearch.index_prefix}-"), index
    for path in sorted((provisioning / "dashboards").glob("*.y*ml")):
        for provider in yaml.safe_load(path.read_text())["providers"]:
            dashboards = host_path(grafana, provider["options"]["path"])
            assert list(dashboards.glob("*.json")), f"no dashboard at {dashboards}"


def check_setting_names(cls: type[Any], env: dict[str, str]) -> None:
    """Unknown MLMON_* variables are ignored by the loader: a typo would be silent."""
    known: set[str] = set()

    def walk(kind: type[Any], prefix: str) -> None:
        hints = typing.get_type_hints(kind)
        for field in dataclasses.fields(kind):
            name = f"{prefix}{field.name.upper()}"
            if dataclasses.is_dataclass(hints[field.name]):
                walk(hints[field.name], f"{name}__")
            else:
                known.add(name)

    walk(cls, ENV_PREFIX)
    unknown = sorted(name for name in env if name.startswith(ENV_PREFIX) and name not in known)
    assert not unknown, f"{cls.__name__}: no such setting: {unknown}"


def test_mlmon_variables_are_real_settings(services: dict[str, Service]) -> None:
    checked = set()
    for name, service in services.items():
        env = environment(service)
        if not ours(service):
            continue
        program = command(service)[0]
        if program not in SETTINGS or command(service)[1:2] == ["baseline"]:
            assert not [k for k in env if k.startswith(ENV_PREFIX)], f"{name} reads no settings"
            continue
        check_setting_names(SETTINGS[program], env)
        if program == "mlmon-exporter":
            loaded: Any = exporter_settings.load(environ=env)
            check_store(loaded)
        else:
            loaded = stats_settings.load(environ=env)
        for key in PATH_SETTINGS & {f.name for f in dataclasses.fields(loaded)}:
            value = getattr(loaded, key)
            paths = value.values() if isinstance(value, Mapping) else value
            for path in [paths] if isinstance(paths, str) else paths:
                if not path:
                    continue
                assert PurePosixPath(path).is_absolute(), f"{name}: {key} {path}: not absolute"
                assert mount_of(service, path), f"{name}: {key} {path} is on no volume"
        checked.add(program)
    assert checked == set(SETTINGS)


def test_services_agree_on_what_they_exchange(services: dict[str, Service]) -> None:
    sidecar = exporter_settings.load(environ=environment(services["exporter"]))
    stats = stats_settings.load(environ=environment(services["stats"]))
    # One input log: written by the sidecar, read by the stats service.
    assert stats.store == sidecar.store
    assert stats.elasticsearch.index_prefix == sidecar.elasticsearch.index_prefix
    store_host = assert_reaches_service(services, sidecar.store, "store")
    assert depends_on(services["stats"]).get(store_host) == HEALTHY
    assert assert_reaches_service(services, sidecar.upstream, "upstream") == "model-server"
    traffic_url = option(command(services["traffic"]), "--url")
    assert traffic_url is not None
    assert assert_reaches_service(services, traffic_url, "traffic") == "exporter"
    # The model server writes the training data; the baseline is built from it with the
    # sidecar's schema file, into the file the stats service loads, all on one volume.
    model_server, baseline = services["model-server"], services["baseline"]
    training = option(command(model_server), "--write-training-data")
    build = command(baseline)
    assert training is not None and build[:2] == ["mlmon-stats", "baseline"]
    schema, data, out = (option(build, f"--{key}") or "" for key in ("schema", "data", "out"))
    assert sidecar.schemas == (schema,)
    assert stats.baselines == {"credit": out}
    volume = mount_of(model_server, training)
    assert volume is not None and not volume.read_only
    for service, path in [
        (baseline, schema),
        (baseline, data),
        (baseline, out),
        (services["exporter"], schema),
        (services["stats"], out),
    ]:
        mount = mount_of(service, path)
        assert mount is not None and mount.source == volume.source, path
    assert PurePosixPath(schema).parent == PurePosixPath(data).parent == PurePosixPath(training)


def test_data_lives_on_named_volumes(stack: dict[str, Any]) -> None:
    services = stack["services"]
    data = {
        "elasticsearch": "/usr/share/elasticsearch/data",
        "prometheus": "/prometheus",
        "alertmanager": "/alertmanager",
        "grafana": "/var/lib/grafana",
        "model-server": "/var/lib/mlmon/training",
        "exporter": "/var/lib/mlmon/spool",
    }
    for name, path in data.items():
        mount = mount_of(services[name], path)
        assert mount is not None and not mount.bind and not mount.read_only, f"{name} {path}"
        assert mount.source in stack["volumes"], mount.source
    for name, service in services.items():
        for mount in mounts(service):
            if mount.bind:
                assert Path(mount.source).exists(), f"{name}: {mount.source} does not exist"
                assert mount.read_only, f"{name}: {mount.source} is mounted writable"


# --- the image ------------------------------------------------------------------------------


def dockerfile_instructions() -> Iterator[tuple[str, str]]:
    text = (ROOT / "docker" / "Dockerfile").read_text()
    text = re.sub(r"\\\n", " ", re.sub(r"^\s*#.*\n", "", text, flags=re.M))
    for line in text.splitlines():
        if line.strip():
            keyword, _, rest = line.strip().partition(" ")
            yield keyword.upper(), rest.strip()


_GLOB = {"**": ".*", "*": "[^/]*", "?": "[^/]"}


def dockerignored(path: str, patterns: list[str]) -> bool:
    """Docker's rule: the last pattern matching the path or one of its parents wins."""
    excluded = False
    parts = PurePosixPath(path).parts
    candidates = ["/".join(parts[: i + 1]) for i in range(len(parts))]
    for pattern in patterns:
        negated = pattern.startswith("!")
        body = pattern.lstrip("!").strip("/")
        regex = "".join(
            _GLOB.get(token, token if token.startswith("[") else re.escape(token))
            for token in re.split(r"(\*\*|\*|\?|\[[^\]]*\])", body)
        )
        if any(re.fullmatch(regex.replace(".*/", "(?:.*/)?"), c) for c in candidates):
            excluded = not negated
    return excluded


def test_dockerfile_copies_only_what_reaches_the_build(services: dict[str, Service]) -> None:
    patterns = [
        line.strip()
        for line in DOCKERIGNORE.read_text().splitlines()
        if line.strip() and not line.startswith("#")
    ]
    copied = []
    instructions = list(dockerfile_instructions())
    for keyword, rest in instructions:
        if keyword not in ("COPY", "ADD"):
            continue
        args = [a for a in shlex.split(rest) if not a.startswith("--")]
        if "--from=" in rest:
            continue
        for source in args[:-1]:
            path = ROOT / source
            assert path.exists(), f"COPY {source}: no such file in the build context"
            files = [path] if path.is_file() else [p for p in path.rglob("*.py")]
            assert files, f"COPY {source}: nothing to copy"
            for file in files:
                relative = file.relative_to(ROOT).as_posix()
                assert not dockerignored(relative, patterns), f"{relative}: in .dockerignore"
            copied.append(source)
    for outside in ("tests/conftest.py", ".venv/bin/python", "exporter/__pycache__/app.pyc"):
        assert dockerignored(outside, patterns), f"{outside} would be sent to the build"
    users = [rest for keyword, rest in instructions if keyword == "USER"]
    assert users and users[-1].split(":")[0] not in ("root", "0"), "the image runs as root"
    # What the services run is in the image: console scripts, or copied packages.
    for name, service in services.items():
        if not ours(service):
            continue
        args = command(service)
        if args[0] == "python":
            assert args[1] == "-m" and args[2].split(".")[0] in copied, f"{name}: {args}"
        else:
            assert args[0] in PYPROJECT["scripts"], f"{name}: {args[0]}"
        # A non-root process can write a named volume only if the image made its directory.
        run = " ".join(rest for keyword, rest in instructions if keyword == "RUN")
        for mount in mounts(service):
            if not mount.bind and not mount.read_only:
                assert re.search(rf"install -d -o \S+ .*{re.escape(mount.target)}\b", run), (
                    f"{name}: {mount.target} is not created for the service user"
                )


def test_elasticsearch_client_matches_the_server(services: dict[str, Service]) -> None:
    """A 9.x client cannot talk to an 8.x server (compatible-with header): pinned."""
    major = int(services["elasticsearch"]["image"].rpartition(":")[2].split(".")[0])
    pins = [Requirement(d) for d in PYPROJECT["dependencies"]]
    client = next(r for r in pins if r.name == "elasticsearch")
    assert client.specifier.contains(f"{major}.99.0") and not client.specifier.contains(
        f"{major + 1}.0.0"
    ), f"{client} against Elasticsearch {major}"


# --- the one-shot steps, run for real -------------------------------------------------------


def localized(text: str, volumes: dict[str, Path], service: Service) -> str:
    """A path in the container as a path here: named volumes under tmp, bind mounts from
    the repository."""
    sources = {m.target: m.source if m.bind else str(volumes[m.source]) for m in mounts(service)}
    targets = "|".join(re.escape(t) for t in sorted(sources, key=len, reverse=True))
    # Whole path components only: /alertmanager is not in /rendered/alertmanager.yml.
    pattern = rf"(?<![\w./-])({targets})(?=/|[^\w.-]|$)"
    return re.sub(pattern, lambda match: sources[match[1]], text) if sources else text


def local_command(service: Service, volumes: dict[str, Path]) -> list[str]:
    """The service's command for this machine: `python` this interpreter, console scripts
    from the venv."""
    args = [localized(arg, volumes, service) for arg in command(service)]
    if args[0] == "python":
        args[0] = sys.executable
    elif (VENV_BIN / args[0]).exists():
        args[0] = str(VENV_BIN / args[0])
    return args


def local_environment(service: Service, volumes: dict[str, Path]) -> dict[str, str]:
    return {k: localized(v, volumes, service) for k, v in environment(service).items()}


def on_loopback(arg: str, port: int) -> str:
    """Here, unlike in its container, a server listens on loopback only, on a free port."""
    if arg.startswith("--host"):
        return "--host=127.0.0.1"
    return f"--port={port}" if arg.startswith("--port") else arg


@pytest.mark.slow
def test_model_server_then_baseline_give_the_stats_service_its_baseline(
    stack: dict[str, Any], tmp_path: Path
) -> None:
    services = stack["services"]
    volumes = {name: tmp_path / name for name in stack["volumes"]}
    model_server = services["model-server"]
    port = free_port()
    cmd = [on_loopback(a, port) for a in local_command(model_server, volumes)]
    (ready,) = healthcheck_urls(model_server)
    ready = ready.replace(f":{next(iter(listening_ports(model_server)))}/", f":{port}/")
    log = tmp_path / "model-server.log"
    with running(cmd, ready_url=ready, timeout=60, env={"PYTHONPATH": str(ROOT)}, log=log):
        baseline = services["baseline"]
        result = subprocess.run(
            local_command(baseline, volumes),
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
    assert result.returncode == 0, result.stderr
    exporter, stats = services["exporter"], services["stats"]
    sidecar = exporter_settings.load(environ=local_environment(exporter, volumes))
    SchemaSet.from_settings(sidecar)
    settings = stats_settings.load(environ=local_environment(stats, volumes))
    (path,) = settings.baselines.values()
    # Built with the very schema the sidecar logs with (else the stats service refuses it).
    load_baseline(path, running_schema=load_schema(sidecar.schemas[0]))
    assert set(prepare_models(settings)) == {"credit"}


def run_render_step(stack: dict[str, Any], name: str, tmp_path: Path) -> dict[str, Path]:
    """The one-shot service's shell command, run here with envsubst; its named volumes as
    directories under tmp_path."""
    require_binary("envsubst")
    render = stack["services"][name]
    volumes = {volume: tmp_path / volume for volume in stack["volumes"]}
    for volume in volumes.values():
        volume.mkdir()
    (script,) = local_command(render, volumes)
    result = subprocess.run(
        ["/bin/sh", "-c", script],
        env={"PATH": os.environ.get("PATH", ""), **environment(render)},
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    return volumes


def test_alertmanager_config_render_step_gives_a_valid_config(
    stack: dict[str, Any], tmp_path: Path
) -> None:
    services = stack["services"]
    amtool = require_binary("amtool")
    render = services["alertmanager-config"]
    volumes = run_render_step(stack, "alertmanager-config", tmp_path)
    config_file = option(command(services["alertmanager"]), "--config.file") or ""
    shared = mount_of(services["alertmanager"], config_file)
    assert shared is not None and shared.source == "alertmanager-config"
    assert any(m.source == shared.source and not m.read_only for m in mounts(render))
    rendered = Path(localized(config_file, volumes, services["alertmanager"]))
    check = subprocess.run(
        [amtool, "check-config", str(rendered)],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert check.returncode == 0, check.stdout + check.stderr
    assert "${" not in rendered.read_text()
    # With the defaults, the reference stack runs exactly the shipped example.
    assert rendered.read_text() == ALERTMANAGER_EXAMPLE.read_text()


def rendered_rules(stack: dict[str, Any], tmp_path: Path) -> Path:
    """The prometheus-rules step run here: the directory Prometheus's rule_files read."""
    volumes = run_render_step(stack, "prometheus-rules", tmp_path)
    prometheus = stack["services"]["prometheus"]
    config_path = option(command(prometheus), "--config.file") or ""
    config = yaml.safe_load(host_path(prometheus, config_path).read_text())
    (pattern,) = config["rule_files"]
    loaded = PurePosixPath(config_path).parent / pattern
    directory = Path(localized(str(loaded.parent), volumes, prometheus))
    files = sorted(directory.glob(loaded.name))
    assert [f.name for f in files] == [f.name for f in sorted(RULES_DIR.glob("*.yml"))]
    return directory


def served_file(services: dict[str, Service], url: str) -> Path:
    """The repository file behind a URL on a published Prometheus port, under
    /user/ (the files of its --web.user-assets directory)."""
    parts = urlsplit(url)
    [(name, port)] = [
        (name, port)
        for name, service in services.items()
        for port in published_ports(service)
        if port.host_ip == parts.hostname and port.published == str(parts.port)
    ]
    prometheus = services[name]
    assert name == "prometheus" and port.target in listening_ports(prometheus), url
    assets = option(command(prometheus), "--web.user-assets")
    assert assets is not None, "Prometheus serves no user assets"
    assert parts.path.startswith("/user/"), url
    return host_path(prometheus, str(PurePosixPath(assets) / parts.path.removeprefix("/user/")))


def test_rules_render_step_links_every_alert_to_its_served_runbook(
    stack: dict[str, Any], tmp_path: Path
) -> None:
    """With the defaults, every runbook_url is a section of prometheus/README.md at the
    address the stack's Prometheus serves it on."""
    directory = rendered_rules(stack, tmp_path)
    assert_promtool_accepts(directory)
    for path in sorted(directory.glob("*.yml")):
        assert "${" not in path.read_text(), path.name
    urls = runbook_urls(directory)
    assert sorted(urls) == sorted(runbook_urls(RULES_DIR))
    anchors = github_anchors(RUNBOOKS.read_text())
    for alert, url in urls.items():
        document, anchor = split_runbook_url(url)
        assert served_file(stack["services"], document).resolve() == RUNBOOKS, url
        assert anchor == alert.lower() and anchor in anchors, url


def test_rules_render_step_uses_the_runbook_base_url_given(compose: str, tmp_path: Path) -> None:
    base = "https://wiki.example.org/ml/mlmon-runbooks"
    stack = resolve(compose, {"MLMON_RUNBOOK_BASE_URL": base})
    urls = runbook_urls(rendered_rules(stack, tmp_path))
    assert urls == {alert: f"{base}#{alert.lower()}" for alert in runbook_urls(RULES_DIR)}


def secret_files(service: Service) -> dict[str, str]:
    """Container path -> compose secret name, for the secrets the service lists."""
    found = {}
    for entry in service.get("secrets") or []:
        source = entry if isinstance(entry, str) else entry["source"]
        target = source if isinstance(entry, str) else entry.get("target", source)
        found[str(SECRETS_DIR / target)] = source
    return found


def test_alertmanager_fallback_receiver_reaches_the_sidecars_admin_listener(
    stack: dict[str, Any],
) -> None:
    """What the render step writes with the defaults (the shipped example) posts to the
    sidecar's admin listener with the token the sidecar reads, from one compose secret."""
    services = stack["services"]
    config = yaml.safe_load(ALERTMANAGER_EXAMPLE.read_text())
    [receiver] = [r for r in config["receivers"] if r["name"] == "mlmon-fallback"]
    [webhook] = receiver["webhook_configs"]
    assert assert_reaches_service(services, webhook["url"], "mlmon-fallback") == "exporter"
    sidecar = exporter_settings.load(environ=environment(services["exporter"]))
    assert endpoint(webhook["url"])[1] == sidecar.admin.port
    assert urlsplit(webhook["url"]).path == "/alertmanager"
    published = {port.target for port in published_ports(services["exporter"])}
    assert sidecar.admin.port not in published, "the admin listener is published"
    credentials = webhook["http_config"]["authorization"]["credentials_file"]
    token = secret_files(services["exporter"]).get(sidecar.admin.token_file)
    assert token is not None, f"{sidecar.admin.token_file} is no secret of the exporter"
    assert secret_files(services["alertmanager"]).get(credentials) == token
    secret = Path(stack["secrets"][token]["file"])
    assert secret.parent == ROOT / "docker" / "secrets"
    ignored = (secret.parent / ".gitignore").read_text().splitlines()
    assert "*" in ignored, "the generated token would be committed"
