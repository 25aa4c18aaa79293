-- One sample of the ACCESS EXCLUSIVE locks other sessions hold in the current database (the
-- rehearsal's lock sampler, src/domain/rehearsal.ts): a line with the sample's time in epoch
-- milliseconds, then one `<time>|<schema>.<table>` line per table held. Every line carries the same
-- time, the statement's: clock_timestamp() moves while the statement runs, and a lock line stamped
-- a millisecond after its sample read as a sample of its own in which the other tables were free,
-- cutting their holds short.
SELECT (extract(epoch FROM statement_timestamp()) * 1000)::bigint || coalesce((SELECT string_agg(E'\n' || (extract(epoch FROM statement_timestamp()) * 1000)::bigint || '|' || n.nspname || '.' || c.relname, '')
FROM pg_locks l JOIN pg_class c ON c.oid = l.relation JOIN pg_namespace n ON n.oid = c.relnamespace
WHERE l.database = (SELECT oid FROM pg_database WHERE datname = current_database()) AND l.mode = 'AccessExclusiveLock' AND l.granted AND c.relkind IN ('r', 'p', 'm') AND l.pid <> pg_backend_pid()), '');
