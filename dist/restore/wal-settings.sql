-- The server settings streaming replication needs, as prod's db runs them now.
SELECT name || '|' || setting FROM pg_settings WHERE name IN ('wal_level', 'max_wal_senders', 'max_replication_slots') ORDER BY name
