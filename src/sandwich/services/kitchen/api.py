"""Routes of kitchen: food points and stock (admin), the cooks' orders and their "ready", and the food
point lookup for delivery.

Order events reach the consumer registered in app.py: from the broker, or in the sync flow pushed to
the platform's `POST /internal/v1/events/order.events` (platform/app.py, `events_router`).
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Annotated, Any

import structlog
from fastapi import APIRouter, Depends, Path, Request
from pydantic import BaseModel, ConfigDict, Field, StrictBool

from sandwich.platform.app import Service, service_of
from sandwich.platform.errors import ApiError
from sandwich.platform.http import ServiceUnavailable
from sandwich.platform.identity import Identity, admin_identity, identity_of, require_role
from sandwich.platform.responses import JsonResponse
from sandwich.platform.validation import Text
from sandwich.services.kitchen import storage
from sandwich.services.kitchen.assigner import Assigner
from sandwich.services.kitchen.domain import (
    MAX_ADDRESS_LENGTH,
    MAX_CAPACITY,
    MAX_INGREDIENT_LENGTH,
    MAX_NAME_LENGTH,
    MAX_STOCK,
    AssignmentState,
    FoodPoint,
    ReadyVerdict,
    clean_name,
    ready_verdict,
)
from sandwich.services.kitchen.ports import OrdersPort

log = structlog.get_logger("kitchen")

router = APIRouter(tags=["kitchen"])


@dataclass
class KitchenContext:
    service: Service
    assigner: Assigner
    orders: OrdersPort


async def context_of(service: Annotated[Service, Depends(service_of)]) -> KitchenContext:
    ctx: KitchenContext = service.state["kitchen"]
    return ctx


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
    parsed = storage.as_uuid(raw)
    if parsed is None:
        raise _food_point_not_found()
    return parsed


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
    point = storage.as_uuid(identity.food_point_id or "")
    if point is None:
        raise ApiError(403, "no_food_point", "This cook is not bound to a food point.")
    return identity, str(point)


# --- administration --------------------------------------------------------------------------------


@router.post("/api/v1/admin/food-points", status_code=201, response_model=FoodPointOut)
async def create_food_point(
    body: FoodPointIn,
    _: Annotated[Identity, Depends(admin_identity)],
    ctx: Annotated[KitchenContext, Depends(context_of)],
) -> JsonResponse:
    async with ctx.service.database.begin() as conn:
        point = await storage.insert_food_point(
            conn,
            name=_clean_text("name", body.name, MAX_NAME_LENGTH),
            address=_clean_text("address", body.address, MAX_ADDRESS_LENGTH),
            lat=body.lat,
            lon=body.lon,
            capacity=body.capacity,
            accepts_delivery=body.accepts_delivery,
        )
        storage.notify_assigner(conn)
    ctx.assigner.wake()
    return JsonResponse(point.public(), status_code=201)


@router.get("/api/v1/admin/food-points", response_model=FoodPointsOut)
async def list_food_points(
    _: Annotated[Identity, Depends(admin_identity)], ctx: Annotated[KitchenContext, Depends(context_of)]
) -> JsonResponse:
    async with ctx.service.database.connect() as conn:
        points = await storage.all_food_points(conn)
        stock = await storage.stock_of(conn)
    return JsonResponse(
        {"items": [_with_stock(point, stock.get(point.food_point_id, {})) for point in points]}
    )


@router.get("/api/v1/admin/food-points/{food_point_id}", response_model=FoodPointWithStockOut)
async def get_food_point(
    food_point_id: str,
    _: Annotated[Identity, Depends(admin_identity)],
    ctx: Annotated[KitchenContext, Depends(context_of)],
) -> JsonResponse:
    point_id = _food_point_id(food_point_id)
    async with ctx.service.database.connect() as conn:
        point = await storage.food_point(conn, point_id)
        stock = await storage.stock_of(conn, point_id)
    if point is None:
        raise _food_point_not_found()
    return JsonResponse(_with_stock(point, stock.get(point.food_point_id, {})))


@router.patch("/api/v1/admin/food-points/{food_point_id}", response_model=FoodPointOut)
async def patch_food_point(
    food_point_id: str,
    body: FoodPointPatch,
    _: Annotated[Identity, Depends(admin_identity)],
    ctx: Annotated[KitchenContext, Depends(context_of)],
) -> JsonResponse:
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
    async with ctx.service.database.begin() as conn:
        point = await storage.update_food_point(conn, point_id, changes)
        if point is not None:
            storage.notify_assigner(conn)
    if point is None:
        raise _food_point_not_found()
    ctx.assigner.wake()
    return JsonResponse(point.public())


@router.put("/api/v1/admin/food-points/{food_point_id}/stock/{ingredient}", response_model=StockOut)
async def put_stock(
    food_point_id: str,
    ingredient: Annotated[Text, Path(max_length=200)],
    body: StockIn,
    _: Annotated[Identity, Depends(admin_identity)],
    ctx: Annotated[KitchenContext, Depends(context_of)],
) -> JsonResponse:
    """Set how much of an ingredient the food point has (names are compared without extra spaces)."""
    point_id = _food_point_id(food_point_id)
    name = _clean_text("ingredient", ingredient, MAX_INGREDIENT_LENGTH)
    async with ctx.service.database.begin() as conn:
        stored = await storage.put_stock(conn, point_id, name, body.quantity)
        if stored:
            storage.notify_assigner(conn)
    if not stored:
        raise _food_point_not_found()
    ctx.assigner.wake()
    return JsonResponse({"food_point_id": str(point_id), "ingredient": name, "quantity": body.quantity})


# --- for other services ----------------------------------------------------------------------------


@router.get("/internal/v1/food-points/{food_point_id}", response_model=FoodPointOut, include_in_schema=False)
async def food_point_for_peers(
    food_point_id: str, ctx: Annotated[KitchenContext, Depends(context_of)]
) -> JsonResponse:
    """Where a food point is (delivery uses it as the pickup location); never routed by the gateway."""
    point_id = _food_point_id(food_point_id)
    async with ctx.service.database.connect() as conn:
        point = await storage.food_point(conn, point_id)
    if point is None:
        raise _food_point_not_found()
    return JsonResponse(point.public())


# --- cooks -----------------------------------------------------------------------------------------


@router.get("/api/v1/kitchen/orders", response_model=CookOrdersOut)
async def cook_orders(
    cook: Annotated[tuple[Identity, str], Depends(cook_food_point)],
    ctx: Annotated[KitchenContext, Depends(context_of)],
) -> JsonResponse:
    """Orders assigned to the cook's food point and not yet ready, oldest assignment first (including one
    reserved here a moment ago whose confirmation by orders is still on its way)."""
    _, food_point_id = cook
    async with ctx.service.database.connect() as conn:
        assignments = await storage.assignments_at(conn, uuid.UUID(food_point_id))
    return JsonResponse({"items": [assignment.for_cook() for assignment in assignments]})


@router.post("/api/v1/kitchen/orders/{order_id}/ready")
async def order_ready(
    order_id: str,
    cook: Annotated[tuple[Identity, str], Depends(cook_food_point)],
    ctx: Annotated[KitchenContext, Depends(context_of)],
) -> JsonResponse:
    """The cook's food point has cooked the order: orders makes it `ready`, and the slot is free again."""
    _, food_point_id = cook
    order_uuid = storage.as_uuid(order_id)
    if order_uuid is None:
        raise ApiError(404, "order_not_found", "No such order.")
    order_key = str(order_uuid)
    async with ctx.service.database.connect() as conn:
        assignment = await storage.assignment(conn, order_uuid)
    verdict = ready_verdict(assignment, food_point_id)
    if verdict is ReadyVerdict.NOT_YOURS:
        raise ApiError(403, "not_your_food_point", "This order is another food point's.")
    if verdict is ReadyVerdict.NOT_ASSIGNED:
        state = (
            "is already ready"
            if assignment and assignment.state is AssignmentState.READY
            else "is not assigned"
        )
        raise ApiError(409, "illegal_transition", f"The order {state}: it cannot become ready.")
    try:
        answer = await ctx.orders.ready(order_key, food_point_id)
    except ServiceUnavailable as exc:
        raise ApiError(503, "service_unavailable", "Orders cannot be reached right now, try again.") from exc
    if answer.status == 200:
        async with ctx.service.database.begin() as conn:
            freed = await storage.mark_ready(conn, order_key)
            if freed is not None:
                storage.notify_assigner(conn)
        if freed is not None:
            ctx.assigner.wake()
        return JsonResponse(answer.body)
    if answer.status == 403:
        raise ApiError(403, "not_your_food_point", "This order is another food point's.")
    if answer.status == 404:
        raise ApiError(404, "order_not_found", "No such order.")
    if answer.status == 409:
        await _reconcile_refused(ctx, order_key)
        code, message = _peer_error(answer.body, "illegal_transition", "The order cannot become ready.")
        raise ApiError(409, code, message)
    log.error("ready_unexpected_answer", order_id=order_key, status=answer.status, body=answer.body)
    raise ApiError(503, "service_unavailable", "Orders gave an unexpected answer, try again.")


def _peer_error(body: Any, code: str, message: str) -> tuple[str, str]:
    if isinstance(body, dict) and isinstance(body.get("error"), dict):
        error = body["error"]
        return str(error.get("code") or code), str(error.get("message") or message)
    return code, message


async def _reconcile_refused(ctx: KitchenContext, order_id: str) -> None:
    """orders refused "ready": if the order was cancelled meanwhile (a cancellation this kitchen has not
    heard of, e.g. in the sync flow), give its slot and ingredients back now."""
    try:
        answer = await ctx.orders.get(order_id)
    except ServiceUnavailable:
        return
    if answer.status != 200 or not isinstance(answer.body, dict):
        return
    order = answer.body.get("order")
    status = order.get("status") if isinstance(order, dict) else None
    async with ctx.service.database.begin() as conn:
        if status == "cancelled":
            changed = await storage.release(conn, order_id) is not None
        elif status in ("ready", "in_delivery", "completed"):
            changed = await storage.mark_ready(conn, order_id) is not None
        else:
            changed = False
        if changed:
            storage.notify_assigner(conn)
    if changed:
        ctx.assigner.wake()
