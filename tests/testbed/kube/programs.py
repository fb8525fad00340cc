"""The Go programs of the test cluster and how each is built (tests/testbed/kube/gobuild.py):
etcd, kube-apiserver with kube-controller-manager, and KEDA's operator with its metrics server.
The versions are the ones the end-to-end tests are written against."""

from __future__ import annotations

import re
import shutil
from pathlib import Path

from tests.testbed import install
from tests.testbed.kube import gobuild
from tests.testbed.places import Places

ETCD_VERSION = "3.6.16"
KUBERNETES_VERSION = "1.36.3"
KEDA_VERSION = "2.21.0"

# Staging modules that k8s.io/kubernetes replaces with its own folders but that are never
# published, and that neither binary needs.
UNPUBLISHED_STAGING = frozenset({"k8s.io/sample-apiserver", "k8s.io/sample-cli-plugin",
                                 "k8s.io/sample-controller"})
STAGING_REPLACE = re.compile(r"^\s*(?:replace\s+)?(k8s\.io/[\w.-]+)\s*=>\s*\./staging/",
                             re.MULTILINE)


def kubernetes_replaces(go_mod: Path) -> list[str]:
    """k8s.io/kubernetes requires its staging modules at v0.0.0 and points them at folders of
    its own repository; outside it each is the published k8s.io/<name> v0.<minor>.<patch>."""
    _, minor, patch = KUBERNETES_VERSION.split(".")
    staging = sorted(set(STAGING_REPLACE.findall(go_mod.read_text())) - UNPUBLISHED_STAGING)
    if len(staging) < 20:
        raise install.InstallError(
            f"{go_mod} replaces only {len(staging)} staging modules; its layout changed")
    return [f"replace {module} => {module} v0.{minor}.{patch}" for module in staging]


def keda_go_mod(go_mod: Path) -> list[str]:
    """KEDA's own go.mod minus its module and go lines: its replace and exclude lines hold
    only in the main module, and its requirements keep every version what KEDA tested."""
    return [line for line in go_mod.read_text().splitlines()
            if not re.match(r"^(module|go|toolchain)\s", line)]


def copy_keda_crds(source: Path, entry: Path) -> None:
    crds = entry / "crds"
    crds.mkdir()
    for crd in sorted((source / "config" / "crd" / "bases").glob("*.yaml")):
        shutil.copyfile(crd, crds / crd.name)
    if not (crds / "keda.sh_scaledobjects.yaml").is_file():
        raise install.InstallError(f"KEDA {KEDA_VERSION}'s module has no "
                                           "config/crd/bases/keda.sh_scaledobjects.yaml")


def _kubernetes_ldflags() -> str:
    major, minor, _ = KUBERNETES_VERSION.split(".")
    # What hack/lib/version.sh stamps; without it the server says v0.0.0-master, and clients
    # (KEDA's discovery among them) see a version that parses as 0.0.
    values = {"gitVersion": f"v{KUBERNETES_VERSION}", "gitMajor": major, "gitMinor": minor,
              "gitTreeState": "clean", "buildDate": "1970-01-01T00:00:00Z"}
    return " ".join(["-s", "-w", *(f"-X {package}.{name}={value}"
                                   for package in ("k8s.io/component-base/version",
                                                   "k8s.io/client-go/pkg/version")
                                   for name, value in values.items())])


ETCD = gobuild.GoBuild(
    name="etcd", version=ETCD_VERSION, module="go.etcd.io/etcd/server/v3",
    binaries={"etcd": "go.etcd.io/etcd/server/v3"}, ldflags="-s -w",
    version_argument="--version", version_text=f"etcd Version: {ETCD_VERSION}")

KUBERNETES = gobuild.GoBuild(
    name="kubernetes", version=KUBERNETES_VERSION, module="k8s.io/kubernetes",
    binaries={"kube-apiserver": "k8s.io/kubernetes/cmd/kube-apiserver",
              "kube-controller-manager": "k8s.io/kubernetes/cmd/kube-controller-manager"},
    go_mod_lines=kubernetes_replaces, ldflags=_kubernetes_ldflags(),
    version_argument="--version", version_text=f"Kubernetes v{KUBERNETES_VERSION}")

KEDA = gobuild.GoBuild(
    name="keda", version=KEDA_VERSION, module="github.com/kedacore/keda/v2",
    binaries={"keda-operator": "github.com/kedacore/keda/v2/cmd/operator",
              "keda-adapter": "github.com/kedacore/keda/v2/cmd/adapter"},
    go_mod_lines=keda_go_mod,
    ldflags=(f"-s -w -X=github.com/kedacore/keda/v2/version.Version={KEDA_VERSION} "
             f"-X=github.com/kedacore/keda/v2/version.GitCommit=v{KEDA_VERSION}"),
    extra_files=copy_keda_crds)

BUILDS = (ETCD, KUBERNETES, KEDA)


def ensure_all(places: Places, logs: Path) -> dict[str, Path]:
    """Every program built, one after the other (each build takes both cores and gigabytes)."""
    return {build.name: gobuild.ensure(build, places, logs) for build in BUILDS}


if __name__ == "__main__":
    for name, entry in ensure_all(Places.from_environment(),
                                  Places.from_environment().state_dir("kube") / "logs").items():
        print(name, entry)
