-- pg_hba.conf's rules as the server reads them, in file order, as one JSON array: what preflight
-- checks a replication connection of the WAL receiver against. Reads pg_hba_file_rules, which only
-- a superuser may.
SELECT coalesce(json_agg(json_build_object(
  'line', line_number, 'type', type, 'database', database, 'user', user_name,
  'address', address, 'netmask', netmask, 'method', auth_method, 'error', error) ORDER BY line_number), '[]')
FROM pg_hba_file_rules
