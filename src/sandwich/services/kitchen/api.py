"""Routes of kitchen: food points and stock (admin), the cooks' orders and their "ready", and the food
point lookup for delivery. Each parses its request, runs a use case of commands.py and maps its
result or error to the contract's answer.

Order events reach the consumer registered in app.py: from the broker, or in the sync flow pushed to
the platform's `POST /internal/v1/events/order.events` (platform/app.py, `events_router`).
"""

from __future__ import annotations

import uuid
from collections.abc import Awaitable
from typing import Annotated, Any, TypeVar

from fastapi import APIRouter, Depends, Path, Request
from pydantic import BaseModel, ConfigDict, Field, StrictBool

from sandwich.platform.errors import ApiError
from sandwich.platform.identity import Identity, admin_identity, identity_of, require_role
from sandwich.platform.responses import JsonResponse
from sandwich.platform.validation import Text
from sandwich.services.kitchen import commands
from sandwich.services.kitchen.commands import (
    FoodPointNotFound,
    IllegalTransition,
    NewFoodPoint,
    NotYourFoodPoint,
    OrderNotFound,
    OrdersUnavailable,
)
from sandwich.services.kitchen.context import KitchenContext, context_of
from sandwich.services.kitchen.domain import (
    MAX_ADDRESS_LENGTH,
    MAX_CAPACITY,
    MAX_INGREDIENT_LENGTH,
    MAX_NAME_LENGTH,
    MAX_STOCK,
    FoodPoint,
    clean_name,
)
from sandwich.services.kitchen.storage import as_uuid

router = APIRouter(tags=["kitchen"])

Context = Annotated[KitchenContext, Depends(context_of)]
Admin = Annotated[Identity, Depends(admin_identity)]
T = TypeVar("T")


# --- shapes ----------------------------------------------------------------------------------------


class FoodPointIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: Text = Field(min_length=1, max_length=MAX_NAME_LENGTH)
    address: Text = Field(min_length=1, max_length=MAX_ADDRESS_LENGTH)
    lat: float = Field(ge=-90, le=90, strict=True)
    lon: float = Field(ge=-180, le=180, strict=True)
    capacity: int = Field(ge=0, le=MAX_CAPACITY, strict=True)
    accepts_delivery: StrictBool


