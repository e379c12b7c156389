"""The one generator of JWT signing keys for a key folder (JWT_KEYS_DIR: one `<kid>.pem` per
key, read by user_service.keys): `make up` (scripts/flowctl.py) and the local compose stack
(`python -m user_service.keys ensure`) both write theirs here, the same size and file mode.
Production keys come from scripts/generate-api-keys.sh (openssl, the same 3072 bits)."""

from __future__ import annotations

import datetime as dt
import os
import secrets
import tempfile
from pathlib import Path

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

# NIST's size for RSA keys in use beyond 2030 (user-service accepts 2048 and more).
RSA_KEY_BITS = 3072
RSA_PUBLIC_EXPONENT = 65537


def new_kid() -> str:
    """Date first, so the newest key sorts last and becomes the active one."""
    return dt.datetime.now(dt.UTC).strftime("k%Y%m%d") + "-" + secrets.token_hex(4)


def _generate_private_key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=RSA_PUBLIC_EXPONENT, key_size=RSA_KEY_BITS)


def _write_private_key(directory: Path, kid: str, key: rsa.RSAPrivateKey) -> Path:
    """`directory/<kid>.pem`, unencrypted PKCS#8 PEM, mode 600 from the start (never readable
    by others) and atomically: user-service never sees a half-written key file."""
    pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    path = directory / f"{kid}.pem"
    # mkstemp creates the file with mode 600; its name does not end in .pem,
    # so a reader of the folder ignores it until the rename.
    descriptor, temporary = tempfile.mkstemp(dir=directory, prefix=f".{kid}.", suffix=".tmp")
    try:
        with os.fdopen(descriptor, "wb") as file:
            file.write(pem)
            file.flush()
            os.fsync(file.fileno())
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise
    return path


def write_new_signing_key(directory: Path) -> str:
    """Generate a key of RSA_KEY_BITS and write it into `directory` (created if missing) as
    `<kid>.pem`. Returns the new kid."""
    directory.mkdir(parents=True, exist_ok=True)
    kid = new_kid()
    _write_private_key(directory, kid, _generate_private_key())
    return kid


def ensure_signing_key(directory: Path) -> str | None:
    """A new signing key in `directory` when it holds none (a first run). Returns the new
    kid, or None when a key was already there."""
    directory.mkdir(parents=True, exist_ok=True)
    if any(directory.glob("*.pem")):
        return None
    return write_new_signing_key(directory)
