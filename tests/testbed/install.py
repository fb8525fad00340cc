"""How the testbed obtains programs: Debian packages with apt, jars from Maven Central with
Maven. Each step checks first and does nothing when the thing is already there."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path

from tests.testbed import progress
from tests.testbed.service import ServiceError

# Debian's maintainer scripts start the services they install (invoke-rc.d). Without an init
# system that fails the install or starts a broker with the default config behind our back;
# a policy-rc.d that exits 101 ("action forbidden") makes them skip the start.
POLICY_RC_D = Path("/usr/sbin/policy-rc.d")
_apt_updated = False


class InstallError(ServiceError):
    """Something the testbed needs could not be installed; the message says what and why."""


def run_logged(command: list[str], log: Path, what: str, timeout_s: float = 1800.0,
               env: dict[str, str] | None = None) -> None:
    """Runs `command` with its output in `log`; on failure raises with the log's tail."""
    log.parent.mkdir(parents=True, exist_ok=True)
    with log.open("w") as output:
        done = subprocess.run(command, stdout=output, stderr=subprocess.STDOUT,  # noqa: S603
                              stdin=subprocess.DEVNULL, timeout=timeout_s, check=False,
                              env=None if env is None else os.environ | env)
    if done.returncode != 0:
        tail = "\n".join(log.read_text(errors="replace").splitlines()[-30:])
        raise InstallError(f"{what} failed (exit {done.returncode}); end of {log}:\n{tail}")


def apt_install(*packages: str, log: Path) -> None:
    global _apt_updated
    if os.geteuid() != 0:
        raise InstallError(f"installing {' '.join(packages)} with apt needs root")
    environment = {"DEBIAN_FRONTEND": "noninteractive"}
    added_policy = not POLICY_RC_D.exists()
    if added_policy:
        POLICY_RC_D.write_text("#!/bin/sh\n# added by queue-scaler's testbed for one install\n"
                               "exit 101\n")
        POLICY_RC_D.chmod(0o755)
    try:
        if not _apt_updated:
            progress.say("apt-get update")
            run_logged(["apt-get", "update", "-q"], log, "apt-get update", env=environment)
            _apt_updated = True
        progress.say(f"apt-get install {' '.join(packages)}")
        run_logged(["apt-get", "install", "-y", "-q", "--no-install-recommends",
                    "-o", "DPkg::Lock::Timeout=300", "-o", "Dpkg::Options::=--force-confdef",
                    "-o", "Dpkg::Options::=--force-confold", *packages],
                   log, f"apt-get install {' '.join(packages)}", env=environment)
    finally:
        if added_policy:
            POLICY_RC_D.unlink(missing_ok=True)


def ensure_command(command: str, package: str, log: Path) -> str:
    """The path of `command`, installing Debian's `package` first when it is missing."""
    found = shutil.which(command)
    if found is None:
        apt_install(package, log=log)
        found = shutil.which(command)
    if found is None:
        raise InstallError(f"{package} is installed but there is no {command} on PATH")
    return found


def ensure_java(minimum: int, needed_by: str, log: Path) -> str:
    """The path of a `java` of at least version `minimum` (Debian's JRE 17 if there is none)."""
    java = ensure_command("java", "openjdk-17-jre-headless", log)
    done = subprocess.run([java, "-XshowSettings:properties", "-version"],  # noqa: S603
                          capture_output=True, text=True, timeout=60, check=False)
    found = re.search(r"java\.specification\.version = (\d+)", done.stderr)
    if found is None or int(found.group(1)) < minimum:
        raise InstallError(f"{needed_by} needs Java {minimum} or newer; {java} is older")
    return java


def maven_copy_dependencies(pom: Path, output: Path, log: Path,
                            properties: dict[str, str]) -> None:
    """The runtime dependencies of `pom` from Maven Central, as jars in `output`."""
    mvn = ensure_command("mvn", "maven", log)
    run_logged([mvn, "-B", "-q", "-f", str(pom), "dependency:copy-dependencies",
                f"-DoutputDirectory={output}", "-DincludeScope=runtime",
                *(f"-D{key}={value}" for key, value in properties.items())],
               log, f"fetching the jars of {pom.name} with Maven")


def maven_copy_artifact(artifact: str, output: Path, log: Path) -> Path:
    """One artifact (`group:artifact:version[:packaging[:classifier]]`) from Maven Central,
    without its dependencies, as a file in `output`; returns its path."""
    mvn = ensure_command("mvn", "maven", log)
    run_logged([mvn, "-B", "-q", "dependency:copy", f"-Dartifact={artifact}",
                f"-DoutputDirectory={output}", "-Dmdep.useBaseVersion=true"],
               log, f"fetching {artifact} with Maven")
    found = sorted(output.iterdir())
    if len(found) != 1:
        raise InstallError(f"Maven fetched {artifact} but left {len(found)} files in {output}")
    return found[0]
