#!/usr/bin/env bash
# A private Docker engine for the containerised tests, and the images they run.
#
#   ci/docker.sh start    install docker.io / docker-compose / debootstrap when missing (apt),
#                         start our own containerd + dockerd, build the test images
#   ci/docker.sh build    (re)build the images whose inputs changed; needs a started engine
#   ci/docker.sh env      print the `export` lines that point pytest at the engine:
#                           eval "$(ci/docker.sh env)"
#   ci/docker.sh services Redis / PostgreSQL in containers for those not running here (all of
#                         them with KQUEUE_TEST_SERVICES=docker); prints their test URLs:
#                           eval "$(ci/docker.sh services)"
#   ci/docker.sh status   is our engine up?
#   ci/docker.sh stop     stop our dockerd and containerd (and their containers)
#
# Our engine never touches another Docker daemon or socket on the machine: it has its own data
# root (kept, so that built images survive between runs), exec root, socket, containerd and
# containerd namespace. It runs with --bridge=none --iptables=false: containers use the host's
# network, so every connection stays on loopback and no firewall rule is added.
set -euo pipefail
cd "$(dirname "$0")/.."

DATA=${KQUEUE_DOCKER_DATA:-/var/lib/kqueue-docker}
RUN=${KQUEUE_DOCKER_RUN:-/run/kqueue-docker}
SOCK="$RUN/docker.sock"
# The Debian client matches the Debian daemon (another client on PATH may be far newer).
DOCKER_BIN=${DOCKER_BIN:-$(command -v /usr/bin/docker || command -v docker || echo docker)}

log() { printf '== docker: %s\n' "$*" >&2; }
dock() { DOCKER_HOST="unix://$SOCK" DOCKER_BUILDKIT=0 "$DOCKER_BIN" "$@"; }
engine_up() { [ -S "$SOCK" ] && dock version >/dev/null 2>&1; }
alive() { [ -f "$1" ] && kill -0 "$(cat "$1")" 2>/dev/null; }

