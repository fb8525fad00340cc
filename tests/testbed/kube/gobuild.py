"""Go programs built from the Go module proxy into the testbed's cache, through a wrapper
module: a throwaway go.mod that requires the program's module and adds what `go install
…@version` cannot (replace and exclude lines; Go ignores a dependency's own). One cache entry
per program and version (<cache>/<name>-<version>/), filled under a lock, in a scratch folder
moved in whole; the wrapper's go.mod and go.sum stay beside the binaries, to show what was built."""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import shutil
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

from tests.testbed import install, progress
from tests.testbed.places import Places, fill_cache_entry

# A cold build of the Kubernetes or KEDA module graph takes minutes on two shared cores.
BUILD_TIMEOUT_S = 3600.0
# A wrapper module's name: nothing is ever published under it.
WRAPPER_MODULE = "queue-scaler.test/testbed"


@dataclasses.dataclass(frozen=True)
class GoBuild:
    """One cache entry of Go binaries built from one module version."""

    name: str  # the cache entry's name, e.g. "kubernetes"
    version: str  # the module version without the v, e.g. "1.36.3"
    module: str  # the module path, e.g. "k8s.io/kubernetes"
    binaries: dict[str, str]  # output file name -> package path, e.g. {"etcd": "go.etcd.io/..."}
    # The wrapper's go.mod lines beyond module and go (replace, exclude, require), made at
    # build time from the module's own go.mod (its path is the argument).
    go_mod_lines: Callable[[Path], list[str]] | None = None
    # Bumped when how go_mod_lines or extra_files work changes, so old entries are rebuilt.
    recipe: int = 1
    ldflags: str = ""
    # The version line the binary prints for `version_argument`; a binary that does not print
    # it is rebuilt (a stamp alone would trust a file that a crash or a hand may have broken).
    version_argument: str | None = None
    version_text: str | None = None
    # Copies files from the module's source (its folder in GOMODCACHE) into the entry.
    extra_files: Callable[[Path, Path], None] | None = None

    def stamp(self) -> str:
        text = "\0".join([self.name, self.version, self.module, repr(sorted(self.binaries.items())),
                          self.ldflags, str(self.recipe)])
        return hashlib.sha256(text.encode()).hexdigest()

    def is_built(self, entry: Path) -> bool:
        stamp_file = entry / ".stamp"
        if not (stamp_file.is_file() and stamp_file.read_text() == self.stamp()):
            return False
        if not all(os.access(entry / binary, os.X_OK) for binary in self.binaries):
            return False
        if self.version_argument is None or self.version_text is None:
            return True
        first = next(iter(self.binaries))
        done = subprocess.run([str(entry / first), self.version_argument],  # noqa: S603
                              capture_output=True, text=True, timeout=60, check=False)
        return done.returncode == 0 and self.version_text in done.stdout + done.stderr


def go_command() -> str:
    go = shutil.which("go")
    if go is None:
        raise install.InstallError(
            "the Kubernetes test cluster is built from source with Go, and there is no `go` on "
            "PATH; install Go 1.26 or newer")
    return go


def go_environment() -> dict[str, str]:
    """The wrapper's go.mod decides, whatever the caller's GOFLAGS or GOWORK say; the local
    toolchain builds (no toolchain download behind our back); static binaries (no cgo)."""
    return {"GOFLAGS": "-mod=mod -buildvcs=false", "GOWORK": "off", "GOTOOLCHAIN": "local",
            "CGO_ENABLED": "0"}


def module_source(module: str, version: str, log: Path) -> tuple[Path, Path]:
    """The module's source folder and its go.mod file, downloaded from the module proxy."""
    go = go_command()
    done = subprocess.run([go, "mod", "download", "-json", f"{module}@v{version}"],  # noqa: S603
                          capture_output=True, text=True, timeout=BUILD_TIMEOUT_S, check=False,
                          env=os.environ | go_environment(), cwd=log.parent)
    log.write_text(done.stdout + done.stderr)
    if done.returncode != 0:
        raise install.InstallError(f"go mod download {module}@v{version} failed "
                                   f"(exit {done.returncode}); see {log}")
    found = json.loads(done.stdout)
    return Path(found["Dir"]), Path(found["GoMod"])


