"""Public HTTP API (/api/v1): parse, authorise, call the rules in service/, shape the answer."""

from __future__ import annotations

import urllib.parse
import uuid
from typing import Any

from fastapi import APIRouter, Depends, Request, Response
from fastapi.exceptions import RequestValidationError
from fastapi.security import OAuth2PasswordBearer
from pydantic import ValidationError

from flow_shared.auth import CurrentPrincipal
from flow_shared.clock import utcnow
from flow_shared.json_codec import ORJSONResponse
from flow_shared.pagination import Page, Pagination
from flow_shared.unit_of_work import DbSession, unit_of_work
from user_service.deps import (
    ClientIpDep,
    DatabaseDep,
    NotificationClientDep,
    PasswordsDep,
    RedisDep,
    SettingsDep,
    SigningKeysDep,
)
from user_service.models import Invitation, Organization, User
from user_service.schemas import (
    AcceptInvitationRequest,
    ChangePasswordRequest,
    InvitationOut,
    InviteMemberRequest,
    LoginRequest,
    LogoutRequest,
    MeOut,
    OrganizationOut,
    RefreshRequest,
    RegisterRequest,
    RegisterResponse,
    TokenResponse,
    UpdateMeRequest,
    UserOut,
)
from user_service.service import (
    authentication,
    members,
    organizations,
    profile,
    registration,
    tokens,
)

# Only for the docs' Authorize button; CurrentPrincipal does the verifying.
_docs_oauth2 = OAuth2PasswordBearer(tokenUrl="/api/v1/auth/token", auto_error=False)
_authenticated = [Depends(_docs_oauth2)]

auth_router = APIRouter(prefix="/api/v1/auth", tags=["auth"])
users_router = APIRouter(prefix="/api/v1/users", tags=["users"], dependencies=_authenticated)
organizations_router = APIRouter(
    prefix="/api/v1/organizations", tags=["organizations"], dependencies=_authenticated
)
well_known_router = APIRouter(tags=["auth"])

# Token answers must never be cached (RFC 6749 section 5.1).
_NO_STORE = {"Cache-Control": "no-store", "Pragma": "no-cache"}
JWKS_MAX_AGE_SECONDS = 60


def _token_answer(outcome: tokens.TokenPair | tokens.Refused, response: Response) -> TokenResponse:
    if isinstance(outcome, tokens.Refused):
        raise outcome.error
    response.headers.update(_NO_STORE)
    return TokenResponse(
        access_token=outcome.access_token,
        refresh_token=outcome.refresh_token,
        expires_in=outcome.expires_in,
    )


def _me(user: User, organization: Organization) -> MeOut:
    return MeOut(
        **UserOut.model_validate(user).model_dump(),
        organization=OrganizationOut.model_validate(organization),
    )


# --- auth -------------------------------------------------------------------------------


@auth_router.post("/register", status_code=201)
async def register(
    body: RegisterRequest, session: DbSession, passwords: PasswordsDep
) -> RegisterResponse:
    user, organization = await registration.register(session, passwords, body)
    return RegisterResponse(
        user=UserOut.model_validate(user),
        organization=OrganizationOut.model_validate(organization),
    )


async def _password_login(
    credentials: LoginRequest,
    *,
    response: Response,
    database: DatabaseDep,
    redis: RedisDep,
    passwords: PasswordsDep,
    keys: SigningKeysDep,
    settings: SettingsDep,
    client_ip: str,
) -> TokenResponse:
    # Owns its unit of work: the tokens' refresh row commits before the answer is sent.
    async with unit_of_work(database) as uow:
        outcome = await authentication.login(
            uow.session,
            redis=redis,
            passwords=passwords,
            keys=keys,
            settings=settings,
            email=credentials.email,
            password=credentials.password,
            client_ip=client_ip,
        )
    return _token_answer(outcome, response)


@auth_router.post(
    "/login",
    responses={
        401: {"description": "Wrong e-mail or password (one answer for both)"},
        403: {"description": "The organisation is suspended"},
        423: {"description": "Locked after repeated failures; see Retry-After"},
    },
)
async def login(
    body: LoginRequest,
    response: Response,
    database: DatabaseDep,
    redis: RedisDep,
    passwords: PasswordsDep,
    keys: SigningKeysDep,
    settings: SettingsDep,
    client_ip: ClientIpDep,
) -> TokenResponse:
    return await _password_login(
        body,
        response=response,
        database=database,
        redis=redis,
        passwords=passwords,
        keys=keys,
        settings=settings,
        client_ip=client_ip,
    )


