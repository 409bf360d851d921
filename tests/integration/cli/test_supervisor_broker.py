"""`sandwich up --broker kafka` on a machine that cannot run Kafka: the platform does not start, and
says what is missing instead of a traceback."""

from __future__ import annotations

from pathlib import Path

import pytest

from sandwich.platform.settings import Broker
from sandwich.supervisor import Platform, PlatformStartError

pytestmark = pytest.mark.integration


def test_a_missing_jdk_stops_the_platform_with_what_to_install(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("JAVA_HOME", str(tmp_path / "no-jdk"))
    platform = Platform(
        tmp_path / "data",
        "hybrid",
        broker=Broker.KAFKA,
        env_overrides={"DATABASE_URL": "", "NATS_URL": "", "KAFKA_BOOTSTRAP_SERVERS": ""},
    )
    with pytest.raises(
        PlatformStartError, match=r"embedded kafka broker did not start: JAVA_HOME=.* has no bin/java"
    ):
        platform.start()
    assert not platform.running
    assert platform.postgres is not None and not platform.postgres.running
