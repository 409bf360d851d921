"""Routes of menu: the public menu, adding items (admin), and the lookup orders prices orders with."""

from __future__ import annotations

import uuid
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query
from pydantic import BaseModel, ConfigDict, Field

from sandwich.platform.errors import ApiError
from sandwich.platform.identity import Identity, admin_identity
from sandwich.platform.responses import JsonResponse
from sandwich.platform.validation import Text
from sandwich.services.menu import commands
from sandwich.services.menu.context import MenuContext, context_of
from sandwich.services.menu.domain import (
    MAX_INGREDIENT_NAME_LENGTH,
    MAX_INGREDIENTS,
    MAX_LOOKUP_IDS,
    MAX_NAME_LENGTH,
    MAX_PRICE,
    InvalidMenuItem,
)

router = APIRouter(tags=["menu"])
Context = Annotated[MenuContext, Depends(context_of)]


class IngredientOut(BaseModel):
    name: str
    quantity: int


class MenuItemOut(BaseModel):
    id: str
    name: str
    price: int
    ingredients: list[IngredientOut]


class MenuOut(BaseModel):
    items: list[MenuItemOut]


class IngredientIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: Text = Field(min_length=1, max_length=MAX_INGREDIENT_NAME_LENGTH)
    quantity: int = Field(ge=1, le=1_000_000, strict=True)


class NewMenuItem(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: Text = Field(min_length=1, max_length=MAX_NAME_LENGTH)
    price: int = Field(ge=1, le=MAX_PRICE, strict=True)
    ingredients: list[IngredientIn] = Field(default_factory=list, max_length=MAX_INGREDIENTS)


def parse_ids(raw: str) -> list[uuid.UUID]:
    """Comma-separated menu item ids, each once. One that is not a UUID names no item: it is left out,
    as an unknown id is, so that orders refuses the order as `unknown_menu_item` (a 4xx here would
    look to orders like a menu it cannot read)."""
    ids: dict[uuid.UUID, None] = {}
    for part in raw.split(","):
        try:
            ids[uuid.UUID(part.strip())] = None
        except ValueError:
            continue
    return list(ids)


@router.get("/api/v1/menu", response_model=MenuOut)
async def get_menu(context: Context) -> dict[str, Any]:
    return {"items": [item.public() for item in await commands.menu(context.unit_of_work())]}


@router.post("/api/v1/admin/menu", status_code=201, response_model=MenuItemOut)
async def add_menu_item(
    body: NewMenuItem, _: Annotated[Identity, Depends(admin_identity)], context: Context
) -> JsonResponse:
    """Add an item; names are unique regardless of letter case, so a menu never lists one dish twice."""
    command = commands.NewItem(body.name, body.price, [(i.name, i.quantity) for i in body.ingredients])
    try:
        item = await commands.add_item(command, context.unit_of_work())
    except InvalidMenuItem as exc:
        raise ApiError(422, "invalid_field", str(exc)) from exc
    except commands.MenuItemExists as exc:
        raise ApiError(409, "menu_item_exists", f"A menu item named {exc.name!r} already exists.") from exc
    return JsonResponse(item.public(), status_code=201)


@router.get("/internal/v1/menu/items", response_model=MenuOut, include_in_schema=False)
async def lookup_items(
    context: Context, ids: Annotated[str, Query(max_length=20_000)] = ""
) -> dict[str, Any]:
    """Items by id for orders, which prices every order from here; unknown ids are simply absent."""
    try:
        items = await commands.items_by_ids(parse_ids(ids), context.unit_of_work())
    except commands.TooManyIds as exc:
        raise ApiError(422, "too_many_ids", f"At most {MAX_LOOKUP_IDS} ids per lookup.") from exc
    return {"items": [item.public() for item in items]}
