#!/bin/sh
# Run once by the postgres image when postgres-s0 is first initialised
# (/docker-entrypoint-initdb.d): lets its streaming replica (postgres-s0-replica, made
# with pg_basebackup -R) connect for replication with the same password.
echo "host replication all all scram-sha-256" >> "$PGDATA/pg_hba.conf"
