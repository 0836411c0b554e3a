#!/usr/bin/env bash
# Start a throw-away PostgreSQL server on loopback for the tests (installs it from Debian if missing).
#   eval "$(bash scripts/pg.sh start)"   → exports STICKERPICK_TEST_PG=postgresql+asyncpg://...
#   bash scripts/pg.sh stop
set -euo pipefail
PGDIR=${PGDIR:-/tmp/stickerpick-pg}
PORT=${PGPORT:-55432}

find_bin() {
  local d
  for d in /usr/lib/postgresql/*/bin; do [ -x "$d/initdb" ] && { echo "$d"; return; }; done
  return 1
}

start() {
  local bin
  if ! bin=$(find_bin); then
    echo "installing PostgreSQL from Debian packages" >&2
    (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql >/dev/null) >&2
    bin=$(find_bin)
  fi
  local run=()
  if [ "$(id -u)" = 0 ]; then
    id postgres >/dev/null 2>&1 || useradd --system --no-create-home postgres
    mkdir -p "$PGDIR" && chown postgres "$PGDIR"
    run=(runuser -u postgres --)
  fi
  if [ ! -f "$PGDIR/data/PG_VERSION" ]; then
    "${run[@]}" "$bin/initdb" -D "$PGDIR/data" -U postgres --auth=trust -E UTF8 >/dev/null
  fi
  if ! "${run[@]}" "$bin/pg_ctl" -D "$PGDIR/data" status >/dev/null 2>&1; then
    "${run[@]}" "$bin/pg_ctl" -D "$PGDIR/data" -l "$PGDIR/log" -w \
      -o "-p $PORT -k $PGDIR -c listen_addresses=127.0.0.1 -c fsync=off -c max_connections=200" start >&2
  fi
  echo "export STICKERPICK_TEST_PG=postgresql+asyncpg://postgres@127.0.0.1:$PORT/postgres"
}

stop() {
  local bin run=()
  bin=$(find_bin) || return 0
  [ "$(id -u)" = 0 ] && run=(runuser -u postgres --)
  "${run[@]}" "$bin/pg_ctl" -D "$PGDIR/data" -m fast stop >&2 || true
}

case "${1:-start}" in
  start) start ;;
  stop) stop ;;
  *) echo "usage: $0 start|stop" >&2; exit 2 ;;
esac
