"""Routes of users: the seeds' POST /api/v1/user (called by auth) and the profile reads and edits."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Path
from pydantic import BaseModel, ConfigDict, EmailStr, Field

from sandwich.platform.app import Service, service_of
from sandwich.platform.errors import ApiError
from sandwich.platform.events import TOPIC_USER_EVENTS, USER_CREATED, UserCreated
from sandwich.platform.identity import Identity, current_identity
from sandwich.platform.responses import JsonResponse
from sandwich.platform.validation import Text
from sandwich.services.users import storage
from sandwich.services.users.context import UsersContext, context_of
from sandwich.services.users.domain import Profile, may_read_profile

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
    body: NewProfile,
    service: Annotated[Service, Depends(service_of)],
    context: Annotated[UsersContext, Depends(context_of)],
) -> JsonResponse:
    """Create the profile of a newly registered user; repeating the call for the same user id is harmless."""
    profile = Profile(body.user_id, body.username, str(body.email), body.phone, body.full_name)
    async with service.database.begin() as conn:
        existing = await storage.profile_by_username(conn, profile.username)
        if existing is not None:
            if existing.user_id != profile.user_id:
                raise ApiError(409, "username_taken", "This username is taken.")
            return JsonResponse(existing.public(), status_code=200)
        if not await storage.insert_profile(conn, profile):
            # A concurrent request stored this user id, or a username equal to it but for letter case.
            stored = await storage.profile_by_id(conn, profile.user_id)
            if stored is None:
                raise ApiError(409, "username_taken", "This username is taken.")
            return JsonResponse(stored.public(), status_code=200)
        if context.announces_new_users:
            event = UserCreated(user_id=profile.user_id, username=profile.username, email=profile.email)
            envelope = service.envelope(USER_CREATED, profile.user_id, event.model_dump())
            await service.record_event(conn, TOPIC_USER_EVENTS, envelope)
    service.events_committed()
    return JsonResponse(profile.public(), status_code=201)


@router.get("/api/v1/user/me", response_model=ProfileOut)
async def my_profile(
    identity: Annotated[Identity, Depends(current_identity)], service: Annotated[Service, Depends(service_of)]
) -> dict[str, str | None]:
    async with service.database.connect() as conn:
        profile = await storage.profile_by_id(conn, identity.user_id)
    if profile is None:
        raise ApiError(404, "profile_not_found", "No profile for this user.")
    return profile.public()


@router.put("/api/v1/user/me", response_model=ProfileOut)
async def update_my_profile(
    body: ProfileUpdate,
    identity: Annotated[Identity, Depends(current_identity)],
    service: Annotated[Service, Depends(service_of)],
) -> dict[str, str | None]:
    async with service.database.begin() as conn:
        profile = await storage.update_profile(
            conn, identity.user_id, str(body.email), body.phone, body.full_name
        )
    if profile is None:
        raise ApiError(404, "profile_not_found", "No profile for this user.")
    return profile.public()


@router.get("/api/v1/user/{username}", response_model=ProfileOut)
async def profile_of(
    username: Annotated[Text, Path(max_length=64)],
    identity: Annotated[Identity, Depends(current_identity)],
    service: Annotated[Service, Depends(service_of)],
) -> dict[str, str | None]:
    if not may_read_profile(identity.username, identity.roles, username):
        raise ApiError(403, "forbidden", "You may only read your own profile.")
    async with service.database.connect() as conn:
        profile = await storage.profile_by_username(conn, username)
    if profile is None:
        raise ApiError(404, "user_not_found", "No such user.")
    return profile.public()


@router.get("/internal/v1/users/{user_id}", response_model=ProfileOut, include_in_schema=False)
async def profile_by_id(
    user_id: str, service: Annotated[Service, Depends(service_of)]
) -> dict[str, str | None]:
    """Contact data for other services (notifications); never routed by the gateway."""
    try:
        async with service.database.connect() as conn:
            profile = await storage.profile_by_id(conn, user_id)
    except ValueError as exc:
        raise ApiError(422, "invalid_user_id", "Not a user id.") from exc
    if profile is None:
        raise ApiError(404, "user_not_found", "No such user.")
    return profile.public()
