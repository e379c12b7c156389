"""Who a notification is for, and who may read it.

A notification belongs to one organisation. Most are for everyone in it; some are for
its members of one role only (`audience_role`: a licence warning for the org admins,
an unfilled SOS for the platform admins) or for one of its users (`user_id`). The list,
unread counts, read-all, the stream and its replay all show a reader exactly the
notifications `Reader.reads` (and its SQL twin in service.py) allows.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass

from flow_shared.auth import Principal


@dataclass(frozen=True, slots=True)
class Audience:
    """The members of `org_id` a notification is for: all of them, or only those with
    `role`, or only the user `user_id`."""

    org_id: uuid.UUID
    role: str | None = None
    user_id: uuid.UUID | None = None

    @property
    def whole_org(self) -> bool:
        return self.role is None and self.user_id is None


@dataclass(frozen=True, slots=True)
class PlatformAdmins:
    """Every platform admin (their organisation is looked up in the member projection)."""


Recipient = Audience | PlatformAdmins

PLATFORM_ADMIN_ROLE = "platform_admin"


@dataclass(frozen=True, slots=True)
class Reader:
    """A signed-in user reading notifications."""

    org_id: uuid.UUID
    role: str
    user_id: uuid.UUID

    @classmethod
    def of(cls, principal: Principal) -> Reader:
        return cls(org_id=principal.org_id, role=principal.role, user_id=principal.user_id)

    def reads(self, org_id: uuid.UUID, role: str | None, user_id: uuid.UUID | None) -> bool:
        return (
            org_id == self.org_id
            and (role is None or role == self.role)
            and (user_id is None or user_id == self.user_id)
        )
