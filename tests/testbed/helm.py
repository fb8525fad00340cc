"""Helm for the chart tests: one pinned version built from source with `go install` into the
testbed's cache, once per machine. Later calls only check the cached binary's version, so they
cost one short process; the build runs under the testbed's lock, so two sessions never build
at once and the second one finds the first one's binary."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from pathlib import Path

from tests.testbed import install, progress
from tests.testbed.places import Places, fill_cache_entry

VERSION = "3.22.0"
MODULE = "helm.sh/helm/v3"
COMMAND = f"{MODULE}/cmd/helm"
# A cold build downloads Helm's module graph and compiles it: minutes on two shared cores.
BUILD_TIMEOUT_S = 1800.0


def reports_version(binary: Path) -> bool:
    """Whether `binary` runs and says it is Helm VERSION (a stamp alone would trust a file
    that a crash or a hand may have broken)."""
    if not binary.is_file():
        return False
    done = subprocess.run([str(binary), "version", "--template", "{{.Version}}"],  # noqa: S603
                          capture_output=True, text=True, timeout=60, check=False)
    return done.returncode == 0 and done.stdout.strip() == f"v{VERSION}"


def link_flags(go: str, log: Path) -> str:
    """What Helm's Makefile stamps into a release binary and `go install` alone leaves out: the
    version (else `helm version` says "v3.22") and the Kubernetes version that `helm template`
    assumes without --kube-version (else v1.20.0, older than any chart's kubeVersion floor),
    which the Makefile takes from the client-go in Helm's go.mod: v0.N means Kubernetes 1.N."""
    done = subprocess.run([go, "mod", "download", "-json", f"{MODULE}@v{VERSION}"],  # noqa: S603
                          capture_output=True, text=True, timeout=BUILD_TIMEOUT_S, check=False,
                          env=os.environ | {"GOFLAGS": "-mod=mod"})
    log.write_text(done.stdout + done.stderr)
    if done.returncode != 0:
        tail = "\n".join((done.stdout + done.stderr).splitlines()[-10:])
        raise install.InstallError(f"go mod download {MODULE}@v{VERSION} failed "
                                   f"(exit {done.returncode}); end of {log}:\n{tail}")
    go_mod = Path(json.loads(done.stdout)["GoMod"]).read_text()
    found = re.search(r"^\s*k8s\.io/client-go v0\.(\d+)\.", go_mod, re.MULTILINE)
    if found is None:
        raise install.InstallError(f"Helm {VERSION}'s go.mod names no k8s.io/client-go v0.N")
    return " ".join([
        "-s", "-w",
        f"-X helm.sh/helm/v3/internal/version.version=v{VERSION}",
        *(f"-X helm.sh/helm/v3/pkg/{package}.k8sVersion{part}={number}"
          for package in ("chartutil", "lint/rules")
          for part, number in (("Major", "1"), ("Minor", found.group(1))))])


def ensure_helm(places: Places | None = None) -> Path:
    """The path of a helm VERSION binary, built with `go install` the first time."""
    places = places or Places.from_environment()
    entry = places.cache_dir("helm", VERSION)
    binary = entry / "helm"
    if reports_version(binary):
        return binary
    with places.lock("helm"):
        # Another session may have built it while this one waited for the lock.
        if reports_version(binary):
            return binary
        go = shutil.which("go")
        if go is None:
            raise install.InstallError(
                f"building Helm {VERSION} needs Go (`go install {COMMAND}@v{VERSION}`), and "
                "there is no `go` on PATH; install the Go that Helm's go.mod names, or newer")
        log = places.state_dir("helm") / "build.log"

        def build(folder: Path) -> None:
            progress.say(f"building Helm {VERSION} with {go} into {entry} (minutes; log: {log})")
            flags = link_flags(go, log.with_name("module-download.log"))
            # GOFLAGS=-mod=mod: resolve Helm's own go.mod, whatever a caller's GOFLAGS says.
            install.run_logged([go, "install", f"-ldflags={flags}", f"{COMMAND}@v{VERSION}"],
                               log, f"building Helm {VERSION} with go install",
                               timeout_s=BUILD_TIMEOUT_S,
                               env={"GOBIN": str(folder), "GOFLAGS": "-mod=mod"})

        # A binary that does not answer is rebuilt even when its stamp says it is complete.
        (entry / ".stamp").unlink(missing_ok=True)
        fill_cache_entry(entry, f"helm {VERSION} {COMMAND}\n", build)
        if not reports_version(binary):
            raise install.InstallError(f"go install finished but {binary} does not report "
                                       f"Helm v{VERSION}; see {log}")
        progress.say(f"Helm {VERSION} is at {binary}")
    return binary


if __name__ == "__main__":
    print(ensure_helm())
