-- What the connected role may do on the server, as one JSON object (src/resample/reader.ts,
-- readerProblems judges it): its attributes, the roles it is a member of, where it may create, what
-- it owns and how many tables it may write. Changes nothing.
SELECT json_build_object(
  'user', current_user, 'superuser', r.rolsuper, 'createrole', r.rolcreaterole, 'createdb', r.rolcreatedb,
  'replication', r.rolreplication, 'bypassrls', r.rolbypassrls, 'connlimit', r.rolconnlimit,
  'readAll', pg_has_role(r.oid, 'pg_read_all_data', 'MEMBER'),
  'memberOf', (SELECT coalesce(json_agg(b.rolname ORDER BY b.rolname), '[]') FROM pg_roles b
               WHERE pg_has_role(r.oid, b.oid, 'MEMBER') AND b.oid <> r.oid AND b.rolname <> 'pg_read_all_data'),
  'readOnly', current_setting('default_transaction_read_only'),
  'createOnDatabase', has_database_privilege(current_database(), 'CREATE'),
  'createOnSchemas', (SELECT coalesce(json_agg(nspname ORDER BY nspname), '[]') FROM pg_namespace
                      WHERE has_schema_privilege(oid, 'CREATE') AND nspname NOT LIKE 'pg\_temp\_%' AND nspname NOT LIKE 'pg\_toast\_temp\_%'),
  'owns', (SELECT count(*) FROM pg_class WHERE relowner = r.oid) + (SELECT count(*) FROM pg_namespace WHERE nspowner = r.oid),
  'writableTables', (SELECT count(*) FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
                     WHERE c.relkind IN ('r', 'p') AND n.nspname NOT IN ('pg_catalog', 'information_schema')
                     AND (has_table_privilege(r.oid, c.oid, 'INSERT') OR has_table_privilege(r.oid, c.oid, 'UPDATE')
                          OR has_table_privilege(r.oid, c.oid, 'DELETE') OR has_table_privilege(r.oid, c.oid, 'TRUNCATE'))))
FROM pg_roles r WHERE r.rolname = current_user
