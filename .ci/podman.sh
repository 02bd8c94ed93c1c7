#!/usr/bin/env bash
# CI: a real Docker-compatible engine (rootful podman with runc) and lembench's `cpu` image, so the
# container test tier runs for real. Debian bookworm, root, no container registry reachable.
#
#   eval "$(.ci/podman.sh)"      # from the repository root
#
# Prints only the export lines to use (DOCKER_HOST, CONTAINERS_CONF) on stdout; progress goes to
# stderr; exports nothing itself. Idempotent: installed packages, a running service, the base
# image and an up-to-date cpu image (same source digest label) are kept.
#
# Steps (see ci-notes.md): apt-get install podman runc debootstrap; a containers.conf (no default
# ulimits, runc: crun fails here on hybrid cgroups); `podman system service` on a unix socket in
# the background; a base image made with debootstrap (minbase + python3, python3-venv,
# python3-pip, ca-certificates) from the machine's own apt mirror, imported as
# localhost/lembench-base:<codename>; then images/cpu/Dockerfile built on it with --network host
# and the host CA bundle mounted (pip behind the TLS-inspecting proxy), offering the on-disk CPU
# torch wheel when there is one.
#
# Environment: LEMBENCH_PODMAN_DIR (default /var/tmp/lembench-podman: socket, config, logs),
# LEMBENCH_TORCH_WHEEL_GLOB (default /opt/wheels/torch-2.13.0+cpu-*.whl).
set -euo pipefail
cd "$(dirname "$0")/.."

dir=${LEMBENCH_PODMAN_DIR:-/var/tmp/lembench-podman}
sock="$dir/podman.sock"
conf="$dir/containers.conf"
wheel_glob=${LEMBENCH_TORCH_WHEEL_GLOB:-/opt/wheels/torch-2.13.0+cpu-*.whl}

log() { printf '[podman.sh %4ss] %s\n' "$SECONDS" "$*" >&2; }
die() { log "error: $*"; exit 1; }
# Run a command with its output in $dir/<name>.log (stdout is reserved for the export lines);
# on failure show the log's tail.
logged() {
  local name=$1; shift
  if ! "$@" > "$dir/$name.log" 2>&1; then
    tail -n 40 "$dir/$name.log" >&2
    die "$name failed (full log: $dir/$name.log)"
  fi
}

mkdir -p "$dir"

