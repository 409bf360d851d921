"""Sends pending letters over SMTP, and records how it went.

Rows are picked with FOR UPDATE SKIP LOCKED and kept locked while their letters go out, so two
instances never send the same letter at the same time. A crash after sending but before the commit
sends the letter again later; its Message-ID is the same every time, so a receiver (our mail sink
included) keeps one copy. The sender is woken right after a commit that stored letters, and polls
as a safety net and for retries that come due.
"""

from __future__ import annotations

import asyncio
import contextlib
from email.message import EmailMessage
from email.utils import format_datetime

import aiosmtplib
import structlog

from sandwich.platform.db import Database
from sandwich.platform.events import utcnow
from sandwich.platform.settings import Settings
from sandwich.services.notifications import storage
from sandwich.services.notifications.domain import message_id, retry_delay, status_after_failure

log = structlog.get_logger("mail_sender")


def build_message(letter: storage.Outgoing, mail_from: str) -> EmailMessage:
    message = EmailMessage()
    message["From"] = mail_from
    message["To"] = letter.recipient
    message["Subject"] = letter.subject
    message["Message-ID"] = message_id(letter.notification_id)
    message["Date"] = format_datetime(utcnow())
    message.set_content(letter.body)
    return message


class MailSender:
    def __init__(
        self,
        db: Database,
        settings: Settings,
        *,
        batch_size: int = 20,
        poll_seconds: float = 0.2,
        smtp_timeout: float = 10.0,
    ):
        self.db = db
        self.settings = settings
        self.batch_size = batch_size
        self.poll_seconds = poll_seconds
        self.smtp_timeout = smtp_timeout
        self._wake = asyncio.Event()
        self._backoff = 0.0

    def wake(self) -> None:
        """Called after a commit that stored letters: send now rather than at the next poll."""
        self._wake.set()

    async def run_once(self) -> None:
        """One turn of the sender loop: wait for a wake-up or the poll interval, then send what is due."""
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._wake.wait(), timeout=self.poll_seconds + self._backoff)
        self._wake.clear()
        try:
            while await self.send_due() == self.batch_size:
                pass
            self._backoff = 0.0
        except Exception as exc:  # the database is away: try again, less often
            self._backoff = min(5.0, max(0.2, self._backoff * 2))
            log.error("mail_sender_failed", error=repr(exc), retry_in=self._backoff)

    async def send_due(self) -> int:
        """Send one batch of due letters; returns how many were attempted."""
        async with self.db.begin() as conn:
            letters = await storage.lock_due(conn, self.batch_size)
            if not letters:
                return 0
            errors = await self._deliver(letters)
            for letter in letters:
                error = errors.get(letter.notification_id)
                if error is None:
                    await storage.mark_sent(conn, letter.notification_id)
                    continue
                attempts = letter.attempts + 1
                status = status_after_failure(attempts)
                await storage.mark_failed(conn, letter.notification_id, error, status, retry_delay(attempts))
                log.warning(
                    "mail_send_failed",
                    notification_id=letter.notification_id,
                    attempts=attempts,
                    status=status.value,
                    error=error,
                )
        return len(letters)

    async def _deliver(self, letters: list[storage.Outgoing]) -> dict[str, str]:
        """Send the letters over one SMTP connection; the error of each one that did not go out."""
        smtp = aiosmtplib.SMTP(
            hostname=self.settings.smtp_host, port=self.settings.smtp_port, timeout=self.smtp_timeout
        )
        try:
            await smtp.connect()
        except (aiosmtplib.SMTPException, OSError) as exc:
            reason = f"cannot reach the SMTP server: {exc!r}"
            return {letter.notification_id: reason for letter in letters}
        errors: dict[str, str] = {}
        try:
            for letter in letters:
                try:
                    await smtp.send_message(build_message(letter, self.settings.mail_from))
                except (aiosmtplib.SMTPException, OSError, ValueError) as exc:
                    errors[letter.notification_id] = repr(exc)
        finally:
            with contextlib.suppress(Exception):
                await smtp.quit()
        return errors
