"""What a person sees when something is refused: the API's reason next to the control, in words,
with its code; someone else's order is a not-found page; a second click on `Place order` makes one
order and one charge; a page opened after signing out asks to sign in."""

from __future__ import annotations

import re
import uuid

import pytest
from playwright.async_api import Browser, Page, expect

from tests.e2e.apps.conftest import new_context
from tests.e2e.apps.test_journey import _sign_in, _sign_up
from tests.e2e.client import Api
from tests.e2e.world import World

pytestmark = pytest.mark.e2e

PASSWORD = "browser-secret-1"


def _name() -> str:
    return f"web{uuid.uuid4().hex[:10]}"


async def _order_from_basket(page: Page, item_name: str, lat: float, lon: float) -> None:
    await page.get_by_role("link", name="Menu").click()
    await page.get_by_role("article", name=item_name).get_by_role("button", name="Add to basket").click()
    await page.get_by_role("link", name="Basket").click()
    await page.get_by_label("Latitude").fill(str(lat))
    await page.get_by_label("Longitude").fill(str(lon))


async def test_a_wrong_password_and_a_taken_username_are_said_in_words(
    apps: str, api: Api, browser: Browser
) -> None:
    taken, _ = await api.register()
    context = await new_context(browser, apps)
    try:
        page = await context.new_page()
        await _sign_in(page, taken, "not-the-password-1")
        refused = page.locator("[data-code=invalid_credentials]")
        await expect(refused).to_be_visible()
        await expect(refused).not_to_have_text("")
        await page.goto("/signup")
        await page.get_by_label("Username").fill(taken)
        await page.get_by_label("Email").fill("someone@example.com")
        await page.get_by_label("Password").fill(PASSWORD)
        await page.get_by_role("button", name="Create account").click()
        await expect(page.locator("[data-code=username_taken]")).to_be_visible()
    finally:
        await context.close()


async def test_a_top_up_of_nothing_shows_the_apis_reason_beside_the_amount(
    apps: str, api: Api, browser: Browser
) -> None:
    context = await new_context(browser, apps)
    try:
        page = await context.new_page()
        await _sign_up(page, _name(), PASSWORD)
        await page.get_by_role("link", name="Wallet").click()
        await page.get_by_label("Amount").fill("0")
        await page.get_by_role("button", name="Top up").click()
        customer = api.as_user(await api.login(*(await api.register())))
        expected = await customer.post(
            "/api/v1/billing/account/deposit",
            json={"amount": 0},
            headers={"Idempotency-Key": uuid.uuid4().hex},
        )
        code = expected.json()["error"]["code"]
        reason = page.locator("form").filter(has=page.get_by_label("Amount")).locator(f"[data-code={code}]")
        await expect(reason).to_be_visible()
        await expect(reason).not_to_have_text("")
        await expect(page.get_by_test_id("wallet-balance")).to_have_text("0.00 RUB")
    finally:
        await context.close()


async def test_too_little_money_says_so_and_someone_elses_order_is_not_found(
    apps: str, admin: Api, browser: Browser, platform_flow: str
) -> None:
    world = await World.create(admin)
    lat, lon = world.spot(0)
    context = await new_context(browser, apps)
    other = await new_context(browser, apps)
    try:
        page = await context.new_page()
        await _sign_up(page, _name(), PASSWORD)
        await _order_from_basket(page, str(world.item["name"]), lat, lon)
        await page.get_by_role("button", name="Place order").click()
        if platform_flow == "async":  # 202 created: the verdict arrives on the order page, live
            await page.wait_for_url(re.compile(r"/orders/"))
            await expect(page.get_by_test_id("order-status")).to_have_attribute(
                "data-status", "payment_failed"
            )
            order_url = page.url.split("?", 1)[0]
        else:
            reason = page.locator("[data-code=payment_failed]")
            await expect(reason).to_be_visible()
            await expect(reason).to_contain_text("Not enough money")
            order_url = str(await page.locator("a[href^='/orders/']").last.get_attribute("href"))
        stranger = await other.new_page()
        await _sign_up(stranger, _name(), PASSWORD)
        answer = await stranger.goto(order_url)
        assert answer is not None and answer.status == 404
        await expect(stranger.locator("[data-code=not_found]")).to_be_visible()
    finally:
        await context.close()
        await other.close()


async def test_a_second_click_on_place_order_makes_one_order_and_one_charge(
    apps: str, admin: Api, browser: Browser
) -> None:
    world = await World.create(admin)
    lat, lon = world.spot(0)
    context = await new_context(browser, apps)
    try:
        page = await context.new_page()
        await _sign_up(page, _name(), PASSWORD)
        await page.get_by_role("link", name="Wallet").click()
        await page.get_by_label("Amount").fill("1000")
        await page.get_by_role("button", name="Top up").click()
        await expect(page.get_by_test_id("wallet-balance")).to_have_text("1,000.00 RUB")
        await _order_from_basket(page, str(world.item["name"]), lat, lon)
        await page.get_by_role("button", name="Place order").dblclick()
        await page.wait_for_url(re.compile(r"/orders/"))
        await page.get_by_role("link", name="Orders").click()
        await expect(page.locator("main li")).to_have_count(1)
        await page.get_by_role("link", name="Wallet").click()
        await expect(page.get_by_test_id("wallet-balance")).to_have_text("800.00 RUB")
        await expect(page.get_by_role("row").filter(has_text="payment")).to_have_count(1)
    finally:
        await context.close()


async def test_a_page_opened_after_signing_out_asks_to_sign_in(apps: str, browser: Browser) -> None:
    context = await new_context(browser, apps)
    try:
        page = await context.new_page()
        await _sign_up(page, _name(), PASSWORD)
        await page.get_by_role("button", name="Sign out").click()
        for path in ("/orders", "/wallet", "/menu"):
            await page.goto(path)
            await expect(page.get_by_role("button", name="Sign in")).to_be_visible()
            assert page.url.endswith("/signin")
    finally:
        await context.close()
