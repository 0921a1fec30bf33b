#!/usr/bin/env bash
# Install st2bridge from this archive (run as root, from the unpacked directory):
#
#   sudo ./install.sh [--extras keystone] [--python python3] [--dry-run]
#
# - user and group `st2bridge` (system account, no shell)
# - /opt/st2bridge/venv: a virtualenv with the wheel from wheels/ (its
#   dependencies from wheels/ when the archive was built with --with-deps,
#   else from the package index pip is configured with)
# - /usr/bin/st2bridge and /usr/bin/st2bridge-resultstracker: links into it
# - /etc/st2bridge/bridge.conf (only when missing; the full sample with every
#   option is installed beside it), /var/lib/st2bridge, /var/log/st2bridge
# - the systemd unit(s) and the engine drop-in, and /etc/logrotate.d/st2bridge
#
# It enables and starts nothing; it prints what to do next. Running it again
# upgrades the virtualenv in place and keeps the configuration.
set -euo pipefail
cd "$(dirname "$0")"

PREFIX=/opt/st2bridge
BINDIR=/usr/bin
ETC=/etc/st2bridge
STATE=/var/lib/st2bridge
LOGS=/var/log/st2bridge
UNITDIR=/etc/systemd/system
PYTHON=python3
EXTRAS=""
DRY_RUN=0

usage() { sed -n '2,16p' "$0" | sed 's/^# \{0,1\}//'; }
while [ $# -gt 0 ]; do
    case "$1" in
        --extras) EXTRAS="$2"; shift 2 ;;
        --python) PYTHON="$2"; shift 2 ;;
        --dry-run) DRY_RUN=1; shift ;;
        -h|--help) usage; exit 0 ;;
        *) echo "install.sh: unknown argument $1" >&2; usage >&2; exit 2 ;;
    esac
done

run() {
    echo "+ $*"
    if [ "$DRY_RUN" = 0 ]; then "$@"; fi
}

wheel=$(ls wheels/st2bridge-*.whl 2>/dev/null | head -n 1)
if [ -z "$wheel" ]; then
    echo "install.sh: no wheels/st2bridge-*.whl here; run it from the unpacked archive" >&2
    exit 2
fi
if [ "$DRY_RUN" = 0 ] && [ "$(id -u)" != 0 ]; then
    echo "install.sh: run as root (or --dry-run to see the steps)" >&2
    exit 2
fi

# 1. the service account
if ! getent passwd st2bridge >/dev/null; then
    run useradd --system --user-group --home-dir "$STATE" --shell /usr/sbin/nologin \
        --comment "st2bridge results tracker" st2bridge
fi

# 2. directories
run install -d -m 0755 "$ETC" "$PREFIX"
run install -d -m 0750 -o st2bridge -g st2bridge "$STATE" "$LOGS"

# 3. the virtualenv and the commands
[ -x "$PREFIX/venv/bin/python" ] || run "$PYTHON" -m venv "$PREFIX/venv"
spec="$wheel"
[ -n "$EXTRAS" ] && spec="st2bridge[$EXTRAS] @ file://$(pwd)/$wheel"
run "$PREFIX/venv/bin/pip" install --disable-pip-version-check --upgrade --find-links wheels "$spec"
for cmd in st2bridge st2bridge-resultstracker; do
    run ln -sfn "$PREFIX/venv/bin/$cmd" "$BINDIR/$cmd"
done

# 4. configuration (never overwritten)
run install -m 0644 conf/bridge.conf.sample "$ETC/bridge.conf.sample"
if [ ! -e "$ETC/bridge.conf" ]; then
    echo "+ write $ETC/bridge.conf"
    if [ "$DRY_RUN" = 0 ]; then
        umask 027
        cat > "$ETC/bridge.conf" <<EOF
# st2bridge configuration; every option with its help: bridge.conf.sample
[DEFAULT]
state_path = $STATE
log_dir = $LOGS

[engine]
api_url = http://127.0.0.1:8989/v2
EOF
        chgrp st2bridge "$ETC/bridge.conf"
    fi
fi

# 5. systemd units and logrotate
for unit in systemd/*.service; do
    run install -m 0644 "$unit" "$UNITDIR/$(basename "$unit")"
done
run install -d -m 0755 "$ETC/systemd"
run cp -r systemd/mistral-db-check.d "$ETC/systemd/"
run install -m 0644 logrotate/st2bridge /etc/logrotate.d/st2bridge
if [ -d /run/systemd/system ]; then
    run systemctl daemon-reload
fi

cat <<EOF

st2bridge installed in $PREFIX/venv.
Next:
  1. edit $ETC/bridge.conf (engine api_url and authentication, store url, callback url)
  2. st2bridge db-upgrade --target bridge --yes        # create the store schema
  3. systemctl enable --now st2bridge-resultstracker
  4. st2bridge services
Engine drop-in (refuses to start Mistral on a stale schema): copy
$ETC/systemd/mistral-db-check.d/10-st2bridge-db-check.conf to
/etc/systemd/system/<mistral unit>.d/ (see packaging/UPGRADE.md).
EOF
