"""docker-compose.temporal.yml cannot run here (no Docker engine); check what can be checked."""

from pathlib import Path

import yaml

COMPOSE = Path(__file__).parent.parent / "docker-compose.temporal.yml"


def test_compose_is_valid_and_pinned():
    doc = yaml.safe_load(COMPOSE.read_text())
    services = doc["services"]
    assert {"postgresql", "temporal", "temporal-ui"} <= services.keys()
    for name, service in services.items():
        image = service["image"]
        tag = image.rsplit(":", 1)[-1]
        assert ":" in image and tag not in ("latest", ""), f"{name} image {image} is not pinned"
    env = services["temporal"]["environment"]
    assert env["DB"] == "postgres12" and env["POSTGRES_SEEDS"] == "postgresql"
    assert env["POSTGRES_USER"] == services["postgresql"]["environment"]["POSTGRES_USER"]
    assert env["POSTGRES_PWD"] == services["postgresql"]["environment"]["POSTGRES_PASSWORD"]
    assert services["temporal-ui"]["environment"]["TEMPORAL_ADDRESS"] == "temporal:7233"
    assert "7233:7233" in services["temporal"]["ports"]
