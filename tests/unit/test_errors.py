"""Our errors stand alone: no client library's exception type leaks through them."""

from __future__ import annotations

import http.client

import grpc
import kafka.errors
import pika.exceptions
import pytest

from scaler import errors, service


@pytest.mark.parametrize("error_type", [
    errors.MetadataError, errors.MetadataErrors, errors.BrokerUnavailableError,
    errors.BrokerAuthError, errors.TargetNotFoundError, errors.StaleDataError])
def test_our_errors_do_not_subclass_library_errors(error_type: type[Exception]) -> None:
    for foreign in (kafka.errors.KafkaError, pika.exceptions.AMQPError, OSError, grpc.RpcError,
                    http.client.HTTPException):
        assert not issubclass(error_type, foreign)


@pytest.mark.parametrize(("error", "code"), [
    pytest.param(errors.MetadataErrors([]), grpc.StatusCode.INVALID_ARGUMENT, id="metadata"),
    pytest.param(errors.BrokerUnavailableError("x"), grpc.StatusCode.UNAVAILABLE, id="down"),
    pytest.param(errors.StaleDataError("x"), grpc.StatusCode.UNAVAILABLE, id="stale"),
    pytest.param(errors.BrokerAuthError("x"), grpc.StatusCode.PERMISSION_DENIED, id="auth"),
    pytest.param(errors.TargetNotFoundError("x"), grpc.StatusCode.NOT_FOUND, id="not-found"),
    pytest.param(ValueError("bug"), grpc.StatusCode.INTERNAL, id="anything-else"),
])
def test_status_table_follows_the_spec(error: Exception, code: grpc.StatusCode) -> None:
    assert service.status_for(error) is code


def test_retriable_flag_sits_on_the_class() -> None:
    assert errors.BrokerUnavailableError.retriable is True
    assert errors.BrokerAuthError.retriable is False
    assert errors.TargetNotFoundError.retriable is False
