#!/usr/bin/env bash
# Makes sure the PostgreSQL server that tests/test_distributed.py uses is there:
# postgresql://postgres@127.0.0.1:5432/test, user postgres without a password over local TCP.
# Called by scripts/test.sh before pytest; safe to run by hand and any number of times.
#
#   - already reachable: exits at once (one psql call), printing nothing;
#   - otherwise, on Debian as root: installs the `postgresql` package when no server is installed
#     (refreshing the apt lists only if the first try fails), creates a cluster on port 5432 when
#     none exists (pg_createcluster), starts it (pg_ctlcluster), adds a `trust` line for user
#     postgres from 127.0.0.1 to its pg_hba.conf when a password would be asked (then reloads),
#     creates the database `test`, and waits (at most 30 s) until pg_isready answers.
#
# Quiet on success; on failure prints one warning line and exits 1 (the tests then skip, or fail
# under CI, i.e. with the env var CI set).
set -uo pipefail

HOST=127.0.0.1
PORT=5432
DB=test
WAIT_S=30

fail() {
    echo "warning: no usable PostgreSQL at postgresql://postgres@$HOST:$PORT/$DB: $*;" \
        "tests/test_distributed.py will skip (fail under CI)" >&2
    exit 1
}

# `connects DB`: user postgres can open DB over TCP without a password (never prompts).
connects() {
    command -v psql >/dev/null 2>&1 &&
        PGCONNECT_TIMEOUT=3 psql -w -X -q -h "$HOST" -p "$PORT" -U postgres -d "$1" -Atc 'select 1' \
            >/dev/null 2>&1
}
# Something accepts TCP connections on the port (works without the PostgreSQL client installed).
listening() { timeout 2 bash -c "exec 3<>/dev/tcp/$HOST/$PORT" 2>/dev/null; }
ready() { pg_isready -q -h "$HOST" -p "$PORT" -t 2 >/dev/null 2>&1; }
wait_ready() {
    local i
    for ((i = 0; i < WAIT_S; i++)); do
        ready && return 0
        sleep 1
    done
    return 1
}
# The newest installed server version (a folder /usr/lib/postgresql/V with the server binary).
server_version() {
    local d
    for d in /usr/lib/postgresql/*/bin/postgres; do
        [ -x "$d" ] && basename "$(dirname "$(dirname "$d")")"
    done | sort -V | tail -n 1
}
# "VERSION NAME" of the cluster on our port, if any.
cluster_on_port() { pg_lsclusters -h 2>/dev/null | awk -v p="$PORT" '$3 == p {print $1, $2; exit}'; }

connects "$DB" && exit 0

is_root=0
[ "$(id -u)" -eq 0 ] && is_root=1

if listening; then
    # A server answers already (maybe not one this machine manages, e.g. a CI service container):
    # never install; fix up the local cluster if it is ours, else only create the database.
    cluster=$(command -v pg_lsclusters >/dev/null 2>&1 && cluster_on_port)
    if [ -z "$cluster" ]; then
        if connects postgres; then
            createdb -w -h "$HOST" -p "$PORT" -U postgres "$DB" >/dev/null 2>&1 \
                || fail "createdb $DB failed"
            connects "$DB" && exit 0
        fi
        fail "a server answers but user postgres cannot connect without a password"
    fi
else
    # Install the server when missing (Debian, as root).
    if [ -z "$(server_version)" ] || ! command -v pg_ctlcluster >/dev/null 2>&1; then
        { [ "$is_root" -eq 1 ] && command -v apt-get >/dev/null 2>&1; } \
            || fail "PostgreSQL is not installed (installing it needs root and apt-get)"
        echo "installing postgresql for tests/test_distributed.py" >&2
        export DEBIAN_FRONTEND=noninteractive
        apt-get install -y -q --no-install-recommends postgresql >/dev/null 2>&1 \
            || { apt-get update -q >/dev/null 2>&1 \
                && apt-get install -y -q --no-install-recommends postgresql >/dev/null 2>&1; } \
            || fail "apt-get install postgresql failed"
        [ -n "$(server_version)" ] || fail "the postgresql package installed no server"
    fi
    # The cluster on our port; create one when there is none (the package normally creates `main`).
    cluster=$(cluster_on_port)
    if [ -z "$cluster" ]; then
        version=$(server_version)
        name=main
        [ -d "/etc/postgresql/$version/main" ] && name=automl-test  # `main` exists on another port
        pg_createcluster "$version" "$name" --port "$PORT" >/dev/null 2>&1 \
            || fail "pg_createcluster $version $name --port $PORT failed"
        cluster="$version $name"
    fi
fi

read -r version name <<<"$cluster"
if ! ready; then
    pg_ctlcluster --skip-systemctl-redirect "$version" "$name" start >/dev/null 2>&1 \
        || fail "pg_ctlcluster $version $name start failed ($([ "$is_root" -eq 1 ] \
            && echo "see /var/log/postgresql/postgresql-$version-$name.log" || echo "needs root or user postgres"))"
    wait_ready || fail "cluster $version/$name started but pg_isready got no answer within ${WAIT_S}s"
fi

# Password-less TCP access for user postgres: trust 127.0.0.1 ahead of the other rules (first
# match wins in pg_hba.conf), unless the cluster already lets us in.
if ! connects postgres; then
    hba=/etc/postgresql/$version/$name/pg_hba.conf  # Debian's place for a cluster's pg_hba.conf
    [ -w "$hba" ] || fail "cannot edit $hba to trust user postgres from $HOST (needs root)"
    line="host all postgres $HOST/32 trust  # added by scripts/postgres.sh for the tests"
    if ! grep -qxF "$line" "$hba"; then
        { printf '%s\n' "$line"; cat "$hba"; } >"$hba.new" && cat "$hba.new" >"$hba" && rm -f "$hba.new" \
            || fail "could not write $hba"
    fi
    pg_ctlcluster --skip-systemctl-redirect "$version" "$name" reload >/dev/null 2>&1 \
        || fail "pg_ctlcluster $version $name reload failed"
    wait_ready || fail "no answer from pg_isready within ${WAIT_S}s after the reload"
    connects postgres || fail "user postgres still cannot connect without a password"
fi

if ! connects "$DB"; then
    createdb -w -h "$HOST" -p "$PORT" -U postgres "$DB" >/dev/null 2>&1 || fail "createdb $DB failed"
fi
wait_ready || fail "pg_isready got no answer within ${WAIT_S}s"
connects "$DB" || fail "cannot connect to database $DB"
exit 0
