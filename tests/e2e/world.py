"""A small world of its own for a fulfilment test: a menu item with ingredients no other test uses,
and food points around a random spot on the map, so tests never take each other's orders."""

from __future__ import annotations

import math
import random
import uuid
from dataclasses import dataclass, field
from typing import Any

from tests.e2e.client import Api


@dataclass
class World:
    admin: Api
    center: tuple[float, float]
    item: dict[str, Any] = field(default_factory=dict)
    ingredients: dict[str, int] = field(default_factory=dict)

    @classmethod
    async def create(cls, admin: Api) -> World:
        center = (random.uniform(-50, 50), random.uniform(-170, 170))
        world = cls(admin, center)
        tag = uuid.uuid4().hex[:8]
        world.ingredients = {f"bread-{tag}": 2, f"cheese-{tag}": 1}
        answer = await admin.post(
            "/api/v1/admin/menu",
            json={
                "name": f"Grilled cheese {tag}",
                "price": 20_000,
                "ingredients": [{"name": n, "quantity": q} for n, q in world.ingredients.items()],
            },
        )
        assert answer.status_code == 201, answer.text
        world.item = answer.json()
        return world

    def spot(self, km_north: float) -> tuple[float, float]:
        return self.center[0] + km_north / 111.0, self.center[1]

    async def food_point(
        self, km_north: float, *, capacity: int = 5, accepts_delivery: bool = True, stock: int | None = 100
    ) -> str:
        lat, lon = self.spot(km_north)
        answer = await self.admin.post(
            "/api/v1/admin/food-points",
            json={
                "name": f"point {uuid.uuid4().hex[:6]}",
                "address": f"{km_north} km north",
                "lat": lat,
                "lon": lon,
                "capacity": capacity,
                "accepts_delivery": accepts_delivery,
            },
        )
        assert answer.status_code == 201, answer.text
        food_point_id: str = answer.json()["food_point_id"]
        if stock is not None:
            for ingredient in self.ingredients:
                await self.stock(food_point_id, ingredient, stock)
        return food_point_id

    async def stock(self, food_point_id: str, ingredient: str, quantity: int) -> None:
        answer = await self.admin.put(
            f"/api/v1/admin/food-points/{food_point_id}/stock/{ingredient}", json={"quantity": quantity}
        )
        assert answer.status_code == 200, answer.text

    async def staff(self, role: str, food_point_id: str | None = None) -> Api:
        username, password = await self.admin.register()
        body: dict[str, Any] = {"roles": [role]}
        if food_point_id:
            body["food_point_id"] = food_point_id
        granted = await self.admin.put(f"/api/v1/admin/users/{username}/roles", json=body)
        assert granted.status_code == 200, granted.text
        return self.admin.as_user(await self.admin.login(username, password), username)

    async def order(self, customer: Api, quantity: int = 1, km_north: float = 0.0) -> dict[str, Any]:
        lat, lon = self.spot(km_north)
        answer = await customer.post(
            "/api/v1/order",
            json={
                "items": [{"menu_item_id": self.item["id"], "quantity": quantity}],
                "delivery": {"address": "the test's own street", "lat": lat, "lon": lon},
            },
            headers={"Idempotency-Key": uuid.uuid4().hex},
        )
        return await customer.settled(answer)


def km_between(a: tuple[float, float], b: tuple[float, float]) -> float:
    lat1, lon1, lat2, lon2 = map(math.radians, (*a, *b))
    h = math.sin((lat2 - lat1) / 2) ** 2 + math.cos(lat1) * math.cos(lat2) * math.sin((lon2 - lon1) / 2) ** 2
    return 2 * 6371.0 * math.asin(math.sqrt(h))
