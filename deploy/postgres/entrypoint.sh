#!/bin/sh
# PostgreSQL from Debian's packages, configured as the official postgres image is: on
# first start (an empty $PGDATA) initdb with $POSTGRES_USER as the superuser and
# $POSTGRES_PASSWORD as its password, then $POSTGRES_DB; connections over the network
# need the password (scram-sha-256), the local socket (health checks) does not.
set -eu
PGBIN=/usr/lib/postgresql/15/bin
: "${PGDATA:=/var/lib/postgresql/data}"
: "${POSTGRES_USER:=postgres}"
: "${POSTGRES_DB:=$POSTGRES_USER}"
if [ -z "${POSTGRES_PASSWORD:-}" ]; then
  echo "postgres: set POSTGRES_PASSWORD (network connections need a password)" >&2
  exit 1
fi
if [ ! -s "$PGDATA/PG_VERSION" ]; then
  pwfile="$(mktemp)"
  printf '%s' "$POSTGRES_PASSWORD" > "$pwfile"
  "$PGBIN/initdb" -D "$PGDATA" -U "$POSTGRES_USER" --pwfile="$pwfile" \
    --auth-host=scram-sha-256 --auth-local=trust --encoding=UTF8 >/dev/null
  rm -f "$pwfile"
  echo "host all all all scram-sha-256" >> "$PGDATA/pg_hba.conf"
  if [ "$POSTGRES_DB" != "postgres" ]; then
    echo "CREATE DATABASE \"$POSTGRES_DB\" OWNER \"$POSTGRES_USER\";" \
      | "$PGBIN/postgres" --single -D "$PGDATA" -j postgres >/dev/null
  fi
  echo "postgres: initialised $PGDATA (database $POSTGRES_DB, user $POSTGRES_USER)"
fi
exec "$PGBIN/postgres" -D "$PGDATA" -c listen_addresses='*' "$@"