install_missing() {
  local want=()
  [ -x /usr/sbin/dockerd ] || [ -x /usr/bin/dockerd ] || want+=(docker.io)
  command -v docker-compose >/dev/null 2>&1 || want+=(docker-compose)
  command -v debootstrap >/dev/null 2>&1 || want+=(debootstrap)
  [ ${#want[@]} = 0 ] && return 0
  if [ "$(id -u)" != 0 ] || ! command -v apt-get >/dev/null 2>&1; then
    log "missing ${want[*]} and cannot install them (not root or no apt-get)"
    return 1
  fi
  log "installing ${want[*]} with apt-get"
  # policy-rc.d keeps the package from starting the system's own docker service.
  apt-get update -qq >/dev/null
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
    "${want[@]}" >/dev/null
  DOCKER_BIN=$(command -v /usr/bin/docker || command -v docker)
}

# Wait (bounded) until a command succeeds; say what we waited for when it never does.
wait_until() {
  local what=$1 tries=$2
  shift 2
  for _ in $(seq 1 "$tries"); do "$@" && return 0; sleep 0.2; done
  log "timed out waiting for $what"
  return 1
}

start_containerd() {
  alive "$RUN/containerd.pid" && return 0
  cat >"$RUN/containerd.toml" <<EOF
version = 2
root = "$DATA/containerd"
state = "$RUN/containerd"
disabled_plugins = ["io.containerd.grpc.v1.cri"]
[grpc]
  address = "$RUN/containerd.sock"
[ttrpc]
  address = "$RUN/containerd.sock.ttrpc"
EOF
  containerd --config "$RUN/containerd.toml" >>"$DATA/containerd.log" 2>&1 &
  echo $! >"$RUN/containerd.pid"
  wait_until "containerd socket" 100 test -S "$RUN/containerd.sock"
}

start_engine() {
  engine_up && return 0
  mkdir -p "$DATA" "$RUN"
  stop_engine  # leftovers of a run that was killed: stale pid files, a dead socket
  start_containerd
  echo '{}' >"$RUN/daemon.json"  # never read the machine's /etc/docker/daemon.json
  dockerd --config-file "$RUN/daemon.json" --host "unix://$SOCK" \
    --data-root "$DATA/docker" --exec-root "$RUN/exec" --pidfile "$RUN/docker.pid" \
    --containerd "$RUN/containerd.sock" --containerd-namespace kqueue-test \
    --containerd-plugins-namespace kqueue-test-plugins \
    --bridge=none --iptables=false --ip-masq=false --ip-forward=false \
    >>"$DATA/dockerd.log" 2>&1 &
  if ! wait_until "dockerd on $SOCK (log: $DATA/dockerd.log)" 300 engine_up; then
    tail -n 20 "$DATA/dockerd.log" >&2
    return 1
  fi
  remove_containers
  log "engine up on $SOCK"
}

# Stop one daemon by its pid file: TERM, then KILL if it does not exit within 20 s.
stop_pid() {
  local pidfile=$1 pid
  alive "$pidfile" || { rm -f "$pidfile"; return 0; }
  pid=$(cat "$pidfile")
  kill "$pid" 2>/dev/null || true
  wait_until "pid $pid to exit" 100 bash -c "! kill -0 $pid 2>/dev/null" || kill -9 "$pid" || true
  rm -f "$pidfile"
}

# Every container on our engine is a test's; those of an interrupted run are only clutter.
remove_containers() {
  local ids
  mapfile -t ids < <(dock ps -aq)
  [ ${#ids[@]} = 0 ] || dock rm -f "${ids[@]}" >/dev/null 2>&1 || true
}

stop_engine() {
  if engine_up; then remove_containers; fi
  stop_pid "$RUN/docker.pid"
  stop_pid "$RUN/containerd.pid"
  rm -f "$SOCK"
}

compose() {
  if command -v docker-compose >/dev/null 2>&1; then
    DOCKER_HOST="unix://$SOCK" docker-compose -f tests/docker-compose.yml -p kqueue-services "$@"
  else
    dock compose -f tests/docker-compose.yml -p kqueue-services "$@"
  fi
}
port_open() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }
free_port() { python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }
redis_ready() { [ "$(compose exec -T redis redis-cli -p "$KQ_REDIS_PORT" ping 2>/dev/null)" = PONG ]; }
postgres_ready() {
  compose exec -T postgres psql -h 127.0.0.1 -p "$KQ_POSTGRES_PORT" -U postgres -c 'SELECT 1' \
    >/dev/null 2>&1
}

# Redis and PostgreSQL in containers for the tests that use the machine's own servers (their
# URLs come from KQUEUE_TEST_REDIS_URL / KQUEUE_TEST_POSTGRES_URL): each one not running here,
# or both when asked with KQUEUE_TEST_SERVICES=docker. Prints the export lines for the shell.
start_services() {
  local want=() svc
  for svc in redis:6379 postgres:5432; do
    if [ "${KQUEUE_TEST_SERVICES:-}" = docker ] || ! port_open "${svc#*:}"; then
      want+=("${svc%%:*}")
    fi
  done
  [ ${#want[@]} = 0 ] && return 0
  KQ_REDIS_PORT=$(free_port) KQ_POSTGRES_PORT=$(free_port) KQ_BEANSTALKD_PORT=$(free_port)
  KQUEUE_DOCKER_TAG=$(tests/docker/build-images.sh --tag)
  export KQ_REDIS_PORT KQ_POSTGRES_PORT KQ_BEANSTALKD_PORT KQUEUE_DOCKER_TAG
  log "starting ${want[*]} in containers"
  compose up -d --no-build "${want[@]}" >&2
  for svc in "${want[@]}"; do
    wait_until "$svc container to serve" 300 "${svc}_ready"
    case $svc in
      redis) echo "export KQUEUE_TEST_REDIS_URL=redis://127.0.0.1:$KQ_REDIS_PORT/0" ;;
      postgres) echo "export KQUEUE_TEST_POSTGRES_URL=postgresql+psycopg://postgres@127.0.0.1:$KQ_POSTGRES_PORT/postgres" ;;
    esac
  done
}

print_env() {
  printf 'export DOCKER_HOST=%q\n' "unix://$SOCK"
  printf 'export KQUEUE_DOCKER_HOST=%q\n' "unix://$SOCK"
  printf 'export KQUEUE_DOCKER_BIN=%q\n' "$DOCKER_BIN"
  printf 'export KQUEUE_DOCKER_TAG=%q\n' "$(tests/docker/build-images.sh --tag)"
}

case "${1:-}" in
  start)
    install_missing
    start_engine
    DOCKER_HOST="unix://$SOCK" DOCKER_BIN="$DOCKER_BIN" tests/docker/build-images.sh
    ;;
  build) DOCKER_HOST="unix://$SOCK" DOCKER_BIN="$DOCKER_BIN" tests/docker/build-images.sh ;;
  env) print_env ;;
  services) engine_up || { log "engine down: ci/docker.sh start"; exit 1; }; start_services ;;
  status) engine_up && log "up on $SOCK" || { log "down"; exit 1; } ;;
  stop) stop_engine && log "stopped" ;;
  *)
    sed -n '2,13p' "$0" | sed 's/^# \{0,1\}//'
    exit 2
    ;;
esac
