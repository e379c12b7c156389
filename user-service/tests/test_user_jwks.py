"""SPEC Identity: the JWKS (with `kid`), and key rotation: new tokens use the new key,
old ones keep verifying while their key is still published."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import httpx
import jwt
import pytest

from flow_shared.auth import JWKSCache, TokenVerifier
from user_service.keys import SigningKeys, SigningKeysError
from user_service.main import create_app


def _kid(token: str) -> str:
    kid: str = jwt.get_unverified_header(token)["kid"]
    return kid


async def test_jwks_publishes_the_signing_key(client: httpx.AsyncClient, accounts: Any) -> None:
    account = await accounts.register(client)
    jwks = await client.get("/api/v1/auth/jwks")
    well_known = await client.get("/.well-known/jwks.json")
    assert jwks.status_code == well_known.status_code == 200
    assert jwks.json() == well_known.json()
    [key] = jwks.json()["keys"]
    assert (key["kid"], key["alg"], key["use"], key["kty"]) == (
        "k20261124-0000aaaa",
        "RS256",
        "sig",
        "RSA",
    )
    assert "d" not in key  # the public half only
    assert "p" not in key

    assert _kid(account.access_token) == key["kid"]
    claims = jwt.decode(
        account.access_token,
        key=jwt.PyJWK(key).key,
        algorithms=["RS256"],
        audience="flow",
        issuer="flow-user-service",
    )
    assert claims["sub"] == account.user["id"]


async def test_another_service_verifies_tokens_with_the_jwks(
    client: httpx.AsyncClient, accounts: Any
) -> None:
    account = await accounts.register(client)

    async def fetch() -> dict[str, Any]:
        response = await client.get("/.well-known/jwks.json")
        body: dict[str, Any] = response.json()
        return body

    verifier = TokenVerifier(
        JWKSCache(fetch, algorithms=["RS256"]),
        issuer="flow-user-service",
        audience="flow",
        algorithms=["RS256"],
        redis=None,
        redis_prefix="",
    )
    principal = await verifier.verify(account.access_token)
    assert str(principal.user_id) == account.user["id"]
    assert (principal.org_kind, principal.role) == ("hospital", "org_admin")


async def test_key_rotation(
    tmp_path: Path, keys_dir: Path, make_settings: Any, accounts: Any
) -> None:
    rotating = tmp_path / "keys"
    rotating.mkdir()
    shutil.copy(keys_dir / "k20261124-0000aaaa.pem", rotating)

    async with accounts.serve(create_app(make_settings(jwt_keys_dir=rotating))) as before:
        account = await accounts.register(before)
    assert _kid(account.access_token) == "k20261124-0000aaaa"

    # The operator adds a newer key (it sorts last, so it becomes the active one) and restarts.
    accounts.write_signing_key(rotating, "k20261201-0000bbbb")
    async with accounts.serve(create_app(make_settings(jwt_keys_dir=rotating))) as after:
        kids = {k["kid"] for k in (await after.get("/.well-known/jwks.json")).json()["keys"]}
        assert kids == {"k20261124-0000aaaa", "k20261201-0000bbbb"}

        fresh = await accounts.login(after, account.email, account.password)
        assert _kid(fresh["access_token"]) == "k20261201-0000bbbb"
        new_me = await after.get("/api/v1/users/me", headers=accounts.bearer(fresh["access_token"]))
        assert new_me.status_code == 200
        # The token signed before the rotation still works until it expires.
        old_me = await after.get("/api/v1/users/me", headers=account.headers)
        assert old_me.status_code == 200
        rotated = await after.post(
            "/api/v1/auth/refresh", json={"refresh_token": account.refresh_token}
        )
        assert _kid(rotated.json()["access_token"]) == "k20261201-0000bbbb"

    # JWT_ACTIVE_KID picks the signing key explicitly (e.g. to roll back).
    settings = make_settings(jwt_keys_dir=rotating, jwt_active_kid="k20261124-0000aaaa")
    async with accounts.serve(create_app(settings)) as pinned:
        tokens = await accounts.login(pinned, account.email, account.password)
        assert _kid(tokens["access_token"]) == "k20261124-0000aaaa"


def test_missing_or_empty_key_folder_stops_start_up(
    tmp_path: Path, make_settings: Any, keys_dir: Path
) -> None:
    with pytest.raises(SigningKeysError, match="not a directory"):
        create_app(make_settings(jwt_keys_dir=tmp_path / "absent"))
    with pytest.raises(SigningKeysError, match=r"no <kid>\.pem"):
        create_app(make_settings(jwt_keys_dir=tmp_path))
    with pytest.raises(SigningKeysError, match="JWT_ACTIVE_KID"):
        SigningKeys.load(keys_dir, "k-does-not-exist")
    (tmp_path / "broken.pem").write_text("not a key")
    with pytest.raises(SigningKeysError, match="not an unencrypted PEM key"):
        SigningKeys.load(tmp_path)
