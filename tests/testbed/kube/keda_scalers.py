"""keda-scalers: our small Go program (tests/testbed/kube/keda_scalers_go/main.go) that imports
KEDA's own `pkg/scalers` at the KEDA version the testbed runs, builds its built-in `kafka` or
`rabbitmq` scaler from a trigger given as JSON, and prints what that scaler answers. Built once
into the testbed's cache (<cache>/keda-scalers-<KEDA version>/) from a wrapper module that repeats
KEDA's go.mod (its replace and exclude lines), as the KEDA operator is (tests/testbed/kube/
programs.py); rebuilt when main.go or the recipe changes. The tests that use it are in
tests/integration/keda/test_differences.py."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import time
from pathlib import Path
from typing import Any

from tests.testbed import install, progress
from tests.testbed.kube import gobuild, programs
from tests.testbed.places import Places, fill_cache_entry

NAME = "keda-scalers"
SOURCE = Path(__file__).with_name("keda_scalers_go") / "main.go"
RECIPE = 1
KEDA_MODULE = "github.com/kedacore/keda/v2"
RUN_TIMEOUT_S = 90.0


def _stamp() -> str:
    text = "\0".join([NAME, programs.KEDA_VERSION, str(RECIPE)])
    return hashlib.sha256(text.encode() + b"\0" + SOURCE.read_bytes()).hexdigest()


def _is_built(entry: Path) -> bool:
    stamp = entry / ".stamp"
    return (stamp.is_file() and stamp.read_text() == _stamp()
            and os.access(entry / NAME, os.X_OK))


def ensure(places: Places, logs: Path) -> Path:
    """The path of the keda-scalers binary, built first when missing or out of date."""
    entry = places.cache_dir(NAME, programs.KEDA_VERSION)
    if _is_built(entry):
        return entry / NAME
    with places.lock(f"build-{NAME}"):
        if not _is_built(entry):
            logs.mkdir(parents=True, exist_ok=True)
            log = logs / f"build-{NAME}-{programs.KEDA_VERSION}.log"
            (entry / ".stamp").unlink(missing_ok=True)
            fill_cache_entry(entry, _stamp(), lambda folder: _build_in(folder, log))
            if not _is_built(entry):
                raise install.InstallError(f"the build of {NAME} finished but {entry / NAME} "
                                           f"is not there; see {log}")
    return entry / NAME


def _build_in(folder: Path, log: Path) -> None:
    began = time.monotonic()
    progress.say(f"building {NAME} against KEDA v{programs.KEDA_VERSION}'s pkg/scalers "
                 f"(minutes when the Go build cache is cold; log: {log})")
    go = gobuild.go_command()
    wrapper = folder / "wrapper"
    wrapper.mkdir()
    _, go_mod = gobuild.module_source(KEDA_MODULE, programs.KEDA_VERSION,
                                      log.with_name(log.stem + "-download.log"))
    go_version = subprocess.run([go, "env", "GOVERSION"], capture_output=True,  # noqa: S603
                                text=True, timeout=60, check=True).stdout.strip()
    (wrapper / "go.mod").write_text("\n".join([
        f"module {gobuild.WRAPPER_MODULE}/{NAME}", "", f"go {go_version.removeprefix('go')}", "",
        *programs.keda_go_mod(go_mod), ""]))
    shutil.copyfile(SOURCE, wrapper / "main.go")
    with log.open("w") as output:
        output.write(f"# wrapper go.mod\n{(wrapper / 'go.mod').read_text()}\n")
    environment = gobuild.go_environment()
    gobuild.run_go([go, "get", f"{KEDA_MODULE}@v{programs.KEDA_VERSION}"], wrapper, log,
                 environment, f"go get {KEDA_MODULE}@v{programs.KEDA_VERSION}")
    gobuild.run_go([go, "build", "-trimpath", "-ldflags=-s -w", "-o", str(folder / NAME), "."],
                 wrapper, log, environment, f"go build {NAME}")
    progress.say(f"built {NAME} in {time.monotonic() - began:.0f} s")


def run(binary: Path, trigger_type: str, metadata: dict[str, str], *,
        auth_params: dict[str, str] | None = None, calls: int = 1, interval_ms: int = 0,
        trigger_index: int = 0) -> dict[str, Any]:
    """What KEDA's built-in scaler answers: {"metricName", "targetType", "target", "calls":
    [{"value", "isActive"} or {"error"}], "error" (when the scaler could not be built)}."""
    request = {"type": trigger_type, "metadata": metadata, "authParams": auth_params or {},
               "calls": calls, "intervalMs": interval_ms, "triggerIndex": trigger_index}
    done = subprocess.run([str(binary)], input=json.dumps(request),  # noqa: S603
                          capture_output=True, text=True, timeout=RUN_TIMEOUT_S, check=False)
    if done.returncode != 0:
        raise AssertionError(f"{binary} failed (exit {done.returncode}): {done.stderr}")
    answer: dict[str, Any] = json.loads(done.stdout)
    return answer


if __name__ == "__main__":
    environment = Places.from_environment()
    print(ensure(environment, environment.state_dir("kube") / "logs"))
