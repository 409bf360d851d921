"""The apps' language and money: chosen from the switch or the browser, written as each language does."""

from __future__ import annotations

import pytest

from sandwich.services.web.i18n import WORDS, choose, money, roubles_to_kopecks, status_word

pytestmark = pytest.mark.unit


def test_the_switch_wins_then_the_browsers_first_language_we_speak() -> None:
    assert choose("ru", "en-GB,en;q=0.9") == "ru"
    assert choose(None, "ru-RU,ru;q=0.9,en;q=0.8") == "ru"
    assert choose(None, "de-DE,de;q=0.9,ru;q=0.5,en;q=0.7") == "en"
    assert choose(None, "fr") == "en"
    assert choose("xx", None) == "en"


def test_money_is_written_as_each_language_writes_it() -> None:
    assert money(150_000, "en") == "1,500.00 RUB"
    assert money(150_000, "ru") == "1\u00a0500,00\u00a0₽"
    assert money(32_900, "ru") == "329,00\u00a0₽"
    assert money(5, "en") == "0.05 RUB"


@pytest.mark.parametrize(
    ("typed", "kopecks"),
    [
        ("1500", 150_000),
        ("1 500,50", 150_050),
        ("1,500.50", 150_050),
        ("0", 0),
        ("12.5", 1_250),
        ("7,05", 705),
    ],
)
def test_a_typed_amount_in_roubles_becomes_kopecks(typed: str, kopecks: int) -> None:
    assert roubles_to_kopecks(typed) == kopecks


@pytest.mark.parametrize("typed", ["", "abc", "1.234", "-5", "1e3"])
def test_what_is_no_amount_is_left_for_the_api_to_refuse(typed: str) -> None:
    assert roubles_to_kopecks(typed) is None


def test_both_languages_have_every_word_and_russian_statuses() -> None:
    assert set(WORDS["en"]) == set(WORDS["ru"])
    assert status_word("in_delivery", "ru") == "в пути"
    assert status_word("in_delivery", "en") == "in_delivery"
