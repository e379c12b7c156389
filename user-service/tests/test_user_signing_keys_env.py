"""Signing keys from the environment (JWT_PRIVATE_KEYS), for containers that have no key
folder: the same rules as key files (every key published, the active one signs, RSA 2048+),
and errors that name the entry but never print key material."""

from __future__ import annotations

import base64
import stat
from pathlib import Path
from typing import Any

import httpx
import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from flow_shared.signing_keys import ensure_signing_key
from user_service.config import Settings
from user_service.keys import SigningKeys, SigningKeysError, main
from user_service.main import create_app


def pem_of(key: rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )


def entry(kid: str, pem: bytes) -> str:
    return f"{kid}:{base64.b64encode(pem).decode()}"


@pytest.fixture(scope="module")
def two_keys() -> dict[str, rsa.RSAPrivateKey]:
    return {
        kid: rsa.generate_private_key(public_exponent=65537, key_size=2048)
        for kid in ("k20261124-aaaa0001", "k20261201-bbbb0002")
    }


@pytest.fixture(scope="module")
def encoded(two_keys: dict[str, rsa.RSAPrivateKey]) -> str:
    return ",".join(entry(kid, pem_of(key)) for kid, key in two_keys.items())


def _verify(token: str, keys: SigningKeys) -> dict[str, Any]:
    kid = jwt.get_unverified_header(token)["kid"]
    [jwk] = [k for k in keys.jwks()["keys"] if k["kid"] == kid]
    claims: dict[str, Any] = jwt.decode(token, key=jwt.PyJWK(jwk).key, algorithms=["RS256"])
    return claims


def test_every_key_is_published_and_the_newest_signs(encoded: str) -> None:
    keys = SigningKeys.from_encoded(encoded)

    published = {k["kid"]: k for k in keys.jwks()["keys"]}
    assert set(published) == {"k20261124-aaaa0001", "k20261201-bbbb0002"}
    assert all("d" not in k for k in published.values())  # public halves only
    token = keys.sign({"sub": "someone"})
    assert jwt.get_unverified_header(token)["kid"] == "k20261201-bbbb0002"
    assert _verify(token, keys) == {"sub": "someone"}


def test_jwt_active_kid_picks_the_signing_key(encoded: str) -> None:
    keys = SigningKeys.from_encoded(encoded, "k20261124-aaaa0001")
    token = keys.sign({"sub": "someone"})
    assert jwt.get_unverified_header(token)["kid"] == "k20261124-aaaa0001"
    assert _verify(token, keys)["sub"] == "someone"


def test_settings_prefer_the_environment_over_the_key_folder(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, encoded: str
) -> None:
    monkeypatch.setenv("JWT_PRIVATE_KEYS", encoded)
    monkeypatch.setenv("JWT_KEYS_DIR", str(tmp_path / "absent"))
    settings = Settings(_env_file=None)  # type: ignore[call-arg]

    assert encoded not in repr(settings)  # a SecretStr: never in logs or tracebacks
    keys = SigningKeys.from_settings(settings)
    assert keys.active_kid == "k20261201-bbbb0002"

    monkeypatch.delenv("JWT_PRIVATE_KEYS")
    with pytest.raises(SigningKeysError, match="not a directory"):
        SigningKeys.from_settings(Settings(_env_file=None))  # type: ignore[call-arg]


async def test_the_app_serves_keys_from_the_environment(
    make_settings: Any, accounts: Any, tmp_path: Path, encoded: str
) -> None:
    settings = make_settings(jwt_private_keys=encoded, jwt_keys_dir=tmp_path / "absent")
    async with accounts.serve(create_app(settings)) as http:
        jwks = (await http.get("/.well-known/jwks.json")).json()
        assert {k["kid"] for k in jwks["keys"]} == {"k20261124-aaaa0001", "k20261201-bbbb0002"}
        account = await accounts.register(http)
        assert jwt.get_unverified_header(account.access_token)["kid"] == "k20261201-bbbb0002"
        me = await http.get("/api/v1/users/me", headers=account.headers)
        assert me.status_code == httpx.codes.OK


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("", "holds no key"),
        ("k1", "is not `<kid>:<base64 of the PEM>`"),
        ("k1:", "is not `<kid>:<base64 of the PEM>`"),
        ("k1:not base64!", "not valid base64"),
        ("k1:" + base64.b64encode(b"-----BEGIN PRIVATE KEY-----\nnope").decode(), "not an unen"),
        ("bad kid:" + base64.b64encode(b"x").decode(), "the kid may only use"),
    ],
)
def test_malformed_entries_stop_start_up(value: str, message: str) -> None:
    with pytest.raises(SigningKeysError, match=message) as raised:
        SigningKeys.from_encoded(value)
    payload = value.partition(":")[2]
    if payload:
        assert payload not in str(raised.value)


def test_weak_duplicate_or_unknown_keys_are_refused(
    two_keys: dict[str, rsa.RSAPrivateKey], encoded: str
) -> None:
    weak = rsa.generate_private_key(public_exponent=65537, key_size=1024)  # noqa: S505 (refused)
    with pytest.raises(SigningKeysError, match="RSA key of 2048"):
        SigningKeys.from_encoded(entry("k1", pem_of(weak)))
    with pytest.raises(SigningKeysError, match="RSA key of 2048"):
        SigningKeys.from_encoded(entry("k1", pem_of(ec.generate_private_key(ec.SECP256R1()))))
    first = encoded.split(",")[0]
    with pytest.raises(SigningKeysError, match="appears twice"):
        SigningKeys.from_encoded(f"{first},{first}")
    with pytest.raises(SigningKeysError, match="JWT_ACTIVE_KID 'k-gone'"):
        SigningKeys.from_encoded(encoded, "k-gone")


def test_ensure_writes_one_private_key_for_the_local_stack(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    directory = tmp_path / "jwt-keys"
    assert main(["ensure", str(directory)]) == 0
    [key_file] = directory.glob("*.pem")
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
    assert key_file.stem in capsys.readouterr().out
    keys = SigningKeys.load(directory)
    assert keys.active_kid == key_file.stem
    assert _verify(keys.sign({"sub": "x"}), keys) == {"sub": "x"}

    # A second run (every `docker compose up`) keeps the key that tokens were signed with.
    assert ensure_signing_key(directory) is None
    assert list(directory.glob("*.pem")) == [key_file]
    assert main(["generate"]) == 2