# 1. Packages.
installed() { dpkg-query -W -f='${Status}' "$1" 2>/dev/null | grep -q 'install ok installed'; }
missing=()
for pkg in podman runc debootstrap; do installed "$pkg" || missing+=("$pkg"); done
if [ ${#missing[@]} -gt 0 ]; then
  log "installing ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  logged apt-update apt-get update
  logged apt-install apt-get install -y "${missing[@]}"
fi
log "podman $(podman --version | awk '{print $3}'), runc $(runc --version | awk 'NR==1{print $3}')"

# 2. Engine configuration.
cat > "$conf" <<'EOF'
[containers]
default_ulimits = []

[engine]
runtime = "runc"
EOF
export CONTAINERS_CONF="$conf"

# 3. The API service (Docker-compatible) on a unix socket.
ping() {
  python3 - "$sock" <<'PY' 2>/dev/null
import socket, sys
s = socket.socket(socket.AF_UNIX)
s.settimeout(2)
s.connect(sys.argv[1])
s.sendall(b"GET /_ping HTTP/1.0\r\nHost: d\r\n\r\n")
sys.exit(0 if b"OK" in s.recv(4096) else 1)
PY
}
if ping; then
  log "podman service already answering on $sock"
else
  rm -f "$sock"
  log "starting podman system service on $sock"
  setsid nohup podman system service --time=0 "unix://$sock" >"$dir/service.log" 2>&1 < /dev/null &
  echo $! > "$dir/service.pid"
  for _ in $(seq 1 100); do ping && break; sleep 0.2; done
  ping || die "podman service did not answer on $sock (see $dir/service.log)"
fi

# 4. Base image: debootstrap from this machine's apt mirror (no registry can be reached).
codename=$(. /etc/os-release && echo "${VERSION_CODENAME:-bookworm}")
base="localhost/lembench-base:$codename"
mirror() {
  local uri
  uri=$(grep -hE '^URIs:' /etc/apt/sources.list.d/*.sources 2>/dev/null \
        | awk '{print $2}' | grep -v -- '-security' | head -n1 || true)
  if [ -z "$uri" ]; then
    uri=$(grep -hE '^deb ' /etc/apt/sources.list /etc/apt/sources.list.d/*.list 2>/dev/null \
          | grep -v -- '-security' | awk '{for (i = 2; i <= NF; i++) if ($i ~ /^[a-z]+:\/\//) {print $i; exit}}' \
          | head -n1 || true)
  fi
  echo "${uri:-http://deb.debian.org/debian}"
}
if podman image exists "$base"; then
  log "base image $base present"
else
  rootfs="$dir/rootfs"
  rm -rf "$rootfs"
  url=$(mirror)
  log "debootstrap $codename from $url into $rootfs"
  logged debootstrap debootstrap --variant=minbase \
    --include=python3,python3-venv,python3-pip,ca-certificates "$codename" "$rootfs" "$url"
  rm -rf "$rootfs"/var/cache/apt/archives/*.deb "$rootfs"/var/lib/apt/lists/*
  log "importing $base"
  tar -C "$rootfs" -c . | podman import --change 'CMD ["/bin/bash"]' - "$base" \
    > "$dir/import.log" 2>&1 || die "podman import failed (log: $dir/import.log)"
  rm -rf "$rootfs"
fi

# 5. The cpu image (skipped when one built from exactly these sources exists).
version=$(PYTHONPATH=. python3 -c 'import harness; print(harness.__version__)')
source=$(PYTHONPATH=. python3 -m lembench.imagedefs source-digest cpu)
tag="lembench/cpu:$version"
# The wheel goes into the build context's .whl/ (git-ignored), where the Dockerfile offers it to
# pip; without it pip installs torch==2.13.0 from PyPI (no CPU index is reachable here). It is
# offered even when the image is up to date: later builds of this context (the container tests'
# `lembench images build --force`) need it too. Linked, not copied, so the layer cache holds.
args=()
set -- $wheel_glob
if [ -f "$1" ]; then
  mkdir -p .whl
  [ -f ".whl/$(basename "$1")" ] || ln "$1" .whl/ 2>/dev/null || cp "$1" .whl/
  log "offering $(basename "$1") to pip"
else
  log "no torch wheel at $wheel_glob: pip installs torch==2.13.0 from PyPI"
  args+=(--build-arg "TORCH_INDEX_URL=")
fi
have=$(podman image inspect --format '{{index .Labels "dev.lembench.source"}}' "$tag" 2>/dev/null || true)
if [ "$have" = "$source" ]; then
  log "$tag is up to date (source $source)"
else
  # Docker image format: the layers then serve as cache for builds through the API (the docker
  # SDK, `lembench images build`), which podman makes in that format.
  log "building $tag on $base (log: $dir/build-cpu.log)"
  logged build-cpu podman build --format docker --network host -v /etc/ssl/certs:/etc/ssl/certs:ro \
    --build-arg "BASE_IMAGE=$base" \
    --build-arg "LEMBENCH_VERSION=$version" \
    --build-arg "LEMBENCH_SOURCE=$source" \
    "${args[@]}" -f images/cpu/Dockerfile -t "$tag" .
fi
log "ready: $(podman image inspect --format '{{.Id}}' "$tag" | cut -c1-19) $tag"

echo "export DOCKER_HOST=unix://$sock"
echo "export CONTAINERS_CONF=$conf"
