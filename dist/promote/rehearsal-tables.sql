-- The user tables of the current database, one a line (src/domain/rehearsal.ts, parseTables):
-- `<oid>|<schema>.<table>|<relfilenode>|<live rows>|<rows updated>`.
SELECT c.oid || '|' || n.nspname || '.' || c.relname || '|' || c.relfilenode || '|' || coalesce(s.n_live_tup, 0) || '|' || coalesce(s.n_tup_upd, 0)
FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace LEFT JOIN pg_stat_user_tables s ON s.relid = c.oid
WHERE c.relkind IN ('r', 'm') AND n.nspname NOT IN ('pg_catalog', 'information_schema') AND n.nspname NOT LIKE 'pg_toast%'
