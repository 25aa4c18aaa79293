/**
 * The one place alembic's command lines are written, and its output read. Each builder returns the
 * argument vector of one alembic command; the caller runs it where the app's code is (`docker exec`
 * in a running container, or a one-off `compose run` of the new image).
 */

export type AlembicCommand = readonly ['alembic', ...string[]];

/** The head revision(s) of the code's migrations. */
export function heads(): AlembicCommand {
  return ['alembic', 'heads'];
}

/** The revision the database is at. */
export function current(): AlembicCommand {
  return ['alembic', 'current'];
}

/** Migrates the database to the code's head. */
export function upgradeHead(): AlembicCommand {
  return ['alembic', 'upgrade', 'head'];
}

/** Whether the models have changes no migration covers (alembic 1.9 and later). */
export function check(): AlembicCommand {
  return ['alembic', 'check'];
}

/** The revisions `alembic heads` printed, each line `<rev> [(branch)…] (head)`. */
export function parseHeads(output: string): string[] {
  return [...output.matchAll(/^(\w+)(?: \(\w+\))* \(head\)/gm)].map((m) => m[1]);
}

/** The revision `alembic current` printed ('' when the database has none yet). */
export function parseCurrent(output: string): string {
  return /^(\w+)/m.exec(output.trim())?.[1] ?? '';
}
