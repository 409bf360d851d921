"""DATA_DIR/platform.json while the platform runs: where its database, broker and gateway are, so
that tools such as `sandwich replay` can reach the running platform."""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Mapping
from pathlib import Path

log = logging.getLogger("sandwich.supervisor")

CONNECTION_FILE = "platform.json"
"""DATA_DIR/platform.json while the platform runs: where its database, broker and gateway are (and the
prefixes), so tools such as `sandwich replay` can reach the running platform. Removed on stop."""


def write_connection_file(path: Path, info: Mapping[str, str]) -> bool:
    """Owner-only (the database URL may carry a password), written whole, then renamed into place.
    False (and a warning) when it could not be written: the platform runs on without it."""
    temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as fh:
            json.dump(dict(info), fh, indent=2)
        os.replace(temporary, path)
    except OSError as exc:
        log.warning("could not write %s: %s", path, exc)
        return False
    return True
