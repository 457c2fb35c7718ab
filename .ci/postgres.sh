# Sourced by .ci/run: a throwaway PostgreSQL (Debian's, on the machine image; installed if
# missing) on a Unix socket in a temp dir, no TCP port, stopped and removed when the run exits.
# Exports AP_TEST_DATABASE_URL for the PostgreSQL ledger tests (which fail under CI=true without
# it, and skip, saying so, outside CI). initdb refuses root, so the cluster runs as `postgres`.
if ! compgen -G "/usr/lib/postgresql/*/bin/initdb" >/dev/null; then
  apt-get install -y --no-upgrade postgresql >/dev/null
fi
ci_pg_bin=$(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -1)
ci_pg_dir=$(mktemp -d /tmp/ci-pg.XXXXXX)
chown postgres "$ci_pg_dir"
runuser -u postgres -- "$ci_pg_bin/initdb" -D "$ci_pg_dir/data" -A trust -U postgres --no-sync >/dev/null
# fsync off: a throwaway cluster; the tests kill servers, never PostgreSQL.
runuser -u postgres -- "$ci_pg_bin/pg_ctl" -D "$ci_pg_dir/data" -l "$ci_pg_dir/log" -w \
  -o "-k $ci_pg_dir -c listen_addresses='' -c fsync=off -c max_connections=400" start >/dev/null
ci_pg_stop() {
  runuser -u postgres -- "$ci_pg_bin/pg_ctl" -D "$ci_pg_dir/data" -m fast -w stop >/dev/null 2>&1 || true
  rm -rf "$ci_pg_dir"
}
trap ci_pg_stop EXIT
export AP_TEST_DATABASE_URL="host=$ci_pg_dir user=postgres dbname=postgres"
"$ci_pg_bin/psql" -X -h "$ci_pg_dir" -U postgres -Atc 'select version()'
