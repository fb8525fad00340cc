"""Log formats: one JSON object per line with the `extra=` fields, redacted like text lines;
and --log-format on the command line."""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys

import pytest

from scaler import cli, logs

SECRET = "Pa55-in-a-url"


def record(message: str, *args: object, extra: dict[str, object] | None = None,
           exc_info: bool = False) -> logging.LogRecord:
    made = logging.getLogger("scaler.service").makeRecord(
        "scaler.service", logging.INFO, __file__, 1, message, args,
        sys.exc_info() if exc_info else None, extra=extra)
    made.created = 1_767_225_600.25  # 2026-01-01T00:00:00.250Z
    return made


def test_a_json_line_has_time_level_logger_message_and_every_extra_field() -> None:
    line = logs.JsonFormatter().format(record(
        "decision changed for %s/%s", "shop", "mailer",
        extra={"event": "decision_changed", "namespace": "shop", "scaledObject": "mailer",
               "isActive": True, "wasActive": False, "desiredReplicas": 3,
               "previousReplicas": None, "reason": "active: messages 45 > activationValue 0"}))

    assert "\n" not in line
    assert json.loads(line) == {
        "time": "2026-01-01T00:00:00.250Z", "level": "INFO", "logger": "scaler.service",
        "message": "decision changed for shop/mailer", "event": "decision_changed",
        "namespace": "shop", "scaledObject": "mailer", "isActive": True, "wasActive": False,
        "desiredReplicas": 3, "previousReplicas": None,
        "reason": "active: messages 45 > activationValue 0"}


def test_json_lines_mask_url_credentials_in_message_fields_and_tracebacks() -> None:
    url = f"amqp://guest:{SECRET}@127.0.0.1:5672/"

    def connect() -> None:
        raise ConnectionError(f"refused by {url}")

    try:
        connect()
    except ConnectionError:
        made = record("reading %s failed", url, exc_info=True,
                      extra={"detail": {"urls": [url]}, "error": ValueError(url)})

    line = logs.JsonFormatter().format(made)

    assert SECRET not in line
    fields = json.loads(line)
    assert fields["message"] == "reading amqp://guest:***@127.0.0.1:5672/ failed"
    assert fields["detail"] == {"urls": ["amqp://guest:***@127.0.0.1:5672/"]}
    assert fields["error"] == "amqp://guest:***@127.0.0.1:5672/"
    assert "ConnectionError: refused by amqp://guest:***@" in fields["exception"]


def test_the_text_format_keeps_its_one_line_shape_and_masks_credentials() -> None:
    line = logs.formatter("text").format(record("cannot reach %s", f"http://u:{SECRET}@h/"))

    assert line.endswith("INFO scaler.service: cannot reach http://u:***@h/")
    assert SECRET not in line


def test_an_unknown_format_is_refused_naming_the_accepted_ones() -> None:
    with pytest.raises(ValueError, match="text, json"):
        logs.formatter("xml")


def test_a_bad_log_format_flag_exits_2_naming_the_flag_and_the_choices(
        capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as raised:
        cli.main(["serve", "--log-format", "yaml"])

    assert raised.value.code == 2
    err = capsys.readouterr().err
    assert "--log-format" in err
    assert "must be one of text, json, got 'yaml'" in err


def test_a_bad_log_format_variable_exits_2_naming_the_variable(
        monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setenv("QUEUE_SCALER_LOG_FORMAT", "logfmt")

    with pytest.raises(SystemExit) as raised:
        cli.main(["check", "--metadata", "source=kafka"])

    assert raised.value.code == 2
    err = capsys.readouterr().err
    assert "QUEUE_SCALER_LOG_FORMAT (the environment twin of --log-format)" in err
    assert "must be one of text, json, got 'logfmt'" in err



def test_a_process_configured_without_a_format_writes_the_one_its_parent_was_given() -> None:
    # The reader process calls configure(level) alone; the serving process's format reaches
    # it through the environment it is started with.
    program = ("import logging; from scaler import logs; logs.configure('INFO'); "
               "logging.getLogger('scaler.child').info('from the child')")
    done = subprocess.run(  # noqa: S603 - this interpreter, our own program
        [sys.executable, "-c", program], capture_output=True, text=True, timeout=60,
        check=True, env={**os.environ, "QUEUE_SCALER_LOG_FORMAT": "json"})

    line = json.loads(done.stderr)
    assert (line["logger"], line["message"]) == ("scaler.child", "from the child")
