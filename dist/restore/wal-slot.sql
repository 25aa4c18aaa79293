-- Creates the physical replication slot when absent, reserving WAL from now on, and says what it
-- found; a logical slot of that name fails the cast (the name is taken). psql variable: slot.
SELECT 'slot:' || CASE
  WHEN s.slot_type IS NULL THEN (SELECT 'created' FROM pg_create_physical_replication_slot(:'slot', true))
  WHEN s.slot_type = 'physical' THEN 'present'
  ELSE ('slot ' || :'slot' || ' is a ' || s.slot_type || ' slot')::int::text END
FROM (SELECT 1) AS one
LEFT JOIN pg_replication_slots AS s ON s.slot_name = :'slot'
