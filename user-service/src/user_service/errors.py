"""user-service's domain errors; the shared handlers turn them into problem+json."""

from __future__ import annotations

from flow_shared.errors import Conflict, DomainError, Forbidden, NotFound, Unauthorized


class EmailTaken(Conflict):
    code, title = "email-taken", "E-mail already registered"


class InvalidCredentials(Unauthorized):
    # One answer for an unknown e-mail and a wrong password: no account enumeration.
    code, title = "invalid-credentials", "Invalid credentials"

    def __init__(self) -> None:
        super().__init__("The e-mail or the password is wrong.")


class AccountLocked(DomainError):
    status, code, title = 423, "account-locked", "Account locked"

    def __init__(self, retry_after_seconds: int) -> None:
        seconds = max(1, retry_after_seconds)
        super().__init__(
            f"Too many failed logins in a row: try again in {seconds} seconds.",
            headers={"Retry-After": str(seconds)},
        )


class OrganizationSuspended(Forbidden):
    """Answered only after a correct password, so it reveals nothing to a guesser."""

    code, title = "organization-suspended", "Organisation suspended"

    def __init__(self) -> None:
        super().__init__("Your organisation is suspended; contact the Flow platform team.")


class InvalidRefreshToken(Unauthorized):
    code, title = "invalid-refresh-token", "Invalid refresh token"


class RefreshTokenReused(Unauthorized):
    code, title = "refresh-token-reused", "Refresh token reused"

    def __init__(self) -> None:
        super().__init__(
            "This refresh token was already used, so the session it belongs to has been "
            "revoked. Log in again."
        )


class WrongCurrentPassword(DomainError):
    status, code, title = 422, "wrong-current-password", "Current password is wrong"

    def __init__(self) -> None:
        super().__init__(
            "The current password is wrong.",
            errors=[{"loc": ["body", "current_password"], "msg": "The password is wrong."}],
        )


class OrganizationNotFound(NotFound):
    code, title = "organization-not-found", "Organisation not found"

    def __init__(self, detail: str = "No such organisation.") -> None:
        super().__init__(detail)


class UserNotFound(Unauthorized):
    """A valid token whose user no longer exists."""

    code, title = "user-not-found", "Unknown user"


class NotOrgAdmin(Forbidden):
    code, title = "not-org-admin", "Organisation admins only"

    def __init__(self) -> None:
        super().__init__("Only an org_admin of this organisation can do this.")


class InvalidInvitation(DomainError):
    """One answer for an unknown, spent, revoked or expired invitation token."""

    status, code, title = 400, "invalid-invitation", "Invalid invitation"

    def __init__(self) -> None:
        super().__init__(
            "This invitation is not valid: it may have expired, been used or been revoked. "
            "Ask your organisation's admin for a new one."
        )


class AccountExists(Conflict):
    """Told only to the holder of the invitation token, who owns the address."""

    code, title = "account-exists", "Account already exists"

    def __init__(self) -> None:
        super().__init__(
            "This e-mail already has a Flow account, and an account belongs to one "
            "organisation. Ask the admin of its current organisation to remove it first, "
            "or ask to be invited with another address."
        )


class InvitationNotFound(NotFound):
    code, title = "invitation-not-found", "Invitation not found"

    def __init__(self) -> None:
        super().__init__("No pending invitation with this id in this organisation.")


class MemberNotFound(NotFound):
    code, title = "member-not-found", "Member not found"

    def __init__(self) -> None:
        super().__init__("No member with this id in this organisation.")


class LastOrgAdmin(Conflict):
    code, title = "last-org-admin", "Last organisation admin"

    def __init__(self) -> None:
        super().__init__(
            "This is the organisation's only org_admin: invite another org_admin "
            "and let them accept before removing this one."
        )


class LicenseExpired(Conflict):
    """Reinstating an organisation whose licence has run out: the licence job would only
    suspend it again. A platform admin renews it first (verify with a new expiry)."""

    code, title = "license-expired", "Licence expired"

    def __init__(self) -> None:
        super().__init__(
            "The organisation's licence has expired; verify it with a new expiry date first."
        )
