-- Production's catalog as one JSON object (src/resample/catalog.ts, readCatalog): its tables (the
-- user schemas' ordinary and partitioned tables, partitions and extension members left out) with
-- their columns, primary key and validated checks; the foreign keys between them; the sequences and
-- the columns they feed. Changes nothing. Tables of at most 200,000 estimated rows (EXACT_COUNT_LIMIT
-- in catalog.ts), and never-analyzed ones (-1 or 0), are counted exactly in the same query
-- ('exact'): query_to_xml runs each count, so the catalog and the counts are one round trip.
WITH tbl AS (
  SELECT c.oid, n.nspname AS schema, c.relname AS name, c.relkind = 'p' AS partitioned, c.reltuples::float8 AS reltuples
  FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
  WHERE c.relkind IN ('r', 'p') AND NOT c.relispartition AND n.nspname NOT IN ('pg_catalog', 'information_schema') AND n.nspname NOT LIKE 'pg\_toast%' AND n.nspname NOT LIKE 'pg\_temp\_%' AND NOT EXISTS (SELECT 1 FROM pg_depend d WHERE d.classid = 'pg_class'::regclass AND d.objid = c.oid AND d.deptype = 'e')
),
cols AS (
  SELECT a.attrelid, json_agg(json_build_object(
      'name', a.attname, 'type', format_type(a.atttypid, a.atttypmod), 'notNull', a.attnotnull,
      'generated', a.attgenerated <> '', 'hasDefault', a.atthasdef, 'category', coalesce(bt.typcategory, t.typcategory)::text,
      'baseType', coalesce(bt.typname, t.typname)::text,
      'unique', EXISTS (SELECT 1 FROM pg_index i WHERE i.indrelid = a.attrelid AND i.indisunique
          AND (a.attnum = ANY (i.indkey) OR EXISTS (SELECT 1 FROM pg_depend d WHERE d.classid = 'pg_class'::regclass AND d.objid = i.indexrelid
              AND d.refclassid = 'pg_class'::regclass AND d.refobjid = a.attrelid AND d.refobjsubid = a.attnum))),
      'distinct', (SELECT s.n_distinct FROM pg_stats s WHERE s.schemaname = tn.nspname AND s.tablename = tc.relname AND s.attname = a.attname ORDER BY s.inherited DESC LIMIT 1)
    ) ORDER BY a.attnum) AS columns
  FROM pg_attribute a JOIN pg_type t ON t.oid = a.atttypid LEFT JOIN pg_type bt ON t.typtype = 'd' AND bt.oid = t.typbasetype
  JOIN pg_class tc ON tc.oid = a.attrelid JOIN pg_namespace tn ON tn.oid = tc.relnamespace
  WHERE a.attrelid IN (SELECT oid FROM tbl) AND a.attnum > 0 AND NOT a.attisdropped
  GROUP BY a.attrelid
),
pk AS (
  SELECT con.conrelid, array_to_json(array(SELECT a.attname::text FROM unnest(con.conkey) WITH ORDINALITY k(n, i)
      JOIN pg_attribute a ON a.attrelid = con.conrelid AND a.attnum = k.n ORDER BY k.i)) AS cols
  FROM pg_constraint con WHERE con.contype = 'p' AND con.conrelid IN (SELECT oid FROM tbl)
),
chk AS (
  SELECT con.conrelid, json_agg(json_build_object(
      'name', con.conname, 'expression', pg_get_expr(con.conbin, con.conrelid),
      'columns', array_to_json(array(SELECT a.attname::text FROM unnest(con.conkey) WITH ORDINALITY k(n, i)
          JOIN pg_attribute a ON a.attrelid = con.conrelid AND a.attnum = k.n ORDER BY k.i))
    ) ORDER BY con.conname) AS list
  FROM pg_constraint con WHERE con.contype = 'c' AND con.convalidated AND con.conrelid IN (SELECT oid FROM tbl)
  GROUP BY con.conrelid
),
fk AS (
  SELECT json_agg(json_build_object(
      'name', con.conname, 'table', ct.schema || '.' || ct.name, 'refTable', rt.schema || '.' || rt.name,
      'partition', CASE WHEN cc.relispartition THEN cn.nspname || '.' || cc.relname END, 'validated', con.convalidated,
      'columns', array_to_json(array(SELECT a.attname::text FROM unnest(con.conkey) WITH ORDINALITY k(n, i)
          JOIN pg_attribute a ON a.attrelid = con.conrelid AND a.attnum = k.n ORDER BY k.i)),
      'refColumns', array_to_json(array(SELECT a.attname::text FROM unnest(con.confkey) WITH ORDINALITY k(n, i)
          JOIN pg_attribute a ON a.attrelid = con.confrelid AND a.attnum = k.n ORDER BY k.i)),
      'onDelete', CASE con.confdeltype WHEN 'r' THEN 'restrict' WHEN 'c' THEN 'cascade' WHEN 'n' THEN 'set null' WHEN 'd' THEN 'set default' ELSE 'no action' END
    ) ORDER BY ct.schema, ct.name, con.conname) AS list
  -- Keys declared on a partition itself (not cloned from its parent's) belong to the partitioned
  -- table at the top of its tree: rows are read through that parent.
  FROM pg_constraint con
  JOIN pg_class cc ON cc.oid = con.conrelid JOIN pg_namespace cn ON cn.oid = cc.relnamespace
  JOIN pg_class rc ON rc.oid = con.confrelid
  JOIN tbl ct ON ct.oid = CASE WHEN cc.relispartition THEN pg_partition_root(cc.oid) ELSE cc.oid END
  JOIN tbl rt ON rt.oid = CASE WHEN rc.relispartition THEN pg_partition_root(rc.oid) ELSE rc.oid END
  WHERE con.contype = 'f' AND con.conparentid = 0
),
seq_cols AS (
  SELECT s.oid AS seq, d.refobjid AS rel, d.refobjsubid AS attnum
  FROM pg_class s JOIN pg_depend d ON d.classid = 'pg_class'::regclass AND d.objid = s.oid AND d.refclassid = 'pg_class'::regclass AND d.deptype IN ('a', 'i')
  WHERE s.relkind = 'S'
  UNION
  SELECT s.oid, ad.adrelid, ad.adnum
  FROM pg_attrdef ad JOIN pg_depend d ON d.classid = 'pg_attrdef'::regclass AND d.objid = ad.oid AND d.refclassid = 'pg_class'::regclass
  JOIN pg_class s ON s.oid = d.refobjid AND s.relkind = 'S'
),
seqs AS (
  SELECT json_agg(json_build_object(
      'id', n.nspname || '.' || s.relname, 'schema', n.nspname, 'name', s.relname,
      'lastValue', (SELECT ps.last_value::text FROM pg_sequences ps WHERE ps.schemaname = n.nspname AND ps.sequencename = s.relname),
      'columns', coalesce((SELECT json_agg(json_build_object('table', t.schema || '.' || t.name, 'column', a.attname::text))
          FROM seq_cols sc JOIN tbl t ON t.oid = sc.rel JOIN pg_attribute a ON a.attrelid = sc.rel AND a.attnum = sc.attnum
          WHERE sc.seq = s.oid), '[]'::json)
    ) ORDER BY n.nspname, s.relname) AS list
  FROM pg_class s JOIN pg_namespace n ON n.oid = s.relnamespace
  WHERE s.relkind = 'S' AND n.nspname NOT IN ('pg_catalog', 'information_schema') AND n.nspname NOT LIKE 'pg\_toast%' AND n.nspname NOT LIKE 'pg\_temp\_%' AND NOT EXISTS (SELECT 1 FROM pg_depend d WHERE d.classid = 'pg_class'::regclass AND d.objid = s.oid AND d.deptype = 'e')
)
SELECT json_build_object(
  'tables', coalesce((SELECT json_agg(json_build_object(
      'id', t.schema || '.' || t.name, 'schema', t.schema, 'name', t.name, 'partitioned', t.partitioned,
      'columns', coalesce(c.columns, '[]'::json), 'primaryKey', p.cols, 'reltuples', t.reltuples,
      'checks', coalesce(k.list, '[]'::json),
      'exact', CASE WHEN t.reltuples <= 200000 THEN (xpath('/row/c/text()', query_to_xml(
        format('SELECT count(*) AS c FROM %s%I.%I', CASE WHEN t.partitioned THEN '' ELSE 'ONLY ' END, t.schema, t.name), false, true, '')))[1]::text::bigint END
      ) ORDER BY t.schema, t.name)
    FROM tbl t LEFT JOIN cols c ON c.attrelid = t.oid LEFT JOIN pk p ON p.conrelid = t.oid LEFT JOIN chk k ON k.conrelid = t.oid), '[]'::json),
  'foreignKeys', coalesce((SELECT list FROM fk), '[]'::json),
  'sequences', coalesce((SELECT list FROM seqs), '[]'::json)
)
