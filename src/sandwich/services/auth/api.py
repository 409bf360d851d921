"""Routes of auth: register, login, the JWKS document, and admin role assignment.

Registration follows the interaction style of the wiring: auth always creates the profile in users
over HTTP (ADR 003: the profile exists when register answers); the billing account is opened the
way the context's `billing_accounts` port says (by billing itself from UserCreated, or by auth over
HTTP in the `sync` flow; billing also opens one on first use), so register never waits on the broker.
"""

from __future__ import annotations

import asyncio
import uuid
from typing import Annotated, Any

import structlog
from fastapi import APIRouter, Depends, Path, Query
from pwdlib import PasswordHash
from pydantic import BaseModel, ConfigDict, EmailStr, Field

from sandwich.platform.app import Service, service_of
from sandwich.platform.errors import ApiError
from sandwich.platform.http import ServiceUnavailable
from sandwich.platform.identity import Identity, admin_identity
from sandwich.platform.responses import JsonResponse
from sandwich.platform.tokens import issue_token
from sandwich.platform.validation import Text
from sandwich.services.auth import storage
from sandwich.services.auth.context import AuthContext, context_of
from sandwich.services.auth.domain import (
    USERNAME_PATTERN,
    InvalidRoles,
    RoleName,
    normalized_roles,
    password_problem,
)

log = structlog.get_logger("auth")
router = APIRouter(tags=["auth"])
hasher = PasswordHash.recommended()
# Verified against when the username is unknown, so a miss costs as much time as a wrong password.
_DUMMY_HASH = hasher.hash("not-a-real-password")


class Registration(BaseModel):
    model_config = ConfigDict(extra="forbid")
    username: str = Field(min_length=3, max_length=32, pattern=USERNAME_PATTERN.pattern)
    password: Text = Field(min_length=1, max_length=256)
    email: EmailStr
    phone: Text | None = Field(default=None, max_length=32)
    full_name: Text | None = Field(default=None, max_length=200)


class Registered(BaseModel):
    user_id: str
    username: str


class Login(BaseModel):
    model_config = ConfigDict(extra="forbid")
    username: Text = Field(min_length=1, max_length=64)
    password: Text = Field(min_length=1, max_length=256)


class TokenOut(BaseModel):
    access_token: str
    token_type: str
    expires_in: int


class RolesIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    roles: list[Annotated[Text, Field(max_length=32)]] = Field(max_length=4)
    food_point_id: Text | None = Field(default=None, max_length=64)


class RolesOut(BaseModel):
    user_id: str
    username: str
    roles: list[str]
    food_point_id: str | None


Context = Annotated[AuthContext, Depends(context_of)]


async def register_user(
    service: Service, context: AuthContext, body: Registration, roles: list[str]
) -> dict[str, str]:
    """Store the credential, then create the profile in users; undo the credential if that fails."""
    problem = password_problem(body.password)
    if problem:
        raise ApiError(422, "weak_password", problem)
    password_hash = await asyncio.to_thread(hasher.hash, body.password)
    user_id = str(uuid.uuid4())
    async with service.database.begin() as conn:
        try:
            await storage.insert_credential(conn, user_id, body.username, password_hash, roles)
        except storage.UsernameTaken as exc:
            raise ApiError(409, "username_taken", "This username is taken.") from exc
    profile = {
        "user_id": user_id,
        "username": body.username,
        "email": str(body.email),
        "phone": body.phone,
        "full_name": body.full_name,
    }
    try:
        answer = await service.http.request("users", "POST", "/api/v1/user", json=profile, idempotent=True)
    except ServiceUnavailable as exc:
        await _forget(service, user_id)
        raise ApiError(503, "service_unavailable", "Registration is unavailable, try again.") from exc
    if not answer.ok:
        await _forget(service, user_id)
        if answer.status == 409:
            raise ApiError(409, "username_taken", "This username is taken.")
        raise ApiError(503, "service_unavailable", f"users answered {answer.status}.")
    await context.billing_accounts.open(user_id, body.username)
    return {"user_id": user_id, "username": body.username}


async def _forget(service: Service, user_id: str) -> None:
    async with service.database.begin() as conn:
        await storage.delete_credential(conn, user_id)


