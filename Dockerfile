# Image for manifests/queue-scaler.yaml. Not built in CI (the CI machine has no Docker engine).
FROM python:3.11-slim
WORKDIR /app
COPY pyproject.toml README.md ./
COPY scaler ./scaler
RUN pip install --no-cache-dir . && useradd --uid 10001 --no-create-home scaler
USER 10001
EXPOSE 6000 8080
ENTRYPOINT ["queue-scaler"]
CMD ["serve"]
