#!/usr/bin/env bash
# The test command: sets up what the tests need, then runs every test.
#   bash tools/run-tests.sh [pytest args...]
# Unit tests need only Python. Integration tests start their own real Mistral
# 23 (installed once per machine into its own virtualenv by
# tools/mistral_local.py, with RabbitMQ from Debian when it is missing), one
# test also a real Keystone 30 (tools/keystone_local.py, the same way), and
# use PostgreSQL and MariaDB (tools/ensure-services.sh).
set -euo pipefail
cd "$(dirname "$0")/.."

step() { printf '\n==> %s\n' "$*"; }

step "python environment (.venv) with st2bridge and its test extras"
bash tools/bootstrap.sh

step "PostgreSQL and MariaDB for the db-upgrade tests (installed from Debian when missing)"
bash tools/ensure-services.sh

step "Mistral 23 in its own virtualenv (skipped when already installed)"
python3 tools/mistral_local.py install

step "Keystone 30 in its own virtualenv, for the test behind Keystone (skipped when installed)"
if python3 -c 'import sys; sys.exit(sys.version_info < (3, 11))'; then
    python3 tools/keystone_local.py install
else
    echo "python3 is older than 3.11, which Keystone 30 needs: the Keystone test is skipped"
fi

step "lint: ruff check, ruff format --check, mypy on the typed interfaces (pyproject.toml)"
.venv/bin/ruff check --quiet . && .venv/bin/ruff format --check --quiet .
.venv/bin/mypy

step "tests"
exec .venv/bin/pytest -rfE "${@:-tests}"
