"""The JWT signing keys: every `<kid>.pem` in JWT_KEYS_DIR is published, the active one signs.

Rotation: drop a new key file whose name sorts last (or set JWT_ACTIVE_KID) and
restart user-service. New tokens carry the new `kid`; tokens signed with an older
key keep verifying as long as its file stays in the folder (remove it once the
last of those tokens has expired, i.e. after ACCESS_TOKEN_TTL_SECONDS).

In containers the keys can come from the environment instead: JWT_PRIVATE_KEYS holds
comma-separated `<kid>:<base64 of the PEM>` entries (scripts/generate-api-keys.sh
writes one) and then replaces the folder; rotation is the same with entries for files.

`python -m user_service.keys ensure DIR` writes a first key into an empty folder (the
local docker compose stack runs it once; production keys come from the key script).
"""

from __future__ import annotations

import base64
import binascii
import json
import re
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from jwt.algorithms import RSAAlgorithm

from flow_shared.signing_keys import ensure_signing_key

if TYPE_CHECKING:
    from user_service.config import Settings

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
    def from_settings(cls, settings: Settings) -> SigningKeys:
        """JWT_PRIVATE_KEYS when set, else the `<kid>.pem` files of JWT_KEYS_DIR."""
        if settings.jwt_private_keys is not None:
            return cls.from_encoded(
                settings.jwt_private_keys.get_secret_value(), settings.jwt_active_kid
            )
        return cls.load(settings.jwt_keys_dir, settings.jwt_active_kid)

    @classmethod
    def load(cls, directory: Path, active_kid: str | None = None) -> SigningKeys:
        if not directory.is_dir():
            raise SigningKeysError(
                f"JWT_KEYS_DIR {directory} is not a directory: generate a key with "
                "`python scripts/flowctl.py keys` (make up does it) or point JWT_KEYS_DIR at one"
            )
        keys: dict[str, rsa.RSAPrivateKey] = {}
        for path in sorted(directory.glob("*.pem")):
            keys[path.stem] = _private_key(path.stem, path.read_bytes(), f"key file {path.name}")
        if not keys:
            raise SigningKeysError(
                f"JWT_KEYS_DIR {directory} holds no <kid>.pem key: generate one with "
                "`python scripts/flowctl.py keys`"
            )
        return cls._with_active(keys, active_kid, f"no {active_kid}.pem in {directory}")

    @classmethod
    def from_encoded(cls, encoded: str, active_kid: str | None = None) -> SigningKeys:
        """Keys from JWT_PRIVATE_KEYS: comma-separated `<kid>:<base64 of the PEM>`.
        Error messages name the entry, never its content."""
        keys: dict[str, rsa.RSAPrivateKey] = {}
        for position, entry in enumerate(encoded.split(","), start=1):
            if not entry.strip():
                continue
            kid, separator, payload = entry.strip().partition(":")
            where = f"JWT_PRIVATE_KEYS entry {position}"
            if not separator or not payload:
                raise SigningKeysError(f"{where} is not `<kid>:<base64 of the PEM>`")
            if kid in keys:
                raise SigningKeysError(f"{where}: kid {kid!r} appears twice")
            try:
                pem = base64.b64decode(payload, validate=True)
            except (binascii.Error, ValueError):
                raise SigningKeysError(f"{where}: the key is not valid base64") from None
            keys[kid] = _private_key(kid, pem, where)
        if not keys:
            raise SigningKeysError("JWT_PRIVATE_KEYS is set but holds no key")
        return cls._with_active(keys, active_kid, "no such entry in JWT_PRIVATE_KEYS")

    @classmethod
    def _with_active(
        cls, keys: dict[str, rsa.RSAPrivateKey], active_kid: str | None, missing: str
    ) -> SigningKeys:
        kid = active_kid or max(keys)
        if kid not in keys:
            raise SigningKeysError(f"JWT_ACTIVE_KID {kid!r}: {missing}")
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


def _private_key(kid: str, pem: bytes, where: str) -> rsa.RSAPrivateKey:
    if not _KID.match(kid):
        raise SigningKeysError(f"{where}: the kid may only use A-Z a-z 0-9 _ - (1-64 characters)")
    try:
        key = serialization.load_pem_private_key(pem, password=None)
    except (ValueError, TypeError) as exc:
        raise SigningKeysError(f"{where} is not an unencrypted PEM key") from exc
    if not isinstance(key, rsa.RSAPrivateKey) or key.key_size < 2048:
        raise SigningKeysError(f"{where} must be an RSA key of 2048+ bits")
    return key


def _jwks(private_keys: dict[str, rsa.RSAPrivateKey]) -> dict[str, Any]:
    keys = []
    for kid, private_key in private_keys.items():
        jwk: dict[str, Any] = json.loads(RSAAlgorithm.to_jwk(private_key.public_key()))
        jwk.update({"kid": kid, "alg": ALGORITHM, "use": "sig"})
        keys.append(jwk)
    return {"keys": keys}


def main(argv: Sequence[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    if len(args) != 2 or args[0] != "ensure":
        print("usage: python -m user_service.keys ensure DIR", file=sys.stderr)
        return 2
    directory = Path(args[1])
    kid = ensure_signing_key(directory)
    if kid is None:
        print(f"{directory} already holds a signing key")
    else:
        print(f"generated JWT signing key {kid} in {directory}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
