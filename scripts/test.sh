#!/usr/bin/env bash
# The project's test command (README, and .ci/run calls exactly this): installs the Python
# dependencies, then lints, type-checks, checks the import contracts and runs pytest. The tests
# start the real services they use themselves (tests/testbed: Kafka, RabbitMQ, Artemis, ActiveMQ,
# Prometheus; helm and Chromium too), unless
# the QUEUE_SCALER_TEST_* variables already point at brokers of yours. Extra arguments go to
# pytest.
set -euo pipefail
cd "$(dirname "$0")/.."

export PIP_DISABLE_PIP_VERSION_CHECK=1
python3 -m pip install --quiet --root-user-action=ignore -e '.[test]'

ruff check .
mypy
lint-imports --no-cache
python3 -m pytest "$@"
