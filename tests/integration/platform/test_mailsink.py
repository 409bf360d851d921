"""The SMTP sink keeps one file per distinct Message-ID, so retried sends are visible as one letter."""

from __future__ import annotations

import smtplib
import socket
import subprocess
import sys
import time
from email.message import EmailMessage
from email.utils import make_msgid
from pathlib import Path

import pytest

from sandwich.platform.embedded.mailsink import MailSink, read_mails
from sandwich.platform.ports import free_port

pytestmark = pytest.mark.integration


def _letter(message_id: str | None, subject: str, to: str = "alice@example.com") -> EmailMessage:
    message = EmailMessage()
    message["From"] = "sandwich@localhost"
    message["To"] = to
    message["Subject"] = subject
    if message_id is not None:
        message["Message-ID"] = message_id
    message.set_content(f"{subject}\n")
    return message


def _send(host: str, port: int, message: EmailMessage) -> None:
    with smtplib.SMTP(host, port, timeout=10) as client:
        client.send_message(message)


def test_same_message_id_twice_is_one_file(tmp_path: Path) -> None:
    message_id = make_msgid(domain="sandwich.local")
    with MailSink(tmp_path) as sink:
        _send(sink.host, sink.port, _letter(message_id, "Заказ оплачен"))
        _send(sink.host, sink.port, _letter(message_id, "Заказ оплачен"))
    files = [p for p in tmp_path.iterdir() if p.suffix == ".eml"]
    assert len(files) == 1
    mails = read_mails(tmp_path)
    assert [m["Message-ID"] for m in mails] == [message_id]
    assert mails[0]["Subject"] == "Заказ оплачен"
    assert mails[0]["X-Envelope-To"] == "alice@example.com"


def test_different_message_ids_are_different_files(tmp_path: Path) -> None:
    with MailSink(tmp_path) as sink:
        _send(sink.host, sink.port, _letter(make_msgid(), "paid"))
        _send(sink.host, sink.port, _letter(make_msgid(), "payment failed"))
    assert sorted(m["Subject"] for m in read_mails(tmp_path)) == ["paid", "payment failed"]


def test_messages_without_message_id_are_all_kept(tmp_path: Path) -> None:
    with MailSink(tmp_path) as sink:
        _send(sink.host, sink.port, _letter(None, "one"))
        _send(sink.host, sink.port, _letter(None, "two"))
    assert len(read_mails(tmp_path)) == 2


def test_hostile_message_id_stays_inside_the_directory(tmp_path: Path) -> None:
    mail_dir = tmp_path / "mail"
    with MailSink(mail_dir) as sink:
        _send(sink.host, sink.port, _letter("<../../etc/passwd@x>", "sneaky"))
    assert [p.parent for p in mail_dir.iterdir()] == [mail_dir]
    assert not any(p.name.startswith(".") for p in mail_dir.iterdir()), "no temporary file left"


def test_serve_mailsink_process(tmp_path: Path) -> None:
    """`sandwich serve mailsink` is what the platform runs: a process that stores and stops cleanly."""
    port = free_port()
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "sandwich.cli.main",
            "serve",
            "mailsink",
            "--port",
            str(port),
            "--dir",
            str(tmp_path),
        ],
    )
    try:
        deadline = time.monotonic() + 20
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
                break
            except OSError:
                assert proc.poll() is None, "the mail sink exited"
                assert time.monotonic() < deadline, "the mail sink did not listen"
                time.sleep(0.05)
        message_id = make_msgid()
        for _ in range(2):
            _send("127.0.0.1", port, _letter(message_id, "again"))
        _send("127.0.0.1", port, _letter(make_msgid(), "other"))
        assert sorted(m["Subject"] for m in read_mails(tmp_path)) == ["again", "other"]
    finally:
        proc.terminate()
        assert proc.wait(10) == 0
