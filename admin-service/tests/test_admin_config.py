"""admin-service reads its configuration from the environment and refuses to start half-set."""

from __future__ import annotations

from typing import TYPE_CHECKING

import pytest
from pydantic import ValidationError

from admin_service.config import Settings

if TYPE_CHECKING:
    from conftest import FleetStub


def test_user_service_url_comes_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("USER_SERVICE_URL", "http://users.internal:9001")
    monkeypatch.setenv("DATABASE_URL", "postgresql+asyncpg://flow_admin@db/flow")
    monkeypatch.setenv("SERVICE_KEY", "admin-key")

    settings = Settings()

    assert settings.user_service_url == "http://users.internal:9001"
    assert (settings.service_name, settings.db_schema) == ("admin-service", "admin")


def test_missing_database_url_or_service_key_stops_start_up(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("DATABASE_URL", raising=False)
    monkeypatch.delenv("SERVICE_KEY", raising=False)

    with pytest.raises(ValidationError, match="DATABASE_URL, SERVICE_KEY"):
        Settings()


def test_every_other_services_url_comes_from_its_variable(
    monkeypatch: pytest.MonkeyPatch, fleet: FleetStub
) -> None:
    monkeypatch.setenv("DATABASE_URL", "postgresql+asyncpg://flow_admin@db/flow")
    monkeypatch.setenv("SERVICE_KEY", "admin-key")
    for port, name in enumerate(fleet.services, start=9000):
        monkeypatch.setenv(name.replace("-", "_").upper() + "_URL", f"http://{name}:{port}")
    # Set but empty is the same as unset: there is nothing to call.
    monkeypatch.setenv("REVIEW_SERVICE_URL", "")

    urls = Settings().fleet_urls()

    expected = {
        name: f"http://{name}:{port}" for port, name in enumerate(fleet.services, start=9000)
    }
    assert urls == {**expected, "review-service": None}
