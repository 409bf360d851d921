"""Routes of orders: the seeds' POST /api/v1/order, and the write side's view for order_info."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Header
from pydantic import BaseModel, ConfigDict, Field

from sandwich.platform.app import Service, service_of
from sandwich.platform.errors import ApiError
from sandwich.platform.idempotency import check_key, request_hash
from sandwich.platform.identity import Identity, current_identity
from sandwich.platform.responses import JsonResponse
from sandwich.services.orders import storage
from sandwich.services.orders.commands import OrdersContext, PlaceOrder, place_order
from sandwich.services.orders.domain import MAX_LINES, MAX_QUANTITY, Delivery, UnknownMenuItem
from sandwich.services.orders.ports import PricesUnavailable

router = APIRouter(tags=["orders"])


class LineIn(BaseModel):
    """A line as a client sends it; a `name` or `price` it sends is accepted and ignored (the menu decides)."""

    model_config = ConfigDict(extra="forbid")
    menu_item_id: str = Field(min_length=1, max_length=64)
    quantity: int = Field(ge=1, le=MAX_QUANTITY, strict=True)
    name: str | None = Field(default=None, description="ignored: the menu names the item")
    price: int | None = Field(default=None, description="ignored: the price comes from the menu")


class DeliveryIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    address: str = Field(min_length=1, max_length=300)
    lat: float = Field(ge=-90, le=90)
    lon: float = Field(ge=-180, le=180)


class OrderIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    items: list[LineIn] | None = Field(default=None, min_length=1, max_length=MAX_LINES)
    delivery: DeliveryIn


class LineOut(BaseModel):
    menu_item_id: str
    name: str
    quantity: int
    price: int


class DeliveryOut(BaseModel):
    address: str
    lat: float
    lon: float


class OrderOut(BaseModel):
    order_id: str
    username: str
    status: str
    items: list[LineOut]
    total: int
    delivery: DeliveryOut
    food_point_id: str | None = None
    courier: str | None = None
    payment_operation_id: str | None = None
    created_at: str
    updated_at: str


def context_of(service: Annotated[Service, Depends(service_of)]) -> OrdersContext:
    ctx: OrdersContext = service.state["orders"]
    return ctx


@router.post("/api/v1/order", status_code=201, response_model=OrderOut)
async def create_order(
    body: OrderIn,
    identity: Annotated[Identity, Depends(current_identity)],
    ctx: Annotated[OrdersContext, Depends(context_of)],
    idempotency_key: Annotated[str | None, Header()] = None,
) -> JsonResponse:
    """Create an order priced from the menu and pay for it; 201 with the payment outcome in `status`."""
    if body.items is None:
        raise ApiError(422, "items_required", "Ordering the basket is not available yet: send items.")
    command = PlaceOrder(
        user_id=identity.user_id,
        username=identity.username,
        lines=[(line.menu_item_id, line.quantity) for line in body.items],
        delivery=Delivery(body.delivery.address, body.delivery.lat, body.delivery.lon),
        idempotency_key=check_key(idempotency_key),
        request_hash=request_hash(body.model_dump()),
    )
    try:
        status, answer = await place_order(ctx, command)
    except UnknownMenuItem as exc:
        raise ApiError(422, "unknown_menu_item", f"There is no menu item {exc.menu_item_id}.") from exc
    except PricesUnavailable as exc:
        raise ApiError(503, "service_unavailable", "The menu cannot be read right now, try again.") from exc
    return JsonResponse(answer, status_code=status)


@router.get("/internal/v1/orders/{order_id}", include_in_schema=False)
async def order_for_read_side(
    order_id: str, ctx: Annotated[OrdersContext, Depends(context_of)]
) -> dict[str, Any]:
    """The write side's copy of one order, for order_info when its read model has not caught up."""
    async with ctx.service.database.connect() as conn:
        order = await storage.load_order(conn, order_id)
        if order is None:
            raise ApiError(404, "order_not_found", "No such order.")
        history = await storage.history(conn, order_id)
    return {"order": storage.order_view(order, with_user=True), "history": history}
