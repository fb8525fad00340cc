# The scaler's image, for the Helm chart and manifests/queue-scaler.yaml:
#   docker build -t queue-scaler:0.1.0 .
# CI has no container engine: tests/unit/test_dockerfile.py checks this file, and
# tests/integration/test_wheel_install.py runs its two install commands in a fresh venv.
ARG PYTHON_IMAGE=python:3.11.14-slim-bookworm

FROM ${PYTHON_IMAGE} AS build
WORKDIR /src
COPY pyproject.toml README.md ./
COPY scaler ./scaler
# Wheels of the scaler and of every dependency; the venv is installed from them alone.
RUN python -m pip wheel --no-cache-dir --wheel-dir /wheels .
RUN python -m venv --without-pip /opt/queue-scaler && python -m pip --python /opt/queue-scaler/bin/python install --no-cache-dir --no-index --find-links /wheels queue-scaler

FROM ${PYTHON_IMAGE}
# Nothing installs packages at run time: no pip, setuptools or wheel in the image.
RUN python -m pip uninstall --yes --no-cache-dir pip setuptools wheel
COPY --from=build /opt/queue-scaler /opt/queue-scaler
# Bytecode was compiled at install time; the root filesystem is read-only in the chart.
ENV PATH=/opt/queue-scaler/bin:$PATH PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1
USER 10001:10001
EXPOSE 6000 8080
ENTRYPOINT ["queue-scaler", "serve"]
