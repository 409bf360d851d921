"""What a supervisor tells each process it starts, through the environment.

The supervisor (`sandwich.supervisor`) sets these in every child; the service process
(`sandwich.cli.serve`) reads them. They live here, in the platform, so that neither side imports the
other: the supervisor imports no CLI, and a service process does not load the supervisor.
"""

from __future__ import annotations

SUPERVISOR_PID_ENV = "SANDWICH_SUPERVISOR_PID"
"""Set by the supervisor in every child: `serve` exits when that process is no longer its parent."""

PLATFORM_ID_ENV = "SANDWICH_PLATFORM_ID"
"""Set in every child: lets stop() find children of this Platform even if their Popen was lost."""
