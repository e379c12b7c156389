"""admin-service's domain errors (turned into problem+json by flow_shared.errors)."""

from __future__ import annotations

from flow_shared.errors import Conflict, NotFound


class VendorNotFound(NotFound):
    code = "vendor-not-found"
    title = "Vendor not found"


class OrganizationNotFound(NotFound):
    code = "organization-not-found"
    title = "Organisation not found"


class OrganizationConflict(Conflict):
    """user-service refused the move (a reinstatement before the licence is renewed)."""

    code = "organization-conflict"
    title = "Organisation action refused"


class ShortageNotFound(NotFound):
    code = "shortage-not-found"
    title = "Shortage not found"


class ShortageAlreadyEnded(Conflict):
    code = "shortage-already-ended"
    title = "Shortage already ended"