_TOKEN_FORM_SCHEMA: dict[str, Any] = {
    "requestBody": {
        "required": True,
        "content": {
            "application/x-www-form-urlencoded": {
                "schema": {
                    "type": "object",
                    "required": ["username", "password"],
                    "properties": {
                        "grant_type": {"type": "string", "enum": ["password"]},
                        "username": {"type": "string", "description": "The e-mail"},
                        "password": {"type": "string", "format": "password"},
                        "scope": {"type": "string"},
                    },
                }
            }
        },
    }
}


async def _token_form(request: Request) -> LoginRequest:
    """The OAuth2 password form, parsed by hand: python-multipart is not a dependency,
    and a urlencoded body of four short fields needs nothing more than the stdlib."""
    content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if content_type != "application/x-www-form-urlencoded":
        raise RequestValidationError(
            [{"loc": ("body",), "msg": "Expected an application/x-www-form-urlencoded body."}]
        )
    try:
        fields = urllib.parse.parse_qs(
            (await request.body()).decode(), keep_blank_values=True, max_num_fields=10
        )
    except (UnicodeDecodeError, ValueError) as exc:
        raise RequestValidationError(
            [{"loc": ("body",), "msg": "The form body is not valid."}]
        ) from exc
    grant_type = fields.get("grant_type", ["password"])[0]
    if grant_type != "password":
        raise RequestValidationError(
            [{"loc": ("body", "grant_type"), "msg": "Only grant_type=password is supported."}]
        )
    try:
        return LoginRequest(
            email=fields.get("username", [""])[0], password=fields.get("password", [""])[0]
        )
    except ValidationError as exc:
        form_name = {"email": "username", "password": "password"}
        raise RequestValidationError(
            [
                {"loc": ("body", form_name.get(str(err["loc"][0]), "")), "msg": err["msg"]}
                for err in exc.errors()
            ]
        ) from exc


@auth_router.post("/token", openapi_extra=_TOKEN_FORM_SCHEMA)
async def token(
    request: Request,
    response: Response,
    database: DatabaseDep,
    redis: RedisDep,
    passwords: PasswordsDep,
    keys: SigningKeysDep,
    settings: SettingsDep,
    client_ip: ClientIpDep,
) -> TokenResponse:
    """The login as an OAuth2 password grant (`username` is the e-mail)."""
    return await _password_login(
        await _token_form(request),
        response=response,
        database=database,
        redis=redis,
        passwords=passwords,
        keys=keys,
        settings=settings,
        client_ip=client_ip,
    )


@auth_router.post("/refresh")
async def refresh(
    body: RefreshRequest,
    response: Response,
    database: DatabaseDep,
    keys: SigningKeysDep,
    settings: SettingsDep,
) -> TokenResponse:
    # Owns its unit of work: detecting reuse revokes the family and still answers 401.
    async with unit_of_work(database) as uow:
        outcome = await tokens.refresh(
            uow.session, keys=keys, settings=settings, refresh_token=body.refresh_token
        )
    return _token_answer(outcome, response)


@auth_router.post("/logout", status_code=204, dependencies=_authenticated)
async def logout(
    principal: CurrentPrincipal,
    session: DbSession,
    redis: RedisDep,
    settings: SettingsDep,
    body: LogoutRequest | None = None,
) -> None:
    await tokens.logout(
        session,
        redis=redis,
        settings=settings,
        principal=principal,
        refresh_token=body.refresh_token if body else None,
    )


def _jwks_response(keys: SigningKeysDep) -> ORJSONResponse:
    return ORJSONResponse(
        keys.jwks(), headers={"Cache-Control": f"public, max-age={JWKS_MAX_AGE_SECONDS}"}
    )


@auth_router.get("/jwks")
async def jwks(keys: SigningKeysDep) -> ORJSONResponse:
    """The public keys that verify Flow access tokens (by `kid`)."""
    return _jwks_response(keys)


@well_known_router.get("/.well-known/jwks.json", include_in_schema=False)
async def well_known_jwks(keys: SigningKeysDep) -> ORJSONResponse:
    return _jwks_response(keys)


# --- the current user -------------------------------------------------------------------


@users_router.get("/me")
async def get_me(principal: CurrentPrincipal, session: DbSession) -> MeOut:
    return _me(*await profile.get_me(session, principal))


@users_router.patch("/me")
async def update_me(
    body: UpdateMeRequest, principal: CurrentPrincipal, session: DbSession
) -> MeOut:
    return _me(*await profile.update_me(session, principal, full_name=body.full_name))


