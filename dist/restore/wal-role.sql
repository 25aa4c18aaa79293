-- The statement psql's \gexec then runs (none when the role is as it should be): create the
-- replication role, or give it back login, replication and the secret's password. Reads
-- pg_authid, so it runs as a superuser. psql variables: role, verifier (a SCRAM verifier).
SELECT CASE WHEN r.oid IS NULL
  THEN format('CREATE ROLE %I LOGIN REPLICATION PASSWORD %L', :'role', :'verifier')
  ELSE format('ALTER ROLE %I LOGIN REPLICATION PASSWORD %L', :'role', :'verifier') END
FROM (SELECT 1) AS one
LEFT JOIN pg_authid AS r ON r.rolname = :'role'
WHERE r.oid IS NULL OR NOT r.rolcanlogin OR NOT r.rolreplication OR r.rolpassword IS DISTINCT FROM :'verifier'
