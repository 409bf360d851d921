"""Shapes of the public contract (API.md) that several services answer with, declared once.

The order appears in the answers of orders (write side), order_info (read side), kitchen and
delivery; its shape is the contract's, not any one service's, so it lives here. So does the body of
POST /api/v1/order: orders reads it in the HTTP flows, and in `async` (ADR 002) the gateway validates
it before it publishes the request, so both judge a body by the same rules.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

from sandwich.platform.validation import Text

MAX_QUANTITY = 50
MAX_LINES = 20


class LineIn(BaseModel):
    """A line as a client sends it; a `name` or `price` it sends is accepted and ignored (the menu decides)."""

    model_config = ConfigDict(extra="forbid")
    menu_item_id: Text = Field(min_length=1, max_length=64)
    quantity: int = Field(ge=1, le=MAX_QUANTITY, strict=True)
    name: str | None = Field(default=None, description="ignored: the menu names the item")
    price: int | None = Field(default=None, description="ignored: the price comes from the menu")


class DeliveryIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    address: Text = Field(min_length=1, max_length=300)
    lat: float = Field(ge=-90, le=90, strict=True)
    lon: float = Field(ge=-180, le=180, strict=True)


class OrderIn(BaseModel):
    """The body of POST /api/v1/order: lines, or none to order the basket, and where to deliver."""

    model_config = ConfigDict(extra="forbid")
    items: list[LineIn] | None = Field(default=None, min_length=1, max_length=MAX_LINES)
    delivery: DeliveryIn


class OrderLineOut(BaseModel):
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
    items: list[OrderLineOut]
    total: int
    delivery: DeliveryOut
    food_point_id: str | None = None
    courier: str | None = None
    payment_operation_id: str | None = None
    reason: str | None = None
    created_at: str
    updated_at: str


class RequestedLineOut(BaseModel):
    menu_item_id: str
    quantity: int


class OrderAcceptedOut(BaseModel):
    """The async flow's 202 (ADR 002): the request is on `orders.create`, not yet priced or stored.

    `items` are the lines as requested (empty when the basket is ordered); orders prices them from
    the menu. GET /api/v1/orders/{order_id} shows the order once orders has taken the request.
    """

    order_id: str
    username: str
    status: str
    items: list[RequestedLineOut]
    delivery: DeliveryOut
    created_at: str
    updated_at: str
