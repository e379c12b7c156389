"""admin-service reads its configuration from the environment and refuses to start half-set."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from admin_service.config import Settings


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
