"""scripts/generate-api-keys.sh, run for real in a temporary directory: a complete
.env.production with fresh secrets, mode 600 whatever the caller's umask, a signing key
user-service can load, distinct long service keys, nothing secret printed, and no
overwrite without --force."""

from __future__ import annotations

import os
import re
import stat
import subprocess
import tomllib
from dataclasses import dataclass
from pathlib import Path

import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from flow_shared.testing.envfiles import parse_env, parse_env_text
from user_service.keys import SigningKeys

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "scripts" / "generate-api-keys.sh"
TEMPLATE = ROOT / ".env.production.template"
PLACEHOLDER = "CHANGE_ME"
MIN_SECRET_BYTES = 32


@dataclass(frozen=True)
class Run:
    returncode: int
    output: str  # stdout and stderr together


def run_script(workdir: Path, *args: str) -> Run:
    # umask 000 in the caller: the script itself must make the file private.
    result = subprocess.run(
        ["bash", "-c", 'umask 000; exec bash "$0" "$@"', str(SCRIPT), *args],
        cwd=workdir,
        capture_output=True,
        text=True,
        timeout=60,
    )
    return Run(result.returncode, result.stdout + result.stderr)


def template_secret_names() -> list[str]:
    return [name for name, value in parse_env(TEMPLATE).items() if value == PLACEHOLDER]


def service_key_names() -> list[str]:
    """SERVICE_KEY_<SHORT> for every service, named as scripts/flowctl.py names them."""
    services = tomllib.loads((ROOT / "services.toml").read_text())["services"]
    return [
        "SERVICE_KEY_" + name.removesuffix("-service").replace("-", "_").upper()
        for name in services
    ]


@pytest.fixture(scope="module")
def generated(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Run]:
    workdir = tmp_path_factory.mktemp("keys")
    run = run_script(workdir, "--output", ".env.production")
    return workdir / ".env.production", run


def test_writes_every_template_setting_with_fresh_secrets(generated: tuple[Path, Run]) -> None:
    path, run = generated
    assert run.returncode == 0, run.output
    assert PLACEHOLDER not in path.read_text()
    values = parse_env(path)
    # Same settings, same order, as the template; its non-secret values are kept.
    assert list(values) == list(parse_env(TEMPLATE))
    for name, value in parse_env(TEMPLATE).items():
        if value != PLACEHOLDER:
            assert values[name] == value
    secrets = [values[name] for name in template_secret_names()]
    assert all(secrets)
    assert len(set(secrets)) == len(secrets)  # no value reused for two purposes


def test_file_is_private(generated: tuple[Path, Run]) -> None:
    path, _ = generated
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert path.stat().st_uid == os.geteuid()


def test_service_keys_are_distinct_and_long_enough(generated: tuple[Path, Run]) -> None:
    values = parse_env(generated[0])
    keys = [values[name] for name in service_key_names()]
    assert len(set(keys)) == len(keys)
    for key in keys:
        assert re.fullmatch(r"[0-9a-f]+", key)
        assert len(bytes.fromhex(key)) >= MIN_SECRET_BYTES


def test_every_random_secret_has_enough_entropy(generated: tuple[Path, Run]) -> None:
    values = parse_env(generated[0])
    for name in template_secret_names():
        if name.startswith("JWT_"):
            continue
        assert len(bytes.fromhex(values[name])) >= MIN_SECRET_BYTES, name


def test_the_key_pair_signs_and_verifies_a_jwt(generated: tuple[Path, Run]) -> None:
    values = parse_env(generated[0])
    kid = values["JWT_ACTIVE_KID"]
    assert re.fullmatch(r"k\d{8}-[0-9a-f]{8}", kid)

    # Exactly what user-service does with these two settings.
    keys = SigningKeys.from_encoded(values["JWT_PRIVATE_KEYS"], kid)
    assert keys.active_kid == kid
    private_key = keys.private_keys[kid]
    assert isinstance(private_key, rsa.RSAPrivateKey)
    assert private_key.key_size >= 2048

    token = jwt.encode({"sub": "ops-check", "aud": "flow"}, private_key, "RS256", {"kid": kid})
    [jwk] = keys.jwks()["keys"]
    public_key = jwt.PyJWK(jwk).key
    assert jwt.decode(token, public_key, ["RS256"], audience="flow")["sub"] == "ops-check"
    # The JWKS half is the public key of that private key.
    assert public_key.public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    ) == private_key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )


def test_prints_nothing_secret(generated: tuple[Path, Run]) -> None:
    path, run = generated
    values = parse_env(path)
    kid = values["JWT_ACTIVE_KID"]  # public: it is in every token header and the JWKS
    for name in template_secret_names():
        secret = values[name].removeprefix(kid + ":")
        if secret != kid:
            assert secret not in run.output, name
    assert "PRIVATE KEY" not in run.output


def test_refuses_to_overwrite_without_force_and_rotates_with_it(tmp_path: Path) -> None:
    first = run_script(tmp_path, "--output", ".env.production")
    assert first.returncode == 0, first.output
    path = tmp_path / ".env.production"
    before = path.read_bytes()

    refused = run_script(tmp_path, "--output", ".env.production")
    assert refused.returncode != 0
    assert "--force" in refused.output
    assert path.read_bytes() == before
    assert not [p for p in tmp_path.iterdir() if p.name != ".env.production"]  # no leftovers

    forced = run_script(tmp_path, "--output", ".env.production", "--force")
    assert forced.returncode == 0, forced.output
    old, new = parse_env_text(before.decode()), parse_env(path)
    assert list(old) == list(new)
    for name in template_secret_names():
        assert old[name] != new[name], name
    assert stat.S_IMODE(path.stat().st_mode) == 0o600


def test_usage_errors_write_nothing(tmp_path: Path) -> None:
    assert run_script(tmp_path, "--output").returncode == 2
    assert run_script(tmp_path, "--bogus").returncode == 2
    missing = run_script(tmp_path, "--template", "absent.template", "--output", "out.env")
    assert missing.returncode == 1
    assert list(tmp_path.iterdir()) == []
