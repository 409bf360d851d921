"""Routes of auth: register, login, the JWKS document, admin role assignment and the people list,
and the gateway's token-version lookup. Each parses the request, calls its use case (commands.py)
and maps the domain's answer to the contract's status and body.

Registration follows the interaction style of the wiring: auth always creates the profile in users
over HTTP (ADR 003: the profile exists when register answers); the billing account is opened the
way the context's `billing_accounts` port says (by billing itself from UserCreated, or by auth over
HTTP in the `sync` flow; billing also opens one on first use), so register never waits on the broker.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Path, Query
from pydantic import BaseModel, ConfigDict, EmailStr, Field

from sandwich.platform.errors import ApiError
from sandwich.platform.identity import Identity, admin_identity
from sandwich.platform.responses import JsonResponse
from sandwich.platform.validation import Text
from sandwich.services.auth import commands
from sandwich.services.auth.context import AuthContext, context_of
from sandwich.services.auth.domain import USERNAME_PATTERN, Credential, InvalidRoles, NewAccount, RoleName

router = APIRouter(tags=["auth"])


class Registration(BaseModel):
    model_config = ConfigDict(extra="forbid")
    username: str = Field(min_length=3, max_length=32, pattern=USERNAME_PATTERN.pattern)
    password: Text = Field(min_length=1, max_length=256)
    email: EmailStr
    phone: Text | None = Field(default=None, max_length=32)
    full_name: Text | None = Field(default=None, max_length=200)

    def account(self) -> NewAccount:
        return NewAccount(self.username, self.password, str(self.email), self.phone, self.full_name)


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


def registration_refused(exc: commands.RegistrationRefused) -> ApiError:
    """The contract's answer to a refused registration."""
    if isinstance(exc, commands.WeakPassword):
        return ApiError(422, "weak_password", str(exc))
    if isinstance(exc, commands.UsernameTaken):
        return ApiError(409, "username_taken", "This username is taken.")
    if isinstance(exc, commands.RegistrationUnavailable) and exc.status is not None:
        return ApiError(503, "service_unavailable", f"users answered {exc.status}.")
    return ApiError(503, "service_unavailable", "Registration is unavailable, try again.")


@router.post("/api/v1/auth/register", status_code=201, response_model=Registered)
async def register(body: Registration, context: Context) -> JsonResponse:
    try:
        account = await commands.register(body.account(), ["customer"], context.unit_of_work(), context.ports)
    except commands.RegistrationRefused as exc:
        raise registration_refused(exc) from exc
    return JsonResponse({"user_id": account.user_id, "username": account.username}, status_code=201)


@router.post("/api/v1/auth/login", response_model=TokenOut)
async def login(body: Login, context: Context) -> dict[str, Any]:
    try:
        token = await commands.log_in(
            body.username,
            body.password,
            context.unit_of_work(),
            context.ports,
            context.signing_keys,
            context.token_ttl_seconds,
        )
    except commands.InvalidCredentials as exc:
        raise ApiError(401, "invalid_credentials", "Wrong username or password.") from exc
    return {"access_token": token.access_token, "token_type": "bearer", "expires_in": token.expires_in}


@router.get("/.well-known/jwks.json")
async def jwks(context: Context) -> dict[str, Any]:
    return {"keys": [key.public_jwk() for key in context.signing_keys]}


@router.put("/api/v1/admin/users/{username}/roles", response_model=RolesOut)
async def put_roles(
    username: Annotated[Text, Path(max_length=64)],
    body: RolesIn,
    _: Annotated[Identity, Depends(admin_identity)],
    context: Context,
) -> dict[str, Any]:
    """Replace a user's roles; they take effect in the tokens issued from now on, and the tokens
    issued before stop working (the token version is raised; the gateway checks it)."""
    try:
        credential = await commands.change_roles(
            username, list(body.roles), body.food_point_id, context.unit_of_work()
        )
    except InvalidRoles as exc:
        raise ApiError(422, "invalid_roles", str(exc)) from exc
    except commands.UserNotFound as exc:
        raise ApiError(404, "user_not_found", "No such user.") from exc
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
    context: Context,
    role: Annotated[RoleName | None, Query()] = None,
    q: Annotated[str | None, USERNAME_QUERY] = None,
    after: Annotated[str | None, USERNAME_QUERY] = None,
    limit: Annotated[int, Query(ge=1, le=MAX_USERS_PAGE)] = 50,
) -> dict[str, Any]:
    """People and their roles for the operations console, in username order: `role` keeps those
    holding it, `q` those whose username starts with it; `after` continues from a page's last."""
    page = await commands.users_page(context.unit_of_work(), role=role, prefix=q, after=after, limit=limit)
    return {"items": [_roles_out(credential) for credential in page.items], "next_after": page.next_after}


def _roles_out(credential: Credential) -> dict[str, Any]:
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
async def get_token_version(user_id: str, context: Context) -> dict[str, Any]:
    """For the gateway: the version a token of this user must carry; 404 for an unknown user."""
    try:
        version = await commands.token_version(user_id, context.unit_of_work())
    except commands.UserNotFound as exc:
        raise ApiError(404, "user_not_found", "No such user.") from exc
    return {"user_id": user_id, "version": version}
