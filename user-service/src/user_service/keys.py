"""The JWT signing keys: every `<kid>.pem` in JWT_KEYS_DIR is published, the active one signs.

Rotation: drop a new key file whose name sorts last (or set JWT_ACTIVE_KID) and
restart user-service. New tokens carry the new `kid`; tokens signed with an older
key keep verifying as long as its file stays in the folder (remove it once the
last of those tokens has expired, i.e. after ACCESS_TOKEN_TTL_SECONDS).
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from jwt.algorithms import RSAAlgorithm

ALGORITHM = "RS256"
# Same rule the verifiers apply to a token's `kid` (flow_shared.auth).
_KID = re.compile(r"^[A-Za-z0-9_-]{1,64}$")


class SigningKeysError(RuntimeError):
    """The key folder is missing, empty or holds an unusable key: the service cannot start."""


@dataclass(frozen=True)
class SigningKeys:
    private_keys: dict[str, rsa.RSAPrivateKey]
    active_kid: str
    # The public half of every key, built once: JWKS requests are frequent and cheap.
    public_jwks: dict[str, Any]

    @classmethod
    def load(cls, directory: Path, active_kid: str | None = None) -> SigningKeys:
        if not directory.is_dir():
            raise SigningKeysError(
                f"JWT_KEYS_DIR {directory} is not a directory: generate a key with "
                "`python scripts/flowctl.py keys` (make up does it) or point JWT_KEYS_DIR at one"
            )
        keys: dict[str, rsa.RSAPrivateKey] = {}
        for path in sorted(directory.glob("*.pem")):
            kid = path.stem
            if not _KID.match(kid):
                raise SigningKeysError(
                    f"key file {path.name}: the name (the kid) may only use A-Z a-z 0-9 _ -"
                )
            try:
                key = serialization.load_pem_private_key(path.read_bytes(), password=None)
            except (ValueError, TypeError) as exc:
                raise SigningKeysError(
                    f"key file {path.name} is not an unencrypted PEM key"
                ) from exc
            if not isinstance(key, rsa.RSAPrivateKey) or key.key_size < 2048:
                raise SigningKeysError(f"key file {path.name} must be an RSA key of 2048+ bits")
            keys[kid] = key
        if not keys:
            raise SigningKeysError(
                f"JWT_KEYS_DIR {directory} holds no <kid>.pem key: generate one with "
                "`python scripts/flowctl.py keys`"
            )
        kid = active_kid or max(keys)
        if kid not in keys:
            raise SigningKeysError(f"JWT_ACTIVE_KID {kid!r} has no {kid}.pem in {directory}")
        return cls(private_keys=keys, active_kid=kid, public_jwks=_jwks(keys))

    def sign(self, claims: dict[str, Any]) -> str:
        return jwt.encode(
            claims,
            self.private_keys[self.active_kid],
            algorithm=ALGORITHM,
            headers={"kid": self.active_kid},
        )

    def jwks(self) -> dict[str, Any]:
        return self.public_jwks


def _jwks(private_keys: dict[str, rsa.RSAPrivateKey]) -> dict[str, Any]:
    keys = []
    for kid, private_key in private_keys.items():
        jwk: dict[str, Any] = json.loads(RSAAlgorithm.to_jwk(private_key.public_key()))
        jwk.update({"kid": kid, "alg": ALGORITHM, "use": "sig"})
        keys.append(jwk)
    return {"keys": keys}
