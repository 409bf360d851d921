"""The running platform: every service its own process, the engines they need, and the watch that
restarts what dies. `sandwich up`, `sandwich bench` and the tests all start the platform through
`Platform`; nothing else starts services."""

from sandwich.supervisor.platform import (
    BACKGROUND,
    CONNECTION_FILE,
    DEFAULT_BACKGROUND_NICE,
    Platform,
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
