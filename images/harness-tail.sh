#!/bin/sh
# The common tail of every lembench image, run by the last RUN of its Dockerfile with the
# repository copied to /tmp/src:
#   1. install the harness from /tmp/src without dependencies (the image installed those);
#   2. check that it is the version the image is labelled with (LEMBENCH_VERSION);
#   3. run its self test: `python3 -m harness check ARGS` (e.g. --backend pytorch, which fails the
#      build when the backend cannot be imported; without ARGS it only reports).
# usage: sh /tmp/src/images/harness-tail.sh LEMBENCH_VERSION [ARGS...]
# (A function, so that the whole script is read before /tmp/src is removed.)
set -eu

main() {
    version=$1
    shift
    python3 -m pip install --no-deps --no-build-isolation /tmp/src
    rm -rf /tmp/src
    python3 -c "import sys, harness; v = sys.argv[1]; \
sys.exit(0 if harness.__version__ == v else f'harness {harness.__version__} != LEMBENCH_VERSION {v}')" \
        "$version"
    python3 -m harness check "$@"
}

main "$@"; exit $?
