"""BaseServiceSettings: read from the environment, validated at start-up, secrets hidden."""

from __future__ import annotations

import importlib.util
import secrets
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
from pydantic import SecretStr, ValidationError

from flow_shared.config import BaseServiceSettings
from flow_shared.production_secrets import (
    EXAMPLE_SECRET_SHA256,
    MIN_SECRET_BYTES,
    digest,
    env_file_secret_values,
)

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE_FILES = (ROOT / ".env.example", ROOT / ".env.production.template")

ENV_VARS = (
    "SERVICE_NAME",
    "DATABASE_URL",
    "JWT_ALGORITHMS",
    "TRUSTED_SERVICE_KEYS",
    "TRUSTED_HOSTS",
    "SERVICE_KEY",
    "ENVIRONMENT",
    "FLOW_ENV",
    "DOCS_ENABLED",
    "AMQP_URL",
    "REDIS_URL",
)


@pytest.fixture(autouse=True)
def clean_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ENV_VARS:
        monkeypatch.delenv(name, raising=False)


def settings(**kwargs: Any) -> BaseServiceSettings:
    # No .env file: only what the test sets counts.
    return BaseServiceSettings(_env_file=None, **kwargs)


def real_secret() -> str:
    return secrets.token_hex(32)


def production(**kwargs: Any) -> BaseServiceSettings:
    """Production settings whose other secrets are real (the default AMQP_URL is guest's)."""
    kwargs.setdefault("amqp_url", f"amqp://flow:{real_secret()}@rabbitmq:5672/")
    return settings(service_name="svc", environment="production", **kwargs)


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
    monkeypatch.setenv("TRUSTED_HOSTS", "api.flow.test,localhost")

    assert settings().trusted_hosts == ["api.flow.test", "localhost"]


