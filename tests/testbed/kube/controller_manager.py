"""kube-controller-manager for the test cluster: only the controllers that scaling needs (the
HPA, and the Deployment and ReplicaSet controllers that make `status.replicas` follow
`spec.replicas`), plus garbage collection and namespace deletion for the tests' cleanup. There
is no kubelet or scheduler: pods stay Pending, but the scale subresource and the HPA are real."""

from __future__ import annotations

from tests.testbed.kube.component import HOST, Component, Layout, answers_200

CONTROLLERS = ("deployment-controller", "replicaset-controller",
               "horizontal-pod-autoscaler-controller", "garbage-collector-controller",
               "namespace-controller")


def component(layout: Layout) -> Component:
    certificates = layout.certificates
    port = layout.ports["controller_manager"]
    return Component(
        name="kube-controller-manager",
        command=[str(layout.kube_controller_manager),
                 f"--kubeconfig={layout.kubeconfig}",
                 f"--authentication-kubeconfig={layout.kubeconfig}",
                 f"--authorization-kubeconfig={layout.kubeconfig}",
                 f"--bind-address={HOST}", f"--secure-port={port}",
                 f"--tls-cert-file={certificates.server.cert}",
                 f"--tls-private-key-file={certificates.server.key}",
                 "--leader-elect=false", "--use-service-account-credentials=false",
                 f"--controllers={','.join(CONTROLLERS)}",
                 # 15 s by default: one HPA decision per sync, so tests wait for several.
                 f"--horizontal-pod-autoscaler-sync-period={layout.hpa_sync_period_s}s",
                 "--profiling=false"],
        # /healthz is open to anyone by default (--authorization-always-allow-paths).
        is_ready=lambda: answers_200(f"https://{HOST}:{port}/healthz", ca=certificates.ca))
