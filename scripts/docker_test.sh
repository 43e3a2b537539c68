#!/usr/bin/env bash
# Build the image here (no container registry: a local debian:bookworm-slim base,
# --network host, the local torch wheel served on 127.0.0.1), start it, check
# /api/health, run one live WebSocket run to completion, check it runs as non-root
# and becomes healthy, report its size, and stop it.
set -euo pipefail
cd "$(dirname "$0")/.."
SHARED=${SHARED:-../shared}
PY=${PY:-.venv/bin/python}
TAG=${TAG:-backproplab:test}
PORT=${PORT:-18765}
NAME=backproplab-test-$$

"$SHARED/tools/docker-local-base"

build_args=()
wheel_server=""
if ls /opt/wheels/torch-*.whl >/dev/null 2>&1; then
  WPORT=$($PY -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
  $PY -m http.server --bind 127.0.0.1 --directory /opt/wheels "$WPORT" >/dev/null 2>&1 &
  wheel_server=$!
  build_args+=(--build-arg "PIP_FIND_LINKS=http://127.0.0.1:$WPORT/" --build-arg "TORCH_INDEX_URL=")
fi
cleanup() {
  docker rm -f "$NAME" >/dev/null 2>&1 || true
  [ -n "$wheel_server" ] && kill "$wheel_server" 2>/dev/null || true
}
trap cleanup EXIT

docker build --network host "${build_args[@]}" -t "$TAG" .
echo "image size: $(docker image inspect "$TAG" --format '{{.Size}}' | awk '{printf "%.0f MB", $1/1e6}')"

docker run -d --name "$NAME" --network host -e BACKPROPLAB_PORT="$PORT" \
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
