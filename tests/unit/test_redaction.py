"""Secrets never survive redaction."""

from __future__ import annotations

import sys

import pytest

from scaler import redaction


@pytest.mark.parametrize(("url", "expected"), [
    pytest.param("amqp://user:pa55@host:5672/vh", "amqp://user:***@host:5672/vh", id="amqp"),
    pytest.param("https://u:p%40ss@h/", "https://u:***@h/", id="escaped-password"),
    pytest.param("http://host:15672/", "http://host:15672/", id="no-credentials"),
    pytest.param("amqp://onlyuser@host/", "amqp://onlyuser:***@host/", id="user-only"),
])
def test_redact_url_masks_the_password(url: str, expected: str) -> None:
    assert redaction.redact_url(url) == expected


def test_redact_text_masks_urls_inside_messages_and_listed_secrets() -> None:
    text = "connect to amqp://app:t0p@rabbit:5672/ failed; password t0p rejected"
    masked = redaction.redact_text(text, ("t0p",))
    assert "t0p" not in masked
    assert "amqp://app:***@rabbit:5672/" in masked


def test_redaction_stays_linear_on_huge_text() -> None:
    # 10 s with the first, unbounded pattern; the fuzz test found it through metadata errors.
    huge = "x" * 200_000 + "amqp://u:secret@h/" + "a://" * 50_000
    masked = redaction.redact_text(huge)
    assert "secret" not in masked
    assert len(masked) == len(huge) - len("secret") + len("***")


def test_log_lines_mask_credentials_even_inside_a_library_traceback() -> None:
    import logging

    from scaler import logs

    def connect() -> None:
        raise ConnectionError("cannot reach amqp://app:t0p-s3cret@rabbit:5672/")

    formatter = logs.RedactingFormatter("%(message)s")
    try:
        connect()
    except ConnectionError:
        record = logging.LogRecord("pika", logging.ERROR, __file__, 1,
                                   "failed for http://u:t0p-s3cret@h/", None, sys.exc_info())
    line = formatter.format(record)
    assert "t0p-s3cret" not in line
    assert "amqp://app:***@rabbit:5672/" in line
