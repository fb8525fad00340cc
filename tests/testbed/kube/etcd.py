"""etcd for the test cluster: one member, client and peer URLs on 127.0.0.1, no fsync (a test
cluster's data only has to survive its own process, not the machine)."""

from __future__ import annotations

from tests.testbed.kube.component import HOST, Component, Layout, answers_200


def component(layout: Layout) -> Component:
    client = f"http://{HOST}:{layout.ports['etcd_client']}"
    peer = f"http://{HOST}:{layout.ports['etcd_peer']}"
    return Component(
        name="etcd",
        command=[str(layout.etcd), "--name=queue-scaler-test",
                 f"--data-dir={layout.state / 'etcd'}",
                 f"--listen-client-urls={client}", f"--advertise-client-urls={client}",
                 f"--listen-peer-urls={peer}", f"--initial-advertise-peer-urls={peer}",
                 f"--initial-cluster=queue-scaler-test={peer}",
                 "--initial-cluster-state=new", "--unsafe-no-fsync", "--log-level=warn"],
        # /health answers 200 only when the member has a leader and serves reads.
        is_ready=lambda: answers_200(f"{client}/health"))
