-- Clicks are counted per (link, day) in one row: the dimension counts (referrer host,
-- browser, OS, device) fold into that row as JSON instead of a row per value, so a flush
-- writes one row per link and day however many values it saw. The worker sums clicks in
-- process before writing, so a link clicked many times in a flush is one row update.

-- The dimension counts of a (link, day) are a JSON array of partial sums, each an object
-- ({"referrer": {"a.example": 3}, "browser": {...}, "os": {...}, "device": {...}}): a
-- flush appends its own with `||`, which costs PostgreSQL next to nothing, and when the
-- array reaches a length the writer chooses, the row is summed into one element by
-- click_dims_sum. Readers add the elements up (domain::click::Dims).

-- Sums the objects of `parts` value by value into a one-element array, keeping at most
-- `keep` values per dimension, the ones with the most clicks (ties: the smaller value in
-- byte order); the rest are summed under "(other)". Dims::add in Rust keeps the same rule.
CREATE FUNCTION click_dims_sum(parts jsonb, keep int) RETURNS jsonb
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT jsonb_build_array(COALESCE(jsonb_object_agg(dim, vals), '{}'::jsonb))
    FROM (
        SELECT dim, jsonb_object_agg(value, total) AS vals
        FROM (
            SELECT dim,
                   CASE WHEN value <> '(other)' AND rank <= keep THEN value ELSE '(other)' END AS value,
                   sum(total) AS total
            FROM (
                SELECT dim, value, total,
                       row_number() OVER (
                           PARTITION BY dim
                           ORDER BY value = '(other)', total DESC, value COLLATE "C"
                       ) AS rank
                FROM (
                    SELECT d.key AS dim, v.key AS value, sum(v.value::bigint) AS total
                    FROM jsonb_array_elements(parts) AS p
                    CROSS JOIN LATERAL jsonb_each(p) AS d
                    CROSS JOIN LATERAL jsonb_each_text(d.value) AS v
                    GROUP BY 1, 2
                ) AS summed
            ) AS ranked
            GROUP BY 1, 2
        ) AS kept
        GROUP BY dim
    ) AS per_dim
$$;

ALTER TABLE click_daily ADD COLUMN dims JSONB NOT NULL DEFAULT '[]';
-- Updated in place every flush: leave room on each page for HOT updates.
ALTER TABLE click_daily SET (fillfactor = 70);

UPDATE click_daily AS d SET dims = jsonb_build_array(x.dims)
FROM (
    SELECT link_id, day, jsonb_object_agg(dim, vals) AS dims
    FROM (
        SELECT link_id, day, dim, jsonb_object_agg(value, total) AS vals
        FROM click_dims
        GROUP BY link_id, day, dim
    ) AS per_dim
    GROUP BY link_id, day
) AS x
WHERE d.link_id = x.link_id AND d.day = x.day;
DROP TABLE click_dims;

-- Exactly once without a row per click: the ID of every counted unit (a stream entry
-- of many clicks, or one flush of the in-process queue), written in the same
-- transaction as its counts. A unit delivered again conflicts here and adds nothing.
-- IDs are Snowflakes, so old ones are pruned by range.
CREATE TABLE click_units (
    id BIGINT PRIMARY KEY
);

-- Raw events are optional now (sampled, off by default) and deduplicated by their unit,
-- so they need no unique index: they are appended with COPY. Retention scans by time,
-- and the table is in time order, so a BRIN index is enough.
ALTER TABLE click_events DROP CONSTRAINT click_events_pkey;
DROP INDEX click_events_at;
CREATE INDEX click_events_at ON click_events USING brin (at);