@router.post("/api/v1/auth/register", status_code=201, response_model=Registered)
async def register(
    body: Registration, service: Annotated[Service, Depends(service_of)], context: Context
) -> JsonResponse:
    return JsonResponse(await register_user(service, context, body, ["customer"]), status_code=201)


@router.post("/api/v1/auth/login", response_model=TokenOut)
async def login(
    body: Login, service: Annotated[Service, Depends(service_of)], context: Context
) -> dict[str, Any]:
    async with service.database.connect() as conn:
        credential = await storage.credential_by_username(conn, body.username)
    stored_hash = credential.password_hash if credential else _DUMMY_HASH
    valid = await asyncio.to_thread(hasher.verify, body.password, stored_hash)
    if credential is None or not valid:
        raise ApiError(401, "invalid_credentials", "Wrong username or password.")
    claims: dict[str, Any] = {
        "sub": credential.user_id,
        "username": credential.username,
        "roles": credential.roles,
        "ver": credential.token_version,
    }
    if credential.food_point_id:
        claims["food_point_id"] = credential.food_point_id
    ttl = service.settings.token_ttl_seconds
    token = issue_token(context.signing_keys[0], claims, ttl)
    return {"access_token": token, "token_type": "bearer", "expires_in": ttl}


@router.get("/.well-known/jwks.json")
async def jwks(context: Context) -> dict[str, Any]:
    return {"keys": [key.public_jwk() for key in context.signing_keys]}


@router.put("/api/v1/admin/users/{username}/roles", response_model=RolesOut)
async def put_roles(
    username: Annotated[Text, Path(max_length=64)],
    body: RolesIn,
    _: Annotated[Identity, Depends(admin_identity)],
    service: Annotated[Service, Depends(service_of)],
) -> dict[str, Any]:
    """Replace a user's roles; they take effect in the tokens issued from now on, and the tokens
    issued before stop working (the token version is raised; the gateway checks it)."""
    try:
        roles, food_point_id = normalized_roles(body.roles, body.food_point_id)
    except InvalidRoles as exc:
        raise ApiError(422, "invalid_roles", str(exc)) from exc
    async with service.database.begin() as conn:
        credential = await storage.set_roles(conn, username, roles, food_point_id)
    if credential is None:
        raise ApiError(404, "user_not_found", "No such user.")
    return _roles_out(credential)


class UsersOut(BaseModel):
    items: list[RolesOut]
    next_after: str | None = Field(description="pass as `after` for the next page; null on the last")


USERNAME_QUERY = Query(
    min_length=1, max_length=32, pattern=USERNAME_PATTERN.pattern.replace("{3,32}", "{1,32}")
)
MAX_USERS_PAGE = 200


@router.get("/api/v1/admin/users", response_model=UsersOut)
async def list_users(
    _: Annotated[Identity, Depends(admin_identity)],
    service: Annotated[Service, Depends(service_of)],
    role: Annotated[RoleName | None, Query()] = None,
    q: Annotated[str | None, USERNAME_QUERY] = None,
    after: Annotated[str | None, USERNAME_QUERY] = None,
    limit: Annotated[int, Query(ge=1, le=MAX_USERS_PAGE)] = 50,
) -> dict[str, Any]:
    """People and their roles for the operations console, in username order: `role` keeps those
    holding it, `q` those whose username starts with it; `after` continues from a page's last."""
    async with service.database.connect() as conn:
        found = await storage.credentials_page(conn, role=role, prefix=q, after=after, limit=limit + 1)
    page = found[:limit]
    return {
        "items": [_roles_out(credential) for credential in page],
        "next_after": page[-1].username if len(found) > limit else None,
    }


def _roles_out(credential: storage.Credential) -> dict[str, Any]:
    return {
        "user_id": credential.user_id,
        "username": credential.username,
        "roles": credential.roles,
        "food_point_id": credential.food_point_id,
    }


class TokenVersionOut(BaseModel):
    user_id: str
    version: int


@router.get(
    "/internal/v1/users/{user_id}/token-version", response_model=TokenVersionOut, include_in_schema=False
)
async def get_token_version(user_id: str, service: Annotated[Service, Depends(service_of)]) -> dict[str, Any]:
    """For the gateway: the version a token of this user must carry; 404 for an unknown user."""
    async with service.database.connect() as conn:
        version = await storage.token_version(conn, user_id)
    if version is None:
        raise ApiError(404, "user_not_found", "No such user.")
    return {"user_id": user_id, "version": version}
