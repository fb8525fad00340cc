"""The test cluster's one foreground process (`python -m tests.testbed.kube.supervisor`, as the
"kube" service's command): starts each program of the cluster in order, each with its own log,
waits until it answers before the next, stops them all in reverse order on SIGTERM, and stops
them all and exits non-zero when one of them dies, so the testbed sees a dead service and
starts it again rather than a cluster with a hole in it."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import traceback
from types import FrameType

from tests.testbed import progress
from tests.testbed.kube.cluster import Kube
from tests.testbed.kube.component import Component
from tests.testbed.places import Places

START_TIMEOUT_S = 150.0
STOP_TIMEOUT_S = 20.0


class _Stop(Exception):
    pass


def _on_signal(signum: int, frame: FrameType | None) -> None:
    raise _Stop


def _start(component: Component, cluster: Kube) -> subprocess.Popen[bytes]:
    with component.log(cluster.logs).open("ab") as log:
        return subprocess.Popen(  # noqa: S603 - our own programs
            component.command, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
            cwd=cluster.state, env=os.environ | component.environment)


def _wait_ready(component: Component, process: subprocess.Popen[bytes]) -> None:
    began = time.monotonic()
    while not component.is_ready():
        if process.poll() is not None:
            raise RuntimeError(f"{component.name} exited with {process.returncode} while "
                               "starting")
        if time.monotonic() - began > START_TIMEOUT_S:
            raise RuntimeError(f"{component.name} did not answer within {START_TIMEOUT_S:g} s")
        time.sleep(0.2)
    progress.say(f"{component.name} is up ({time.monotonic() - began:.1f} s)")


def _stop(running: list[tuple[Component, subprocess.Popen[bytes]]]) -> None:
    for component, process in reversed(running):
        if process.poll() is None:
            process.terminate()
            try:
                process.wait(timeout=STOP_TIMEOUT_S)
            except subprocess.TimeoutExpired:
                progress.say(f"{component.name} did not stop in {STOP_TIMEOUT_S:g} s; SIGKILL")
                process.kill()
                process.wait()
        progress.say(f"{component.name} stopped ({process.returncode})")


def main() -> int:
    signal.signal(signal.SIGTERM, _on_signal)
    signal.signal(signal.SIGINT, _on_signal)
    cluster = Kube(Places.from_environment())
    running: list[tuple[Component, subprocess.Popen[bytes]]] = []
    try:
        began = time.monotonic()
        for component in cluster.components():
            progress.say(f"starting {component.name} (log: {component.log(cluster.logs)})")
            process = _start(component, cluster)
            running.append((component, process))
            _wait_ready(component, process)
            if component.after_ready is not None:
                component.after_ready()
        progress.say(f"the cluster is up ({time.monotonic() - began:.1f} s)")
        while True:
            for component, process in running:
                if process.poll() is not None:
                    progress.say(f"{component.name} exited with {process.returncode}; "
                                 "stopping the cluster")
                    return 1
            time.sleep(0.5)
    except _Stop:
        progress.say("stopping the cluster")
        return 0
    except Exception as error:  # noqa: BLE001 - said in the log, then every program stopped
        progress.say(f"ERROR: {error}\n{traceback.format_exc()}")
        return 1
    finally:
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        _stop(running)


if __name__ == "__main__":
    sys.exit(main())
