#!/usr/bin/env bash
# Build the image, start it, check /api/health, run one live WebSocket run to
# completion, check it runs as non-root and becomes healthy, report its size, stop it.
#
# With an ordinary Docker daemon and registry: a plain `docker build` (the base
# image from the registry, torch from the PyTorch CPU index) and the container's
# port published on 127.0.0.1. On a machine that reaches no container registry,
# set LOCAL_BASE (or keep the `docker-local-base` script under $SHARED/tools, default
# ../shared/tools): it starts the daemon if needed and builds debian:bookworm-slim
# locally; everything then uses --network host, which keeps all traffic on loopback.
# Wheels under $WHEELS (default /opt/wheels, where present) are served on
# 127.0.0.1 to the build, so that torch needs no download.
set -euo pipefail
cd "$(dirname "$0")/.."
SHARED=${SHARED:-../shared}
# a clone of a local checkout (git clone . /tmp/x) has no ../shared beside it: look
# beside the checkout it was cloned from
origin=$(git config --get remote.origin.url 2>/dev/null || true)
if [ ! -d "$SHARED" ] && [ -n "$origin" ] && [ -d "$origin/../shared" ]; then
  SHARED="$origin/../shared"
fi
LOCAL_BASE=${LOCAL_BASE:-$SHARED/tools/docker-local-base}
WHEELS=${WHEELS:-/opt/wheels}
PY=${PY:-.venv/bin/python}
TAG=${TAG:-backproplab:test}
PORT=${PORT:-18765}
NAME=backproplab-test-$$

build_args=()
run_args=()
if [ -x "$LOCAL_BASE" ]; then
  echo "local base image: $LOCAL_BASE"
  "$LOCAL_BASE"
  build_args+=(--network host)
  run_args+=(--network host -e BACKPROPLAB_PORT="$PORT")
else
  docker info >/dev/null 2>&1 || { echo "no Docker daemon reachable (docker info failed)" >&2; exit 1; }
  run_args+=(-p "127.0.0.1:$PORT:8000")
fi

wheel_server=""
if ls "$WHEELS"/torch-*.whl >/dev/null 2>&1; then
  WPORT=$($PY -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
  $PY -m http.server --bind 127.0.0.1 --directory "$WHEELS" "$WPORT" >/dev/null 2>&1 &
  wheel_server=$!
  # the build reaches the host's loopback only through the host's network
  [ -x "$LOCAL_BASE" ] || build_args+=(--network host)
  build_args+=(--build-arg "PIP_FIND_LINKS=http://127.0.0.1:$WPORT/" --build-arg "TORCH_INDEX_URL=")
fi
cleanup() {
  docker rm -f "$NAME" >/dev/null 2>&1 || true
  [ -n "$wheel_server" ] && kill "$wheel_server" 2>/dev/null || true
}
trap cleanup EXIT

docker build "${build_args[@]}" -t "$TAG" .
echo "image size: $(docker image inspect "$TAG" --format '{{.Size}}' | awk '{printf "%.0f MB", $1/1e6}')"

docker run -d --name "$NAME" "${run_args[@]}" \
  -e BACKPROPLAB_ALLOWED_HOSTS='["127.0.0.1","localhost"]' "$TAG" >/dev/null
$PY scripts/smoke.py "http://127.0.0.1:$PORT"

uid=$(docker exec "$NAME" id -u)
[ "$uid" != "0" ] || { echo "container runs as root" >&2; exit 1; }
echo "container user id: $uid"
for _ in $(seq 60); do
  status=$(docker inspect --format '{{.State.Health.Status}}' "$NAME")
  [ "$status" = healthy ] && break
  sleep 1
done
[ "$status" = healthy ] || { echo "HEALTHCHECK status: $status" >&2; exit 1; }
echo "HEALTHCHECK: $status"
docker stop -t 10 "$NAME" >/dev/null
echo "docker smoke test passed"
