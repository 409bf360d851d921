"""Routes of users: the seeds' POST /api/v1/user (called by auth) and the profile reads and edits."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Path
from pydantic import BaseModel, ConfigDict, EmailStr, Field

from sandwich.platform.errors import ApiError
from sandwich.platform.identity import Identity, current_identity
from sandwich.platform.responses import JsonResponse
from sandwich.platform.validation import Text
from sandwich.services.users import commands
from sandwich.services.users.context import UsersContext, context_of
from sandwich.services.users.domain import Profile

router = APIRouter(tags=["users"])


class ProfileOut(BaseModel):
    user_id: str
    username: str
    email: str
    phone: str | None
    full_name: str | None


class NewProfile(BaseModel):
    model_config = ConfigDict(extra="forbid")
    user_id: str = Field(pattern=r"^[0-9a-fA-F-]{36}$")
    username: Text = Field(min_length=1, max_length=64)
    email: EmailStr
    phone: Text | None = Field(default=None, max_length=32)
    full_name: Text | None = Field(default=None, max_length=200)


class ProfileUpdate(BaseModel):
    model_config = ConfigDict(extra="forbid")
    email: EmailStr
    phone: Text | None = Field(default=None, max_length=32)
    full_name: Text | None = Field(default=None, max_length=200)


@router.post("/api/v1/user", status_code=201, response_model=ProfileOut)
async def create_profile(
    body: NewProfile, context: Annotated[UsersContext, Depends(context_of)]
) -> JsonResponse:
    """Create the profile of a newly registered user; repeating the call for the same user id is harmless."""
    profile = Profile(body.user_id, body.username, str(body.email), body.phone, body.full_name)
    try:
        created = await commands.create_profile(profile, context.unit_of_work(), context.announce_new_user)
    except commands.UsernameTaken as exc:
        raise ApiError(409, "username_taken", "This username is taken.") from exc
    return JsonResponse(created.profile.public(), status_code=201 if created.new else 200)


@router.get("/api/v1/user/me", response_model=ProfileOut)
async def my_profile(
    identity: Annotated[Identity, Depends(current_identity)],
    context: Annotated[UsersContext, Depends(context_of)],
) -> dict[str, str | None]:
    try:
        profile = await commands.profile_by_id(identity.user_id, context.unit_of_work())
    except commands.ProfileNotFound as exc:
        raise ApiError(404, "profile_not_found", "No profile for this user.") from exc
    return profile.public()


@router.put("/api/v1/user/me", response_model=ProfileOut)
async def update_my_profile(
    body: ProfileUpdate,
    identity: Annotated[Identity, Depends(current_identity)],
    context: Annotated[UsersContext, Depends(context_of)],
) -> dict[str, str | None]:
    try:
        profile = await commands.update_profile(
            identity.user_id, str(body.email), body.phone, body.full_name, context.unit_of_work()
        )
    except commands.ProfileNotFound as exc:
        raise ApiError(404, "profile_not_found", "No profile for this user.") from exc
    return profile.public()


@router.get("/api/v1/user/{username}", response_model=ProfileOut)
async def profile_of(
    username: Annotated[Text, Path(max_length=64)],
    identity: Annotated[Identity, Depends(current_identity)],
    context: Annotated[UsersContext, Depends(context_of)],
) -> dict[str, str | None]:
    try:
        profile = await commands.profile_of(
            username, identity.username, identity.roles, context.unit_of_work()
        )
    except commands.NotYourProfile as exc:
        raise ApiError(403, "forbidden", "You may only read your own profile.") from exc
    except commands.ProfileNotFound as exc:
        raise ApiError(404, "user_not_found", "No such user.") from exc
    return profile.public()


@router.get("/internal/v1/users/{user_id}", response_model=ProfileOut, include_in_schema=False)
async def profile_by_id(
    user_id: str, context: Annotated[UsersContext, Depends(context_of)]
) -> dict[str, str | None]:
    """Contact data for other services (notifications); never routed by the gateway."""
    try:
        profile = await commands.profile_by_id(user_id, context.unit_of_work())
    except ValueError as exc:
        raise ApiError(422, "invalid_user_id", "Not a user id.") from exc
    except commands.ProfileNotFound as exc:
        raise ApiError(404, "user_not_found", "No such user.") from exc
    return profile.public()
