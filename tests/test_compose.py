"""The deployable pieces cannot run here (no Docker engine); check what can be checked: images
pinned to exact versions (the tested ones for Temporal), the commands they run exist, the health
check hits /healthz, every environment variable they set is one the settings read."""

from __future__ import annotations

import re
import subprocess
import tomllib
from pathlib import Path

import yaml

from cli import build_parser

ROOT = Path(__file__).parent.parent
TEMPORAL = ROOT / "docker-compose.temporal.yml"
DEPLOY = ROOT / "deploy" / "docker-compose.yml"
DOCKERFILE = ROOT / "Dockerfile"
EXACT = re.compile(r":\d+\.\d+(\.\d+)?(-[\w.]+)?$")  # postgres versions are major.minor


def _compose(path: Path) -> dict:
    return yaml.safe_load(path.read_text())


def _services() -> dict[str, dict]:
    """The example's services, its included Temporal cluster's among them."""
    deploy = _compose(DEPLOY)
    included = [(DEPLOY.parent / i["path"]).resolve() for i in deploy.get("include", [])]
    assert included == [TEMPORAL.resolve()]
    return {**_compose(TEMPORAL)["services"], **deploy["services"]}


def _tested_versions() -> tuple[str, str]:
    from local.temporal_server import temporal_binary

    out = subprocess.run([temporal_binary(), "--version"], capture_output=True, text=True,
                         timeout=30).stdout
    server, ui = re.search(r"Server (\d+\.\d+\.\d+), UI (\d+\.\d+\.\d+)", out).groups()
    return server, ui


def _known_variables() -> set[str]:
    """Every variable name the settings (and the CLI) read."""
    text = (ROOT / "settings.py").read_text() + (ROOT / "cli.py").read_text()
    return set(re.findall(r'"([A-Z][A-Z0-9_]{3,})"', text))


def test_temporal_cluster_is_pinned_to_the_tested_versions_with_priority_matching():
    server, ui = _tested_versions()
    services = _compose(TEMPORAL)["services"]
    assert services["temporal"]["image"] == f"temporalio/server:{server}"
    assert services["temporal-schema"]["image"] == f"temporalio/admin-tools:{server}"
    assert services["temporal-namespace"]["image"] == f"temporalio/admin-tools:{server}"
    assert services["temporal-ui"]["image"] == f"temporalio/ui:{ui}"
    assert not any("auto-setup" in s["image"] for s in services.values())
    env = services["temporal"]["environment"]
    assert env["DB"] == "postgres12" and env["POSTGRES_SEEDS"] == "postgresql"
    assert env["POSTGRES_PWD"] == services["postgresql"]["environment"]["POSTGRES_PASSWORD"]
    mount = services["temporal"]["volumes"][0].split(":")
    config = ROOT / mount[0] / Path(env["DYNAMIC_CONFIG_FILE_PATH"]).name
    assert mount[1] == "/etc/temporal/config/dynamicconfig"
    dynamic = yaml.safe_load(config.read_text())
    assert dynamic["matching.useNewMatcher"] == [{"value": True}]
    assert dynamic["matching.enableFairness"] == [{"value": True}]
    # The namespace script registers the search attributes the code sets.
    from local.temporal_server import SEARCH_ATTRIBUTES

    script = (ROOT / "deploy/temporal/create-namespace.sh").read_text()
    for name, kind in SEARCH_ATTRIBUTES.items():
        assert f"{name}={kind}" in script
    assert "7233:7233" in services["temporal"]["ports"]
    header = TEMPORAL.read_text().split("name:")[0]
    assert "DEVELOPMENT ONLY" in header and "TEMPORAL_API_KEY" in header and "mTLS" in header


def test_every_image_is_pinned_to_an_exact_version():
    for name, service in _services().items():
        image = service["image"]
        assert EXACT.search(image), f"{name}: {image} is not pinned to an exact version"
        assert "latest" not in image
    base = re.search(r"^FROM\s+(\S+)", DOCKERFILE.read_text(), re.M).group(1)
    assert EXACT.search(base.split("-slim")[0]) and "slim-bookworm" in base, base


def test_the_image_runs_either_role_as_a_non_root_user_with_a_healthz_check():
    text = DOCKERFILE.read_text()
    [user] = re.findall(r"^USER\s+(\S+)", text, re.M)
    assert user not in ("root", "0")
    assert re.search(r"^HEALTHCHECK .*\n?.*http://127\.0\.0\.1:8000/healthz", text, re.M)
    entrypoint = re.search(r'^ENTRYPOINT \["(\S+)"\]', text, re.M).group(1)
    assert entrypoint == "kleer-hubspot"
    default = yaml.safe_load(re.search(r"^CMD (.+)$", text, re.M).group(1))
    args = build_parser().parse_args(default)
    assert args.command == "api" and args.port == 8000 and args.host == "0.0.0.0"
    # Everything `pip install .` needs is copied, nothing else is left out by .dockerignore.
    ignored = (ROOT / ".dockerignore").read_text().split()
    modules = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]
    for package in {p.split(".")[0] for p in modules["packages"]}:
        assert f"COPY {package} {package}" in text and package not in ignored
    assert "COPY *.py ./" in text


def test_the_example_runs_api_and_worker_commands_that_exist_with_known_settings():
    services, known = _services(), _known_variables()
    api, worker = services["api"], services["worker"]
    assert build_parser().parse_args(api["command"]).command == "api"
    assert build_parser().parse_args(worker["command"]).command == "worker"
    for service in (api, worker):
        assert service["build"]["dockerfile"] == "Dockerfile"
        assert (DEPLOY.parent / service["build"]["context"] / "Dockerfile").resolve() == DOCKERFILE
        assert service["depends_on"]["temporal-namespace"]["condition"] == \
            "service_completed_successfully"
        env = service["environment"]
        unknown = set(env) - known
        assert not unknown, f"variables no setting reads: {unknown}"
        assert env["TEMPORAL_ADDRESS"] == "temporal:7233"
        assert env["PORTALS_FILE"] == "/run/secrets/portals"
    assert "HUBSPOT_CLIENT_SECRET" in api["environment"]
    assert "/healthz" in " ".join(api["healthcheck"]["test"])
    assert "8000" in api["ports"][0]
    assert (DEPLOY.parent / "portals.example.json").exists()
