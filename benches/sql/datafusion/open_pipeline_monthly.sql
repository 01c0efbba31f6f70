-- DataFusion's reference SQL for this benchmark. DuckDB's is
-- benches/sql/duckdb/open_pipeline_monthly.sql: the same definition, each
-- written as an expert in its engine would; benches/run.py checks both against canon to
-- the cent before timing.
--
-- open_pipeline at each month end of {year} (a series of 12 instants), by hand, as canon computes
-- each instant (benches/sql/<engine>/open_pipeline.sql say how one instant is computed: states,
-- surviving accounts, exclusions, the rate of the day, exact per-deal rounding), written for a
-- series as an expert would: every history row is read once and holds from its created_date to the
-- next row's (LEAD over the deal in created_date, id order: two rows at one instant leave the
-- lower id an empty interval), and is joined to the small table of instants by a range join
-- (valid_from < end AND (valid_to IS NULL OR valid_to >= end)). Rows created after the last
-- instant's end are left out before the window (the row before them then ends open, which pairs
-- it with the same instants). A deal counts at an instant only once it is created: its own
-- crm.opportunity created_date < that instant's end ("for each deal created on or before D"; a
-- deal created later whose history is backdated is out until then). One row per instant: period,
-- value (0.00 when nothing is counted).
-- Written for DataFusion: the formulation above, which no alternative beat.
--
-- Formulations tried (median of 5 runs at scale 200, bench-data/s200-seed42, every formulation
-- run alternately in one session by the harness's own driver/command; a shared 2-core VM with
-- other work running at times, 2026-12-04: compare the times within a list, not across days).
-- "same" = the answer equal to the cent to the previous shared file's (and so to canon's).
-- The deal's created_date bound (open_pipeline v2) was added to the kept formulation after these
-- timings (2026-12-07, not timed again).
--   1. the shared file before this one (LEAD of created_date, range join to the instants):
--      4.108 s, same  <- kept (below)
--   2. instants numbered, b (the first instant a row precedes) by an equi-join on the UTC month,
--      LEAD(b), spans expanded by an equi-join on (b, next_b) with a table of every span's
--      instants: 4.223 s, same (the range join was not the cost: the sort and LEAD window are)
--   3. 2 with only each deal's latest rows per bucket (grouped MAX, joined back) under the LEAD:
--      4.464 s, same
--   4. b by a range join, ROW_NUMBER per deal and bucket, LEAD over buckets: 5.921 s, same
--   5. 2 with the instants' ROW_NUMBER left unsigned (so b became DECIMAL(21, 0)) and the 3.6 M
--      spans as the join's build side: 13.3 s (3 runs), same
--   6. 2 with unnest(range(b, next_b)): not available, canon's DataFusion is built without the
--      nested-expression functions
WITH RECURSIVE
account_chain (id, survivor, depth) AS (
  SELECT id, master_record_id, 1
  FROM crm.account
  WHERE master_record_id IS NOT NULL
  UNION ALL
  SELECT c.id, a.master_record_id, c.depth + 1
  FROM account_chain c
  JOIN crm.account a ON a.id = c.survivor
  WHERE a.master_record_id IS NOT NULL AND c.depth < 64
),
account_survivor AS (
  SELECT c.id, c.survivor
  FROM account_chain c
  LEFT JOIN crm.account nxt ON nxt.id = c.survivor AND nxt.master_record_id IS NOT NULL
  WHERE nxt.id IS NULL
),
account_web AS (
  SELECT id, name,
         CASE WHEN lower(trim(website)) LIKE 'https://%' THEN substr(lower(trim(website)), 9)
              WHEN lower(trim(website)) LIKE 'http://%' THEN substr(lower(trim(website)), 8)
              ELSE lower(trim(website)) END AS no_scheme
  FROM crm.account
),
account_dim AS (
  SELECT id, name,
         split_part(split_part(split_part(split_part(
           CASE WHEN no_scheme LIKE 'www.%' THEN substr(no_scheme, 5) ELSE no_scheme END,
           '/', 1), ':', 1), '?', 1), '#', 1) AS domain
  FROM account_web
),
instants AS (
  SELECT * FROM (VALUES {instants}) AS t(period, as_of, end_ts)
),
history AS (
  SELECT opportunity_id, stage_name, amount, forecast_category, created_date AS valid_from,
         LEAD(created_date) OVER (PARTITION BY opportunity_id ORDER BY created_date, id) AS valid_to
  FROM crm.opportunity_history
  WHERE NOT is_deleted
    AND created_date < CAST('{last_end_ts}+00:00' AS TIMESTAMP WITH TIME ZONE)
),
state AS (
  SELECT i.period, i.as_of, i.end_ts, h.opportunity_id, h.stage_name, h.amount, h.forecast_category
  FROM history h
  JOIN instants i
    ON h.valid_from < i.end_ts AND (h.valid_to IS NULL OR h.valid_to >= i.end_ts)
  WHERE h.stage_name NOT IN ('Closed Won', 'Closed Lost')
),
deal AS (
  SELECT st.period, st.as_of, o.id, o.is_deleted, o.currency_iso_code AS currency,
         st.amount, st.forecast_category,
         a.name AS account_name, a.domain AS account_domain
  FROM state st
  JOIN crm.opportunity o ON o.id = st.opportunity_id
  LEFT JOIN account_survivor s ON s.id = o.account_id
  LEFT JOIN account_dim a ON a.id = COALESCE(s.survivor, o.account_id)
  WHERE o.created_date < st.end_ts
),
classified AS (
  SELECT d.*,
         CASE WHEN d.is_deleted THEN 'deleted'
              WHEN strpos(lower(d.account_name), 'test') > 0 THEN 'test_account'
              WHEN d.account_domain = 'acme.io' OR d.account_domain LIKE '%.acme.io'
                THEN 'internal_account'
              WHEN d.forecast_category = 'Omitted' THEN 'omitted_forecast'
              WHEN d.amount IS NULL THEN 'missing_amount'
              ELSE NULL END AS exclusion
  FROM deal d
),
priced AS (
  SELECT c.period, c.currency, c.amount, r.conversion_rate AS rate,
         CAST(ROUND(CAST(c.amount AS DOUBLE) * 100 / CAST(r.conversion_rate AS DOUBLE)) AS BIGINT) AS k
  FROM classified c
  LEFT JOIN crm.dated_conversion_rate r
    ON r.iso_code = c.currency
   AND r.start_date <= c.as_of
   AND c.as_of < r.next_start_date
  WHERE c.exclusion IS NULL
),
converted AS (
  SELECT period,
         CASE
           WHEN currency = 'USD' THEN CAST(amount AS DECIMAL(38, 2))
           ELSE CAST(
             CAST(
               CASE
                 WHEN amount >= 0 THEN
                   CASE WHEN amount * 200 < CAST(2 * k - 1 AS DECIMAL(20, 0)) * rate THEN k - 1
                        WHEN amount * 200 >= CAST(2 * k + 1 AS DECIMAL(20, 0)) * rate THEN k + 1
                        ELSE k END
                 ELSE
                   CASE WHEN amount * 200 <= CAST(2 * k - 1 AS DECIMAL(20, 0)) * rate THEN k - 1
                        WHEN amount * 200 > CAST(2 * k + 1 AS DECIMAL(20, 0)) * rate THEN k + 1
                        ELSE k END
               END AS DECIMAL(20, 0)) * CAST(0.01 AS DECIMAL(3, 2))
             AS DECIMAL(38, 2))
         END AS usd
  FROM priced
),
per_instant AS (
  SELECT period, SUM(usd) AS value FROM converted GROUP BY period
)
SELECT i.period, CAST(COALESCE(p.value, 0) AS DECIMAL(38, 2)) AS value
FROM instants i
LEFT JOIN per_instant p ON p.period = i.period
ORDER BY i.period