def test_trusted_service_keys_name_each_caller(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SERVICE_NAME", "svc")
    # A key may itself contain "=" (base64 padding): only the first one separates.
    monkeypatch.setenv("TRUSTED_SERVICE_KEYS", "order-service=key-one, pricing-service=k2==,")

    trusted = settings().trusted_service_keys

    assert {name: key.get_secret_value() for name, key in trusted.items()} == {
        "order-service": "key-one",
        "pricing-service": "k2==",
    }


@pytest.mark.parametrize("value", ["bare-key", "=key", "order-service=", "a=k1,a=k2"])
def test_trusted_service_keys_without_a_caller_or_twice_are_refused(
    monkeypatch: pytest.MonkeyPatch, value: str
) -> None:
    monkeypatch.setenv("SERVICE_NAME", "svc")
    monkeypatch.setenv("TRUSTED_SERVICE_KEYS", value)

    with pytest.raises(ValidationError, match="TRUSTED_SERVICE_KEYS"):
        settings()


def test_secrets_never_show_in_the_settings_repr(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SERVICE_NAME", "svc")
    monkeypatch.setenv("DATABASE_URL", "postgresql+asyncpg://flow:db-s3cret@db/flow")
    monkeypatch.setenv("SERVICE_KEY", "svc-key-s3cret")
    monkeypatch.setenv("TRUSTED_SERVICE_KEYS", "order-service=trusted-s3cret")

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
    assert not production().docs_enabled
    assert production(docs_enabled=True).docs_enabled
    assert not settings(service_name="svc", environment="local", docs_enabled=False).docs_enabled


def test_production_from_the_environment_turns_docs_off(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ENVIRONMENT", "production")
    monkeypatch.setenv("AMQP_URL", f"amqp://flow:{real_secret()}@rabbitmq:5672/")
    assert not settings(service_name="svc").docs_enabled
    monkeypatch.setenv("DOCS_ENABLED", "true")
    assert settings(service_name="svc").docs_enabled


# --- production refuses example, empty and short secrets ---------------------------------


def example_secrets() -> list[str]:
    return sorted(set().union(*(env_file_secret_values(f.read_text()) for f in EXAMPLE_FILES)))


def test_every_secret_in_the_example_files_is_a_known_example() -> None:
    # Adding or changing a secret in an example file must add it to the list
    # (python -m flow_shared.production_secrets prints the new list).
    missing = sorted(v for v in example_secrets() if digest(v) not in EXAMPLE_SECRET_SHA256)
    assert not missing, "not in flow_shared.production_secrets.EXAMPLE_SECRET_SHA256"
    assert "guest" in example_secrets()  # the password inside AMQP_URL counts too


@pytest.mark.parametrize("example", example_secrets())
def test_production_refuses_every_secret_shipped_in_the_example_files(example: str) -> None:
    with pytest.raises(ValidationError, match="SERVICE_KEY is a value shipped") as refused:
        production(service_key=example)
    assert example not in str(refused.value)


@pytest.mark.parametrize(
    ("value", "why"),
    [("", "is empty"), ("k" * (MIN_SECRET_BYTES - 1), f"is shorter than {MIN_SECRET_BYTES}")],
)
def test_production_refuses_empty_and_short_secrets(value: str, why: str) -> None:
    with pytest.raises(ValidationError, match=f"SERVICE_KEY {why}"):
        production(service_key=value)
    # Multi-byte characters count as bytes: 11 three-byte characters are 33 bytes.
    assert production(service_key="鍵" * 11).service_key is not None


def test_production_accepts_real_secrets_and_urls_without_passwords() -> None:
    loaded = production(
        service_key=real_secret(),
        trusted_service_keys=f"order-service={real_secret()},admin-service={real_secret()}",
        database_url=f"postgresql+asyncpg://flow_orders:{real_secret()}@db:5432/flow",
        redis_url="redis://redis:6379/0",
    )
    assert loaded.is_production


def test_production_judges_the_password_inside_secret_urls() -> None:
    with pytest.raises(ValidationError, match=r"DATABASE_URL \(its password\) is a value shipped"):
        production(database_url="postgresql+asyncpg://flow_orders:local-orders-db-password@db/flow")
    # The default AMQP_URL is RabbitMQ's guest account.
    with pytest.raises(ValidationError, match=r"AMQP_URL \(its password\)"):
        settings(service_name="svc", environment="production")


def test_each_refused_secret_is_named_and_none_is_shown() -> None:
    weak = "local-notification-webhook-secret-8c24d1e5"  # long enough, but shipped
    with pytest.raises(ValidationError) as refused:
        production(
            trusted_service_keys=f"order-service={real_secret()},admin-service={weak}",
            redis_url=f"redis://:{weak}@redis:6379/0",
        )
    message = str(refused.value)
    assert "TRUSTED_SERVICE_KEYS[admin-service] is a value shipped" in message
    assert "REDIS_URL (its password) is a value shipped" in message
    assert "TRUSTED_SERVICE_KEYS[order-service]" not in message
    assert weak not in message


def test_a_services_own_secret_fields_are_checked_too() -> None:
    class PaymentLikeSettings(BaseServiceSettings):
        payment_webhook_secret: SecretStr | None = None

    with pytest.raises(ValidationError, match="PAYMENT_WEBHOOK_SECRET is a value shipped"):
        PaymentLikeSettings(
            _env_file=None,
            service_name="svc",
            environment="production",
            amqp_url=f"amqp://flow:{real_secret()}@rabbitmq/",
            payment_webhook_secret="local-sandbox-webhook-secret-3f1e9a7c",
        )


def test_example_secrets_are_fine_outside_production() -> None:
    loaded = settings(service_name="svc", service_key="local-order-service-key-a38e16")
    assert not loaded.is_production


@pytest.mark.parametrize("variable", ["FLOW_ENV", "ENVIRONMENT"])
def test_flow_env_and_environment_both_mean_production(
    monkeypatch: pytest.MonkeyPatch, variable: str
) -> None:
    monkeypatch.setenv(variable, "production")
    monkeypatch.setenv("SERVICE_KEY", "local-order-service-key-a38e16")

    with pytest.raises(ValidationError, match="SERVICE_KEY is a value shipped"):
        settings(service_name="svc")

    monkeypatch.setenv("SERVICE_KEY", real_secret())
    monkeypatch.setenv("AMQP_URL", f"amqp://flow:{real_secret()}@rabbitmq/")
    loaded = settings(service_name="svc")
    assert loaded.is_production
    assert loaded.environment == "production"
    assert not loaded.docs_enabled


# --- flowctl never runs production on .env.example ---------------------------------------


@pytest.fixture(scope="module")
def flowctl() -> ModuleType:
    spec = importlib.util.spec_from_file_location("flowctl", ROOT / "scripts" / "flowctl.py")
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_flowctl_uses_the_example_file_locally(flowctl: ModuleType) -> None:
    config = flowctl.load_config(ROOT / ".env.example")
    assert config["SERVICE_KEY_ORDER"] == "local-order-service-key-a38e16"


@pytest.mark.parametrize("variable", ["FLOW_ENV", "ENVIRONMENT"])
def test_flowctl_refuses_the_example_file_in_production(
    flowctl: ModuleType, monkeypatch: pytest.MonkeyPatch, tmp_path: Path, variable: str
) -> None:
    monkeypatch.setenv(variable, "production")
    with pytest.raises(SystemExit, match=r"production does not run on \.env\.example"):
        flowctl.load_config(ROOT / ".env.example")
    # Falling back to it (no .env next to the script) is refused the same way.
    monkeypatch.setattr(flowctl, "ROOT", tmp_path)
    monkeypatch.setattr(flowctl, "EXAMPLE_ENV_FILE", ROOT / ".env.example")
    with pytest.raises(SystemExit, match="production does not run"):
        flowctl.load_config()

    own = tmp_path / ".env.production"
    own.write_text(f"ENVIRONMENT=production\nSERVICE_KEY_ORDER={real_secret()}\n")
    assert flowctl.load_config(own)["ENVIRONMENT"] == "production"
