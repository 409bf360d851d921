"""How `sandwich bench --apps` sums up page views and judges them against the issue's targets."""

from __future__ import annotations

import pytest

from sandwich.bench.apps import PageView, PhaseViews, summarize, verdicts

pytestmark = pytest.mark.unit


def _view(page: str, ttfb_ms: float, *, status: int = 200, size: int = 2000, drawn: bool = True) -> PageView:
    return PageView(page, ttfb_ms / 1000, ttfb_ms / 1000 + 0.001, status, size, drawn)


def test_only_views_that_are_the_page_count_towards_its_figures() -> None:
    views = PhaseViews(
        [
            *(_view("order", ms) for ms in (4.0, 5.0, 6.0)),
            _view("order", 1.0, status=303),  # sent to the sign-in page
            _view("order", 1.0, drawn=False),  # a 200 that is not the order (another page)
            _view("menu", 8.0, size=4400),
        ]
    )

    summary = summarize("browsing", views, seconds=2.0, think=1.0)

    order = summary["pages"]["order"]
    assert (order["views"], order["not_ok"]) == (5, 2)
    assert order["ttfb_ms"]["count"] == 3 and order["ttfb_ms"]["p50"] == 5.0
    assert summary["pages"]["menu"]["bytes"] == 4400
    assert summary["views_per_s"] == 3.0


def test_targets_are_judged_on_the_browsing_phase_and_fail_on_a_view_that_was_not_the_page() -> None:
    fast = summarize("browsing", PhaseViews([_view("order", 5.0), _view("menu", 5.0)]), 1.0, 1.0)
    slow = summarize("back to back", PhaseViews([_view("order", 90.0), _view("menu", 90.0)]), 1.0, 0.0)
    assert all(v["met"] for v in verdicts([fast, slow]))

    broken = summarize(
        "browsing",
        PhaseViews([_view("order", 5.0), _view("order", 5.0, drawn=False), _view("menu", 70.0)]),
        1,
        1,
    )
    judged = {v["name"]: v["met"] for v in verdicts([broken, slow])}
    assert judged["order page: time to first byte p95 under 50 ms"] is False
    assert judged["menu page: time to first byte p95 under 50 ms"] is False
    assert judged["menu page: under 200 KB"] is True


def test_a_page_never_seen_is_not_measured_rather_than_met() -> None:
    empty = summarize("browsing", PhaseViews([]), 1.0, 1.0)
    judged = {v["name"]: v["met"] for v in verdicts([empty])}
    assert judged["order page: time to first byte p95 under 50 ms"] is None
    assert judged["order page: under 200 KB"] is False
