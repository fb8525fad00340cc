"""The one interface every test service implements, and the process handling they share.

A service is one long-running program on 127.0.0.1. It is started detached (its own session,
output in a log file), so it outlives the command or test session that started it, and it is
found again through a record in its state folder: pid plus process start time, so a reused pid
is never mistaken for it (psutil tells both). Ready means it answers its own protocol, never
merely that a port is open.
"""

from __future__ import annotations

import abc
import contextlib
import dataclasses
import hashlib
import json
import os
import re
import signal
import subprocess
import time
from pathlib import Path
from typing import ClassVar

import psutil

from tests.testbed import progress, tls
from tests.testbed.places import Places

HOST = "127.0.0.1"
START_TIMEOUT_S = 180.0
STOP_TIMEOUT_S = 60.0
# Lines of a log worth showing when a start fails: the cause is often far above the tail.
ERROR_LINE = re.compile(r"\b(ERROR|FATAL|error|BOOT FAILED)\b|^Caused by|\[(error|critical)\]")


class ServiceError(RuntimeError):
    """A service could not be installed, started or stopped; the message says why."""


@dataclasses.dataclass(frozen=True)
class ProcessRecord:
    pid: int
    started_at: float  # psutil's create_time: with the pid, names one process for good
    config: str  # fingerprint of the configuration it was started with
    owner: str  # who started it: "cli" (a person: never stopped by a test session) or a session


