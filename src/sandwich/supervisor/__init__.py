"""The running platform: every service its own process, the engines they need, and the watch that
restarts what dies. `sandwich up`, `sandwich bench` and the tests all start the platform through
`Platform`; nothing else starts services."""

from sandwich.supervisor.connection_file import CONNECTION_FILE
from sandwich.supervisor.platform import Platform
from sandwich.supervisor.processes import (
    BACKGROUND,
    DEFAULT_BACKGROUND_NICE,
    PlatformError,
    PlatformStartError,
)

__all__ = [
    "BACKGROUND",
    "CONNECTION_FILE",
    "DEFAULT_BACKGROUND_NICE",
    "Platform",
    "PlatformError",
    "PlatformStartError",
]
