#!/bin/sh
# Temporal's schema in PostgreSQL, with the admin-tools image of the server's exact version.
# Idempotent: "create" and the initial schema fail harmlessly when they exist already; the
# versioned update brings an existing database to this server version.
set -eu
tool="temporal-sql-tool --plugin postgres12 --ep ${POSTGRES_SEEDS} -u ${POSTGRES_USER} -p ${DB_PORT}"
for db in temporal temporal_visibility; do
  schema=$([ "$db" = temporal ] && echo temporal || echo visibility)
  $tool --db "$db" create || echo "database $db exists"
  $tool --db "$db" setup-schema -v 0.0 || echo "schema of $db exists"
  $tool --db "$db" update-schema -d "/etc/temporal/schema/postgresql/v12/$schema/versioned"
done
echo "schema ready"