class Service(abc.ABC):
    """What a test service is: how to install, configure, start and check it."""

    name: ClassVar[str]
    # When this variable is set, the service is the user's own and every one of its variables
    # is taken from the environment as it is; the testbed neither starts nor kills it.
    primary_variable: ClassVar[str]
    port_names: ClassVar[tuple[str, ...]] = ()

    def __init__(self, places: Places) -> None:
        self.places = places
        self.state = places.state_dir(self.name)
        self.ports = places.ports(self.name, self.port_names)
        self.logs = self.state / "logs"

    # ---- what each service says -------------------------------------------------------------

    @property
    @abc.abstractmethod
    def version(self) -> str: ...

    @abc.abstractmethod
    def install(self) -> None:
        """Gets what the service needs (packages, jars, builds); cheap when it is there."""

    @abc.abstractmethod
    def config_files(self) -> dict[Path, str]:
        """Every file the service reads, by path: written before each start."""

    @abc.abstractmethod
    def prepare(self) -> None:
        """Work after the config is written and before the start (formatting storage)."""

    @abc.abstractmethod
    def command(self) -> list[str]:
        """The foreground command that runs the service."""

    def environment(self) -> dict[str, str]:
        return {}

    @abc.abstractmethod
    def is_ready(self) -> bool:
        """True when the service answers its own protocol on every address it exports."""

    @abc.abstractmethod
    def exports(self) -> dict[str, str]:
        """The QUEUE_SCALER_TEST_* variables that tell tests where the service is."""

    def log_files(self) -> list[Path]:
        return [self.logs / "console.log"]

    # ---- shared behaviour -------------------------------------------------------------------

    def certificates(self) -> tls.TestCertificates:
        """The test CA and server certificate that every TLS listener of the testbed presents."""
        return tls.ensure(self.places.state / "tls")

    @property
    def record_file(self) -> Path:
        return self.state / "process.json"

    def config_fingerprint(self) -> str:
        digest = hashlib.sha256()
        for path, text in sorted(self.config_files().items()):
            digest.update(f"{path}\0{text}\0".encode())
        return digest.hexdigest()[:16]

    def record(self) -> ProcessRecord | None:
        try:
            return ProcessRecord(**json.loads(self.record_file.read_text()))
        except (FileNotFoundError, ValueError, TypeError):
            return None

    def process(self) -> psutil.Process | None:
        """The running service process, if the record names a live one."""
        record = self.record()
        if record is None:
            return None
        try:
            process = psutil.Process(record.pid)
            # After a SIGKILL the corpse can linger until its parent (or init) reaps it.
            if (abs(process.create_time() - record.started_at) > 0.01
                    or process.status() == psutil.STATUS_ZOMBIE):
                return None
        except psutil.NoSuchProcess:
            return None
        return process

    def up(self, owner: str | None = None) -> bool:
        """Installs, starts and waits until ready; returns whether this call started it. A
        service killed by a fault test comes back owned by whoever started it before; else the
        owner is `owner`, by default "cli"."""
        with self.places.lock(self.name):
            running = self.process()
            record = self.record()
            if running is not None and record is not None:
                if record.config != self.config_fingerprint():
                    progress.say(f"WARNING: {self.name}'s configuration changed since it "
                                 f"started; `python -m tests.testbed down {self.name}` and "
                                 "`up` apply it")
                self._wait_ready(running, log_offsets=None)
                return False
            # Installed only when it is to start: never swap files under a running service.
            self.install()
            self._launch(record.owner if record is not None else owner or "cli")
            return True

    def _launch(self, owner: str) -> None:
        self.logs.mkdir(parents=True, exist_ok=True)
        for path, text in self.config_files().items():
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(text)
        self.prepare()
        offsets = {path: path.stat().st_size if path.exists() else 0
                   for path in self.log_files()}
        progress.say(f"starting {self.name} {self.version} (logs: {self.logs})")
        pid = _start_detached(self.command(), self.logs / "console.log", cwd=self.state,
                              env=os.environ | self.environment())
        try:
            process = psutil.Process(pid)
        except psutil.NoSuchProcess:
            raise ServiceError(f"{self.name} exited at once\n" + self.log_report(offsets)) from None
        self.record_file.write_text(json.dumps(dataclasses.asdict(ProcessRecord(
            pid=pid, started_at=process.create_time(), config=self.config_fingerprint(),
            owner=owner))))
        self._wait_ready(process, offsets)

    def _wait_ready(self, process: psutil.Process, log_offsets: dict[Path, int] | None) -> None:
        started = time.monotonic()
        while not self.is_ready():
            if not _is_alive(process):
                raise ServiceError(f"{self.name} exited while starting\n"
                                   + self.log_report(log_offsets))
            if time.monotonic() - started > START_TIMEOUT_S:
                raise ServiceError(f"{self.name} did not answer within {START_TIMEOUT_S:g} s\n"
                                   + self.log_report(log_offsets))
            time.sleep(0.25)
        progress.say(f"{self.name} is up ({time.monotonic() - started:.1f} s)")

    def down(self) -> None:
        """Stops the service the way its own shutdown expects (SIGTERM); SIGKILL if it hangs."""
        with self.places.lock(self.name):
            process = self.process()
            if process is None:
                progress.say(f"{self.name} is not running")
            else:
                progress.say(f"stopping {self.name} (pid {process.pid})")
                process.terminate()
                gone, _ = psutil.wait_procs([process], timeout=STOP_TIMEOUT_S)
                if not gone:
                    progress.say(f"{self.name} did not stop in {STOP_TIMEOUT_S:g} s; SIGKILL")
                    self._kill_group(process)
            self.record_file.unlink(missing_ok=True)

    def kill(self) -> None:
        """SIGKILL to the whole process group, for fault tests: no goodbye to any client. The
        record stays, so `up` restarts it on the same data and for the same owner."""
        with self.places.lock(self.name):
            process = self.process()
            if process is not None:
                progress.say(f"killing {self.name} (SIGKILL, pid {process.pid})")
                self._kill_group(process)

    @staticmethod
    def _kill_group(process: psutil.Process) -> None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(os.getpgid(process.pid), signal.SIGKILL)
        psutil.wait_procs([process], timeout=STOP_TIMEOUT_S)

    def status(self) -> tuple[bool, str]:
        process = self.process()
        if process is None:
            return False, f"{self.name}: down"
        if not self.is_ready():
            return False, f"{self.name}: running (pid {process.pid}) but not answering"
        record = self.record()
        owner = f", started by {record.owner}" if record else ""
        return True, f"{self.name}: up ({self.version}, pid {process.pid}{owner})"

    def log_report(self, offsets: dict[Path, int] | None = None, lines: int = 40) -> str:
        """The tail of each log, and the error-looking lines written since `offsets`."""
        parts = []
        for path in self.log_files():
            if not path.is_file():
                continue
            with path.open("rb") as log:
                log.seek((offsets or {}).get(path, 0))
                since = log.read().decode(errors="replace").splitlines()
            errors = [line for line in since if ERROR_LINE.search(line)][:15]
            tail = path.read_text(errors="replace").splitlines()[-lines:]
            parts.append(f"---- last {len(tail)} lines of {path} ----\n" + "\n".join(tail))
            if errors and offsets is not None:
                parts.append(f"---- error lines of this start in {path} ----\n"
                             + "\n".join(errors))
        return "\n".join(parts) or f"(no logs in {self.logs})"


def _start_detached(command: list[str], log: Path, cwd: Path, env: dict[str, str]) -> int:
    """Starts `command` in the background of a short-lived shell in a new session, and returns
    its pid. The shell exits at once, so the service is nobody's child here: no zombie after a
    kill, no warning about a still-running subprocess, and a terminal's Ctrl-C or the end of a CI
    step does not reach it. Its output goes to `log`."""
    launcher = subprocess.run(  # noqa: S603 - our own command line
        ["/bin/sh", "-c", 'log=$1; shift; "$@" </dev/null >>"$log" 2>&1 & echo $!', "sh",
         str(log), *command],
        cwd=cwd, env=env, capture_output=True, text=True, timeout=30, check=True,
        start_new_session=True)
    return int(launcher.stdout)


def _is_alive(process: psutil.Process) -> bool:
    try:
        return process.status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


