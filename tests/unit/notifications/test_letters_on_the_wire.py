"""The letters as the mail sender writes them: the standard parser reads back what was sent."""

from __future__ import annotations

import email.parser
import email.policy

import pytest

from sandwich.services.notifications.domain import Outgoing, message_id
from sandwich.services.notifications.sender import build_message, envelope_sender

pytestmark = pytest.mark.unit


def parsed(raw: bytes) -> email.message.EmailMessage:
    message = email.parser.BytesParser(policy=email.policy.default).parsebytes(raw)
    assert isinstance(message, email.message.EmailMessage)
    return message


@pytest.mark.parametrize(
    ("subject", "body"),
    [
        ("Order 1a2b3c4d is paid - thank you!", "Hello, Bob!\n\nGood news.\nBye\n"),
        ("Заказ 1a2b оплачен", "Здравствуйте, Ольга!\n\nСпасибо за заказ.\n"),  # noqa: RUF001
        ("Order is paid", "Hello, Zoë!\n" + "x" * 2000 + "\n"),
    ],
)
def test_the_standard_parser_reads_back_subject_body_and_headers(subject: str, body: str) -> None:
    letter = Outgoing("8f0e1a1c-0000-4000-8000-000000000001", "olga@example.com", subject, body, 0)

    message = parsed(build_message(letter, "Sandwich <sandwich@localhost>"))

    assert message["Subject"] == subject
    assert message["To"] == "olga@example.com"
    assert message["From"] == "Sandwich <sandwich@localhost>"
    assert message["Message-ID"] == message_id(letter.notification_id)
    assert message["Date"] is not None
    assert message.get_content_type() == "text/plain"
    assert message.get_content().replace("\r\n", "\n") == body


def test_a_line_break_in_a_header_value_cannot_add_a_header() -> None:
    letter = Outgoing(
        "8f0e1a1c-0000-4000-8000-000000000002", "a@example.com\r\nBcc: x@evil.test", "hi\nX: y", "b", 0
    )

    message = parsed(build_message(letter, "sandwich@localhost"))

    assert message["Bcc"] is None and message["X"] is None
    assert "\n" not in message["Subject"]


def test_the_envelope_sender_is_the_bare_address() -> None:
    assert envelope_sender("Sandwich <sandwich@localhost>") == "sandwich@localhost"
    assert envelope_sender("sandwich@localhost") == "sandwich@localhost"
