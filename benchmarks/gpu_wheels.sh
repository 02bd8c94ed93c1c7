#!/usr/bin/env bash
# Wheels for benchmarks/gpu_validation.py on a GPU machine without a network whose Python already has
# torch, transformers, accelerate, nvidia-ml-py, psutil, pyyaml, jinja2, click, rich, scipy and
# pyarrow (a typical CUDA PyTorch image). Run it here, where PyPI is reachable; carry the folder:
#
#   benchmarks/gpu_wheels.sh [DIR] [PYTHON_VERSION]        # default: .whl, 3.12
#   # there:  python3 -m pip install --no-index --no-deps --target /tmp/site DIR/*.whl
#   #         PYTHONPATH=/tmp/site:. python3 benchmarks/gpu_validation.py --out ...
#
# What it fetches and why (lembench's light dependencies that such an image lacks):
#   jsonschema, referencing, rpds-py, jsonschema-specifications  result/suite validation
#   polars (+ polars-runtime-32 where polars splits it out, ~54 MB) the controller's aggregation
#   docker                                                         imported by the runtime layer
# About 56 MB in all. Not fetched: bitsandbytes (a ~100 MB wheel: over a 64 MiB carry limit; the
# sweep's bnb experiments then fail with "backend unavailable", recorded as failed with the reason),
# gguf and calflops (FLOPs fall back to the analytical count, and say so in each result).
set -euo pipefail
dir=${1:-.whl}
py=${2:-3.12}
mkdir -p "$dir"
platforms=()
for n in 2_28 2_27 2_24 2_17; do platforms+=(--platform "manylinux_${n}_x86_64"); done
platforms+=(--platform manylinux2014_x86_64)
for req in "jsonschema>=4.18" referencing rpds-py jsonschema-specifications "polars>=1.0" "docker>=7.1"; do
  python3 -m pip download -q --no-deps --only-binary=:all: --python-version "$py" \
    --implementation cp "${platforms[@]}" -d "$dir" "$req"
done
# polars >= 1.34 ships its compiled core as a separate wheel named in its metadata.
runtime=$(unzip -p "$dir"/polars-*.whl '*/METADATA' | sed -n 's/^Requires-Dist: \(polars-runtime-32[^;]*\)$/\1/p' | head -n1)
if [ -n "$runtime" ]; then
  python3 -m pip download -q --no-deps --only-binary=:all: --python-version "$py" \
    --implementation cp "${platforms[@]}" -d "$dir" "${runtime// /}"
fi
du -sh "$dir"