@users_router.post(
    "/me/password",
    status_code=204,
    responses={422: {"description": "The current password is wrong"}, 423: {}},
)
async def change_password(
    body: ChangePasswordRequest,
    principal: CurrentPrincipal,
    session: DbSession,
    redis: RedisDep,
    passwords: PasswordsDep,
    settings: SettingsDep,
    client_ip: ClientIpDep,
) -> None:
    """Every session ends, this one included: refresh tokens are revoked and access
    tokens issued before the change stop working at once. Log in again afterwards."""
    await profile.change_password(
        session,
        redis=redis,
        passwords=passwords,
        settings=settings,
        principal=principal,
        current_password=body.current_password,
        new_password=body.new_password,
        client_ip=client_ip,
    )


# --- organisations ------------------------------------------------------------------------


@organizations_router.get("/{org_id}")
async def get_organization(
    org_id: uuid.UUID, principal: CurrentPrincipal, session: DbSession
) -> OrganizationOut:
    organization = await organizations.get_organization(session, principal, org_id)
    return OrganizationOut.model_validate(organization)


@organizations_router.get("/{org_id}/members")
async def list_members(
    org_id: uuid.UUID,
    principal: CurrentPrincipal,
    session: DbSession,
    pagination: Pagination,
) -> Page[UserOut]:
    users, total = await members.list_members(session, principal, org_id, pagination)
    return Page[UserOut].of([UserOut.model_validate(u) for u in users], pagination, total)


def _invitation(invitation: Invitation) -> InvitationOut:
    return InvitationOut(
        id=invitation.id,
        email=invitation.email,
        role=invitation.role,
        status=members.invitation_status(invitation, utcnow()),
        expires_at=invitation.expires_at,
    )


@organizations_router.post(
    "/{org_id}/members",
    status_code=202,
    responses={202: {"description": "Invited: an e-mail with a one-time token is on its way"}},
)
async def invite_member(
    org_id: uuid.UUID,
    body: InviteMemberRequest,
    principal: CurrentPrincipal,
    session: DbSession,
    mailer: NotificationClientDep,
    settings: SettingsDep,
) -> InvitationOut:
    """Invite someone by e-mail (that org's org_admin). The answer is the same whether or
    not the address already has an account; the invitee accepts with
    `POST /api/v1/auth/invitations/accept`."""
    invitation = await members.invite_member(
        session,
        mailer=mailer,
        settings=settings,
        principal=principal,
        org_id=org_id,
        email=body.email,
        full_name=body.full_name,
        role=body.role,
    )
    return _invitation(invitation)


@organizations_router.delete("/{org_id}/members/{user_id}", status_code=204)
async def remove_member(
    org_id: uuid.UUID,
    user_id: uuid.UUID,
    principal: CurrentPrincipal,
    session: DbSession,
    redis: RedisDep,
    settings: SettingsDep,
) -> None:
    """Delete the member's account and end all its sessions at once (that org's org_admin).
    The last org_admin cannot be removed (409)."""
    await members.remove_member(
        session, redis=redis, settings=settings, principal=principal, org_id=org_id, user_id=user_id
    )


@organizations_router.get("/{org_id}/invitations")
async def list_invitations(
    org_id: uuid.UUID,
    principal: CurrentPrincipal,
    session: DbSession,
    pagination: Pagination,
) -> Page[InvitationOut]:
    """Pending invitations, oldest first (that org's org_admin)."""
    invitations, total = await members.list_pending_invitations(
        session, principal, org_id, pagination
    )
    return Page[InvitationOut].of([_invitation(i) for i in invitations], pagination, total)


@organizations_router.delete("/{org_id}/invitations/{invitation_id}", status_code=204)
async def revoke_invitation(
    org_id: uuid.UUID,
    invitation_id: uuid.UUID,
    principal: CurrentPrincipal,
    session: DbSession,
) -> None:
    await members.revoke_invitation(session, principal, org_id, invitation_id)


@auth_router.post(
    "/invitations/accept",
    status_code=201,
    responses={
        400: {"description": "Unknown, used, revoked or expired token (one answer)"},
        409: {"description": "The invited e-mail already has an account"},
    },
)
async def accept_invitation(
    body: AcceptInvitationRequest, session: DbSession, passwords: PasswordsDep
) -> UserOut:
    """Become a member with the token from the invitation e-mail and a password of your own."""
    user, _ = await members.accept_invitation(
        session, passwords, token=body.token, password=body.password, full_name=body.full_name
    )
    return UserOut.model_validate(user)


routers = [auth_router, users_router, organizations_router, well_known_router]
