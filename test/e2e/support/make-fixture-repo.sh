#!/usr/bin/env bash
# Create <workdir>/origin.git, a bare git repository holding the fixture app
# (test/fixtures/app) on branch "main", plus one branch per failure scenario,
# each exactly one commit ahead of main:
#
#   second         migration 0002 (adds items.description) and one more test
#   failing-test   tests/test_fail.py with a failing assert
#   two-heads      migrations 0002 and 0002b, both revising 0001 -> two heads,
#                  `alembic upgrade head` fails ("Multiple head revisions")
#   bad-health     the api healthcheck requests a missing path -> unhealthy
#   bad-migration  migration 0002 commits CREATE TABLE half_done, then fails
#                  with an SQL error; alembic_version stays at 0001 and the
#                  table is left behind
#   prod-bad-health  (one ahead of second) only the prod overlay's api
#                  healthcheck fails
#   third          (one ahead of second) a passing test more, no migration
#   slow-build     the api image build takes 20 s (a RUN sleep step)
#   dev-escape     dev's overlay runs the worker privileged with the Docker
#                  socket mounted (what the isolation checks must refuse)
#   unique-names   migration 0002: a UNIQUE index on items.name (fails only
#                  where names repeat, rolling back by itself)
#   slow-half-migration  migration 0002 commits a table, waits 8 s, then fails
#   entrypoint-migrate  (one ahead of second) the api migrates when it starts;
#                  the prod overlay's api healthcheck fails
#   prod-build-arg the prod overlay gives the api build an arg dev lacks
#   slow-lock      (one ahead of second) migration 0003 holds items ACCESS
#                  EXCLUSIVE for 3 s, then adds a column
#   rolling        main set up for a rolling api: db and api on a Docker network
#                  ($EDGE_NETWORK, made by the test) instead of the host
#                  network, the api with no container_name and no host port,
#                  its code bind-mounted from the checkout (api/VERSION says
#                  "rolling", served at /api/version),
#                  served by api/serve.py (listens on the network, 4 s to
#                  start, drains on SIGTERM); the db listens on its network
#                  too (password logins from that subnet only)
#   rolling-next   (one ahead of rolling) a test more and api/VERSION
#                  "rolling-next": a new api image
#
# Author, committer and dates are fixed, so the shas only change when the
# fixture files or this script change. Any existing <workdir>/origin.git is
# replaced.
#
# stdout: one "<branch> <sha>" line per branch (main first).
set -euo pipefail

