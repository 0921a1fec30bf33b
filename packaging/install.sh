#!/usr/bin/env bash
# Install st2bridge from this archive (run as root, from the unpacked directory):
#
#   sudo ./install.sh [--extras keystone] [--without-engine] [--python python3]
#                     [--user st2bridge] [--root DIR] [--dry-run]
#
# - user and group `st2bridge` (system account, no shell; --user another name)
# - /opt/st2bridge/venv: a virtualenv with the wheel from wheels/ and the
#   `engine` extra (SQLAlchemy and the engine database drivers, for
#   `st2bridge db-upgrade` of the engine's database; --without-engine leaves
#   it out on a host that never upgrades the engine); its dependencies from
#   wheels/ when the archive was built with --with-deps, else from the
#   package index pip is configured with
# - /usr/bin/st2bridge and /usr/bin/st2bridge-resultstracker: links into it
# - /etc/st2bridge/bridge.conf (only when missing; 0640, group st2bridge; the
#   full sample with every option is installed beside it), /var/lib/st2bridge
#   and /var/log/st2bridge (0750, owned by the service user)
# - the systemd unit(s) and the engine drop-in, and /etc/logrotate.d/st2bridge
# --root DIR puts every path under DIR (a scratch install; the units name
# the paths under DIR).
#
# It enables and starts nothing; it prints what to do next. Running it again
# upgrades the virtualenv in place and keeps the configuration.
set -euo pipefail
cd "$(dirname "$0")"

ROOT=""
SERVICE_USER=st2bridge
PYTHON=python3
EXTRAS=""
ENGINE_EXTRA=1
DRY_RUN=0

usage() { sed -n '2,22p' "$0" | sed 's/^# \{0,1\}//'; }
while [ $# -gt 0 ]; do
    case "$1" in
        --extras) EXTRAS="$2"; shift 2 ;;
        --without-engine) ENGINE_EXTRA=0; shift ;;
        --python) PYTHON="$2"; shift 2 ;;
        --user) SERVICE_USER="$2"; shift 2 ;;
        --root) ROOT="${2%/}"; shift 2 ;;
        --dry-run) DRY_RUN=1; shift ;;
        -h|--help) usage; exit 0 ;;
        *) echo "install.sh: unknown argument $1" >&2; usage >&2; exit 2 ;;
    esac
done
if [ -n "$ROOT" ] && [ "${ROOT#/}" = "$ROOT" ]; then
    echo "install.sh: --root needs an absolute path" >&2
    exit 2
fi

PREFIX=$ROOT/opt/st2bridge
BINDIR=$ROOT/usr/bin
ETC=$ROOT/etc/st2bridge
STATE=$ROOT/var/lib/st2bridge
LOGS=$ROOT/var/log/st2bridge
UNITDIR=$ROOT/etc/systemd/system
LOGROTATE=$ROOT/etc/logrotate.d

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
if ! getent passwd "$SERVICE_USER" >/dev/null; then
    run useradd --system --user-group --home-dir "$STATE" --shell /usr/sbin/nologin \
        --comment "st2bridge results tracker" "$SERVICE_USER"
fi

# 2. directories: the state and logs belong to the service user
run install -d -m 0755 "$ETC" "$PREFIX" "$BINDIR"
run install -d -m 0750 -o "$SERVICE_USER" -g "$SERVICE_USER" "$STATE" "$LOGS"

# 3. the virtualenv and the commands
[ -x "$PREFIX/venv/bin/python" ] || run "$PYTHON" -m venv "$PREFIX/venv"
extras=$(echo "$( [ "$ENGINE_EXTRA" = 1 ] && echo engine ),$EXTRAS" | tr -s ', ' ',' | sed 's/^,//; s/,$//')
spec="$wheel"
[ -n "$extras" ] && spec="st2bridge[$extras] @ file://$(pwd)/$wheel"
run "$PREFIX/venv/bin/pip" install --quiet --disable-pip-version-check --upgrade \
    --find-links wheels "$spec"
for cmd in st2bridge st2bridge-resultstracker; do
    run ln -sfn "$PREFIX/venv/bin/$cmd" "$BINDIR/$cmd"
done

# 4. configuration (never overwritten; secrets go here: not world-readable)
run install -m 0644 conf/bridge.conf.sample "$ETC/bridge.conf.sample"
if [ ! -e "$ETC/bridge.conf" ]; then
    echo "+ write $ETC/bridge.conf"
    if [ "$DRY_RUN" = 0 ]; then
        (
            umask 027
            cat > "$ETC/bridge.conf" <<EOF
# st2bridge configuration; every option with its help: bridge.conf.sample
[DEFAULT]
state_path = $STATE
log_dir = $LOGS

[engine]
api_url = http://127.0.0.1:8989/v2
EOF
        )
        chgrp "$SERVICE_USER" "$ETC/bridge.conf"
    fi
fi

# 5. systemd units and logrotate (paths and user as installed)
run install -d -m 0755 "$UNITDIR" "$ETC/systemd/mistral-db-check.d" "$LOGROTATE"
place() {  # place SOURCE TARGET: a copy with this install's paths and user
    echo "+ install $1 $2"
    if [ "$DRY_RUN" = 0 ]; then
        sed -e "s#/usr/bin/st2bridge#$BINDIR/st2bridge#g" \
            -e "s#/etc/st2bridge/#$ETC/#g" \
            -e "s#/var/lib/st2bridge#$STATE#g" \
            -e "s#/var/log/st2bridge#$LOGS#g" \
            -e "s#^User=st2bridge\$#User=$SERVICE_USER#" \
            -e "s#^Group=st2bridge\$#Group=$SERVICE_USER#" \
            -e "s#^\( *\)su st2bridge st2bridge#\1su $SERVICE_USER $SERVICE_USER#" \
            -e "s#^\( *\)create 0640 st2bridge st2bridge#\1create 0640 $SERVICE_USER $SERVICE_USER#" \
            "$1" > "$2"
        chmod 0644 "$2"
    fi
}
for unit in systemd/*.service; do
    place "$unit" "$UNITDIR/$(basename "$unit")"
done
for dropin in systemd/mistral-db-check.d/*.conf; do
    place "$dropin" "$ETC/systemd/mistral-db-check.d/$(basename "$dropin")"
done
place logrotate/st2bridge "$LOGROTATE/st2bridge"
if [ -z "$ROOT" ] && [ -d /run/systemd/system ]; then
    run systemctl daemon-reload
fi

cat <<EOF

st2bridge installed in $PREFIX/venv (extras: ${extras:-none}).
Next (as root; state is created as the service user $SERVICE_USER):
  1. edit $ETC/bridge.conf (engine api_url and authentication, store url, callback url)
  2. runuser -u $SERVICE_USER -- $BINDIR/st2bridge --config-file $ETC/bridge.conf db-upgrade --target bridge --yes
  3. systemctl enable --now st2bridge-resultstracker
  4. $BINDIR/st2bridge --config-file $ETC/bridge.conf services
Engine drop-in (refuses to start Mistral on a stale schema): copy
$ETC/systemd/mistral-db-check.d/10-st2bridge-db-check.conf to
/etc/systemd/system/<mistral unit>.d/ (see UPGRADE.md).
EOF
