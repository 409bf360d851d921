import pytest

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
