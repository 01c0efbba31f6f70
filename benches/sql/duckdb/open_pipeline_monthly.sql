-- DuckDB's reference SQL for this benchmark. DataFusion's is
-- benches/sql/datafusion/open_pipeline_monthly.sql: the same definition, each
-- written as an expert in its engine would; benches/run.py checks both against canon to
-- the cent before timing.
--
-- open_pipeline at each month end of {year} (a series of 12 instants), by hand, as canon computes
-- each instant (benches/sql/<engine>/open_pipeline.sql say how one instant is computed: states,
-- surviving accounts, exclusions, the rate of the day, exact per-deal rounding), written for a
-- series as an expert would: every history row is read once.
-- Written for DuckDB: the 12 instants are numbered k = 1..12 by their end; each history row
-- gets b, the first instant it precedes (created_date < that instant's end), by an equi-join on
-- the UTC calendar month (each instant's end falls in its own UTC month: a row of that month
-- precedes that instant or the next one; a row of a month without an end, before the last end,
-- precedes the first instant; date_trunc works in the session's UTC). A row is the deal's state
-- at the instants from its b up to the next row's b (LEAD over the deal in created_date, id
-- order: two rows at one instant leave the lower id an empty span; the last row holds to the
-- 12th instant), and the spans are expanded by an equi-join on (b, next_b) with the small table
-- of every span's instants instead of a range join. Rows created after the last instant's end
-- are left out first. A deal counts at an instant only once it is created: its own
-- crm.opportunity created_date < that instant's end ("for each deal created on or before D"; a
-- deal created later whose history is backdated is out until then).
-- One row per instant: period, value (0.00 when nothing is counted).
--
-- Formulations tried (median of 5 runs at scale 200, bench-data/s200-seed42, every formulation
-- run alternately in one session by the harness's own driver/command; a shared 2-core VM with
-- other work running at times, 2026-12-04: compare the times within a list, not across days).
-- "same" = the answer equal to the cent to the previous shared file's (and so to canon's).
-- The deal's created_date bound (open_pipeline v2) was added to the kept formulation after these
-- timings (2026-12-07, not timed again).
--   1. the shared file before this one (LEAD of created_date, range join to the instants):
--      2.256 s, same
--   2. instants numbered, b by the UTC-month equi-join, LEAD(b), spans expanded with
--      unnest(range(b, next_b)) and joined on k: 2.109 s, same
--   3. 2 with the spans expanded by the equi-join on (b, next_b): 2.102 s, same  <- kept (below)
--   4. 3 with only each deal's latest rows per bucket (grouped MAX, joined back) under the LEAD:
--      2.122 s, same
--   5. b by a range join to the instants, arg_max per deal and bucket, LEAD over buckets: 2.426 s,
--      same
--   6. 5 with b by ASOF JOIN (the first end after created_date): 2.297 s, same
--   7. 5 with ROW_NUMBER per deal and bucket instead of arg_max: 2.686 s, same
--   8. arg_max per deal and instant (every row joined to each instant after it): 10.337 s, same
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
  SELECT period, as_of, end_ts, CAST(ROW_NUMBER() OVER (ORDER BY end_ts) AS BIGINT) AS k
  FROM (VALUES {instants}) AS t(period, as_of, end_ts)
),
history AS (
  -- b = the first instant a row precedes (its created_date < that instant's end): each end
  -- falls in a UTC calendar month, so a row of that UTC month precedes that instant or the next
  -- one; a row of a UTC month without an end precedes the first instant (or none, 13)
  SELECT h.opportunity_id, h.stage_name, h.amount, h.forecast_category, h.created_date, h.id,
         CASE WHEN i.k IS NULL THEN
                CASE WHEN h.created_date < CAST('{last_end_ts}+00:00' AS TIMESTAMP WITH TIME ZONE)
                     THEN 1 ELSE 13 END
              WHEN h.created_date < i.end_ts THEN i.k
              ELSE i.k + 1 END AS b
  FROM crm.opportunity_history h
  LEFT JOIN instants i ON date_trunc('month', i.end_ts) = date_trunc('month', h.created_date)
  WHERE NOT h.is_deleted
    AND h.created_date < CAST('{last_end_ts}+00:00' AS TIMESTAMP WITH TIME ZONE)
),
span AS (
  -- a row is the deal's state at the instants from its own b up to (not including) the next
  -- row's b (two rows at one instant leave the lower id an empty span); the last row up to the
  -- 12th instant
  SELECT opportunity_id, stage_name, amount, forecast_category, b,
         COALESCE(LEAD(b) OVER (PARTITION BY opportunity_id ORDER BY created_date, id), 13) AS next_b
  FROM history
),
spans AS (
  -- every possible span [b, next_b) of instants and the instants k in it (78 spans, 364 rows):
  -- joining on (b, next_b) is an equi-join instead of a range join
  SELECT f.k AS b, t.k + 1 AS next_b, i.k
  FROM instants f
  JOIN instants t ON f.k <= t.k
  JOIN instants i ON i.k >= f.k AND i.k <= t.k
),
state AS (
  SELECT i.period, i.as_of, i.end_ts, sp.opportunity_id, sp.stage_name, sp.amount, sp.forecast_category
  FROM spans x
  JOIN span sp ON sp.b = x.b AND sp.next_b = x.next_b
  JOIN instants i ON i.k = x.k
  WHERE sp.stage_name NOT IN ('Closed Won', 'Closed Lost')
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
