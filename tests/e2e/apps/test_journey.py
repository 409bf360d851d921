"""ADR 000 done by people in browsers: in three browser contexts at once a customer signs up, tops up,
fills the basket, places an order and watches it move on, without reloading, while a cook marks it
ready and a courier takes and delivers it in their own apps."""

from __future__ import annotations

import re
import uuid
from pathlib import Path

import pytest
from playwright.async_api import Browser, Page, expect

from tests.e2e.apps.conftest import at_both_widths, new_context
from tests.e2e.client import Api
from tests.e2e.world import World

pytestmark = pytest.mark.e2e

STEPS = ["paid", "assigned", "ready", "in_delivery", "completed"]


async def _staff(admin: Api, role: str, food_point_id: str | None = None) -> tuple[str, str]:
    username, password = await admin.register()
    body: dict[str, object] = {"roles": [role]}
    if food_point_id:
        body["food_point_id"] = food_point_id
    granted = await admin.put(f"/api/v1/admin/users/{username}/roles", json=body)
    assert granted.status_code == 200, granted.text
    return username, password


async def _sign_in(page: Page, username: str, password: str) -> None:
    await page.goto("/signin")
    await page.get_by_label("Username").fill(username)
    await page.get_by_label("Password").fill(password)
    await page.get_by_role("button", name="Sign in").click()


async def _sign_up(page: Page, username: str, password: str) -> None:
    await page.goto("/signup")
    await page.get_by_label("Username").fill(username)
    await page.get_by_label("Email").fill(f"{username}@example.com")
    await page.get_by_label("Password").fill(password)
    await page.get_by_role("button", name="Create account").click()
    await expect(page.get_by_role("button", name="Sign out")).to_be_visible()


async def test_a_customer_a_cook_and_a_courier_take_an_order_from_basket_to_door(
    apps: str, admin: Api, browser: Browser, screenshots: Path
) -> None:
    world = await World.create(admin)
    point = await world.food_point(1)
    cook_name, cook_password = await _staff(admin, "cook", point)
    courier_name, courier_password = await _staff(admin, "courier")
    lat, lon = world.spot(0.5)

    customer_ctx = await new_context(browser, apps, width=390)
    cook_ctx, courier_ctx = await new_context(browser, apps), await new_context(browser, apps)
    try:
        customer = await customer_ctx.new_page()
        await _sign_up(customer, f"web{uuid.uuid4().hex[:10]}", "browser-secret-1")

        await customer.get_by_role("link", name="Wallet").click()
        await customer.get_by_label("Amount").fill("1000")
        await customer.get_by_role("button", name="Top up").click()
        await expect(customer.get_by_test_id("wallet-balance")).to_have_text(re.compile(r"1,000\.00 RUB"))
        await expect(customer.get_by_role("table")).to_contain_text("deposit")

        await customer.get_by_role("link", name="Menu").click()
        item = customer.get_by_role("article", name=str(world.item["name"]))
        await item.get_by_role("button", name="Add to basket").click()
        await customer.get_by_role("link", name="Basket").click()
        await expect(customer.get_by_test_id("basket-total")).to_have_text("200.00 RUB")
        await customer.get_by_label("Address").fill("Browser Street, 1")
        await customer.get_by_label("Latitude").fill(str(lat))
        await customer.get_by_label("Longitude").fill(str(lon))
        await customer.get_by_role("button", name="Place order").click()
        await customer.wait_for_url(re.compile(r"/orders/[0-9a-f-]{36}(\?.*)?$"))
        order_id = customer.url.split("?", 1)[0].rsplit("/", 1)[1]
        status = customer.get_by_test_id("order-status")
        await expect(status).to_have_attribute("data-status", re.compile("created|paid|assigned"))
        # Marks the document: a reload would lose it, so the statuses below arrive live.
        await customer.evaluate("window.__stillTheSamePage = true")
        await expect(status).to_have_attribute("data-status", "assigned", timeout=20_000)

        cook = await cook_ctx.new_page()
        await _sign_in(cook, cook_name, cook_password)
        await cook.wait_for_url(re.compile(r"/kitchen$"))
        row = cook.get_by_role("listitem", name=f"Order {order_id[:8]}")
        await row.get_by_role("button", name="Mark ready").click()
        await expect(status).to_have_attribute("data-status", "ready", timeout=20_000)

        courier = await courier_ctx.new_page()
        await _sign_in(courier, courier_name, courier_password)
        await courier.goto(f"/courier?lat={lat}&lon={lon}")
        offer = courier.get_by_role("listitem", name=f"Order {order_id[:8]}")
        await offer.get_by_role("button", name="Take").click()
        await expect(status).to_have_attribute("data-status", "in_delivery", timeout=20_000)
        mine = courier.get_by_role("listitem", name=f"Order {order_id[:8]}")
        await mine.get_by_role("button", name="Delivered").click()
        await expect(status).to_have_attribute("data-status", "completed", timeout=20_000)

        assert await customer.evaluate("window.__stillTheSamePage === true"), "the order page was reloaded"
        history = customer.locator("[data-history] li")
        seen = [await history.nth(i).get_attribute("data-status") for i in range(await history.count())]
        assert [s for s in seen if s in STEPS] == STEPS, seen
        await at_both_widths(customer, screenshots, "customer-order")
        await customer.get_by_role("link", name="Menu").click()
        await at_both_widths(customer, screenshots, "customer-menu")
        await at_both_widths(cook, screenshots, "cook")
        await at_both_widths(courier, screenshots, "courier")
    finally:
        for context in (customer_ctx, cook_ctx, courier_ctx):
            await context.close()
