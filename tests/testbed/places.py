"""Where the testbed keeps things: a cache of what is slow to get, keyed by service and version,
and a state folder for data, logs, process records, the ports each service was given and the
locks. Both are machine-wide (outside any clone), because the ports and processes they describe
are machine-wide too: two clones share one Kafka instead of fighting over its ports."""

from __future__ import annotations

import contextlib
import dataclasses
import os
import shutil
from collections.abc import Callable, Iterator
from pathlib import Path

import filelock
import port_for

CACHE_VARIABLE = "QUEUE_SCALER_TESTBED_CACHE"
STATE_VARIABLE = "QUEUE_SCALER_TESTBED_STATE"
# Long enough for a cold install (apt, Maven, a Go build) by another run holding the lock.
LOCK_TIMEOUT_S = 900.0


def _xdg(variable: str, fallback: str) -> Path:
    return Path(os.environ.get(variable) or Path.home() / fallback)


@dataclasses.dataclass(frozen=True)
class Places:
    cache: Path
    state: Path

    @classmethod
    def from_environment(cls) -> Places:
        """The default folders, or the ones QUEUE_SCALER_TESTBED_CACHE/_STATE name."""
        cache = os.environ.get(CACHE_VARIABLE) or _xdg("XDG_CACHE_HOME", ".cache") / (
            "queue-scaler/testbed")
        state = os.environ.get(STATE_VARIABLE) or _xdg("XDG_STATE_HOME", ".local/state") / (
            "queue-scaler/testbed")
        return cls(Path(cache).absolute(), Path(state).absolute())

    def cache_dir(self, service: str, version: str) -> Path:
        """The cache entry of one version of one service, e.g. <cache>/kafka-4.1.1."""
        return self.cache / f"{service}-{version}"

    def state_dir(self, service: str) -> Path:
        path = self.state / service
        path.mkdir(parents=True, exist_ok=True)
        return path

    def ports(self, service: str, names: tuple[str, ...]) -> dict[str, int]:
        """Free ports on 127.0.0.1, chosen by port-for on first use and kept in the state folder,
        so a service listens where it did last time and its exports stay valid."""
        self.state.mkdir(parents=True, exist_ok=True)
        with self.lock("ports"):
            store = port_for.PortStore(str(self.state / "ports.ini"))
            return {name: store.bind_port(f"{service}.{name}") for name in names}

    @contextlib.contextmanager
    def lock(self, name: str) -> Iterator[None]:
        """One lock per name: two runs never install or start the same service at once."""
        self.state.mkdir(parents=True, exist_ok=True)
        with filelock.FileLock(self.state / f"{name}.lock", timeout=LOCK_TIMEOUT_S):
            yield


def fill_cache_entry(entry: Path, stamp: str, fill: Callable[[Path], None]) -> bool:
    """Makes `entry` hold what `fill(folder)` puts in a folder, unless it already holds the
    result for `stamp` (a fingerprint of the inputs). Filled in a scratch folder and moved in
    whole, so an interrupted download never looks complete. Returns whether it filled."""
    stamp_file = entry / ".stamp"
    if stamp_file.is_file() and stamp_file.read_text() == stamp:
        return False
    scratch = entry.with_name(entry.name + ".partial")
    shutil.rmtree(scratch, ignore_errors=True)
    scratch.mkdir(parents=True)
    fill(scratch)
    (scratch / ".stamp").write_text(stamp)
    shutil.rmtree(entry, ignore_errors=True)
    scratch.rename(entry)
    return True
