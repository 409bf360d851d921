"""The operations console in a real browser: an admin adds a food point and its stock, a menu item
and a cook, through forms only; what the API refuses shows beside the form with its code."""

from __future__ import annotations

import re
import uuid
from pathlib import Path

import pytest
from playwright.async_api import Browser, expect

from sandwich.platform.settings import SERVICES
from tests.e2e.apps.conftest import at_both_widths, new_context
from tests.e2e.apps.test_journey import _sign_in
from tests.e2e.client import Api
from tests.e2e.conftest import ADMIN_PASSWORD, ADMIN_USERNAME

pytestmark = pytest.mark.e2e


async def test_an_admin_runs_food_points_stock_menu_and_people_from_the_console(
    apps: str,
    admin: Api,
    browser: Browser,
    screenshots: Path,
    platform_flow: str,
    sandwich_item: dict[str, object],
) -> None:
    tag = uuid.uuid4().hex[:8]
    cook, _ = await admin.register()
    context = await new_context(browser, apps)
    try:
        page = await context.new_page()
        await _sign_in(page, ADMIN_USERNAME, ADMIN_PASSWORD)
        await page.wait_for_url(re.compile(r"/ops/food-points$"))

        await page.get_by_label("Name").fill(f"Point {tag}")
        await page.get_by_label("Address").fill("Console Street, 1")
        await page.get_by_label("Latitude").fill("95.5")  # no such latitude: the API refuses it
        await page.get_by_label("Longitude").fill("37.60")
        await page.get_by_label("Capacity").fill("4")
        await page.get_by_role("button", name="Save").click()
        refused = page.locator("form [data-code]")
        await expect(refused).to_be_visible()
        await expect(refused).not_to_have_text("")
        await expect(page.get_by_label("Name")).to_have_value(f"Point {tag}")  # what was typed is kept
        await page.get_by_label("Latitude").fill("55.70")
        await page.get_by_label("Accepts delivery").check()
        await page.get_by_role("button", name="Save").click()
        await page.wait_for_url(re.compile(r"/ops/food-points/[0-9a-f-]{36}$"))
        food_point_id = page.url.rsplit("/", 1)[1]
        await expect(page.get_by_label("Capacity")).to_have_value("4")

        adding = page.get_by_role("listitem", name="Add stock")
        await adding.get_by_label("Ingredient").fill(f"bread-{tag}")
        await adding.get_by_label("Quantity").fill("12")
        await adding.get_by_role("button", name="Save").click()
        line = page.get_by_role("listitem", name=f"bread-{tag}")
        await expect(line.get_by_label("Quantity")).to_have_value("12")
        await at_both_widths(page, screenshots, "operations-food-point")

        await page.goto("/ops/menu")
        await page.get_by_label("Name").fill(f"Console club {tag}")
        await page.get_by_label("Price").fill("349.50")
        await page.get_by_label("Ingredients").fill(f"bread-{tag} x 2")
        await page.get_by_role("button", name="Save").click()
        await expect(page.get_by_role("row", name=re.compile(f"Console club {tag}"))).to_contain_text(
            "349.50 RUB"
        )

        await page.goto("/ops/people")
        await page.get_by_label("Username").fill(cook)
        await page.get_by_label("cook").check()
        await page.get_by_label("Food point").select_option(food_point_id)
        await page.get_by_role("button", name="Save").click()
        await expect(page.get_by_role("status")).to_contain_text(cook)
        await page.get_by_label("Search people").fill(cook)
        await page.get_by_label("Only with role").select_option("cook")
        await page.get_by_role("button", name="Find").click()
        listed = page.get_by_role("row", name=re.compile(cook))
        await expect(listed).to_contain_text("cook")
        await expect(listed).to_contain_text(f"Point {tag}")  # the cook's food point, by its name
        await listed.get_by_role("link", name=cook).click()  # the form starts from the roles held
        await expect(page.get_by_label("Username")).to_have_value(cook)
        await expect(page.get_by_label("cook")).to_be_checked()
        await expect(page.get_by_label("Food point")).to_have_value(food_point_id)

        customer = await admin.new_customer(deposit=100_000)
        placed = await customer.place_order([{"menu_item_id": sandwich_item["id"], "quantity": 1}])
        order = await customer.settled(placed)
        await page.goto("/ops/orders")
        await page.get_by_label("Order id").fill(order["order_id"])
        await page.get_by_role("button", name="Find").click()
        await expect(page.get_by_test_id("order-status")).not_to_have_text("")
        first = page.locator("tbody tr").first
        await expect(first).to_contain_text(re.compile("[0-9a-f]{12}"))  # the trace of the order's request

        await page.goto("/ops/system")
        await expect(page.get_by_test_id("system-flow")).to_have_text(platform_flow)
        await expect(page.get_by_test_id("system-broker")).to_have_text("nats")
        for service in SERVICES:
            row = page.locator(f"tr[data-service={service}]")
            await expect(row).to_have_attribute("data-live", "yes")
            await expect(row).to_have_attribute("data-ready", "yes")
        await expect(page.locator("tr[data-status=paid]")).to_be_visible()
        await at_both_widths(page, screenshots, "operations-system")
    finally:
        await context.close()
    menu = await admin.get("/api/v1/menu")
    assert any(
        item["name"] == f"Console club {tag}" and item["price"] == 34_950 for item in menu.json()["items"]
    )
