"""A JWT issuer for tests: signs like user-service does, serves its JWKS in-process."""

from __future__ import annotations

import json
import time
import uuid
from dataclasses import dataclass, field
from typing import Any

import jwt
from cryptography.hazmat.primitives.asymmetric import rsa
from jwt.algorithms import RSAAlgorithm

ISSUER = "flow-user-service"
AUDIENCE = "flow"


@dataclass
class TokenIssuer:
    keys: dict[str, rsa.RSAPrivateKey] = field(default_factory=dict)
    active_kid: str = ""
    jwks_fetches: int = 0

    @classmethod
    def create(cls) -> TokenIssuer:
        issuer = cls()
        issuer.rotate()
        return issuer

    def rotate(self) -> str:
        kid = "test-" + uuid.uuid4().hex[:12]
        self.keys[kid] = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        self.active_kid = kid
        return kid

    def jwks(self) -> dict[str, Any]:
        keys = []
        for kid, key in self.keys.items():
            jwk = json.loads(RSAAlgorithm.to_jwk(key.public_key()))
            jwk.update({"kid": kid, "alg": "RS256", "use": "sig"})
            keys.append(jwk)
        return {"keys": keys}

    async def fetch_jwks(self) -> dict[str, Any]:
        self.jwks_fetches += 1
        return self.jwks()

    def claims(
        self,
        *,
        org_kind: str = "hospital",
        role: str = "org_admin",
        user_id: uuid.UUID | None = None,
        org_id: uuid.UUID | None = None,
        ttl: int = 900,
        **extra: Any,
    ) -> dict[str, Any]:
        now = int(time.time())
        claims: dict[str, Any] = {
            "sub": str(user_id or uuid.uuid4()),
            "org": str(org_id or uuid.uuid4()),
            "org_kind": org_kind,
            "role": role,
            "jti": uuid.uuid4().hex,
            "iat": now,
            "exp": now + ttl,
            "iss": ISSUER,
            "aud": AUDIENCE,
        }
        claims.update(extra)
        return claims

    def sign(self, claims: dict[str, Any], *, kid: str | None = None) -> str:
        kid = kid or self.active_kid
        return jwt.encode(claims, self.keys[kid], algorithm="RS256", headers={"kid": kid})

    def token(self, **kwargs: Any) -> str:
        return self.sign(self.claims(**kwargs))

    def headers(self, **kwargs: Any) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token(**kwargs)}"}
