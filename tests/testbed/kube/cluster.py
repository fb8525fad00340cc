"""The test cluster as one testbed service, "kube": etcd, kube-apiserver, kube-controller-manager
and KEDA's operator and metrics server, run by one supervisor process (supervisor.py) that starts
them in order, waiting for each to answer, and stops them in reverse. One service rather than
five because none is of use alone and each needs the one before: one lock, one record, one
`up`/`down`, and `kill` takes the whole process group. Each start begins from an empty etcd, so
no ScaledObject of an earlier run points KEDA at a scaler that is gone."""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

from tests.testbed.kube import apiserver, controller_manager, etcd, keda, pki, programs
from tests.testbed.kube.component import Component, Layout
from tests.testbed.service import Service

REPOSITORY = Path(__file__).resolve().parents[3]
# One HPA decision per sync; 15 s by default. Short, so tests see several within seconds.
HPA_SYNC_PERIOD_S = 2
ADMIN_TOKEN = "queue-scaler-test-admin-token-3Jd8"


class Kube(Service):
    name = "kube"
    primary_variable = "QUEUE_SCALER_TEST_KUBECONFIG"
    port_names = ("etcd_client", "etcd_peer", "apiserver", "controller_manager",
                  "keda_metrics", "keda_health", "keda_grpc", "keda_adapter",
                  "keda_adapter_metrics")

    @property
    def version(self) -> str:
        return (f"Kubernetes {programs.KUBERNETES_VERSION}, KEDA {programs.KEDA_VERSION}, "
                f"etcd {programs.ETCD_VERSION}")

    @property
    def kubeconfig(self) -> Path:
        return self.state / "admin.kubeconfig"

    def cluster_certificates(self) -> pki.ClusterCertificates:
        return pki.ensure(self.state / "pki", self.certificates())

    @property
    def layout(self) -> Layout:
        cache = self.places.cache_dir
        kubernetes = cache(programs.KUBERNETES.name, programs.KUBERNETES_VERSION)
        keda_entry = cache(programs.KEDA.name, programs.KEDA_VERSION)
        return Layout(
            state=self.state,
            etcd=cache(programs.ETCD.name, programs.ETCD_VERSION) / "etcd",
            kube_apiserver=kubernetes / "kube-apiserver",
            kube_controller_manager=kubernetes / "kube-controller-manager",
            keda_operator=keda_entry / "keda-operator",
            keda_adapter=keda_entry / "keda-adapter",
            keda_crds=keda_entry / "crds",
            ports=self.ports, certificates=self.cluster_certificates(),
            kubeconfig=self.kubeconfig, token_file=self.state / "tokens.csv",
            hpa_sync_period_s=HPA_SYNC_PERIOD_S)

    def components(self) -> list[Component]:
        """In the order they start: each needs the ones before it."""
        layout = self.layout
        return [etcd.component(layout), apiserver.component(layout),
                controller_manager.component(layout), keda.operator(layout),
                keda.adapter(layout)]

    def up(self, owner: str | None = None) -> bool:
        # Built before the service's lock is taken, each program under a lock of its own: a
        # cold build (about 18 min on two shared cores) outlasts the lock timeout another
        # session waits on the service lock with, but not the wait for one build's lock.
        self.install()
        return super().up(owner)

    def install(self) -> None:
        # One build after the other: each takes both cores and gigabytes of memory.
        programs.ensure_all(self.places, self.logs)
        self.cluster_certificates()

    def config_files(self) -> dict[Path, str]:
        layout = self.layout
        certificates = layout.certificates
        kubeconfig = "\n".join([
            "# Written by tests/testbed/kube/cluster.py before every start.",
            "apiVersion: v1",
            "kind: Config",
            "clusters:",
            "  - name: queue-scaler-test",
            "    cluster:",
            f"      server: {layout.api_server}",
            f"      certificate-authority: {certificates.ca}",
            "users:",
            f"  - name: {pki.ADMIN_NAME}",
            "    user:",
            f"      client-certificate: {certificates.admin.cert}",
            f"      client-key: {certificates.admin.key}",
            "contexts:",
            "  - name: queue-scaler-test",
            "    context:",
            "      cluster: queue-scaler-test",
            f"      user: {pki.ADMIN_NAME}",
            "current-context: queue-scaler-test",
        ]) + "\n"
        # token,user,uid,"group": the same admin, for clients that prefer a bearer token.
        tokens = f'{ADMIN_TOKEN},{pki.ADMIN_NAME},{pki.ADMIN_NAME},"{pki.ADMIN_GROUP}"\n'
        return {self.kubeconfig: kubeconfig, layout.token_file: tokens}

    def prepare(self) -> None:
        shutil.rmtree(self.state / "etcd", ignore_errors=True)

    def command(self) -> list[str]:
        return [sys.executable, "-m", "tests.testbed.kube.supervisor"]

    def environment(self) -> dict[str, str]:
        return {"PYTHONPATH": str(REPOSITORY)}

    def log_files(self) -> list[Path]:
        return [self.logs / "console.log",
                *(component.log(self.logs) for component in self.components())]

    def is_ready(self) -> bool:
        return all(component.is_ready() for component in self.components())

    def exports(self) -> dict[str, str]:
        return {
            "QUEUE_SCALER_TEST_KUBECONFIG": str(self.kubeconfig),
            "QUEUE_SCALER_TEST_KUBE_API": f"https://127.0.0.1:{self.ports['apiserver']}",
            "QUEUE_SCALER_TEST_KUBE_TOKEN": ADMIN_TOKEN,
            "QUEUE_SCALER_TEST_TLS_CA": str(self.certificates().ca),
        }