class FoodPointPatch(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: Text | None = Field(default=None, min_length=1, max_length=MAX_NAME_LENGTH)
    address: Text | None = Field(default=None, min_length=1, max_length=MAX_ADDRESS_LENGTH)
    lat: float | None = Field(default=None, ge=-90, le=90, strict=True)
    lon: float | None = Field(default=None, ge=-180, le=180, strict=True)
    capacity: int | None = Field(default=None, ge=0, le=MAX_CAPACITY, strict=True)
    accepts_delivery: StrictBool | None = None


class StockIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    quantity: int = Field(ge=0, le=MAX_STOCK, strict=True)


class FoodPointOut(BaseModel):
    food_point_id: str
    name: str
    address: str
    lat: float
    lon: float
    capacity: int
    accepts_delivery: bool
    active_orders: int
    created_at: str


class StockLineOut(BaseModel):
    ingredient: str
    quantity: int


class FoodPointWithStockOut(FoodPointOut):
    stock: list[StockLineOut]


class FoodPointsOut(BaseModel):
    items: list[FoodPointWithStockOut]


class StockOut(BaseModel):
    food_point_id: str
    ingredient: str
    quantity: int


class CookItemOut(BaseModel):
    menu_item_id: str | None
    name: str | None
    quantity: int | None


class IngredientOut(BaseModel):
    name: str
    quantity: int


class DeliveryOut(BaseModel):
    address: str
    lat: float
    lon: float


class CookOrderOut(BaseModel):
    order_id: str
    food_point_id: str
    username: str
    status: str
    confirmed: bool
    items: list[CookItemOut]
    ingredients: list[IngredientOut]
    delivery: DeliveryOut
    paid_at: str
    assigned_at: str


class CookOrdersOut(BaseModel):
    items: list[CookOrderOut]


# --- helpers ---------------------------------------------------------------------------------------


def _food_point_not_found() -> ApiError:
    return ApiError(404, "food_point_not_found", "No such food point.")


def _food_point_id(raw: str) -> uuid.UUID:
    parsed = as_uuid(raw)
    if parsed is None:
        raise _food_point_not_found()
    return parsed


async def _of_food_point(work: Awaitable[T]) -> T:
    """The use case's result; 404 when it found no such food point."""
    try:
        return await work
    except FoodPointNotFound as exc:
        raise _food_point_not_found() from exc


def _clean_text(field: str, value: str, max_length: int) -> str:
    cleaned = clean_name(value)
    if not 1 <= len(cleaned) <= max_length:
        raise ApiError(422, "invalid_field", f"{field}: must be 1..{max_length} characters, not only spaces")
    return cleaned


def _with_stock(point: FoodPoint, stock: dict[str, int]) -> dict[str, Any]:
    return {
        **point.public(),
        "stock": [{"ingredient": name, "quantity": quantity} for name, quantity in sorted(stock.items())],
    }


async def cook_food_point(request: Request) -> tuple[Identity, str]:
    """FastAPI dependency: a cook and the food point the cook works at (canonical UUID text)."""
    identity = identity_of(request)
    require_role(identity, "cook")
    point = as_uuid(identity.food_point_id or "")
    if point is None:
        raise ApiError(403, "no_food_point", "This cook is not bound to a food point.")
    return identity, str(point)


Cook = Annotated[tuple[Identity, str], Depends(cook_food_point)]


# --- administration --------------------------------------------------------------------------------


@router.post("/api/v1/admin/food-points", status_code=201, response_model=FoodPointOut)
async def create_food_point(body: FoodPointIn, _: Admin, ctx: Context) -> JsonResponse:
    new = NewFoodPoint(
        name=_clean_text("name", body.name, MAX_NAME_LENGTH),
        address=_clean_text("address", body.address, MAX_ADDRESS_LENGTH),
        lat=body.lat,
        lon=body.lon,
        capacity=body.capacity,
        accepts_delivery=body.accepts_delivery,
    )
    point = await commands.create_food_point(new, ctx.unit_of_work(), ctx.wake_assigner)
    return JsonResponse(point.public(), status_code=201)


@router.get("/api/v1/admin/food-points", response_model=FoodPointsOut)
async def list_food_points(_: Admin, ctx: Context) -> JsonResponse:
    points = await commands.food_points_with_stock(ctx.unit_of_work())
    return JsonResponse({"items": [_with_stock(point, stock) for point, stock in points]})


@router.get("/api/v1/admin/food-points/{food_point_id}", response_model=FoodPointWithStockOut)
async def get_food_point(food_point_id: str, _: Admin, ctx: Context) -> JsonResponse:
    point_id = _food_point_id(food_point_id)
    point, stock = await _of_food_point(commands.food_point_with_stock(point_id, ctx.unit_of_work()))
    return JsonResponse(_with_stock(point, stock))


@router.patch("/api/v1/admin/food-points/{food_point_id}", response_model=FoodPointOut)
async def patch_food_point(food_point_id: str, body: FoodPointPatch, _: Admin, ctx: Context) -> JsonResponse:
    """Change any of the fields; lowering the capacity below the orders in progress keeps them, but no
    new order is given to the point until it has a free slot again."""
    point_id = _food_point_id(food_point_id)
    changes = body.model_dump(exclude_unset=True)
    nulls = sorted(name for name, value in changes.items() if value is None)
    if nulls:
        raise ApiError(422, "invalid_field", f"{', '.join(nulls)}: may not be null")
    if "name" in changes:
        changes["name"] = _clean_text("name", changes["name"], MAX_NAME_LENGTH)
    if "address" in changes:
        changes["address"] = _clean_text("address", changes["address"], MAX_ADDRESS_LENGTH)
    work = commands.change_food_point(point_id, changes, ctx.unit_of_work(), ctx.wake_assigner)
    point = await _of_food_point(work)
    return JsonResponse(point.public())


@router.put("/api/v1/admin/food-points/{food_point_id}/stock/{ingredient}", response_model=StockOut)
async def put_stock(
    food_point_id: str,
    ingredient: Annotated[Text, Path(max_length=200)],
    body: StockIn,
    _: Admin,
    ctx: Context,
) -> JsonResponse:
    """Set how much of an ingredient the food point has (names are compared without extra spaces)."""
    point_id = _food_point_id(food_point_id)
    name = _clean_text("ingredient", ingredient, MAX_INGREDIENT_LENGTH)
    await _of_food_point(
        commands.put_stock(point_id, name, body.quantity, ctx.unit_of_work(), ctx.wake_assigner)
    )
    return JsonResponse({"food_point_id": str(point_id), "ingredient": name, "quantity": body.quantity})


# --- for other services ----------------------------------------------------------------------------


@router.get("/internal/v1/food-points/{food_point_id}", response_model=FoodPointOut, include_in_schema=False)
async def food_point_for_peers(food_point_id: str, ctx: Context) -> JsonResponse:
    """Where a food point is (delivery uses it as the pickup location); never routed by the gateway."""
    point_id = _food_point_id(food_point_id)
    point = await _of_food_point(commands.food_point(point_id, ctx.unit_of_work()))
    return JsonResponse(point.public())


# --- cooks -----------------------------------------------------------------------------------------


@router.get("/api/v1/kitchen/orders", response_model=CookOrdersOut)
async def cook_orders(cook: Cook, ctx: Context) -> JsonResponse:
    """Orders assigned to the cook's food point and not yet ready, oldest assignment first (including one
    reserved here a moment ago whose confirmation by orders is still on its way)."""
    _, food_point_id = cook
    assignments = await commands.cook_queue(food_point_id, ctx.unit_of_work())
    return JsonResponse({"items": [assignment.for_cook() for assignment in assignments]})


@router.post("/api/v1/kitchen/orders/{order_id}/ready")
async def order_ready(order_id: str, cook: Cook, ctx: Context) -> JsonResponse:
    """The cook's food point has cooked the order: orders makes it `ready`, and the slot is free again."""
    _, food_point_id = cook
    order_uuid = as_uuid(order_id)
    if order_uuid is None:
        raise ApiError(404, "order_not_found", "No such order.")
    try:
        answer = await commands.mark_ready(
            order_uuid, food_point_id, ctx.unit_of_work(), ctx.orders, ctx.wake_assigner
        )
    except NotYourFoodPoint as exc:
        raise ApiError(403, "not_your_food_point", "This order is another food point's.") from exc
    except OrderNotFound as exc:
        raise ApiError(404, "order_not_found", "No such order.") from exc
    except IllegalTransition as exc:
        raise ApiError(409, exc.code, exc.message) from exc
    except OrdersUnavailable as exc:
        raise ApiError(503, "service_unavailable", str(exc)) from exc
    return JsonResponse(answer)
