"""kube-apiserver for the test cluster, started much as controller-runtime's envtest starts it
(etcd, a cert dir, a secure port on 127.0.0.1, a service-account issuer and keys, RBAC, a token
file, client certificates of the test CA), plus the aggregation layer's front proxy, through
which the HPA reads external.metrics.k8s.io from KEDA's metrics server. Once it answers, the
bootstrap puts in what KEDA needs: its namespace, its CRDs and the APIService."""

from __future__ import annotations

import base64
from pathlib import Path
from typing import Any

import yaml

from tests.testbed.kube import pki
from tests.testbed.kube.client import KubeClient, KubeError, wait_for
from tests.testbed.kube.component import HOST, Component, Layout, answers_200

EXTERNAL_METRICS = "v1beta1.external.metrics.k8s.io"
METRICS_SERVICE = "keda-metrics-apiserver"
CRD_TIMEOUT_S = 60.0


def component(layout: Layout) -> Component:
    certificates = layout.certificates
    port = layout.ports["apiserver"]
    return Component(
        name="kube-apiserver",
        command=[str(layout.kube_apiserver),
                 f"--etcd-servers=http://{HOST}:{layout.ports['etcd_client']}",
                 f"--cert-dir={layout.state / 'apiserver'}",
                 f"--bind-address={HOST}", f"--advertise-address={HOST}",
                 f"--secure-port={port}",
                 f"--tls-cert-file={certificates.server.cert}",
                 f"--tls-private-key-file={certificates.server.key}",
                 f"--client-ca-file={certificates.ca}",
                 f"--token-auth-file={layout.token_file}",
                 "--authorization-mode=RBAC",
                 f"--service-account-issuer=https://{HOST}:{port}",
                 f"--service-account-key-file={certificates.service_account_public}",
                 f"--service-account-signing-key-file={certificates.service_account_key}",
                 "--service-cluster-ip-range=10.0.0.0/24",
                 # No token controller runs: pods are made without a service-account token.
                 "--disable-admission-plugins=ServiceAccount",
                 "--allow-privileged=true",
                 # The `kubernetes` Service's endpoints would hold 127.0.0.1, which Endpoints
                 # refuse (loopback): keep the reconciler from trying every few seconds.
                 "--endpoint-reconciler-type=none",
                 # The aggregation layer: the API server proxies external.metrics.k8s.io to
                 # KEDA's metrics server, with this client certificate and these headers.
                 f"--requestheader-client-ca-file={certificates.ca}",
                 f"--requestheader-allowed-names={pki.FRONT_PROXY_NAME}",
                 "--requestheader-username-headers=X-Remote-User",
                 "--requestheader-group-headers=X-Remote-Group",
                 "--requestheader-extra-headers-prefix=X-Remote-Extra-",
                 f"--proxy-client-cert-file={certificates.front_proxy.cert}",
                 f"--proxy-client-key-file={certificates.front_proxy.key}",
                 "--profiling=false"],
        is_ready=lambda: answers_200(f"{layout.api_server}/readyz", ca=certificates.ca,
                                     client=certificates.admin),
        after_ready=lambda: bootstrap(client_for(layout), layout))


def client_for(layout: Layout) -> KubeClient:
    certificates = layout.certificates
    return KubeClient(layout.api_server, certificates.ca, certificates.admin.cert,
                      certificates.admin.key)


def crds(folder: Path) -> list[dict[str, Any]]:
    return [yaml.safe_load(path.read_text()) for path in sorted(folder.glob("*.yaml"))]


def bootstrap(client: KubeClient, layout: Layout) -> None:
    """KEDA's namespace, its CRDs (until established) and the APIService that sends
    external.metrics.k8s.io to its metrics server. Idempotent: server-side apply."""
    namespace = pki.KEDA_NAMESPACE
    client.apply(f"/api/v1/namespaces/{namespace}",
                 {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": namespace}})
    names = []
    for crd in crds(layout.keda_crds):
        name = crd["metadata"]["name"]
        names.append(name)
        client.apply(f"/apis/apiextensions.k8s.io/v1/customresourcedefinitions/{name}", crd)
    wait_for(lambda: all(_is_established(client, name) for name in names), CRD_TIMEOUT_S,
             f"KEDA's CRDs established ({', '.join(names)})")
    # Endpoints may not hold loopback addresses, and the aggregator goes through the Service;
    # an ExternalName Service naming localhost sends it to 127.0.0.1.
    port = layout.ports["keda_adapter"]
    client.apply(f"/api/v1/namespaces/{namespace}/services/{METRICS_SERVICE}", {
        "apiVersion": "v1", "kind": "Service",
        "metadata": {"name": METRICS_SERVICE, "namespace": namespace},
        "spec": {"type": "ExternalName", "externalName": "localhost",
                 "ports": [{"name": "https", "port": port, "targetPort": port}]}})
    client.apply(f"/apis/apiregistration.k8s.io/v1/apiservices/{EXTERNAL_METRICS}", {
        "apiVersion": "apiregistration.k8s.io/v1", "kind": "APIService",
        "metadata": {"name": EXTERNAL_METRICS},
        "spec": {"group": "external.metrics.k8s.io", "version": "v1beta1",
                 "groupPriorityMinimum": 100, "versionPriority": 100,
                 "service": {"name": METRICS_SERVICE, "namespace": namespace, "port": port},
                 # The metrics server presents KEDA's certificate, which names
                 # keda-metrics-apiserver.keda.svc, the name the aggregator checks.
                 "caBundle": base64.b64encode(layout.certificates.ca.read_bytes()).decode()}})


def _is_established(client: KubeClient, name: str) -> bool:
    try:
        crd = client.get(f"/apis/apiextensions.k8s.io/v1/customresourcedefinitions/{name}")
    except KubeError:
        return False
    return any(c.get("type") == "Established" and c.get("status") == "True"
               for c in (crd.get("status") or {}).get("conditions") or [])


def serves_external_metrics(layout: Layout) -> bool:
    """The aggregated API answers through the API server: the APIService, the front proxy, the
    metrics server and its authentication of the proxy all work."""
    return answers_200(f"{layout.api_server}/apis/external.metrics.k8s.io/v1beta1",
                       ca=layout.certificates.ca, client=layout.certificates.admin)