def ensure(build: GoBuild, places: Places, logs: Path) -> Path:
    """The cache entry holding `build`'s binaries, built first when it is missing or broken.
    Cheap when built: one stamp read and at most one short `--version` run."""
    entry = places.cache_dir(build.name, build.version)
    if build.is_built(entry):
        return entry
    with places.lock(f"build-{build.name}"):
        # Another run may have built it while this one waited for the lock.
        if build.is_built(entry):
            return entry
        logs.mkdir(parents=True, exist_ok=True)
        log = logs / f"build-{build.name}-{build.version}.log"

        def fill(folder: Path) -> None:
            began = time.monotonic()
            progress.say(f"building {', '.join(build.binaries)} from {build.module} "
                         f"v{build.version} into {entry} (minutes when cold; log: {log})")
            _build_in(build, folder, log)
            progress.say(f"built {build.name} {build.version} in "
                         f"{time.monotonic() - began:.0f} s")

        (entry / ".stamp").unlink(missing_ok=True)
        fill_cache_entry(entry, build.stamp(), fill)
        if not build.is_built(entry):
            raise install.InstallError(f"the build of {build.name} {build.version} finished but "
                                       f"its binaries in {entry} do not answer; see {log}")
    return entry


def _build_in(build: GoBuild, folder: Path, log: Path) -> None:
    go = go_command()
    wrapper = folder / "wrapper"
    wrapper.mkdir()
    source, go_mod = module_source(build.module, build.version,
                                   log.with_name(log.stem + "-download.log"))
    lines = build.go_mod_lines(go_mod) if build.go_mod_lines is not None else []
    go_version = subprocess.run([go, "env", "GOVERSION"], capture_output=True,  # noqa: S603
                                text=True, timeout=60, check=True).stdout.strip()
    (wrapper / "go.mod").write_text("\n".join([
        f"module {WRAPPER_MODULE}/{build.name}", "",
        f"go {go_version.removeprefix('go')}", "", *lines, ""]))
    environment = go_environment()
    with log.open("w") as output:
        output.write(f"# wrapper go.mod\n{(wrapper / 'go.mod').read_text()}\n")
    # Every tool path carries the version: without it `go get` takes each package's latest.
    tools = sorted({f"{package}@v{build.version}" for package in build.binaries.values()})
    run_go([go, "get", "-tool", *tools], wrapper, log, environment,
         f"go get -tool {' '.join(tools)}")
    for binary, package in build.binaries.items():
        progress.say(f"compiling {binary} ({package})")
        began = time.monotonic()
        run_go([go, "build", "-trimpath", f"-ldflags={build.ldflags}", "-o",
              str(folder / binary), package], wrapper, log, environment, f"go build {package}")
        progress.say(f"compiled {binary} in {time.monotonic() - began:.0f} s")
    if build.extra_files is not None:
        build.extra_files(source, folder)


def run_go(command: list[str], cwd: Path, log: Path, environment: dict[str, str],
           what: str) -> None:
    """Runs one go command, its output appended to `log`; raises InstallError with the log's
    end."""
    with log.open("a") as output:
        output.write(f"\n$ {' '.join(command)}\n")
        output.flush()
        done = subprocess.run(command, cwd=cwd, stdout=output,  # noqa: S603 - our own command
                              stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                              timeout=BUILD_TIMEOUT_S, check=False,
                              env=os.environ | environment)
    if done.returncode != 0:
        tail = "\n".join(log.read_text(errors="replace").splitlines()[-30:])
        raise install.InstallError(f"{what} failed (exit {done.returncode}); end of {log}:\n"
                                   f"{tail}")
