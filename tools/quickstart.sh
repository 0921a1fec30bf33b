#!/usr/bin/env bash
# The main job, from a fresh clone: set up, start a local Mistral 23 and the
# results tracker, run an example workflow through the bridge, and show the
# result the tracker recorded. Mistral and the tracker keep running after it
# (the web view stays up); the last lines say how to use and stop them.
#
#   bash tools/quickstart.sh          set up and start (MISTRAL_PORT=8989, CALLBACK_PORT=9101,
#                                     METRICS_PORT=9102, WEB_PORT=9103 by default)
#   bash tools/quickstart.sh stop     stop the tracker and Mistral it started
#
# Everything it creates lives in .local/ (git-ignored): the bridge's own
# virtualenv (.local/venv, st2bridge without the test extras), bridge.conf,
# the store, the tracker's log (.local/resultstracker.log) and Mistral's home.
set -euo pipefail
cd "$(dirname "$0")/.."
LOCAL="$PWD/.local"
PORT="${MISTRAL_PORT:-8989}"
CALLBACK="${CALLBACK_PORT:-9101}"
METRICS="${METRICS_PORT:-9102}"
WEB="${WEB_PORT:-9103}"
CONF="$LOCAL/bridge.conf"
VENV="$LOCAL/venv"
PIDFILE="$LOCAL/resultstracker.pid"
export PIP_QUIET=1 PIP_DISABLE_PIP_VERSION_CHECK=1   # pip says nothing unless it fails
mkdir -p "$LOCAL"

step() { printf '\n==> %s\n' "$*"; }

stop_tracker() {
    if [ -f "$PIDFILE" ] && kill -0 "$(cat "$PIDFILE")" 2>/dev/null; then
        local pid; pid=$(cat "$PIDFILE")
        kill -TERM "$pid"
        for _ in $(seq 1 60); do kill -0 "$pid" 2>/dev/null || break; sleep 0.5; done
        echo "tracker (pid $pid) stopped"
    fi
    rm -f "$PIDFILE"
}

if [ "${1:-}" = stop ]; then
    stop_tracker
    python3 tools/mistral_local.py stop --home "$LOCAL/mistral"
    exit 0
elif [ $# -gt 0 ]; then
    echo "usage: bash tools/quickstart.sh [stop]" >&2
    exit 2
fi

step "python environment: $VENV (st2bridge, no test extras)"
if ! python3 -c 'import venv, ensurepip' 2>/dev/null; then
    echo "installing python3-venv from Debian"
    apt-get update -qq && apt-get install -y -qq python3-venv
fi
[ -x "$VENV/bin/python" ] || python3 -m venv "$VENV"
if [ ! -f "$VENV/.installed" ] || [ setup.cfg -nt "$VENV/.installed" ] \
        || [ -n "$(find st2bridge -newer "$VENV/.installed" -name '*.py' -print -quit)" ]; then
    if ! "$VENV/bin/pip" install . > "$LOCAL/pip.log" 2>&1; then
        tail -30 "$LOCAL/pip.log"
        echo "error: pip install failed; see $LOCAL/pip.log" >&2
        exit 1
    fi
    touch "$VENV/.installed"
fi
echo "st2bridge $("$VENV/bin/python" -c 'import st2bridge; print(st2bridge.__version__)')"

step "Mistral 23 engine on 127.0.0.1:$PORT (installs on the first run)"
python3 tools/mistral_local.py up --home "$LOCAL/mistral" --port "$PORT"

step "bridge configuration: $CONF"
( umask 077; cat > "$CONF" <<CONF
[DEFAULT]
state_path = $LOCAL
[engine]
api_url = http://127.0.0.1:$PORT/v2
[resultstracker]
# Mistral's webhook tells the tracker when the workflow ends; polling only
# looks at executions that stay silent for stale_after.
mode = hybrid
stale_after = 10
[callback]
port = $CALLBACK
[metrics]
port = $METRICS
[web]
port = $WEB
CONF
)
cat "$CONF"
BRIDGE=("$VENV/bin/st2bridge" --config-file "$CONF")

stop_tracker    # one left by an earlier run: the new one reads the new configuration

step "bridge store schema (st2bridge db-upgrade: a no-op when current)"
"${BRIDGE[@]}" db-upgrade --target bridge --yes

step "results tracker (log: .local/resultstracker.log)"
# Its own session: it outlives this script and the terminal.
setsid "$VENV/bin/st2bridge-resultstracker" --config-file "$CONF" \
    >> "$LOCAL/resultstracker.log" 2>&1 < /dev/null &
echo $! > "$PIDFILE"
echo "tracker running, pid $(cat "$PIDFILE")"
# The example's webhook must find the listener: wait for it to answer.
if ! "$VENV/bin/python" - "$CALLBACK" "$(cat "$PIDFILE")" <<'PY'
import os, sys, time, urllib.request
port, pid = sys.argv[1], int(sys.argv[2])
deadline = time.monotonic() + 60
while time.monotonic() < deadline:
    try:
        os.kill(pid, 0)
    except OSError:
        sys.exit("the tracker exited; see .local/resultstracker.log")
    try:
        urllib.request.urlopen("http://127.0.0.1:%s/v1/health" % port, timeout=1)
        sys.exit(0)
    except OSError:
        time.sleep(0.2)
sys.exit("the tracker's listener did not answer within 60 s; see .local/resultstracker.log")
PY
then
    tail -20 "$LOCAL/resultstracker.log"
    exit 1
fi
echo "listener up: http://127.0.0.1:$CALLBACK/v1/health"

step "run docs/examples/hello.yaml through the bridge"
ID=$("${BRIDGE[@]}" run docs/examples/hello.yaml -i name=operator)
echo "execution $ID started; the tracker follows it"
LAST=
for _ in $(seq 1 240); do
    STATUS=$("${BRIDGE[@]}" execution get "$ID" -f value -c status)
    [ "$STATUS" = "$LAST" ] || echo "  $(date +%T) status: $STATUS"
    LAST=$STATUS
    case "$STATUS" in succeeded|failed|canceled|timeout|abandoned) break ;; esac
    sleep 0.5
done

step "the tracked result"
"${BRIDGE[@]}" execution get "$ID"

cat <<EOF

Mistral and the results tracker keep running:
  web view:  http://127.0.0.1:$WEB/executions
  commands:  export PATH="$VENV/bin:\$PATH" ST2BRIDGE_CONFIG_FILE="$CONF"
             st2bridge execution list
  stop both: bash tools/quickstart.sh stop
EOF
[ "$STATUS" = succeeded ]
