#!/usr/bin/env bash
# A private, loopback-only PostgreSQL for development and tests.
#
#   tools/pg.sh start DIR PORT   initdb DIR/data on first use, start, create
#                                database a3mailer; prints the libpq URL
#   tools/pg.sh stop DIR         fast shutdown
#
# PostgreSQL refuses to run as root: the cluster belongs to the system user
# a3pg, created here if missing. The socket lives in DIR, the server listens
# on 127.0.0.1:PORT only.
set -euo pipefail

cmd=${1:?usage: pg.sh start DIR PORT | stop DIR}
dir=${2:?directory}
bindir=$(pg_config --bindir 2>/dev/null || ls -d /usr/lib/postgresql/*/bin | tail -n1)
user=a3pg

as_pg() {
  if [ "$(id -u)" = 0 ]; then runuser -u "$user" -- "$@"; else "$@"; fi
}

case "$cmd" in
  start)
    port=${3:?port}
    if [ "$(id -u)" = 0 ] && ! id "$user" >/dev/null 2>&1; then
      useradd --system --no-create-home --shell /usr/sbin/nologin "$user"
    fi
    mkdir -p "$dir"
    [ "$(id -u)" = 0 ] && chown "$user" "$dir"
    if [ ! -f "$dir/data/PG_VERSION" ]; then
      as_pg "$bindir/initdb" -D "$dir/data" -U postgres -A trust -E UTF8 --locale=C.UTF-8 \
        --no-sync >"$dir/initdb.log" 2>&1 || { cat "$dir/initdb.log" >&2; exit 1; }
    fi
    if ! as_pg "$bindir/pg_ctl" -D "$dir/data" status >/dev/null 2>&1; then
      as_pg "$bindir/pg_ctl" -D "$dir/data" -l "$dir/server.log" -w -t 60 \
        -o "-c listen_addresses=127.0.0.1 -p $port -k $dir ${PG_EXTRA_OPTS:-}" start >/dev/null \
        || { tail -20 "$dir/server.log" >&2; exit 1; }
    fi
    as_pg "$bindir/psql" -h "$dir" -p "$port" -U postgres -d postgres -Atqc \
      "SELECT 1 FROM pg_database WHERE datname = 'a3mailer'" | grep -q 1 \
      || as_pg "$bindir/createdb" -h "$dir" -p "$port" -U postgres a3mailer
    echo "host=$dir port=$port dbname=a3mailer user=postgres"
    ;;
  stop)
    if [ -f "$dir/data/postmaster.pid" ]; then
      as_pg "$bindir/pg_ctl" -D "$dir/data" -m fast -w stop >/dev/null || true
    fi
    ;;
  *)
    echo "usage: pg.sh start DIR PORT | stop DIR" >&2
    exit 2
    ;;
esac
