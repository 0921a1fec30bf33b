#!/usr/bin/env bash
# Creates .venv and installs st2bridge (editable) with its test
# extra. Quick when already done.
set -euo pipefail
cd "$(dirname "$0")/.."
if ! python3 -c 'import venv, ensurepip' 2>/dev/null; then
    echo "installing python3-venv from Debian"
    apt-get update -qq && apt-get install -y -qq python3-venv
fi
[ -x .venv/bin/python ] || python3 -m venv .venv
stamp=.venv/.st2bridge-installed
if [ ! -f "$stamp" ] || [ setup.cfg -nt "$stamp" ]; then
    echo "installing st2bridge and its dependencies into .venv (log: .venv/pip.log)"
    if ! { .venv/bin/pip install --disable-pip-version-check -q --upgrade pip &&
           .venv/bin/pip install --disable-pip-version-check -e '.[test]'; } \
           > .venv/pip.log 2>&1; then
        tail -30 .venv/pip.log
        echo "error: pip install failed; see .venv/pip.log" >&2
        exit 1
    fi
    touch "$stamp"
fi
echo "python environment ready: $(.venv/bin/python --version)," \
     "st2bridge $(.venv/bin/python -c 'import st2bridge; print(st2bridge.__version__)')"
