#!/usr/bin/env bash
# The one test command of the README: set up what the tests need, then lint, type-check, test.
#   ./ci/test.sh              everything
#   ./ci/test.sh -k purge     extra arguments go to pytest
#   ./ci/test.sh -m "not browser"   without the real-browser tests of the dashboard
#   SKIP_DEMO=1 ./ci/test.sh  skip the fresh-venv `kqueue demo` run at the end
# With CI=true a missing service fails the run instead of skipping tests.
#   KQUEUE_TEST_SERVICES=docker ./ci/test.sh   Redis and PostgreSQL in containers, not the machine's
set -euo pipefail
cd "$(dirname "$0")/.."

PYTHON=${PYTHON:-python3}
VENV=${VENV:-.venv}

log() { printf '== %s\n' "$*"; }

if [ ! -x "$VENV/bin/python" ]; then
  log "creating virtual environment in $VENV"
  "$PYTHON" -m venv "$VENV"
fi
log "installing kqueue with its test extras"
"$VENV/bin/python" -m pip install --quiet --upgrade pip >/dev/null 2>&1 || true
"$VENV/bin/python" -m pip install --quiet -e ".[test]"

# beanstalkd: the real broker the tests spawn on free ports.
if ! command -v beanstalkd >/dev/null 2>&1; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    log "installing beanstalkd with apt-get"
    apt-get update -qq >/dev/null && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq beanstalkd >/dev/null
  else
    log "beanstalkd missing and cannot install it (not root or no apt-get)"
  fi
fi
# The Debian package may start a system beanstalkd on 11300; the tests never use it.

# redis-server and redis-cli: the Sentinel sets and Redis Clusters the tests start on free
# ports (tests/redis_servers.py), whatever serves the shared Redis.
if ! command -v redis-server >/dev/null 2>&1 || ! command -v redis-cli >/dev/null 2>&1; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    log "installing redis-server with apt-get"
    apt-get update -qq >/dev/null && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq redis-server >/dev/null
  else
    log "redis-server missing and cannot install it: the Sentinel and Cluster tests will skip (fail with CI=true)"
  fi
fi

# chromium: the real browser of the dashboard tests (-m browser), driven by Playwright through
# its executable path; Debian's package, never a `playwright install` download.
if ! command -v chromium >/dev/null 2>&1 && [ ! -x /usr/lib/chromium/chromium ]; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    log "installing chromium with apt-get"
    apt-get update -qq >/dev/null && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null
  else
    log "chromium missing and cannot install it: the browser tests will skip (fail with CI=true)"
  fi
fi

ci/services.sh

# Our own Docker engine for the containerised tests (tests/docker, the chaos tests' container
# variants): installed with apt when missing, images built locally and reused, stopped when this
# script ends unless it was already running. Outside CI a failure here only skips those tests.
# KQUEUE_SKIP_DOCKER=1 leaves Docker alone (with CI=true those tests then fail).
if [ "${KQUEUE_SKIP_DOCKER:-}" != 1 ]; then
  if ! ci/docker.sh status 2>/dev/null; then trap 'ci/docker.sh stop' EXIT; fi
  if ci/docker.sh start; then
    eval "$(ci/docker.sh env)"
    # Redis / PostgreSQL missing here (or all with KQUEUE_TEST_SERVICES=docker) in containers.
    eval "$(ci/docker.sh services)"
  else
    log "no Docker engine: the container tests will skip (and fail with CI=true)"
  fi
fi

log "ruff"
"$VENV/bin/ruff" check .
"$VENV/bin/ruff" format --check .
log "mypy --strict"
"$VENV/bin/mypy"
log "import-linter (layer contracts in pyproject.toml)"
"$VENV/bin/lint-imports"
log "pytest"
"$VENV/bin/python" -m pytest "$@"

# The README's first command, as a newcomer runs it: a fresh venv, a plain install, the demo.
if [ "${SKIP_DEMO:-}" != 1 ]; then
  log "kqueue demo from a fresh virtual environment"
  demo_venv=$(mktemp -d)/venv
  "$PYTHON" -m venv "$demo_venv"
  "$demo_venv/bin/python" -m pip install --quiet . 2>&1 | grep -v -i warning || true
  (cd "$(dirname "$demo_venv")" && "$demo_venv/bin/kqueue" demo)
  rm -rf "$(dirname "$demo_venv")"
fi
