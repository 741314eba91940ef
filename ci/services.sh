#!/usr/bin/env bash
# Check Redis, PostgreSQL and MariaDB; start the ones that are installed but stopped.
# Never fails by itself: the tests decide (skip locally, fail with CI=true).
set -uo pipefail

up() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }
wait_up() { for _ in $(seq 1 50); do up "$1" && return 0; sleep 0.2; done; return 1; }
log() { printf '== %s\n' "$*"; }

if ! up 6379 && command -v redis-server >/dev/null 2>&1; then
  log "starting Redis"
  mkdir -p /var/lib/redis /var/log/redis 2>/dev/null
  redis-server --daemonize yes --bind 127.0.0.1 --port 6379 --save "" --appendonly no \
    --dir /var/lib/redis --logfile /var/log/redis/ci.log >/dev/null 2>&1
  wait_up 6379
fi
if ! up 5432 && command -v pg_ctlcluster >/dev/null 2>&1; then
  log "starting PostgreSQL"
  pg_ctlcluster --skip-systemctl-redirect "$(ls /etc/postgresql | head -n1)" main start >/dev/null 2>&1
  wait_up 5432
fi
if ! up 3306 && [ -x /usr/sbin/mariadbd ]; then
  log "starting MariaDB"
  start-stop-daemon --start --oknodo --background --exec /usr/sbin/mariadbd >/dev/null 2>&1
  wait_up 3306
fi
for svc in redis:6379 postgresql:5432 mariadb:3306; do
  if up "${svc#*:}"; then log "${svc%%:*} up on ${svc#*:}"; else log "${svc%%:*} NOT available"; fi
done
exit 0
