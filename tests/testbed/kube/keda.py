"""KEDA's operator and metrics server (adapter) outside a cluster: both read the admin's
kubeconfig, watch every namespace, keep their cluster objects in the `keda` namespace, bind
to 127.0.0.1 and talk to each other over mutual TLS with the certificates in KEDA's cert dir
(ca.crt, tls.crt, tls.key). No leader election, no certificate rotation and no patching of
webhooks or the APIService: the testbed made those objects itself."""

from __future__ import annotations

from tests.testbed.kube import apiserver, pki
from tests.testbed.kube.component import HOST, Component, Layout, answers_200


def environment(layout: Layout) -> dict[str, str]:
    return {"KUBECONFIG": str(layout.kubeconfig), "WATCH_NAMESPACE": "",
            "POD_NAMESPACE": pki.KEDA_NAMESPACE,
            "KEDA_CLUSTER_OBJECT_NAMESPACE": pki.KEDA_NAMESPACE}


def operator(layout: Layout) -> Component:
    ports = layout.ports
    return Component(
        name="keda-operator",
        command=[str(layout.keda_operator), "--leader-elect=false",
                 "--enable-cert-rotation=false", "--enable-webhook-patching=false",
                 "--enable-apiservice-patching=false",
                 f"--metrics-bind-address={HOST}:{ports['keda_metrics']}",
                 f"--health-probe-bind-address={HOST}:{ports['keda_health']}",
                 f"--metrics-service-bind-address={HOST}:{ports['keda_grpc']}",
                 # The operator-adapter mTLS; --ca-dir (CAs for scalers) stays unset.
                 f"--cert-dir={layout.certificates.keda_dir}",
                 "--zap-encoder=console"],
        environment=environment(layout),
        is_ready=lambda: answers_200(f"http://{HOST}:{ports['keda_health']}/readyz"))


def adapter(layout: Layout) -> Component:
    ports = layout.ports
    certificates = layout.certificates
    return Component(
        name="keda-adapter",
        command=[str(layout.keda_adapter),
                 f"--bind-address={HOST}", f"--secure-port={ports['keda_adapter']}",
                 f"--cert-dir={certificates.keda_dir}",
                 f"--tls-cert-file={certificates.keda.cert}",
                 f"--tls-private-key-file={certificates.keda.key}",
                 f"--lister-kubeconfig={layout.kubeconfig}",
                 f"--authentication-kubeconfig={layout.kubeconfig}",
                 f"--authorization-kubeconfig={layout.kubeconfig}",
                 f"--metrics-service-address={HOST}:{ports['keda_grpc']}",
                 # Its own /metrics; KEDA binds it on every interface (":port"), with no flag
                 # for the host.
                 f"--port={ports['keda_adapter_metrics']}",
                 "--zap-encoder=console"],
        environment=environment(layout),
        is_ready=lambda: apiserver.serves_external_metrics(layout))
