"""A local SMTP server that accepts every message and keeps it as a file.

The notifications service sends real e-mail over SMTP. On a dev box and in tests nothing should
leave the machine, yet a test must be able to see the letters (the "happy letter" after payment, the
"sad letter" when money is short) and check that each was sent once. So the sink stores one `.eml`
file per message, named after the Message-ID: a message re-sent with the same Message-ID (an at-least-
once retry) overwrites its file instead of adding a second one, and the number of files is the number
of distinct letters. Files are written to a temporary name and renamed, so a reader never sees half
a message. They are not fsynced: a stored letter survives a killed sink or platform (it is in the
page cache), not a power cut, which is what a development sink needs; an fsync per letter was most of
the sink's cost under load.
"""

from __future__ import annotations

import asyncio
import contextlib
import email.parser
import email.policy
import hashlib
import logging
import os
import re
import signal
import uuid
from email.message import EmailMessage
from pathlib import Path
from typing import Any

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, Envelope, Session

from sandwich.platform.ports import free_port

log = logging.getLogger(__name__)

MAIL_SUFFIX = ".eml"
_UNSAFE = re.compile(r"[^A-Za-z0-9._@+=-]+")
_MAX_STEM = 120
DATA_SIZE_LIMIT = 10 * 1024 * 1024


def mail_file_name(message_id: str | None) -> str:
    """File name for a message: the sanitised Message-ID plus a short hash of the raw one.

    The hash keeps two different ids that sanitise alike (`<a/b@x>` and `<a_b@x>`) apart; without a
    Message-ID the name is a fresh uuid, so such messages never overwrite each other.
    """
    raw = (message_id or "").strip()
    if not raw:
        return f"no-message-id-{uuid.uuid4().hex}{MAIL_SUFFIX}"
    stem = _UNSAFE.sub("_", raw.strip("<>")).strip("._") or "message"
    digest = hashlib.sha256(raw.encode("utf-8", "surrogateescape")).hexdigest()[:12]
    return f"{stem[:_MAX_STEM]}-{digest}{MAIL_SUFFIX}"


def _message_id(content: bytes) -> str | None:
    headers = email.parser.BytesHeaderParser(policy=email.policy.compat32).parsebytes(content)
    value = headers.get("Message-ID")
    return str(value) if value is not None else None


def store_message(
    directory: Path, content: bytes, *, mail_from: str = "", rcpt_tos: list[str] | None = None
) -> Path:
    """Write one message into `directory` atomically and return its path.

    The SMTP envelope (who it was really sent to, Bcc included) is not part of the message itself, so
    it is kept in `X-Envelope-From` / `X-Envelope-To` headers put in front.
    """
    directory.mkdir(parents=True, exist_ok=True)
    target = directory / mail_file_name(_message_id(content))
    prefix = f"X-Envelope-From: {mail_from}\r\nX-Envelope-To: {', '.join(rcpt_tos or [])}\r\n".encode(
        "utf-8", "replace"
    )
    tmp = directory / f".{target.name}.{uuid.uuid4().hex}.tmp"
    try:
        with tmp.open("wb") as fh:
            fh.write(prefix)
            fh.write(content)
        os.replace(tmp, target)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return target


def read_mails(directory: Path) -> list[EmailMessage]:
    """Every stored message, oldest file first (skips files still being written)."""
    directory = Path(directory)
    if not directory.is_dir():
        return []
    files = sorted(
        (p for p in directory.iterdir() if p.suffix == MAIL_SUFFIX and not p.name.startswith(".")),
        key=lambda p: (p.stat().st_mtime_ns, p.name),
    )
    parser = email.parser.BytesParser(policy=email.policy.default)
    messages: list[EmailMessage] = []
    for path in files:
        with contextlib.suppress(FileNotFoundError):
            message = parser.parsebytes(path.read_bytes())
            assert isinstance(message, EmailMessage)
            messages.append(message)
    return messages


class MailSinkHandler:
    """aiosmtpd handler: accept every recipient, store every message."""

    def __init__(self, directory: Path) -> None:
        self.directory = Path(directory)
        self.directory.mkdir(parents=True, exist_ok=True)

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        content = envelope.original_content or envelope.content or b""
        if isinstance(content, str):
            content = content.encode("utf-8", "surrogateescape")
        try:
            # Inline: writing a small file to the page cache takes less than handing it to a thread.
            path = store_message(
                self.directory, content, mail_from=envelope.mail_from or "", rcpt_tos=list(envelope.rcpt_tos)
            )
        except OSError:
            log.exception("could not store a message")
            return "451 Requested action aborted: local error in processing"
        log.debug("stored %s for %s", path.name, envelope.rcpt_tos)
        return "250 Message accepted for delivery"


SERVER_NAME = "sandwich-mailsink"


def _smtp_kwargs() -> dict[str, Any]:
    return {
        "data_size_limit": DATA_SIZE_LIMIT,
        "enable_SMTPUTF8": True,
        "decode_data": False,
        "ident": "sandwich mail sink",
    }


class MailSink:
    """The sink running in a background thread of this process (for tests and tools).

    `with MailSink(directory) as sink:` then send to `sink.host`, `sink.port`.
    """

    def __init__(self, directory: Path, host: str = "127.0.0.1", port: int = 0) -> None:
        self.directory = Path(directory)
        self.host = host
        self.port = port or free_port(host)
        self._controller = Controller(
            MailSinkHandler(self.directory),
            hostname=host,
            port=self.port,
            server_hostname=SERVER_NAME,
            **_smtp_kwargs(),
        )

    def start(self) -> None:
        self._controller.start()

    def stop(self) -> None:
        self._controller.stop()

    def __enter__(self) -> MailSink:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


async def serve_mailsink(host: str, port: int, directory: Path, stop: asyncio.Event | None = None) -> None:
    """Serve SMTP on host:port until `stop` is set (or forever)."""
    handler = MailSinkHandler(directory)
    loop = asyncio.get_running_loop()
    server = await loop.create_server(
        lambda: SMTP(handler, hostname=SERVER_NAME, loop=loop, **_smtp_kwargs()), host, port
    )
    log.info("mail sink listening on %s:%s, storing into %s", host, port, directory)
    try:
        if stop is None:
            stop = asyncio.Event()
        await stop.wait()
    finally:
        server.close()
        await server.wait_closed()


def run_mailsink(host: str, port: int, directory: Path) -> None:
    """Blocking entry point (`sandwich serve mailsink`): serve until SIGTERM or SIGINT."""

    async def main() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            with contextlib.suppress(NotImplementedError, RuntimeError):
                loop.add_signal_handler(sig, stop.set)
        await serve_mailsink(host, port, Path(directory), stop)

    try:
        import uvloop  # installed with uvicorn[standard]: the services' event loop too
    except ImportError:
        asyncio.run(main())
    else:
        uvloop.run(main())
