"""The testbed's own logic, without a service: cache keys, cache fills, ports that stay put, and
readiness checks that a merely open port does not fool."""

from __future__ import annotations

import socket
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.testbed import artemis, kafka, rabbitmq
from tests.testbed.places import Places, fill_cache_entry


@pytest.fixture
def places(tmp_path: Path) -> Places:
    return Places(cache=tmp_path / "cache", state=tmp_path / "state")


def test_cache_entries_are_keyed_by_service_and_version(places: Places) -> None:
    assert places.cache_dir("kafka", "4.1.1") == places.cache / "kafka-4.1.1"
    assert places.cache_dir("kafka", "4.2.0") != places.cache_dir("kafka", "4.1.1")


@pytest.mark.parametrize(("pom", "version"), [
    pytest.param("<project>other</project>", "4.1.1", id="another-pom"),
    pytest.param("<project/>", "4.2.0", id="another-version"),
])
def test_a_changed_pom_or_version_changes_the_jar_stamp(pom: str, version: str) -> None:
    assert kafka.jar_set_stamp(pom, version) != kafka.jar_set_stamp("<project/>", "4.1.1")


def test_a_cache_entry_is_filled_once_per_stamp(tmp_path: Path) -> None:
    fills: list[Path] = []

    def fill(folder: Path) -> None:
        fills.append(folder)
        (folder / "lib.jar").write_text(f"fill {len(fills)}")

    entry = tmp_path / "kafka-4.1.1"
    assert fill_cache_entry(entry, "a", fill) is True
    assert fill_cache_entry(entry, "a", fill) is False  # a second run fetches nothing
    assert fill_cache_entry(entry, "b", fill) is True  # the inputs changed: fetched again
    assert (entry / "lib.jar").read_text() == "fill 2"
    assert len(fills) == 2


def test_an_interrupted_fill_leaves_no_entry_that_looks_complete(tmp_path: Path) -> None:
    def broken(folder: Path) -> None:
        (folder / "half.jar").write_text("half")
        raise OSError("download cut")

    entry = tmp_path / "kafka-4.1.1"
    with pytest.raises(OSError, match="download cut"):
        fill_cache_entry(entry, "a", broken)
    assert not entry.exists()
    assert fill_cache_entry(entry, "a", lambda folder: None) is True


def test_ports_stay_put_across_runs_and_differ_between_listeners(places: Places) -> None:
    first = places.ports("kafka", ("plaintext", "controller"))
    again = Places(places.cache, places.state).ports("kafka", ("plaintext", "controller"))
    other = places.ports("rabbitmq", ("amqp",))
    assert first == again
    assert len({*first.values(), *other.values()}) == 3


@pytest.fixture
def silent_listener() -> Iterator[str]:
    """A port that accepts connections and never says a word: open, but no service."""
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(8)
        yield f"127.0.0.1:{listener.getsockname()[1]}"


@pytest.fixture
def http_listener() -> Iterator[str]:
    """A port that answers every connection with an HTTP error: some other protocol."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(8)
    listener.settimeout(0.2)
    stop = threading.Event()

    def serve() -> None:
        while not stop.is_set():
            try:
                connection, _ = listener.accept()
            except TimeoutError:
                continue
            with connection:
                connection.sendall(b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n\r\n")

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    yield f"127.0.0.1:{listener.getsockname()[1]}"
    stop.set()
    thread.join()
    listener.close()


def closed_port() -> str:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return f"127.0.0.1:{probe.getsockname()[1]}"


@pytest.mark.parametrize("where", ["closed", "silent", "http"])
def test_kafka_readiness_needs_a_kafka_answer(where: str, request: pytest.FixtureRequest
                                              ) -> None:
    address = closed_port() if where == "closed" else request.getfixturevalue(f"{where}_listener")
    assert kafka.answers_api_versions(address, timeout_s=0.5) is False


@pytest.mark.parametrize("where", ["closed", "silent", "http"])
def test_rabbitmq_readiness_needs_amqp_and_management_answers(
        where: str, request: pytest.FixtureRequest) -> None:
    address = closed_port() if where == "closed" else request.getfixturevalue(f"{where}_listener")
    assert rabbitmq.amqp_answers(f"amqp://guest:guest@{address}/", timeout_s=0.5) is False
    assert rabbitmq.management_answers(f"http://guest:guest@{address}/", timeout_s=0.5) is False


@pytest.mark.parametrize("where", ["closed", "silent", "http"])
def test_artemis_readiness_needs_a_jolokia_answer(where: str, request: pytest.FixtureRequest
                                                  ) -> None:
    address = closed_port() if where == "closed" else request.getfixturevalue(f"{where}_listener")
    assert artemis.jolokia(address, "u", "p", {"type": "version"}, timeout_s=0.5) is None
