"""The operations console (admin): food points and their stock, the menu, people and their roles.

Each form is one call of the gateway's admin API; what the API refuses is shown beside the form, in
words, with its code. `System` shows every service's health and the live figures the platform
measures, from the gateway's overview (which reads the services' own health endpoints and metrics),
refreshed every few seconds.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends
from fastapi.responses import Response

from sandwich.services.web.gateway_client import Answer
from sandwich.services.web.i18n import roubles_to_kopecks
from sandwich.services.web.page import Page, integer, number, page_of, safe_id

router = APIRouter(include_in_schema=False)
PageDep = Annotated[Page, Depends(page_of)]

ROLES = ("customer", "cook", "courier", "admin")


def _admin_only(page: Page) -> Response | None:
    if page.session is None:
        return page.redirect("/signin")
    if "admin" not in page.session.roles:
        return page.render("not_found.html", status=404)
    return None


def _food_point_body(form: dict[str, str]) -> dict[str, Any]:
    return {
        "name": form.get("name", ""),
        "address": form.get("address", ""),
        "lat": number(form.get("lat")),
        "lon": number(form.get("lon")),
        "capacity": integer(form.get("capacity")),
        "accepts_delivery": form.get("accepts_delivery") == "on",
    }


@router.get("/ops")
async def console(page: PageDep) -> Response:
    return _admin_only(page) or page.redirect("/ops/food-points")


async def _food_points_page(page: Page, status: int = 200, **values: Any) -> Response:
    answer = await page.api("GET", "/api/v1/admin/food-points")
    return page.render("ops_food_points.html", status=status, points=answer.items, **values)


@router.get("/ops/food-points")
async def food_points(page: PageDep) -> Response:
    return _admin_only(page) or await _food_points_page(page)


@router.post("/ops/food-points")
async def create_food_point(page: PageDep) -> Response:
    if (refused := _admin_only(page)) is not None:
        return refused
    body = _food_point_body(page.form)
    answer = await page.api("POST", "/api/v1/admin/food-points", json=body)
    if not answer.ok:
        return await _food_points_page(page, status=answer.status, error=answer, typed=page.form)
    return page.redirect(f"/ops/food-points/{answer.body['food_point_id']}")


async def _food_point_page(page: Page, food_point_id: str, status: int = 200, **values: Any) -> Response:
    # The list carries every food point with its stock: the one asked for is picked from it.
    answer = await page.api("GET", "/api/v1/admin/food-points")
    found = [p for p in answer.items if p.get("food_point_id") == food_point_id]
    if not found:
        return page.render("not_found.html", status=404)
    return page.render("ops_food_point.html", status=status, point=found[0], **values)


@router.get("/ops/food-points/{food_point_id}")
async def food_point(food_point_id: str, page: PageDep) -> Response:
    return _admin_only(page) or await _food_point_page(page, food_point_id)


@router.post("/ops/food-points/{food_point_id}")
async def change_food_point(food_point_id: str, page: PageDep) -> Response:
    if (refused := _admin_only(page)) is not None:
        return refused
    answer = await page.api(
        "PATCH",
        f"/api/v1/admin/food-points/{safe_id(food_point_id)}",
        json=_food_point_body(page.form),
    )
    if not answer.ok:
        return await _food_point_page(page, food_point_id, status=answer.status, error=answer)
    return page.redirect(f"/ops/food-points/{food_point_id}")


@router.post("/ops/food-points/{food_point_id}/stock")
async def set_stock(food_point_id: str, page: PageDep) -> Response:
    if (refused := _admin_only(page)) is not None:
        return refused
    ingredient = page.form.get("ingredient", "").strip()
    answer: Answer
    if not ingredient:
        answer = Answer(422, {"error": {"code": "invalid_field", "message": page.words["ingredient_needed"]}})
    else:
        answer = await page.api(
            "PUT",
            f"/api/v1/admin/food-points/{safe_id(food_point_id)}/stock/{ingredient}",
            json={"quantity": integer(page.form.get("quantity"))},
        )
    if not answer.ok:
        return await _food_point_page(
            page, food_point_id, status=answer.status, stock_error=answer, stock_ingredient=ingredient
        )
    return page.redirect(f"/ops/food-points/{food_point_id}")


async def _menu_page(page: Page, status: int = 200, **values: Any) -> Response:
    answer = await page.api("GET", "/api/v1/menu")
    return page.render("ops_menu.html", status=status, items=answer.items, **values)


@router.get("/ops/menu")
async def menu(page: PageDep) -> Response:
    return _admin_only(page) or await _menu_page(page)


def parse_ingredients(text: str) -> list[dict[str, Any]]:
    """One ingredient a line, `name` or `name x quantity` (also the multiplication sign or `*`)."""
    ingredients: list[dict[str, Any]] = []
    for line in text.splitlines():
        line = line.strip()
        if not line:
            continue
        for mark in (" \u00d7 ", " x ", " * "):
            if mark in line:
                name, _, quantity = line.rpartition(mark)
                ingredients.append({"name": name.strip(), "quantity": integer(quantity)})
                break
        else:
            ingredients.append({"name": line, "quantity": 1})
    return ingredients


@router.post("/ops/menu")
async def create_menu_item(page: PageDep) -> Response:
    if (refused := _admin_only(page)) is not None:
        return refused
    typed_price = page.form.get("price", "")
    price = roubles_to_kopecks(typed_price)
    body = {
        "name": page.form.get("name", ""),
        "price": price if price is not None else typed_price,
        "ingredients": parse_ingredients(page.form.get("ingredients", "")),
    }
    answer = await page.api("POST", "/api/v1/admin/menu", json=body)
    if not answer.ok:
        return await _menu_page(page, status=answer.status, error=answer, typed=page.form)
    return page.redirect("/ops/menu")


LIST_FILTERS = ("role", "q", "after")


async def _people_page(page: Page, status: int = 200, **values: Any) -> Response:
    """The form beside the list of people: `?role=` and `?q=` narrow the list, `?after=` pages it,
    and `?username=` fills the form with that person's roles, so changing them starts from what is."""
    asked = page.request.query_params
    filters = {name: asked[name] for name in LIST_FILTERS if asked.get(name)}
    listed = await page.api("GET", "/api/v1/admin/users", params=filters)
    points = await page.api("GET", "/api/v1/admin/food-points")
    names = {point["food_point_id"]: point["name"] for point in points.items}
    if "typed" not in values and asked.get("username"):
        values["typed"] = await _roles_typed(page, asked["username"])
    return page.render(
        "ops_people.html",
        status=status,
        roles=ROLES,
        points=points.items,
        point_names=names,
        people=listed.items,
        list_error=None if listed.ok else listed,
        filters=filters,
        next_after=listed.body.get("next_after") if listed.ok else None,
        **values,
    )


