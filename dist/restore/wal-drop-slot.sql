-- Drops the physical slot unless a receiver still holds it, and says what it found: an archive
-- that is off keeps no WAL on prod. psql variable: slot.
SELECT 'slot:' || CASE
  WHEN s.slot_name IS NULL THEN 'absent'
  WHEN s.active THEN 'active'
  ELSE (SELECT 'dropped' FROM pg_drop_replication_slot(s.slot_name)) END
FROM (SELECT 1) AS one
LEFT JOIN pg_replication_slots AS s ON s.slot_name = :'slot' AND s.slot_type = 'physical'
