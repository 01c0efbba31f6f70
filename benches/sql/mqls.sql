-- mqls (metrics/marketing.yaml, kind conversion) for one period, written by hand.
-- Parameters: {from_ts}, {to_ts} (UTC instants at which the period's first local day and the
-- day after its last start in America/Los_Angeles).
--
-- How it encodes the governed definition (as canon's src/compile/conversion.rs computes it):
-- * Identity: a lifecycle event's contact resolves through marketing.contact_merge_audit
--   (vid_to_merge -> canonical_vid, chains followed transitively, recursive CTE) to its
--   surviving contact; the person is lower(trim(email)) of that surviving contact, or
--   'contact:<id>' when the email is missing/empty. An event whose contact is unknown has a NULL
--   person and, like in canon, forms one NULL group of its own.
-- * First MQL moment: min(timestamp) over all events of the person whose stage is
--   marketingqualifiedlead or later (salesqualifiedlead, opportunity, customer); counted when it
--   falls in [from_ts, to_ts). One row per person.
-- * Exclusions (deleted, internal_email, test_email) hold for a person only when they hold on
--   EVERY event row of the person (canon: bool_and(coalesce(when, false))), so a person with one
--   deleted duplicate contact still counts. internal_email: email domain (after the last '@' of
--   lower(trim(email))) is acme.io or a subdomain (canon.yaml internal_domains). test_email:
--   that domain is example.com, or the local part (before the first '@') contains 'test'.
-- * Like canon, only events before the start of the local day AFTER {to} are read (a horizon
--   that cannot move a first moment into the period, but does decide which rows the per-person
--   exclusions are judged on). It is written {to_ts} + 1 day (24 h), exact unless a DST change
--   falls on the day {to}.
-- * DuckDB: timestamp columns are TIMESTAMPTZ; the TIMESTAMP literals are UTC only when the
--   session runs with SET TimeZone = 'UTC'.
WITH RECURSIVE
merge_edge AS (
    SELECT vid_to_merge AS id, canonical_vid AS into_id
    FROM marketing.contact_merge_audit
    WHERE vid_to_merge IS NOT NULL AND canonical_vid IS NOT NULL
),
chain (id, survivor) AS (
    SELECT id, into_id FROM merge_edge
    UNION ALL
    SELECT c.id, e.into_id FROM chain c JOIN merge_edge e ON e.id = c.survivor
),
survivor AS (
    -- the end of each chain: a survivor that was not itself merged away
    SELECT c.id, c.survivor
    FROM chain c LEFT JOIN merge_edge e ON e.id = c.survivor
    WHERE e.id IS NULL
),
contact_norm AS (
    SELECT id, is_deleted, LOWER(TRIM(email)) AS e
    FROM marketing.contact
),
contact AS (
    SELECT
        id AS contact_id,
        is_deleted,
        COALESCE(NULLIF(e, ''), 'contact:' || CAST(id AS VARCHAR)) AS person_id,
        CASE WHEN STRPOS(e, '@') > 0 THEN NULLIF(REVERSE(SPLIT_PART(REVERSE(e), '@', 1)), '') END
            AS email_domain,
        SPLIT_PART(e, '@', 1) AS email_local_part
    FROM contact_norm
),
event AS (
    SELECT
        h.value AS stage,
        h.timestamp AS at,
        COALESCE(s.survivor, h.contact_id) AS contact_id
    FROM marketing.lifecycle_stage_history h
    LEFT JOIN survivor s ON s.id = h.contact_id
    WHERE h.timestamp < TIMESTAMP '{to_ts}' + INTERVAL '1' DAY
),
member AS (
    SELECT
        c.person_id,
        MIN(CASE WHEN ev.stage IN ('marketingqualifiedlead', 'salesqualifiedlead', 'opportunity', 'customer')
                 THEN ev.at END) AS first_mql,
        MIN(CASE WHEN c.is_deleted THEN 1 ELSE 0 END) AS all_deleted,
        MIN(CASE WHEN c.email_domain = 'acme.io' OR c.email_domain LIKE '%.acme.io' THEN 1 ELSE 0 END)
            AS all_internal,
        MIN(CASE WHEN c.email_domain = 'example.com' OR STRPOS(c.email_local_part, 'test') > 0
                 THEN 1 ELSE 0 END) AS all_test
    FROM event ev
    LEFT JOIN contact c ON c.contact_id = ev.contact_id
    GROUP BY c.person_id
)
SELECT COUNT(*) AS value
FROM member
WHERE first_mql >= TIMESTAMP '{from_ts}'
  AND first_mql < TIMESTAMP '{to_ts}'
  AND all_deleted = 0
  AND all_internal = 0
  AND all_test = 0
