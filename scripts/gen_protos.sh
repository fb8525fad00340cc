#!/usr/bin/env bash
# Generates scaler/_proto/ from protos/externalscaler.proto with grpcio-tools (pinned in
# pyproject.toml so that the committed output is reproducible; tests/unit/test_proto_generated.py
# fails when the committed files differ from a fresh run).
# Usage: scripts/gen_protos.sh [OUTPUT_DIR]   (default: scaler/_proto)
set -euo pipefail
repo=$(cd "$(dirname "$0")/.." && pwd)
out=${1:-$repo/scaler/_proto}
mkdir -p "$out"
python -m grpc_tools.protoc \
  --proto_path="$repo/protos" \
  --python_out="$out" --pyi_out="$out" --grpc_python_out="$out" \
  "$repo/protos/externalscaler.proto"
# protoc writes an absolute import of the sibling module; make it package-relative.
sed -i 's/^import externalscaler_pb2 as externalscaler__pb2$/from . import externalscaler_pb2 as externalscaler__pb2/' \
  "$out/externalscaler_pb2_grpc.py"
cat > "$out/__init__.py" <<'PY'
"""Generated from protos/externalscaler.proto by scripts/gen_protos.sh; never edit by hand."""
PY
