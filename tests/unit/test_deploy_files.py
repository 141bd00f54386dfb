"""docker-compose.yml, the Dockerfile and what they mount: valid, complete and consistent with the
settings bookloop reads. No Docker engine is needed: Debian's `docker-compose config` validates."""
from __future__ import annotations

import dataclasses
import re
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from schemas.settings import Settings

ROOT = Path(__file__).resolve().parents[2]
BOOKLOOP_ENV = {f.metadata["env"] for f in dataclasses.fields(Settings)}
# Variables the third-party images document (the prefix is how each image maps env to its config).
THIRD_PARTY_ENV = {
    "apache/kafka": re.compile(r"^(CLUSTER_ID|KAFKA_[A-Z0-9_]+)$"),
    "confluentinc/cp-schema-registry": re.compile(r"^SCHEMA_REGISTRY_[A-Z0-9_]+$"),
    "grafana/grafana": re.compile(r"^GF_[A-Z0-9_]+$"),
    "prom/prometheus": re.compile(r"^$"),
    "prom/pushgateway": re.compile(r"^$"),
}


def compose(*args: str) -> subprocess.CompletedProcess:
    if shutil.which("docker-compose") is None:
        pytest.fail("docker-compose not found: run `make system-deps` (installs Debian's docker-compose)")
    return subprocess.run(["docker-compose", "--project-directory", str(ROOT), "-f", str(ROOT / "docker-compose.yml"),
                           *args], capture_output=True, text=True, timeout=60, cwd=ROOT)


@pytest.fixture(scope="module")
def services() -> dict:
    """The resolved configuration (`docker-compose config`) with every profile enabled."""
    result = compose("--profile", "retrain", "config")
    assert result.returncode == 0, result.stderr
    return yaml.safe_load(result.stdout)["services"]


def test_compose_config_is_valid():
    result = compose("config", "-q")
    assert (result.returncode, result.stderr.strip()) == (0, "")


def test_the_stack_has_every_service_and_retrain_is_a_profile(services):
    assert set(services) == {"kafka", "topic-init", "schema-registry", "worker", "prometheus", "pushgateway",
                             "grafana", "retrain"}
    assert services["retrain"]["profiles"] == ["retrain"]   # `up` leaves it out; `run retrain` runs it once
    assert services["retrain"]["restart"] == "no" and services["retrain"]["command"] == ["deploy/weekly-retrain.sh"]


def test_every_mounted_file_exists(services):
    mounts = [(name, volume) for name, service in services.items() for volume in service.get("volumes", [])]
    binds = [(name, volume.split(":")[0]) for name, volume in mounts if volume.startswith("/")]
    assert len(binds) == 5
    for name, source in binds:
        assert Path(source).exists(), f"{name} mounts {source}, which does not exist"
        assert ROOT in Path(source).parents, f"{name} mounts {source} from outside the repository"


def test_bookloop_services_set_only_settings_bookloop_reads(services):
    bookloop = {name: s for name, s in services.items() if s.get("image") == "bookloop:local"}
    assert set(bookloop) == {"topic-init", "worker", "retrain"}
    for name, service in bookloop.items():
        unknown = set(service.get("environment", {})) - BOOKLOOP_ENV
        assert not unknown, f"{name} sets {unknown}, which schemas/settings.py does not read"
        assert service["build"]["context"] == str(ROOT)


def test_third_party_services_set_only_their_documented_variables(services):
    for name, service in services.items():
        if service.get("image") == "bookloop:local":
            continue
        pattern = THIRD_PARTY_ENV[service["image"].split(":")[0]]
        for variable in service.get("environment", {}):
            assert pattern.match(variable), f"{name} sets {variable}, not a variable its image reads"


def test_dependencies_wait_for_health_and_topics(services):
    assert services["worker"]["depends_on"] == {"topic-init": {"condition": "service_completed_successfully"},
                                                "schema-registry": {"condition": "service_healthy"}}
    assert services["topic-init"]["depends_on"] == {"kafka": {"condition": "service_healthy"}}
    for name in ("kafka", "schema-registry", "worker", "prometheus", "pushgateway", "grafana"):
        assert services[name]["healthcheck"]["test"], name


def test_the_worker_can_be_scaled(services):
    worker = services["worker"]
    assert "container_name" not in worker
    assert all(not re.match(r"^[\d.]*:\d+:", str(port)) for port in worker.get("ports", [])), worker["ports"]
    assert "--no-create-topics" in worker["command"]   # topic-init owns the topic layout


def test_compose_prometheus_config_passes_promtool(tmp_path):
    if shutil.which("promtool") is None:
        pytest.fail("promtool not found: run `make system-deps` (installs Debian's prometheus package)")
    shutil.copy(ROOT / "deploy" / "compose" / "prometheus.yml", tmp_path / "prometheus.yml")
    shutil.copy(ROOT / "monitoring" / "alerts.yml", tmp_path / "alerts.yml")
    result = subprocess.run(["promtool", "check", "config", str(tmp_path / "prometheus.yml")],
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stdout + result.stderr


def test_dockerfile_is_slim_python_non_root_and_copies_existing_paths():
    text = (ROOT / "Dockerfile").read_text()
    assert re.findall(r"^FROM (\S+)", text, re.M) == ["python:3.11-slim", "python:3.11-slim"]
    users = re.findall(r"^USER (\S+)", text, re.M)
    assert users and users[-1] not in ("root", "0")
    for source in re.findall(r"^COPY (?!--from)(?:--\S+ )*(.+) \S+$", text, re.M):
        for path in source.split():
            assert (ROOT / path).exists(), f"Dockerfile copies {path}, which does not exist"
    assert "[dev]" not in text   # no test dependencies in the image


def test_readme_configuration_table_lists_every_setting():
    readme = (ROOT / "README.md").read_text()
    missing = [env for env in sorted(BOOKLOOP_ENV) if f"| `{env}` |" not in readme]
    assert not missing, f"README configuration table lacks {missing}"
