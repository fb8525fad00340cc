"""The testbed in pytest: a session fixture that starts a service the first time a test asks
for one of its variables, so a run starts only what its collected tests use.

A QUEUE_SCALER_TEST_* variable that is already set is used as it is; when a service's primary
variable is set (say QUEUE_SCALER_TEST_KAFKA), that service is the user's own and the testbed
never starts, kills or stops it. Services this session started are stopped when it ends
(QUEUE_SCALER_TESTBED_KEEP=1 keeps them); ones that were already running are left running.
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterator

import pytest

from tests.testbed import SERVICES, open_service
from tests.testbed.places import Places
from tests.testbed.service import Service, ServiceError

KEEP_VARIABLE = "QUEUE_SCALER_TESTBED_KEEP"


class Testbed:
    """The services of one test session."""

    __test__ = False  # a name pytest would otherwise try to collect as a test class

    def __init__(self, places: Places) -> None:
        self.places = places
        self.owner = f"pytest-{os.getpid()}"
        self._services = {name: open_service(name, places) for name in SERVICES}
        self._ready: dict[str, float] = {}  # service -> seconds its `up` took in this session
        self._started: list[Service] = []
        self._failed: dict[str, str] = {}

    def is_users_own(self, name: str) -> bool:
        return bool(os.environ.get(self._services[name].primary_variable))

    def variable(self, variable: str) -> str:
        """The variable's value from the environment, or from the testbed service that
        exports it, started for this session if it is not running."""
        value = os.environ.get(variable)
        if value:
            return value
        exporters = [s for s in self._services.values() if variable in s.exports()]
        if not exporters:
            pytest.fail(f"{variable} is not set and no testbed service exports it", pytrace=False)
        # Several services export the test CA: one that is up already serves.
        ours = sorted((s for s in exporters if not self.is_users_own(s.name)),
                      key=lambda s: s.name not in self._ready)
        if not ours:
            service = exporters[0]
            pytest.fail(f"{variable} is not set, while {service.primary_variable} is: that "
                        f"{service.name} is yours, so set {variable} too, or unset "
                        f"{service.primary_variable} to let the testbed start one "
                        f"(python -m tests.testbed up {service.name})", pytrace=False)
        return self.service(ours[0].name).exports()[variable]

    def service(self, name: str) -> Service:
        """The testbed's own service, up. Fault tests kill and restart it through this."""
        service = self._services[name]
        if self.is_users_own(name):
            pytest.fail(f"this test kills and restarts the testbed's {name}, and "
                        f"{service.primary_variable} points at one of yours; unset it",
                        pytrace=False)
        if name in self._failed:
            pytest.fail(self._failed[name], pytrace=False)
        if name not in self._ready:
            began = time.monotonic()
            try:
                if service.up(owner=self.owner):
                    self._started.append(service)
            except ServiceError as error:
                self._failed[name] = (
                    f"the testbed could not start {name}: {error}\n"
                    f"by hand: python -m tests.testbed up {name}; its logs: "
                    f"python -m tests.testbed logs {name}")
                pytest.fail(self._failed[name], pytrace=False)
            self._ready[name] = time.monotonic() - began
        return service

    def summary(self) -> list[str]:
        return [f"{name}: {'started' if any(s.name == name for s in self._started) else 'reused'}"
                f" and ready in {seconds:.1f} s" for name, seconds in self._ready.items()]

    def close(self) -> None:
        if os.environ.get(KEEP_VARIABLE) == "1":
            return
        for service in self._started:
            record = service.record()
            if record is not None and record.owner == self.owner:
                service.down()


_TESTBED = pytest.StashKey[Testbed]()


@pytest.fixture(scope="session")
def testbed(request: pytest.FixtureRequest) -> Iterator[Testbed]:
    bed = Testbed(Places.from_environment())
    request.config.stash[_TESTBED] = bed
    yield bed
    bed.close()


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter,
                            config: pytest.Config) -> None:
    bed = config.stash.get(_TESTBED, None)
    if bed is not None and bed.summary():
        terminalreporter.write_sep("-", "testbed")
        for line in bed.summary():
            terminalreporter.write_line(line)
