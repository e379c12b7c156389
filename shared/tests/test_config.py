"""BaseServiceSettings: read from the environment, validated at start-up, secrets hidden."""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import ValidationError

from flow_shared.config import BaseServiceSettings

ENV_VARS = (
    "SERVICE_NAME",
    "DATABASE_URL",
    "JWT_ALGORITHMS",
    "TRUSTED_SERVICE_KEYS",
    "TRUSTED_HOSTS",
    "SERVICE_KEY",
    "ENVIRONMENT",
    "DOCS_ENABLED",
)


@pytest.fixture(autouse=True)
def clean_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ENV_VARS:
        monkeypatch.delenv(name, raising=False)


def settings(**kwargs: Any) -> BaseServiceSettings:
    # No .env file: only what the test sets counts.
    return BaseServiceSettings(_env_file=None, **kwargs)


@pytest.mark.parametrize(
    "algorithms", [["HS256"], ["RS256", "HS512"], ["none"], [], "HS256", "RS256,HS384"]
)
def test_symmetric_or_missing_jwt_algorithms_are_refused(algorithms: object) -> None:
    with pytest.raises(ValidationError, match="asymmetric"):
        settings(service_name="svc", jwt_algorithms=algorithms)


def test_asymmetric_algorithms_are_accepted_from_a_csv_variable(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("SERVICE_NAME", "svc")
    monkeypatch.setenv("JWT_ALGORITHMS", "RS256, EdDSA")

    assert settings().jwt_algorithms == ["RS256", "EdDSA"]


def test_the_default_algorithm_is_rs256() -> None:
    assert settings(service_name="svc").jwt_algorithms == ["RS256"]


def test_lists_come_from_comma_separated_variables(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SERVICE_NAME", "svc")
    monkeypatch.setenv("TRUSTED_SERVICE_KEYS", "key-one, key-two,")
    monkeypatch.setenv("TRUSTED_HOSTS", "api.flow.test,localhost")

    loaded = settings()

    assert [k.get_secret_value() for k in loaded.trusted_service_keys] == ["key-one", "key-two"]
    assert loaded.trusted_hosts == ["api.flow.test", "localhost"]


def test_secrets_never_show_in_the_settings_repr(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SERVICE_NAME", "svc")
    monkeypatch.setenv("DATABASE_URL", "postgresql+asyncpg://flow:db-s3cret@db/flow")
    monkeypatch.setenv("SERVICE_KEY", "svc-key-s3cret")
    monkeypatch.setenv("TRUSTED_SERVICE_KEYS", "trusted-s3cret")

    shown = repr(settings()) + str(settings())

    for secret in ("db-s3cret", "svc-key-s3cret", "trusted-s3cret"):
        assert secret not in shown


def test_a_service_must_say_its_name() -> None:
    with pytest.raises(ValidationError, match="service_name"):
        settings()


def test_settings_are_frozen() -> None:
    loaded = settings(service_name="svc")

    with pytest.raises(ValidationError):
        loaded.jwt_audience = "someone-else"  # type: ignore[misc]


def test_api_docs_are_off_in_production_unless_asked_for() -> None:
    assert settings(service_name="svc").docs_enabled
    assert not settings(service_name="svc", environment="production").docs_enabled
    assert settings(service_name="svc", environment="production", docs_enabled=True).docs_enabled
    assert not settings(service_name="svc", environment="local", docs_enabled=False).docs_enabled


def test_production_from_the_environment_turns_docs_off(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ENVIRONMENT", "production")
    assert not settings(service_name="svc").docs_enabled
    monkeypatch.setenv("DOCS_ENABLED", "true")
    assert settings(service_name="svc").docs_enabled
