"""The test bed: the real services the integration tests talk to, installed, started on
127.0.0.1 and checked by the project itself. One module per service behind one interface
(`service.Service`); `python -m tests.testbed` for people, `pytest_plugin` for the tests."""

from __future__ import annotations

from tests.testbed.activemq import ActiveMQ
from tests.testbed.artemis import Artemis
from tests.testbed.kafka import Kafka
from tests.testbed.kube.cluster import Kube
from tests.testbed.places import Places
from tests.testbed.prometheus import Prometheus
from tests.testbed.rabbitmq import RabbitMQ
from tests.testbed.service import Service

SERVICES: dict[str, type[Service]] = {"kafka": Kafka, "rabbitmq": RabbitMQ, "artemis": Artemis,
                                      "activemq": ActiveMQ, "prometheus": Prometheus,
                                      "kube": Kube}


def open_service(name: str, places: Places | None = None) -> Service:
    try:
        kind = SERVICES[name]
    except KeyError:
        raise ValueError(f"unknown service {name!r}; the testbed has "
                         f"{', '.join(SERVICES)}") from None
    return kind(places or Places.from_environment())
