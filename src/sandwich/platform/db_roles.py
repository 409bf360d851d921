"""Each service connects to PostgreSQL as a role of its own that owns its own database and nothing
else: not a superuser, no CREATEDB or CREATEROLE, no CONNECT on another service's database.

`sandwich migrate --service-roles DIR` (which `sandwich up` runs with the superuser's URL) makes the
roles, gives each its database and everything in it (migrations run as the superuser, so what they
create is handed over afterwards, and a database made before roles existed is handed over the same
way), and writes each role's password to `DIR/<role>.pgpass` (0600). It records which roles it made
in `DIR/roles.json`; the supervisor gives each service a URL that names its role and its password
file (`service_url`). A server whose URL cannot create roles (a managed one, say) is left as it is,
with a warning, and the services use that URL.

The role of a service is named after its database (`<prefix>_<service>`), so test runs with their own
prefixes on one server never share a role.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import asyncpg
import structlog
from sqlalchemy.engine import make_url

from sandwich.platform.embedded.postgres_access import ensure_passfile, with_passfile

log = structlog.get_logger("db_roles")

ROLES_FILE = "roles.json"

_NOT_OWNED = """
SELECT kind, name FROM (
    SELECT CASE c.relkind WHEN 'v' THEN 'VIEW' WHEN 'm' THEN 'MATERIALIZED VIEW'
                          WHEN 'S' THEN 'SEQUENCE' ELSE 'TABLE' END AS kind,
           c.oid::regclass::text AS name, 0 AS rank
      FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
     WHERE n.nspname = 'public' AND c.relkind IN ('r', 'p', 'v', 'm', 'S')
       AND c.relowner <> (SELECT oid FROM pg_roles WHERE rolname = $1::text)
       -- a sequence of a serial or identity column follows its table
       AND NOT EXISTS (SELECT 1 FROM pg_depend d
                        WHERE d.classid = 'pg_class'::regclass AND d.objid = c.oid
                          AND d.deptype IN ('a', 'i'))
    UNION ALL
    SELECT CASE p.prokind WHEN 'p' THEN 'PROCEDURE' ELSE 'FUNCTION' END,
           p.oid::regprocedure::text, 1
      FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace
     WHERE n.nspname = 'public' AND p.proowner <> (SELECT oid FROM pg_roles WHERE rolname = $1::text)
    UNION ALL
    SELECT CASE t.typtype WHEN 'd' THEN 'DOMAIN' ELSE 'TYPE' END, t.oid::regtype::text, 2
      FROM pg_type t JOIN pg_namespace n ON n.oid = t.typnamespace
     WHERE n.nspname = 'public' AND t.typtype IN ('e', 'd', 'r') AND t.typowner <> (SELECT oid FROM pg_roles WHERE rolname = $1::text)
) AS objects ORDER BY rank, name
"""


def passfile_path(roles_dir: Path, role: str) -> Path:
    return roles_dir / f"{role}.pgpass"


def _quoted(identifier: str) -> str:
    return '"' + identifier.replace('"', '""') + '"'


async def can_manage_roles(admin: asyncpg.Connection) -> bool:
    """Whether the connection's role may make roles and give databases away (superuser, in practice)."""
    return bool(await admin.fetchval("SELECT rolsuper FROM pg_roles WHERE rolname = current_user"))


async def ensure_service_role(admin: asyncpg.Connection, role: str, roles_dir: Path) -> None:
    """The role with its password from its 0600 password file (made the first time), and its database,
    owned by it, which no one else may connect to."""
    password = ensure_passfile(passfile_path(roles_dir, role), role, database=role)
    attributes = "LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE NOREPLICATION NOBYPASSRLS NOINHERIT"
    exists = await admin.fetchval("SELECT 1 FROM pg_roles WHERE rolname = $1", role)
    verb = "ALTER" if exists else "CREATE"
    try:
        # A password cannot be a bind parameter of a utility statement; it is URL-safe base64.
        await admin.execute(f"{verb} ROLE {_quoted(role)} {attributes} PASSWORD '{password}'")
    except asyncpg.DuplicateObjectError:
        await admin.execute(f"ALTER ROLE {_quoted(role)} {attributes} PASSWORD '{password}'")
    if await admin.fetchval("SELECT 1 FROM pg_database WHERE datname = $1", role):
        await admin.execute(f"ALTER DATABASE {_quoted(role)} OWNER TO {_quoted(role)}")
    else:
        try:
            await admin.execute(f"CREATE DATABASE {_quoted(role)} OWNER {_quoted(role)}")
        except (asyncpg.DuplicateDatabaseError, asyncpg.UniqueViolationError):
            await admin.execute(f"ALTER DATABASE {_quoted(role)} OWNER TO {_quoted(role)}")
    await admin.execute(f"REVOKE ALL ON DATABASE {_quoted(role)} FROM PUBLIC")


async def hand_over(admin_url: str, role: str) -> int:
    """Give `role` every object of its database's public schema that another role (the superuser that
    ran the migrations) owns; how many were handed over."""
    conn = await asyncpg.connect(make_url(admin_url).set(database=role).render_as_string(hide_password=False))
    try:
        moved = 0
        # Tables first: a table's owned sequences and row type move with it.
        for _ in range(2):
            rows = await conn.fetch(_NOT_OWNED, role)
            for row in rows:
                await conn.execute(f"ALTER {row['kind']} {row['name']} OWNER TO {_quoted(role)}")
            moved += len(rows)
            if not rows:
                break
        return moved
    finally:
        await conn.close()


def write_roles_file(roles_dir: Path, roles: dict[str, str]) -> None:
    """For `sandwich up`'s supervisor, which gives each service its role's URL. A folder mounted
    read-only from a Kubernetes Secret (the migration Job's) keeps no such file: there each service's
    role and password come from the chart."""
    roles_dir.mkdir(parents=True, exist_ok=True)
    if not os.access(roles_dir, os.W_OK):
        return
    (roles_dir / ROLES_FILE).write_text(json.dumps({"roles": roles}, indent=2) + "\n")


def forget_roles(roles_dir: Path) -> None:
    if os.access(roles_dir, os.W_OK):
        (roles_dir / ROLES_FILE).unlink(missing_ok=True)


def read_roles(roles_dir: Path) -> dict[str, str]:
    """The service -> role map the last migration wrote; empty when the services share the URL."""
    try:
        data = json.loads((roles_dir / ROLES_FILE).read_text())
    except (OSError, ValueError):
        return {}
    roles = data.get("roles", {})
    return {str(k): str(v) for k, v in roles.items()} if isinstance(roles, dict) else {}


def service_url(admin_url: str, role: str, roles_dir: Path) -> str:
    """The URL a service connects with: its own role and database on the admin URL's server, the
    password in the role's file."""
    own = make_url(admin_url).set(username=role, password=None, database=role)
    return with_passfile(own.render_as_string(hide_password=False), passfile_path(roles_dir, role))
