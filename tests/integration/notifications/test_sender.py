"""The mail sender keeps its SMTP connection between batches and survives the server dropping it."""

from __future__ import annotations

import uuid
from pathlib import Path
from typing import Any, cast

import pytest

from sandwich.platform.embedded.mailsink import MailSink, read_mails
from sandwich.platform.settings import Settings
from sandwich.services.notifications.domain import Outgoing
from sandwich.services.notifications.sender import MailSender
from sandwich.services.notifications.unit_of_work import UnitsOfWork

pytestmark = pytest.mark.integration


def letter(subject: str) -> Outgoing:
    return Outgoing(str(uuid.uuid4()), "alice@example.com", subject, f"{subject}\n", attempts=0)


def sender_for(sink: MailSink) -> MailSender:
    settings = Settings(smtp_host=sink.host, smtp_port=sink.port)
    # _deliver does not touch the database.
    return MailSender(cast(UnitsOfWork, None), settings, smtp_timeout=5.0)


async def test_batches_share_one_connection_and_a_dropped_one_is_replaced(tmp_path: Path) -> None:
    sink = MailSink(tmp_path)
    sink.start()
    try:
        sender = sender_for(sink)
        assert await sender._deliver([letter("one"), letter("two")]) == {}
        first: Any = sender._smtp
        assert await sender._deliver([letter("three")]) == {}
        assert sender._smtp is first  # kept between batches

        port = sink.port
        sink.stop()  # the server goes away with our connection open
        sink = MailSink(tmp_path, port=port)
        sink.start()
        assert await sender._deliver([letter("four")]) == {}
        assert sender._smtp is not first
    finally:
        await sender._drop_connection()
        sink.stop()
    assert sorted(m["Subject"] for m in read_mails(tmp_path)) == ["four", "one", "three", "two"]


async def test_a_server_that_is_away_fails_every_letter_of_the_batch(tmp_path: Path) -> None:
    sink = MailSink(tmp_path)
    sink.start()
    port = sink.port
    sink.stop()
    sender = MailSender(
        cast(UnitsOfWork, None), Settings(smtp_host="127.0.0.1", smtp_port=port), smtp_timeout=2.0
    )
    letters = [letter("one"), letter("two")]
    errors = await sender._deliver(letters)
    assert set(errors) == {x.notification_id for x in letters}
    assert all("cannot reach the SMTP server" in reason for reason in errors.values())
