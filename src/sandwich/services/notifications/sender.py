"""Sends pending letters over SMTP, and records how it went.

Rows are taken with a lease (their next attempt moved a minute ahead, FOR UPDATE SKIP LOCKED in the
same statement), so two instances never send the same letter at the same time. A crash after sending
but before recording it sends the letter again once the lease runs out; its Message-ID is the same
every time, so a receiver (our mail sink included) keeps one copy. The sender is woken right after a commit that stored letters, and polls
as a safety net and for retries that come due.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import time
from email.header import Header
from email.utils import format_datetime, parseaddr

import aiosmtplib
import structlog
from prometheus_client import Gauge

from sandwich.platform.events import utcnow
from sandwich.platform.settings import Settings
from sandwich.services.notifications import commands
from sandwich.services.notifications.domain import Outgoing, message_id
from sandwich.services.notifications.unit_of_work import UnitsOfWork

log = structlog.get_logger("mail_sender")

LETTERS_WAITING = Gauge(
    "letters_pending_oldest_seconds",
    "How long the oldest letter not yet sent has waited (0 when none waits): the mail server is away",
)
LETTER_WAIT_CHECK_SECONDS = 10.0

SMTP_IDLE_SECONDS = 15.0
"""An SMTP connection unused this long is closed (servers drop idle clients after a few minutes)."""


def build_message(letter: Outgoing, mail_from: str) -> bytes:
    """The letter as an RFC 5322 message: a text/plain UTF-8 body (7bit when it is ASCII, else
    base64), an RFC 2047 subject when it is not ASCII, and the Message-ID that makes resends one copy.

    Written out directly rather than through `email.message.EmailMessage`, whose header registry
    and content manager took a fifth of the service's CPU per letter; the result parses the same
    (tests/unit/notifications check it against the standard parser).
    """
    body = letter.body.replace("\r\n", "\n").replace("\n", "\r\n")
    if body.isascii():
        encoding, payload = "7bit", body.encode()
    else:
        encoding, payload = "base64", base64.encodebytes(body.encode()).replace(b"\n", b"\r\n")
    subject = _one_line(letter.subject)
    if not subject.isascii():
        subject = Header(subject, "utf-8").encode()
    headers = (
        f"From: {_one_line(mail_from)}\r\n"
        f"To: {_one_line(letter.recipient)}\r\n"
        f"Subject: {subject}\r\n"
        f"Message-ID: {message_id(letter.notification_id)}\r\n"
        f"Date: {format_datetime(utcnow())}\r\n"
        "MIME-Version: 1.0\r\n"
        'Content-Type: text/plain; charset="utf-8"\r\n'
        f"Content-Transfer-Encoding: {encoding}\r\n\r\n"
    )
    return headers.encode() + payload


def _one_line(value: str) -> str:
    """A header value can never start a header of its own."""
    return " ".join(value.splitlines())


def envelope_sender(mail_from: str) -> str:
    """The bare address of the From header (what MAIL FROM takes)."""
    return parseaddr(mail_from)[1] or mail_from


class MailSender:
    """The sender loop: each turn sends what was handed over and what is due, through the use cases
    of commands.py on units of work (`atomic=False` for its one-statement steps)."""

    def __init__(
        self,
        unit_of_work: UnitsOfWork,
        settings: Settings,
        *,
        batch_size: int = 20,
        poll_seconds: float = 0.2,
        smtp_timeout: float = 10.0,
    ):
        self.unit_of_work = unit_of_work
        self.settings = settings
        self.batch_size = batch_size
        self.poll_seconds = poll_seconds
        self.smtp_timeout = smtp_timeout
        self._wake = asyncio.Event()
        self._backoff = 0.0
        self._smtp: aiosmtplib.SMTP | None = None
        self._last_used = 0.0
        self._handed: list[Outgoing] = []
        self._sending: list[Outgoing] = []  # the batch going out now (cut off by a stop?)
        self._look_up = True

    def wake(self) -> None:
        """Called after a commit that stored letters: send now rather than at the next poll."""
        self._look_up = True
        self._wake.set()

    def hand_over(self, letter: Outgoing) -> None:
        """A letter stored already taken (storage.insert_effect): send it without looking it up."""
        self._handed.append(letter)
        self._wake.set()

    async def run_once(self) -> None:
        """One turn of the sender loop: wait for a wake-up or the poll interval, then send what was
        handed over and, when woken without letters or on the poll, what is due in the table."""
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._wake.wait(), timeout=self.poll_seconds + self._backoff)
        polling = not self._wake.is_set()
        self._wake.clear()
        try:
            while self._handed:
                batch, self._handed = self._handed[: self.batch_size], self._handed[self.batch_size :]
                await self.send(batch)
            if polling or self._look_up:
                self._look_up = False
                while await self.send_due() == self.batch_size:
                    pass
            await self.close_idle_connection()
            self._backoff = 0.0
        except Exception as exc:  # the database is away: try again, less often
            self._backoff = min(5.0, max(0.2, self._backoff * 2))
            log.error("mail_sender_failed", error=repr(exc), retry_in=self._backoff)

    async def release_handed(self) -> None:
        """At a graceful stop: letters handed over but not sent yet go back to the table, due now,
        for the other instances (or this one's next start) to send without waiting out the lease."""
        # A batch cut off mid-way may have reached the server: sent again, it carries the same
        # Message-ID, which receivers (the mail sink too) keep once.
        handed, self._handed, self._sending = [*self._sending, *self._handed], [], []
        if handed:
            ids = [letter.notification_id for letter in handed]
            await commands.release(ids, self.unit_of_work(atomic=False))
            log.info("mail_sender_released", letters=len(handed))

    async def measure_waiting(self) -> None:
        LETTERS_WAITING.set(await commands.oldest_waiting_seconds(self.unit_of_work(atomic=False)))

    async def send_due(self) -> int:
        """Send one batch of due letters; returns how many were attempted.

        The batch is taken with a lease (commands.take_due), sent, then recorded: two statements and
        no transaction held open while the SMTP server answers. A crash in between sends the taken
        letters again once their lease runs out, with the same Message-ID (see the module's doc).
        """
        letters = await commands.take_due(self.batch_size, self.unit_of_work(atomic=False))
        if letters:
            await self.send(letters)
        return len(letters)

    async def send(self, letters: list[Outgoing]) -> None:
        """Send taken letters and record how it went (sent, or failed with its next attempt)."""
        self._sending = letters  # until recorded: a stop in between hands them back (release_handed)
        errors = await self._deliver(letters)
        await self._record(letters, errors)
        self._sending = []

    async def _record(self, letters: list[Outgoing], errors: dict[str, str]) -> None:
        """All sent: one statement; some failed: one transaction marking each (commands.py)."""
        if not errors:
            ids = [letter.notification_id for letter in letters]
            await commands.mark_sent(ids, self.unit_of_work(atomic=False))
            return
        for failure in await commands.record_attempts(letters, errors, self.unit_of_work()):
            log.warning(
                "mail_send_failed",
                notification_id=failure.notification_id,
                attempts=failure.attempts,
                status=failure.status.value,
                error=failure.error,
            )

    async def _deliver(self, letters: list[Outgoing]) -> dict[str, str]:
        """Send the letters over the kept SMTP connection; the error of each one that did not go out.

        The connection stays open between batches (closed after `SMTP_IDLE_SECONDS` unused): opening
        one per batch cost a connect, EHLO and QUIT for what was mostly a single letter. A letter
        that meets a connection the server has dropped meanwhile is sent once more on a new one.
        """
        errors: dict[str, str] = {}
        for index, letter in enumerate(letters):
            message = build_message(letter, self.settings.mail_from)
            sender, recipients = envelope_sender(self.settings.mail_from), [letter.recipient]
            for fresh in (False, True):
                try:
                    smtp = await self._connection(fresh)
                except (aiosmtplib.SMTPException, OSError) as exc:
                    reason = f"cannot reach the SMTP server: {exc!r}"
                    errors.update({later.notification_id: reason for later in letters[index:]})
                    return errors
                try:
                    await smtp.sendmail(sender, recipients, message)
                    break
                except (aiosmtplib.SMTPServerDisconnected, aiosmtplib.SMTPTimeoutError, OSError) as exc:
                    await self._drop_connection()
                    if fresh:
                        errors[letter.notification_id] = repr(exc)
                except (aiosmtplib.SMTPException, ValueError) as exc:  # refused by the server
                    errors[letter.notification_id] = repr(exc)
                    break
        self._last_used = time.monotonic()
        return errors

    async def _connection(self, fresh: bool) -> aiosmtplib.SMTP:
        if fresh or self._smtp is None or not self._smtp.is_connected:
            await self._drop_connection()
            smtp = aiosmtplib.SMTP(
                hostname=self.settings.smtp_host, port=self.settings.smtp_port, timeout=self.smtp_timeout
            )
            await smtp.connect()
            self._smtp = smtp
        return self._smtp

    async def _drop_connection(self) -> None:
        smtp, self._smtp = self._smtp, None
        if smtp is not None:
            with contextlib.suppress(Exception):
                if smtp.is_connected:
                    await asyncio.wait_for(smtp.quit(), 2.0)
            smtp.close()

    async def close_idle_connection(self) -> None:
        if self._smtp is not None and time.monotonic() - self._last_used > SMTP_IDLE_SECONDS:
            await self._drop_connection()