async def _roles_typed(page: Page, username: str) -> dict[str, str]:
    """The form's fields as they would be typed for `username`'s present roles."""
    typed = {"username": username}
    found = await page.api("GET", "/api/v1/admin/users", params={"q": username, "limit": "200"})
    person = next((p for p in found.items if p["username"].lower() == username.lower()), None)
    if person is not None:
        typed["username"] = person["username"]
        typed.update({f"role_{role}": "on" for role in person["roles"]})
        typed["food_point_id"] = person.get("food_point_id") or ""
    return typed


@router.get("/ops/people")
async def people(page: PageDep) -> Response:
    return _admin_only(page) or await _people_page(page)


@router.post("/ops/people")
async def set_roles(page: PageDep) -> Response:
    if (refused := _admin_only(page)) is not None:
        return refused
    username = page.form.get("username", "").strip()
    roles = [role for role in ROLES if page.form.get(f"role_{role}") == "on"]
    body: dict[str, Any] = {"roles": roles}
    if page.form.get("food_point_id"):
        body["food_point_id"] = page.form["food_point_id"]
    answer = await page.api(
        "PUT",
        f"/api/v1/admin/users/{username or '-'}/roles",
        json=body,
    )
    if not answer.ok:
        return await _people_page(page, status=answer.status, error=answer, typed=page.form)
    return await _people_page(page, saved=answer.body)


@router.get("/ops/orders")
async def order_lookup(page: PageDep) -> Response:
    """Any order by its id, with its history; each status links to the trace of the request that
    made it, in the trace backend (SANDWICH_TRACES_URL), when one is configured."""
    if (refused := _admin_only(page)) is not None:
        return refused
    order_id = page.request.query_params.get("order_id", "").strip()
    if not order_id:
        return page.render("ops_orders.html", order=None, typed="")
    answer = await page.api("GET", f"/api/v1/orders/{safe_id(order_id)}")
    if not answer.ok:
        return page.render("ops_orders.html", status=answer.status, order=None, error=answer, typed=order_id)
    traces = page.context.traces_url.rstrip("/")
    return page.render("ops_orders.html", order=answer.body, typed=order_id, traces=traces)


@router.get("/ops/system")
async def system(page: PageDep) -> Response:
    if (refused := _admin_only(page)) is not None:
        return refused
    answer = await page.api("GET", "/api/v1/admin/system")
    template = "ops_system_body.html" if page.request.query_params.get("fragment") else "ops_system.html"
    return page.render(
        template,
        status=200 if answer.ok else answer.status,
        overview=answer.body or {},
        error=None if answer.ok else answer,
    )
