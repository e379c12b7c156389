"""Signing-key rotation on the running fleet: new tokens work on first sight, old ones live on."""

from __future__ import annotations

import base64
import json
from typing import Any

import httpx
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa


def _kid(token: str) -> str:
    header = token.split(".")[0]
    kid: str = json.loads(base64.urlsafe_b64decode(header + "=" * (-len(header) % 4)))["kid"]
    return kid


async def _admin_token(gateway: httpx.AsyncClient, fleet: Any) -> str:
    response = await gateway.post(
        "/api/v1/auth/login", json={"email": fleet.admin_email, "password": fleet.admin_password}
    )
    assert response.status_code == 200, response.text
    token: str = response.json()["access_token"]
    return token


async def test_rotated_key_is_accepted_at_first_use_and_old_tokens_stay_valid(
    gateway: httpx.AsyncClient, fleet: Any
) -> None:
    old_token = await _admin_token(gateway, fleet)
    old_kid = _kid(old_token)
    # Warm every verifier's JWKS cache with the old key set.
    assert (
        await gateway.get("/api/v1/users/me", headers={"Authorization": f"Bearer {old_token}"})
    ).status_code == 200

    new_kid = "z" + old_kid[1:]  # sorts after the old kid, so it becomes the active key
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    path = fleet.keys_dir / f"{new_kid}.pem"
    path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    path.chmod(0o600)
    fleet.flowctl("restart", "user-service")

    new_token = await _admin_token(gateway, fleet)
    assert _kid(new_token) == new_kid
    new_auth = {"Authorization": f"Bearer {new_token}"}
    # First request with the new kid at the gateway and directly at another service.
    assert (await gateway.get("/api/v1/admin/vendors", headers=new_auth)).status_code == 200
    async with httpx.AsyncClient(base_url=fleet.admin_service) as admin_direct:
        assert (
            await admin_direct.get("/api/v1/admin/vendors", headers=new_auth)
        ).status_code == 200
    # Tokens signed with the old key are still good until they expire.
    old_auth = {"Authorization": f"Bearer {old_token}"}
    assert (await gateway.get("/api/v1/admin/vendors", headers=old_auth)).status_code == 200
