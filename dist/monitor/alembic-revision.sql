-- alembic's revision(s) in the current database, comma-separated; '' when it has no alembic_version
-- table. One statement that never fails on a database without one (src/domain/schema.ts).
SELECT CASE WHEN to_regclass('alembic_version') IS NULL THEN '' ELSE
coalesce((xpath('/row/v/text()', query_to_xml('SELECT string_agg(version_num, '','' ORDER BY version_num) AS v FROM alembic_version', false, true, '')))[1]::text, '') END
