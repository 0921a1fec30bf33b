#!/usr/bin/env bash
# Makes sure the services the tests use are running on 127.0.0.1, installing
# them from Debian when missing: PostgreSQL (5432, trust for 127.0.0.1) and
# MariaDB (3306, root without password) for the db-upgrade tests, Prometheus
# and Alertmanager (binaries) for the alarms test, and
# Chromium with its driver for the web view's browser tests. RabbitMQ
# is handled by tools/mistral_local.py. Quick when all are up.
set -euo pipefail

port_open() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }
wait_port() {
    for _ in $(seq 1 60); do port_open "$1" && return 0; sleep 1; done
    echo "error: $2 did not start listening on 127.0.0.1:$1" >&2; return 1
}
apt_install() {
    echo "installing $* from Debian"
    [ -n "${APT_UPDATED:-}" ] || { apt-get update -qq; APT_UPDATED=1; }
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$@" > /dev/null
}

if port_open 5432; then
    echo "PostgreSQL: up on 127.0.0.1:5432"
else
    command -v pg_ctlcluster > /dev/null || apt_install postgresql
    version=$(ls /etc/postgresql | sort -V | tail -1)
    hba=/etc/postgresql/$version/main/pg_hba.conf
    # Tests connect as postgres over TCP without a password (the machine
    # kind's setting); allow that for loopback only.
    grep -q "^host all postgres 127.0.0.1/32 trust" "$hba" ||
        sed -i '1i host all postgres 127.0.0.1/32 trust' "$hba"
    grep -q "^listen_addresses" "/etc/postgresql/$version/main/postgresql.conf" ||
        echo "listen_addresses = '127.0.0.1'" >> "/etc/postgresql/$version/main/postgresql.conf"
    pg_ctlcluster --skip-systemctl-redirect "$version" main start || true
    wait_port 5432 PostgreSQL && echo "PostgreSQL: started"
fi

if port_open 3306; then
    echo "MariaDB: up on 127.0.0.1:3306"
else
    command -v mariadbd > /dev/null || [ -x /usr/sbin/mariadbd ] || apt_install mariadb-server
    mkdir -p /run/mysqld && chown mysql:mysql /run/mysqld 2>/dev/null || true
    start-stop-daemon --start --oknodo --background --exec /usr/sbin/mariadbd -- --user=mysql \
        --bind-address=127.0.0.1
    wait_port 3306 MariaDB
    # A fresh Debian MariaDB lets root in only through the unix socket; the
    # tests connect over TCP as root without a password (loopback only).
    mariadb -u root -e "ALTER USER 'root'@'localhost' IDENTIFIED VIA mysql_native_password USING PASSWORD('') OR unix_socket; FLUSH PRIVILEGES;" 2>/dev/null || true
    echo "MariaDB: started"
fi

# Prometheus and Alertmanager for the alarms test: binaries only (the tests
# run them as plain processes with their own config, data dir and ports).
if command -v prometheus > /dev/null && command -v prometheus-alertmanager > /dev/null; then
    echo "Prometheus, Alertmanager: installed (alarms tests)"
else
    apt_install prometheus prometheus-alertmanager
    echo "Prometheus, Alertmanager: installed"
fi

if command -v chromium > /dev/null && command -v chromedriver > /dev/null; then
    echo "Chromium: installed (web view tests)"
else
    apt_install chromium chromium-driver
    echo "Chromium: installed"
fi
