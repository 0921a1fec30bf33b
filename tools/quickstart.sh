#!/usr/bin/env bash
# The main job, from a fresh clone: set up, start a local Mistral 23 and the
# results tracker, run an example workflow through the bridge, and show the
# result the tracker recorded.
#   bash tools/quickstart.sh     (MISTRAL_PORT=8989 and CALLBACK_PORT=9101 by default)
# Everything it creates lives in .local/ (git-ignored). Mistral keeps running
# afterwards; the last line says how to stop it.
set -euo pipefail
cd "$(dirname "$0")/.."
LOCAL="$PWD/.local"
PORT="${MISTRAL_PORT:-8989}"
CONF="$LOCAL/bridge.conf"
mkdir -p "$LOCAL"

step() { printf '\n==> %s\n' "$*"; }

step "python environment"
bash tools/bootstrap.sh

step "Mistral 23 engine on 127.0.0.1:$PORT (installs on the first run)"
python3 tools/mistral_local.py up --home "$LOCAL/mistral" --port "$PORT"

step "bridge configuration: $CONF"
cat > "$CONF" <<CONF
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
port = ${CALLBACK_PORT:-9101}
CONF
cat "$CONF"
BRIDGE=(.venv/bin/st2bridge --config-file "$CONF")

if [ -f "$LOCAL/resultstracker.pid" ] && kill -0 "$(cat "$LOCAL/resultstracker.pid")" 2>/dev/null; then
    kill -TERM "$(cat "$LOCAL/resultstracker.pid")"; sleep 2    # a tracker left by an earlier run
fi

step "bridge store schema (st2bridge db-upgrade: a no-op when current)"
"${BRIDGE[@]}" db-upgrade --target bridge --yes

step "results tracker (log: .local/resultstracker.log)"
.venv/bin/st2bridge-resultstracker --config-file "$CONF" >> "$LOCAL/resultstracker.log" 2>&1 &
TRACKER=$!
echo "$TRACKER" > "$LOCAL/resultstracker.pid"
trap 'kill -TERM $TRACKER 2>/dev/null && wait $TRACKER 2>/dev/null; rm -f "$LOCAL/resultstracker.pid"' EXIT
echo "tracker running, pid $TRACKER"

step "run docs/examples/hello.yaml through the bridge"
ID=$("${BRIDGE[@]}" run docs/examples/hello.yaml -i name=operator)
echo "execution $ID started; the tracker follows it"
LAST=
for _ in $(seq 1 240); do
    STATUS=$("${BRIDGE[@]}" execution get "$ID" --json | .venv/bin/python -c 'import json,sys; print(json.load(sys.stdin)["status"])')
    [ "$STATUS" = "$LAST" ] || echo "  $(date +%T) status: $STATUS"
    LAST=$STATUS
    case "$STATUS" in succeeded|failed|canceled|timeout|abandoned) break ;; esac
    sleep 0.5
done

step "the tracked result"
"${BRIDGE[@]}" execution get "$ID"
echo
echo "Mistral keeps running; stop it with: python3 tools/mistral_local.py stop --home .local/mistral"
[ "$STATUS" = succeeded ]