if [ $# -ne 1 ]; then
  echo "usage: $0 <workdir>" >&2
  exit 2
fi

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
app_src="$(cd "$here/../../fixtures/app" && pwd)"
mkdir -p "$1"
workdir="$(cd "$1" && pwd)"
origin="$workdir/origin.git"
scratch="$(mktemp -d "$workdir/.fixture-src.XXXXXX")"
trap 'rm -rf "$scratch"' EXIT

# Same result whatever the caller's git configuration says.
export GIT_CONFIG_GLOBAL=/dev/null GIT_CONFIG_SYSTEM=/dev/null GIT_CONFIG_NOSYSTEM=1
export GIT_AUTHOR_NAME="twinstack fixture" GIT_AUTHOR_EMAIL="fixture@twinstack.invalid"
export GIT_COMMITTER_NAME="twinstack fixture" GIT_COMMITTER_EMAIL="fixture@twinstack.invalid"
export TZ=UTC LC_ALL=C

g() { git -C "$scratch" "$@"; }

commit() { # <date> <message>
  g add -A
  GIT_AUTHOR_DATE="$1" GIT_COMMITTER_DATE="$1" g commit -q -m "$2"
}

branch_from_main() { # <name>
  g checkout -q -b "$1" main
}

# ---------------------------------------------------------------- main
git init -q -b main "$scratch"
g config core.autocrlf false
g config core.fileMode true
rsync -a \
  --exclude '.env' --exclude '.env.*' \
  --exclude '__pycache__' --exclude '.pytest_cache' --exclude '*.pyc' \
  "$app_src/" "$scratch/"
commit "2024-01-01T12:00:00+0000" "Fixture app: db, api, worker, alembic, tests"

# ---------------------------------------------------------------- second
migration_0002='"""add items.description

Revision ID: 0002
Revises: 0001
Create Date: 2024-01-02 00:00:00
"""
from alembic import op
import sqlalchemy as sa

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade():
    op.add_column("items", sa.Column("description", sa.Text, nullable=True))


def downgrade():
    op.drop_column("items", "description")
'

branch_from_main second
printf '%s' "$migration_0002" >"$scratch/migrations/versions/0002_item_description.py"
cat >"$scratch/tests/test_description.py" <<'EOF'
"""Added with migration 0002."""


def test_items_have_description(db, api, marker):
    with db.cursor() as cur:
        cur.execute(
            "INSERT INTO items (name, description) VALUES (%s, %s)",
            (marker, "from the second branch"),
        )
    status, body = api("/api/items")
    assert status == 200, body
    mine = [i for i in body["items"] if i["name"] == marker]
    assert mine and mine[0]["description"] == "from the second branch"
EOF
commit "2024-01-02T12:00:00+0000" "Add items.description (migration 0002)"

# ---------------------------------------------------------------- failing-test
branch_from_main failing-test
cat >"$scratch/tests/test_fail.py" <<'EOF'
"""A test that always fails (failure scenario for the deploy actions)."""


def test_deliberately_fails():
    expected = 3
    assert 1 + 1 == expected, "this fixture test fails on purpose"
EOF
commit "2024-01-03T12:00:00+0000" "Add a failing test"

# ---------------------------------------------------------------- two-heads
branch_from_main two-heads
printf '%s' "$migration_0002" >"$scratch/migrations/versions/0002_item_description.py"
cat >"$scratch/migrations/versions/0002b_item_tags.py" <<'EOF'
"""add items.tags -- also revises 0001, so alembic has two heads

Revision ID: 0002b
Revises: 0001
Create Date: 2024-01-04 00:00:00
"""
from alembic import op
import sqlalchemy as sa

revision = "0002b"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade():
    op.add_column("items", sa.Column("tags", sa.Text, nullable=True))


def downgrade():
    op.drop_column("items", "tags")
EOF
commit "2024-01-04T12:00:00+0000" "Add two migrations that both revise 0001"

# ---------------------------------------------------------------- bad-health
branch_from_main bad-health
compose="$scratch/deploy/stack/docker-compose.yml"
sed -i 's#/api/health\\""\]#/api/health-missing\\""]#' "$compose"
if ! grep -q '/api/health-missing' "$compose"; then
  echo "make-fixture-repo: could not rewrite the api healthcheck in $compose" >&2
  exit 1
fi
commit "2024-01-05T12:00:00+0000" "Point the api healthcheck at a missing path"

# ---------------------------------------------------------------- bad-migration
branch_from_main bad-migration
cat >"$scratch/migrations/versions/0002_half_done.py" <<'EOF'
"""create half_done, then fail halfway

The CREATE TABLE is committed on its own (autocommit block), so after the
failure the database has table half_done while alembic_version stays at 0001:
a half-applied migration, as happens with non-transactional steps.

Revision ID: 0002
Revises: 0001
Create Date: 2024-01-06 00:00:00
"""
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade():
    with op.get_context().autocommit_block():
        op.execute("CREATE TABLE half_done (id serial PRIMARY KEY, note text)")
    op.execute("INSERT INTO half_done (note) VALUES ('before the error')")
    op.execute("SELECT no_such_column FROM half_done")


def downgrade():
    op.execute("DROP TABLE IF EXISTS half_done")
EOF
commit "2024-01-06T12:00:00+0000" "Add a migration that fails halfway"

# ---------------------------------------------------------------- prod-bad-health
# One commit ahead of second: only the prod overlay's api healthcheck is
# broken, so dev deploys and gates it fine and only a promotion to prod fails
# (no new migration: a rollback needs no database restore).
g checkout -q -b prod-bad-health second
cat >"$scratch/deploy/stack/docker-compose.prod.yml" <<'EOF'
# Production overlay, with the api healthcheck broken (failure scenario).
services:
  db:
    env_file: .env.prod
  api:
    env_file: .env.prod
    healthcheck:
      test: ["CMD-SHELL", "curl -fsS -o /dev/null --max-time 3 \"http://127.0.0.1:$$API_PORT/api/health-missing\""]
      interval: 2s
      timeout: 5s
      retries: 3
  worker:
    env_file: .env.prod
EOF
commit "2024-01-07T12:00:00+0000" "Break the prod-only api healthcheck"

# ---------------------------------------------------------------- third
# One commit ahead of second, no new migration: an ordinary next release.
g checkout -q -b third second
cat >"$scratch/tests/test_third.py" <<'EOF'
"""Added in the third release."""


def test_health_answers(api):
    status, _ = api("/api/health")
    assert status == 200
EOF
commit "2024-01-08T12:00:00+0000" "Add a health test"

# ---------------------------------------------------------------- slow-build
# main with an api build that takes 20 s (a RUN step), so a run can be cut while it builds.
branch_from_main slow-build
# shellcheck disable=SC2016 # the Dockerfile text is literal
printf '\n# A slow build step (fault tests cut a run while it builds); SLOW_BUILD_KEY defeats the cache.\nARG SLOW_BUILD_KEY=none\nRUN echo "slow build $SLOW_BUILD_KEY" && sleep 20\n' >>"$scratch/api/Dockerfile"
# shellcheck disable=SC2016 # the compose variable is literal
sed -i 's#^      dockerfile: api/Dockerfile$#      dockerfile: api/Dockerfile\n      args:\n        SLOW_BUILD_KEY: ${SLOW_BUILD_KEY:-none}#' "$scratch/deploy/stack/docker-compose.yml"
grep -q 'SLOW_BUILD_KEY' "$scratch/deploy/stack/docker-compose.yml" || { echo "make-fixture-repo: could not add the build arg" >&2; exit 1; }
commit "2024-01-09T12:00:00+0000" "Slow api build"

# ---------------------------------------------------------------- dev-escape
# main whose dev overlay gives the worker the host: privileged, with the Docker socket.
branch_from_main dev-escape
sed -i 's#^  worker:$#  worker:\n    privileged: true\n    volumes:\n      - /var/run/docker.sock:/var/run/docker.sock#' "$scratch/deploy/stack/docker-compose.dev.yml"
grep -q 'privileged: true' "$scratch/deploy/stack/docker-compose.dev.yml" || { echo "make-fixture-repo: could not edit the dev overlay" >&2; exit 1; }
commit "2024-01-10T12:00:00+0000" "Dev worker with the Docker socket"

# ---------------------------------------------------------------- unique-names
# main plus migration 0002: a UNIQUE index over items.name. It fails only where
# names repeat (tests put duplicates in prod's data only); transactional, so a
# failure leaves nothing behind.
branch_from_main unique-names
cat >"$scratch/migrations/versions/0002_unique_names.py" <<'EOF'
"""unique item names

Revision ID: 0002
Revises: 0001
Create Date: 2024-01-11 00:00:00
"""
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade():
    op.execute("ALTER TABLE items ADD COLUMN note text")
    op.execute("CREATE UNIQUE INDEX items_name_unique ON items (name)")


def downgrade():
    op.execute("DROP INDEX IF EXISTS items_name_unique")
    op.execute("ALTER TABLE items DROP COLUMN IF EXISTS note")
EOF
commit "2024-01-11T12:00:00+0000" "Make item names unique"

# ---------------------------------------------------------------- slow-half-migration
# main plus migration 0002 that commits a new table and a backfill of items
# (autocommit), waits 8 s, then fails: the schema has moved when it fails, so a
# restore is needed, and tests can write rows meanwhile.
branch_from_main slow-half-migration
cat >"$scratch/migrations/versions/0002_slow_half.py" <<'EOF'
"""commit part of the work, wait, then fail

Revision ID: 0002
Revises: 0001
Create Date: 2024-01-12 00:00:00
"""
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade():
    with op.get_context().autocommit_block():
        op.execute("CREATE TABLE half_done (id serial PRIMARY KEY, note text)")
        op.execute("UPDATE items SET name = name")
        op.execute("SELECT pg_sleep(8)")
    op.execute("SELECT no_such_column FROM half_done")


def downgrade():
    op.execute("DROP TABLE IF EXISTS half_done")
EOF
commit "2024-01-12T12:00:00+0000" "Add a slow migration that fails halfway"

# ---------------------------------------------------------------- entrypoint-migrate
# second whose api migrates when it starts (alembic upgrade head before the
# server), with the prod overlay's healthcheck broken: a promotion fails after
# the app itself moved the schema.
g checkout -q -b entrypoint-migrate second
# shellcheck disable=SC2016 # the Dockerfile text is literal
sed -i 's#^CMD \["python3", "/app/api/app.py"\]$#CMD ["sh", "-c", "cd /app \&\& alembic upgrade head \&\& exec python3 /app/api/app.py"]#' "$scratch/api/Dockerfile"
grep -q 'alembic upgrade head' "$scratch/api/Dockerfile" || { echo "make-fixture-repo: could not change the api command" >&2; exit 1; }
cat >"$scratch/deploy/stack/docker-compose.prod.yml" <<'EOF'
# Production overlay, with the api healthcheck broken (failure scenario).
services:
  db:
    env_file: .env.prod
  api:
    env_file: .env.prod
    healthcheck:
      test: ["CMD-SHELL", "curl -fsS -o /dev/null --max-time 3 \"http://127.0.0.1:$$API_PORT/api/health-missing\""]
      interval: 2s
      timeout: 5s
      retries: 3
  worker:
    env_file: .env.prod
EOF
commit "2024-01-13T12:00:00+0000" "Migrate on start; prod healthcheck broken"

# ---------------------------------------------------------------- prod-build-arg
# main whose prod overlay gives the api build an arg dev does not have (as a
# NEXT_PUBLIC_* URL baked in at build time): prod must rebuild that service.
branch_from_main prod-build-arg
# shellcheck disable=SC2016 # the Dockerfile text is literal
printf '\nARG API_FLAVOR=plain\nRUN echo "$API_FLAVOR" > /app/flavor\n' >>"$scratch/api/Dockerfile"
sed -i 's#^  api:$#  api:\n    build:\n      args:\n        API_FLAVOR: prod#' "$scratch/deploy/stack/docker-compose.prod.yml"
grep -q 'API_FLAVOR: prod' "$scratch/deploy/stack/docker-compose.prod.yml" || { echo "make-fixture-repo: could not add the build arg" >&2; exit 1; }
commit "2024-01-14T12:00:00+0000" "Prod-only api build arg"

# ---------------------------------------------------------------- slow-lock
# One commit ahead of second: migration 0003 holds items ACCESS EXCLUSIVE for
# 3 s, then adds a column. Over a lock budget when rehearsed; and it waits
# for any lock a test holds on items.
g checkout -q -b slow-lock second
cat >"$scratch/migrations/versions/0003_slow_lock.py" <<'EOF'
"""hold items exclusively for a while, then add a column

Revision ID: 0003
Revises: 0002
Create Date: 2024-01-15 00:00:00
"""
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade():
    op.execute("LOCK TABLE items IN ACCESS EXCLUSIVE MODE")
    op.execute("SELECT pg_sleep(3)")
    op.execute("ALTER TABLE items ADD COLUMN slow_note text")


def downgrade():
    op.execute("ALTER TABLE items DROP COLUMN IF EXISTS slow_note")
EOF
commit "2024-01-15T12:00:00+0000" "Add a migration that holds a long exclusive lock"
# ---------------------------------------------------------------- rolling
# main set up so the api can be replaced with no failed request (promote.rolling):
# db and api on a Docker network the test creates, a proxy on that network in
# front of the api. The worker stays on the host network (it talks to nobody).
branch_from_main rolling
cat >"$scratch/deploy/stack/docker-compose.yml" <<'EOF'
# Base stack for a rolling api: db and api on the network $EDGE_NETWORK (made
# outside the stack, shared with the proxy), each under an alias of its own
# project, so prod and dev can share it. The api has no container_name and no
# published port: a proxy on the network finds its containers by the alias.
# The db keeps its container name (it is not rolled) and publishes nothing.

services:
  db:
    build:
      context: ../..
      dockerfile: db/Dockerfile
    image: ${COMPOSE_PROJECT_NAME:-makapix}-db:local
    container_name: ${COMPOSE_PROJECT_NAME:-makapix}-db
    restart: unless-stopped
    # A reaper as the container's first process, not PostgreSQL: a process left behind in the
    # container (the shell of a healthcheck that timed out leaves its pg_isready) is re-parented to
    # the first process, and PostgreSQL takes any child it did not start that exits with code 2 for
    # a crashed backend and restarts every session (docker-library/postgres#1349).
    init: true
    networks:
      edge:
        aliases:
          - ${COMPOSE_PROJECT_NAME:-makapix}-db
    volumes:
      - pg_data:/var/lib/postgresql/data
    labels:
      twinstack.test-run: ${TWINSTACK_TEST_RUN:-}
      twinstack.test-slot: ${TWINSTACK_TEST_SLOT:-}
    healthcheck:
      test: ["CMD-SHELL", "pg_isready -q -h 127.0.0.1 -p \"$$DB_PORT\" -d \"$$DB_NAME\" -U \"$${DB_USER:-owner}\""]
      interval: 1s
      timeout: 5s
      retries: 10
      start_period: 30s

  api:
    build:
      context: ../..
      dockerfile: api/Dockerfile
    image: ${COMPOSE_PROJECT_NAME:-makapix}-api:local
    restart: unless-stopped
    depends_on:
      db:
        condition: service_healthy
    # Listens on the network, takes 4 s to start, drains on SIGTERM (api/serve.py).
    command: ["python3", "/app/api/serve.py"]
    environment:
      DB_HOST: ${COMPOSE_PROJECT_NAME:-makapix}-db
      START_DELAY_S: "4"
    networks:
      edge:
        aliases:
          - ${COMPOSE_PROJECT_NAME:-makapix}-api
    volumes:
      - ${VAULT_HOST_PATH:?VAULT_HOST_PATH must be set in the env file}:/vault
      # The code from the checkout, as Makapix mounts it (../../api:/workspace/api).
      - ../../api:/app/api:ro
    healthcheck:
      # Longer than the api's 10 s database connect timeout (api/app.py): a slow connection under
      # load is a slow answer, not an unhealthy container.
      test: ["CMD-SHELL", "curl -fsS -o /dev/null --max-time 12 \"http://127.0.0.1:$$API_PORT/api/health\""]
      interval: 1s
      timeout: 15s
      retries: 3
      start_period: 5s
    labels:
      caddy: ${WEB_DOMAIN}
      caddy.reverse_proxy: "{{upstreams ${API_PORT}}}"
      twinstack.test-run: ${TWINSTACK_TEST_RUN:-}
      twinstack.test-slot: ${TWINSTACK_TEST_SLOT:-}

  # No healthcheck on purpose: covers "services without healthchecks".
  worker:
    image: twinstack-fixture-base:latest
    container_name: ${COMPOSE_PROJECT_NAME:-makapix}-worker
    network_mode: host
    restart: unless-stopped
    depends_on:
      - db
    labels:
      twinstack.test-run: ${TWINSTACK_TEST_RUN:-}
      twinstack.test-slot: ${TWINSTACK_TEST_SLOT:-}
    command:
      - bash
      - -c
      - |
        trap 'echo "worker: stopping"; exit 0' TERM INT
        echo "worker: started for $${ENVIRONMENT:-unknown} ($${MQTT_TOPIC_PREFIX:-})"
        while true; do sleep 5 & wait $$!; done

networks:
  edge:
    name: ${EDGE_NETWORK:?EDGE_NETWORK must name the proxy's network}
    external: true

volumes:
  pg_data:
    name: ${COMPOSE_PROJECT_NAME:-makapix}_pg_data
    labels:
      twinstack.test-run: ${TWINSTACK_TEST_RUN:-}
      twinstack.test-slot: ${TWINSTACK_TEST_SLOT:-}
EOF
cat >"$scratch/api/serve.py" <<'EOF'
"""Serves the fixture api the way a rolling replacement needs, as uvicorn does.

It listens on every address of its container (a proxy on the Docker network
reaches it), takes START_DELAY_S seconds to start (a real app loads for
seconds), and drains on SIGTERM: stops accepting new connections at once,
finishes the requests it has, then exits.
"""

import os
import signal
import sys
import threading
import time
from http.server import ThreadingHTTPServer

import psycopg2
from psycopg2.pool import ThreadedConnectionPool

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import app  # noqa: E402
from app import Handler  # noqa: E402


class Pooled:
    """A pooled connection that goes back to the pool where app.py closes it."""

    def __init__(self, pool):
        self.pool = pool
        self.conn = pool.getconn()

    def cursor(self):
        return self.conn.cursor()

    def __enter__(self):
        self.conn.__enter__()
        return self

    def __exit__(self, *exc):
        return self.conn.__exit__(*exc)

    def close(self):
        # A connection the server dropped is discarded; the pool opens a new one when asked.
        self.pool.putconn(self.conn, close=bool(self.conn.closed))


def use_a_pool():
    """Database connections kept open, as the real api's pool does (SQLAlchemy under FastAPI):
    a request reuses one instead of starting a PostgreSQL backend of its own. Opened before the
    api listens, so a new container answers only once it reaches its database."""
    while True:
        try:
            pool = ThreadedConnectionPool(2, 20, connect_timeout=10, application_name="fixture-api", **app.settings())
            break
        except psycopg2.Error as e:
            print(f"api: database not reachable yet: {str(e).strip()}", flush=True)
            time.sleep(1)
    app.connect = lambda: Pooled(pool)


def main():
    time.sleep(float(os.environ.get("START_DELAY_S", "0")))
    use_a_pool()
    port = int(os.environ["API_PORT"])
    server = ThreadingHTTPServer(("0.0.0.0", port), Handler)
    server.daemon_threads = False  # server_close() waits for the requests in flight

    def drain(*_):
        # serve_forever() must be stopped from another thread than the one it runs in.
        threading.Thread(target=server.shutdown).start()

    signal.signal(signal.SIGTERM, drain)
    print(f"api: listening on 0.0.0.0:{port}", flush=True)
    server.serve_forever(poll_interval=0.1)
    server.server_close()  # closes the listening socket, then joins the request threads
    print("api: drained, exiting", flush=True)


if __name__ == "__main__":
    main()
EOF
sed -i 's#^  -c listen_addresses=127.0.0.1 \\$#  -c listen_addresses=0.0.0.0 \\#' "$scratch/db/entrypoint.sh"
sed -i 's#^host    all       all       ::1/128        scram-sha-256$#&\nhost    all       all       samenet        scram-sha-256#' "$scratch/db/entrypoint.sh"
for word in listen_addresses=0.0.0.0 samenet; do
  grep -qF "$word" "$scratch/db/entrypoint.sh" || { echo "make-fixture-repo: could not make the db listen on its network ($word)" >&2; exit 1; }
done
echo rolling >"$scratch/api/VERSION"
commit "2024-01-15T12:00:00+0000" "db and api on a Docker network, the api ready to roll"

# ---------------------------------------------------------------- rolling-next
# One commit ahead of rolling, no migration: a new api image to promote.
g checkout -q -b rolling-next rolling
cat >"$scratch/tests/test_rolling_next.py" <<'EOF'
"""Added in the release after rolling."""


def test_items_answer(api):
    status, _ = api("/api/items")
    assert status == 200
EOF
echo rolling-next >"$scratch/api/VERSION"
commit "2024-01-16T12:00:00+0000" "Add an items test"

# ---------------------------------------------------------------- publish
g checkout -q main
rm -rf "$origin"
git init -q --bare -b main "$origin"
branches=(main second failing-test two-heads bad-health bad-migration prod-bad-health third slow-build dev-escape unique-names slow-half-migration entrypoint-migrate prod-build-arg slow-lock rolling rolling-next)
g push -q "$origin" "${branches[@]/#/refs/heads/}"
git -C "$origin" symbolic-ref HEAD refs/heads/main

for b in "${branches[@]}"; do
  echo "$b $(git -C "$origin" rev-parse "refs/heads/$b")"
done
