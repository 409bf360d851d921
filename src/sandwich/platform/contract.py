"""Shapes of the public contract (API.md) that several services answer with, declared once.

The order appears in the answers of orders (write side), order_info (read side), kitchen and
delivery; its shape is the contract's, not any one service's, so it lives here.
"""

from __future__ import annotations

from pydantic import BaseModel


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
    created_at: str
    updated_at: str
