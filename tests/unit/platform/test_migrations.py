from pathlib import Path

import pytest
from alembic.config import Config
from alembic.script import ScriptDirectory

from sandwich.cli.migrate import migrations_dir, services_with_migrations
from sandwich.platform.db import head_revision
from sandwich.platform.migrations import split_statements

pytestmark = pytest.mark.unit


def test_statements_split_on_semicolons_but_function_bodies_stay_whole() -> None:
    script = """
    CREATE TABLE a (x int);
    CREATE FUNCTION f() RETURNS trigger AS $$
    BEGIN
        RAISE EXCEPTION 'no';
    END;
    $$ LANGUAGE plpgsql;
    CREATE INDEX i ON a (x);
    """
    statements = split_statements(script)
    assert len(statements) == 3
    assert "RAISE EXCEPTION 'no';" in statements[1] and statements[1].endswith("plpgsql;")


@pytest.mark.parametrize("service", services_with_migrations())
def test_the_head_read_from_the_files_is_alembics_head(service: str) -> None:
    # Services skip Alembic when their database is at this revision: it must be Alembic's own head.
    config = Config()
    config.set_main_option("script_location", str(migrations_dir(service)))
    assert head_revision(migrations_dir(service)) == ScriptDirectory.from_config(config).get_current_head()


def test_a_branched_history_has_no_head_of_its_own(tmp_path: Path) -> None:
    versions = tmp_path / "versions"
    versions.mkdir()
    (versions / "a.py").write_text('revision = "a"\ndown_revision = None\n')
    (versions / "b.py").write_text('revision = "b"\ndown_revision = "a"\n')
    assert head_revision(tmp_path) == "b"
    (versions / "c.py").write_text("revision = 'c'\ndown_revision = 'a'\n")
    assert head_revision(tmp_path) is None  # two heads: Alembic decides
