#!/usr/bin/env bash
# Set up a fresh machine and run things. Every command installs what it needs first (idempotent):
#   bash dev.sh demo        set up, then run the console demo on the bundled default model and pack
#   bash dev.sh test        set up, then lint + the whole test suite, then the database suites on PostgreSQL
#                           (what CI runs)
#   bash dev.sh test-fast   lint + the fast suite only (the inner loop)
#   bash dev.sh chat        set up, then chat in the console (`alice: hi`, `/sticker`, `/help`)
#   bash dev.sh setup       only the set-up: .venv, npm artwork, database, baseline model, default pack
set -euo pipefail
cd "$(dirname "$0")"

PYTHON=${PYTHON:-python3.11}
VENV=.venv

ensure_venv() {
  if [ ! -x "$VENV/bin/python" ]; then
    "$PYTHON" -m venv "$VENV"
  fi
  local stamp="$VENV/.stickerpick-installed"
  local want
  want=$(sha256sum pyproject.toml | cut -d' ' -f1)
  if [ ! -f "$stamp" ] || [ "$(cat "$stamp")" != "$want" ]; then
    echo "== installing Python packages into $VENV (torch==2.13.0 CPU build, pinned)" >&2
    "$VENV/bin/python" -m pip install -q --upgrade pip
    "$VENV/bin/python" -m pip install -q -e ".[train,dev]"
    echo "$want" >"$stamp"
  fi
}

ensure_npm() {
  local stamp=vendor/node_modules/.stickerpick-installed
  local want
  want=$(sha256sum vendor/package-lock.json | cut -d' ' -f1)
  if [ ! -f "$stamp" ] || [ "$(cat "$stamp")" != "$want" ]; then
    echo "== installing emoji artwork from npm into vendor/node_modules" >&2
    npm ci --prefix vendor --no-audit --no-fund --loglevel=error
    echo "$want" >"$stamp"
  fi
}

setup() {
  ensure_venv
  ensure_npm
  "$VENV/bin/stickerpick" setup
}

test_pg() {
  # The database-facing suites again on PostgreSQL (scripts/pg.sh installs and starts a local server).
  local env
  if ! env=$(bash scripts/pg.sh start); then
    if [ "${CI:-}" = true ]; then echo "PostgreSQL could not be started" >&2; return 1; fi
    echo "== skipping the PostgreSQL pass: scripts/pg.sh could not start a server (needs root or PostgreSQL)" >&2
    return 0
  fi
  eval "$env"
  echo "== the engine and bot suites on PostgreSQL ($STICKERPICK_TEST_PG)" >&2
  "$VENV/bin/pytest" -q -m "" tests/engine tests/bot
}

lint() {
  "$VENV/bin/ruff" check .
  "$VENV/bin/ruff" format --check .
  "$VENV/bin/mypy"  # engine/ and bot/: [tool.mypy] in pyproject.toml
}

cmd=${1:-demo}
shift || true
case "$cmd" in
  setup) setup ;;
  demo) setup && "$VENV/bin/stickerpick" demo "$@" ;;
  chat) setup && "$VENV/bin/stickerpick" chat "$@" ;;
  test) ensure_venv && ensure_npm && lint && "$VENV/bin/pytest" -q -m "" "$@" && test_pg ;;
  test-pg) ensure_venv && test_pg ;;
  test-fast) ensure_venv && lint && "$VENV/bin/pytest" -q "$@" ;;
  *) echo "usage: bash dev.sh setup|demo|chat|test|test-fast|test-pg" >&2; exit 2 ;;
esac
