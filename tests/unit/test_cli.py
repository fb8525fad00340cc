"""The command line: settings from flags and environment, bad values exit 2 naming the flag."""

from __future__ import annotations

import pytest

from scaler import cli


def test_bad_flag_value_exits_2_naming_the_flag(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as raised:
        cli.main(["serve", "--grpc-address", "nonsense"])
    assert raised.value.code == 2
    assert "--grpc-address" in capsys.readouterr().err


def test_bad_environment_value_exits_2_naming_the_variable(
        monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setenv("QUEUE_SCALER_BROKER_TIMEOUT", "-3")
    with pytest.raises(SystemExit) as raised:
        cli.main(["check", "--metadata", "source=kafka"])
    assert raised.value.code == 2
    assert "QUEUE_SCALER_BROKER_TIMEOUT" in capsys.readouterr().err


def test_check_with_bad_metadata_exits_2_with_every_problem(
        capsys: pytest.CaptureFixture[str]) -> None:
    code = cli.main(["check", "--metadata", "source=kafka", "lagThreshold=-1"])
    err = capsys.readouterr().err
    assert code == 2
    assert "bootstrapServers: is required" in err
    assert "lagThreshold: must be a whole number of at least 1, got '-1'" in err


def test_check_against_an_unreachable_broker_exits_1(capsys: pytest.CaptureFixture[str]) -> None:
    code = cli.main(["check", "--broker-timeout", "1", "--metadata", "source=rabbitmq",
                     "hostFromEnv=amqp://guest:guest@127.0.0.1:1/", "queueName=q"])
    assert code == 1
    assert "BrokerUnavailableError" in capsys.readouterr().err
