"""Each organisation's webhook signing secrets: created with its first webhook URL,
rotated on request, the replaced one still signing for a grace period.

A secret is shown once, in the response that created it, and is otherwise never
returned or logged. It is stored encrypted (AES-256-GCM under a key derived from
WEBHOOK_SECRETS_KEY, the organisation's id as associated data, so a row copied onto
another organisation does not decrypt). Like service.py, these functions only flush:
the caller owns the transaction.
"""

from __future__ import annotations

import hashlib
import os
import secrets
import uuid
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime, timedelta

import structlog
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from sqlalchemy import delete, func, or_, select, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.ext.asyncio import AsyncSession

from notification_service.models import WebhookSigningSecret

log = structlog.get_logger("notifications.webhook_secrets")

SECRET_PREFIX = "whsec_"  # noqa: S105  (a prefix, not a secret)
_NONCE_BYTES = 12
_KEY_INFO = b"flow notification-service webhook signing secrets v1"


def new_signing_secret() -> str:
    """256 random bits, prefixed so that a leaked one is recognisable for what it is."""
    return SECRET_PREFIX + secrets.token_urlsafe(32)


class WebhookSecretCipher:
    """Encrypts and decrypts signing secrets, bound to their organisation."""

    def __init__(self, key: str) -> None:
        derived = HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=_KEY_INFO).derive(
            key.encode()
        )
        self._aead = AESGCM(derived)

    def encrypt(self, org_id: uuid.UUID, secret: str) -> bytes:
        nonce = os.urandom(_NONCE_BYTES)
        return nonce + self._aead.encrypt(nonce, secret.encode(), org_id.bytes)

    def decrypt(self, org_id: uuid.UUID, encrypted: bytes) -> str:
        """The secret; InvalidTag when it was not encrypted for this org with this key."""
        nonce, ciphertext = encrypted[:_NONCE_BYTES], encrypted[_NONCE_BYTES:]
        return self._aead.decrypt(nonce, ciphertext, org_id.bytes).decode()


@dataclass(frozen=True, slots=True)
class RotatedSecret:
    secret: str = field(repr=False)
    # When the replaced secret stops signing (None: there was none).
    previous_valid_until: datetime | None


async def _lock_org_secrets(session: AsyncSession, org_id: uuid.UUID) -> None:
    """Serialises changes to one org's secrets until the transaction ends (two rotations
    at once would otherwise both insert a current secret)."""
    key = int.from_bytes(hashlib.sha256(b"webhook-secret:" + org_id.bytes).digest()[:8], "big")
    await session.execute(select(func.pg_advisory_xact_lock(key - (1 << 63))))


async def create_first_secret(
    session: AsyncSession, cipher: WebhookSecretCipher, org_id: uuid.UUID
) -> str | None:
    """A current secret for the org if it has none: the new secret (to show once), or
    None when it already has one."""
    secret = new_signing_secret()
    created = await session.scalar(
        pg_insert(WebhookSigningSecret)
        .values(id=uuid.uuid4(), org_id=org_id, encrypted_secret=cipher.encrypt(org_id, secret))
        .on_conflict_do_nothing(
            index_elements=[WebhookSigningSecret.org_id],
            index_where=WebhookSigningSecret.retires_at.is_(None),
        )
        .returning(WebhookSigningSecret.id)
    )
    return secret if created is not None else None


async def rotate_secret(
    session: AsyncSession, cipher: WebhookSecretCipher, org_id: uuid.UUID, *, grace: timedelta
) -> RotatedSecret:
    """A new current secret. The one it replaces keeps signing for `grace`; any older one
    still in its grace period stops now, so deliveries never carry more than two."""
    await _lock_org_secrets(session, org_id)
    await session.execute(
        delete(WebhookSigningSecret).where(
            WebhookSigningSecret.org_id == org_id, WebhookSigningSecret.retires_at.is_not(None)
        )
    )
    previous_valid_until = await session.scalar(
        update(WebhookSigningSecret)
        .where(WebhookSigningSecret.org_id == org_id, WebhookSigningSecret.retires_at.is_(None))
        .values(retires_at=func.now() + grace)
        .returning(WebhookSigningSecret.retires_at)
        .execution_options(synchronize_session=False)
    )
    secret = new_signing_secret()
    await session.execute(
        pg_insert(WebhookSigningSecret).values(
            id=uuid.uuid4(), org_id=org_id, encrypted_secret=cipher.encrypt(org_id, secret)
        )
    )
    return RotatedSecret(secret=secret, previous_valid_until=previous_valid_until)


async def signing_secrets(
    session: AsyncSession, cipher: WebhookSecretCipher, org_ids: Iterable[uuid.UUID]
) -> dict[uuid.UUID, list[str]]:
    """The secrets each org's webhooks are signed with now: the current one first, then
    the replaced one while its grace period lasts. An org without any is absent."""
    wanted = set(org_ids)
    if not wanted:
        return {}
    rows = await session.execute(
        select(WebhookSigningSecret.org_id, WebhookSigningSecret.encrypted_secret)
        .where(
            WebhookSigningSecret.org_id.in_(wanted),
            or_(
                WebhookSigningSecret.retires_at.is_(None),
                WebhookSigningSecret.retires_at > func.now(),
            ),
        )
        .order_by(
            WebhookSigningSecret.org_id,
            WebhookSigningSecret.retires_at.desc().nulls_first(),
        )
    )
    found: dict[uuid.UUID, list[str]] = {}
    for org_id, encrypted in rows:
        try:
            found.setdefault(org_id, []).append(cipher.decrypt(org_id, encrypted))
        except InvalidTag:
            # WEBHOOK_SECRETS_KEY changed (or the row was tampered with): the org rotates.
            log.warning("webhook_secret_undecryptable", org_id=str(org_id))
    return {org_id: values for org_id, values in found.items() if values}
