"""The apps speak the browser's language (Russian or English, with a switch on every page), write money
as that language does, and can be used with the keyboard alone."""

from __future__ import annotations

import re
import uuid

import pytest
from playwright.async_api import Browser, expect

pytestmark = pytest.mark.e2e


async def test_a_russian_browser_gets_russian_words_and_roubles_and_can_switch(
    apps: str, browser: Browser
) -> None:
    context = await browser.new_context(
        base_url=apps, locale="ru-RU", extra_http_headers={"Accept-Language": "ru-RU,ru;q=0.9"}
    )
    context.set_default_timeout(15_000)
    try:
        page = await context.new_page()
        await page.goto("/signup")
        await expect(page.locator("html")).to_have_attribute("lang", "ru")
        await page.get_by_label("Имя пользователя").fill(f"ru{uuid.uuid4().hex[:10]}")
        await page.get_by_label("Эл. почта").fill("ru@example.com")
        await page.get_by_label("Пароль").fill("browser-secret-1")
        await page.get_by_role("button", name="Создать аккаунт").click()
        await page.get_by_role("link", name="Кошелёк").click()
        await page.get_by_label("Сумма").fill("1500,50")
        await page.get_by_role("button", name="Пополнить").click()
        await expect(page.get_by_test_id("wallet-balance")).to_have_text("1\u00a0500,50\u00a0₽")
        await page.get_by_role("button", name="EN").click()
        await expect(page.locator("html")).to_have_attribute("lang", "en")
        await expect(page.get_by_test_id("wallet-balance")).to_have_text("1,500.50 RUB")
        await expect(page.get_by_role("button", name="Top up")).to_be_visible()
    finally:
        await context.close()


async def test_signing_up_and_topping_up_need_only_the_keyboard(apps: str, browser: Browser) -> None:
    context = await browser.new_context(base_url=apps, extra_http_headers={"Accept-Language": "en"})
    context.set_default_timeout(15_000)
    try:
        page = await context.new_page()
        await page.goto("/signup")
        await page.get_by_label("Username").focus()
        await page.keyboard.type(f"kb{uuid.uuid4().hex[:10]}")
        await page.keyboard.press("Tab")
        await page.keyboard.type("kb@example.com")
        await page.keyboard.press("Tab")
        await page.keyboard.type("browser-secret-1")
        await page.keyboard.press("Enter")
        await expect(page.get_by_role("button", name="Sign out")).to_be_visible()
        wallet = page.get_by_role("link", name="Wallet")
        await wallet.focus()
        await page.keyboard.press("Enter")
        await page.wait_for_url(re.compile(r"/wallet$"))
        await page.get_by_label("Amount").focus()
        await page.keyboard.type("25")
        await page.keyboard.press("Enter")
        await expect(page.get_by_test_id("wallet-balance")).to_have_text("25.00 RUB")
    finally:
        await context.close()
