"""Who may connect to the embedded PostgreSQL: every connection, TCP or unix socket, proves a password
(scram-sha-256), and the passwords live in 0600 files, never in a URL, a log or the environment.

A password travels as a libpq password file (`host:port:database:user:password`) whose path the
URL names in its `passfile` parameter: asyncpg and psql both read it, so a URL can be logged, shown
by `sandwich status` and written to platform.json without giving the password away, while whoever
can read the file (its owner alone) can connect.
"""

from __future__ import annotations

from pathlib import Path
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from sandwich.platform.secret_files import new_password, private_folder, write_private

HBA_MARKER = "# sandwich: a password (scram-sha-256) for every connection"
"""First line of the pg_hba.conf this module writes; a cluster without it still trusts everyone."""

HBA_RULES = f"""{HBA_MARKER}
# TYPE  DATABASE  USER  ADDRESS       METHOD
local   all       all                 scram-sha-256
host    all       all   127.0.0.1/32  scram-sha-256
host    all       all   ::1/128       scram-sha-256
"""


def write_passfile(path: Path, user: str, password: str, database: str = "*") -> None:
    """A libpq password file for `user` on any host and port (the port changes between runs), 0600
    in a 0700 folder."""
    private_folder(path.parent)
    write_private(path, f"*:*:{database}:{user}:{password}\n")


def read_passfile_password(path: Path) -> str | None:
    """The password of the first entry of a password file we wrote (or of a file holding only the
    password); None when there is none."""
    try:
        first = path.read_text().splitlines()[0]
    except (OSError, IndexError):
        return None
    fields = first.split(":")
    if len(fields) == 1:  # a bare password, as a Kubernetes Secret's key holds it
        return fields[0].strip() or None
    return fields[4] if len(fields) == 5 and fields[4] else None


def ensure_passfile(path: Path, user: str, database: str = "*") -> str:
    """The password kept in `path`, made (and written) the first time."""
    password = read_passfile_password(path)
    if password is None:
        password = new_password()
        write_passfile(path, user, password, database)
    return password


def with_passfile(url: str, passfile: Path) -> str:
    """`url` with its `passfile` parameter set to `passfile` (asyncpg and psql read the password there)."""
    parts = urlsplit(url)
    query = [(k, v) for k, v in parse_qsl(parts.query) if k != "passfile"]
    query.append(("passfile", str(passfile)))
    return urlunsplit(parts._replace(query=urlencode(query, safe="/")))


def hba_is_ours(pg_hba: Path) -> bool:
    try:
        return pg_hba.read_text().startswith(HBA_MARKER)
    except OSError:
        return False
