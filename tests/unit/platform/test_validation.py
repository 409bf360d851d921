"""The constrained text type every request model uses, and the strict numbers (issue 15)."""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from sandwich.platform.contract import OrderIn
from sandwich.platform.errors import validation_error_response
from sandwich.platform.validation import Text, control_character, no_control_characters

pytestmark = pytest.mark.unit


class Sample(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: Text = Field(min_length=1, max_length=10)
    note: Text | None = Field(default=None, max_length=5)
    tags: list[Text] = Field(default_factory=list)


@pytest.mark.parametrize("value", ["Tverskaya 1", "Ёлки-палки", "名前", "a b\u00a0c", "emoji 🥪"])
def test_ordinary_text_passes_unchanged(value: str) -> None:
    assert no_control_characters(value) == value
    assert control_character(value) is None


@pytest.mark.parametrize("char", ["\x00", "\x01", "\t", "\n", "\r", "\x1b", "\x7f", "\x85", "\x9f", "\ud800"])
def test_control_characters_and_lone_surrogates_are_refused(char: str) -> None:
    assert control_character(f"ab{char}c") == char
    with pytest.raises(ValueError, match=f"U\\+{ord(char):04X}"):
        no_control_characters(f"ab{char}c")


@pytest.mark.parametrize(
    "body",
    [
        {"name": "a\x00b"},
        {"name": "ok", "note": "\x00"},
        {"name": "ok", "tags": ["fine", "bad\x07"]},
        {"name": "a\ud800"},
    ],
)
def test_a_model_refuses_them_as_an_invalid_field(body: dict[str, Any]) -> None:
    with pytest.raises(ValidationError) as caught:
        Sample.model_validate(body)
    answer = validation_error_response(caught.value.errors())
    assert answer.status_code == 422
    assert b'"invalid_field"' in answer.body


def test_length_limits_still_apply_beside_the_type() -> None:
    assert Sample.model_validate({"name": "x" * 10, "note": None}).name == "x" * 10
    with pytest.raises(ValidationError):
        Sample.model_validate({"name": "x" * 11})
    with pytest.raises(ValidationError):
        Sample.model_validate({"name": ""})
    with pytest.raises(ValidationError):
        Sample.model_validate({"name": "ok", "note": "123456"})


def _order(**delivery: Any) -> dict[str, Any]:
    return {"items": [{"menu_item_id": "x", "quantity": 1}], "delivery": {"address": "A", **delivery}}


@pytest.mark.parametrize("lat", [55, 55.7, -90, 90.0])
def test_coordinates_take_json_numbers_integers_included(lat: float) -> None:
    assert OrderIn.model_validate(_order(lat=lat, lon=37)).delivery.lat == lat


@pytest.mark.parametrize("lat", ["55.7", True, False, None, [55.7]])
def test_coordinates_refuse_strings_and_booleans(lat: Any) -> None:
    with pytest.raises(ValidationError):
        OrderIn.model_validate(_order(lat=lat, lon=37.6))


def test_the_order_body_refuses_control_characters() -> None:
    with pytest.raises(ValidationError):
        OrderIn.model_validate(
            {**_order(lat=55.7, lon=37.6), "delivery": {"address": "A\x00", "lat": 1, "lon": 1}}
        )
    with pytest.raises(ValidationError):
        OrderIn.model_validate(
            {"items": [{"menu_item_id": "\x00", "quantity": 1}], "delivery": _order(lat=1, lon=1)["delivery"]}
        )
