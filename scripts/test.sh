#!/usr/bin/env bash
# The project's test command (README, and .ci/run calls exactly this): installs the Python
# dependencies, starts real Kafka and RabbitMQ on 127.0.0.1 (scripts/brokers.sh) unless the
# QUEUE_SCALER_TEST_* variables already point at brokers, then lints, type-checks, checks the
# import contracts and runs pytest. Extra arguments go to pytest.
set -euo pipefail
cd "$(dirname "$0")/.."

export PIP_DISABLE_PIP_VERSION_CHECK=1
python3 -m pip install --quiet --root-user-action=ignore -e '.[test]'

if [[ -z "${QUEUE_SCALER_TEST_KAFKA:-}" ]]; then
  eval "$(scripts/brokers.sh up kafka)"
fi
if [[ -z "${QUEUE_SCALER_TEST_RABBITMQ_AMQP:-}" || -z "${QUEUE_SCALER_TEST_RABBITMQ_HTTP:-}" ]]; then
  eval "$(scripts/brokers.sh up rabbitmq)"
fi
echo "brokers: kafka=$QUEUE_SCALER_TEST_KAFKA rabbitmq=$QUEUE_SCALER_TEST_RABBITMQ_AMQP" \
     "(management $QUEUE_SCALER_TEST_RABBITMQ_HTTP)" | sed -E 's#//[^:/@]+:[^@]*@#//***@#g'

ruff check .
mypy
lint-imports --no-cache
python3 -m pytest "$@"
