"""Generated from protos/externalscaler.proto by scripts/gen_protos.sh; never edit by hand."""
