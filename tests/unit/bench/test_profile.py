"""Summing py-spy's collapsed stacks into parts of the stack and functions."""

from __future__ import annotations

import pytest

from sandwich.bench.markdown import profile_markdown
from sandwich.bench.profile import part_of, summarize_raw

pytestmark = pytest.mark.unit

RAW = """\
main (sandwich/cli/serve.py:40);create_order (sandwich/services/orders/api.py:93);PreparedStatement.__do_execute (asyncpg/prepared_stmt.py:257) 6
main (sandwich/cli/serve.py:40);create_order (sandwich/services/orders/api.py:93);greenlet_spawn (sqlalchemy/util/concurrency.py:203) 2
main (sandwich/cli/serve.py:40);RequestResponseCycle.send (uvicorn/protocols/http/httptools_impl.py:524) 1
main (sandwich/cli/serve.py:40);place_order (sandwich/services/orders/commands.py:132) 1
not a line
"""


def test_a_frame_belongs_to_the_package_of_its_file() -> None:
    assert (
        part_of("PreparedStatement.__do_execute (asyncpg/prepared_stmt.py:257)")
        == "PostgreSQL driver (asyncpg)"
    )
    assert part_of("Server.run (uvicorn/server.py:86)") == "HTTP server (uvicorn, FastAPI)"
    assert part_of("place_order (sandwich/services/orders/commands.py:132)") == "sandwich's own code"
    assert part_of("select (selectors.py:468)") == "event loop, socket writes (asyncio)"
    assert part_of("something (whatever/else.py:1)") == "other"


def test_samples_are_summed_by_innermost_frame() -> None:
    summary = summarize_raw(RAW)
    assert summary["samples"] == 10
    assert summary["by_part"] == {
        "PostgreSQL driver (asyncpg)": 0.6,
        "SQLAlchemy": 0.2,
        "HTTP server (uvicorn, FastAPI)": 0.1,
        "sandwich's own code": 0.1,
    }
    assert summary["top_functions"][0] == ["PreparedStatement.__do_execute", 0.6]
    assert summarize_raw("") == {"samples": 0, "by_part": {}, "top_functions": []}


def test_the_report_lists_the_costliest_service_first() -> None:
    profile = {
        "services": {
            "menu": {**summarize_raw(RAW), "cpu_ms_per_order": 0.1},
            "orders": {**summarize_raw(RAW), "cpu_ms_per_order": 3.5},
        },
        "errors": ["kitchen: py-spy exited 1"],
    }
    text = profile_markdown(profile)
    assert text.index("| orders") < text.index("| menu")
    assert "PostgreSQL driver (asyncpg) 60%" in text and "kitchen: py-spy exited 1" in text
