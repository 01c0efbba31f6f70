-- DuckDB's reference SQL for this benchmark. DataFusion's is
-- benches/sql/datafusion/open_pipeline.sql: the same definition, each
-- written as an expert in its engine would; benches/run.py checks both against canon to
-- the cent before timing.
--
-- open_pipeline as of {as_of} (end of that day in America/Los_Angeles), by hand, as canon
-- computes it (metrics/sales.yaml `open_pipeline`, src/compile/simple.rs state_rows/join_state):
-- * State of a deal at D: its crm.opportunity_history row with NOT is_deleted and
--   created_date < the instant the local day after D starts ({as_of_end_ts} UTC), the latest by
--   created_date, ties broken by the highest history id (row_number ... DESC NULLS LAST). A deal
--   with no such row is not in the universe, and neither is a deal created after D: only deals
--   whose own crm.opportunity created_date < {as_of_end_ts} UTC count ("for each deal created
--   on or before D"; a deal created after D whose history is backdated before D is out). The
--   universe: those deals' states whose stage_name is not 'Closed Won' / 'Closed Lost'.
--   The instant is written CAST('... +00:00' AS TIMESTAMP WITH TIME ZONE): a bare
--   TIMESTAMP '...' literal is compared in DuckDB's session TimeZone (wrong unless it is UTC).
-- * Account of a deal = the surviving CRM account: the deal's (current) account_id followed
--   through master_record_id chains (recursive CTE); LEFT JOIN to that crm.account row.
-- * Exclusions, first match wins (a NULL test does not match, as in a CASE):
--   deleted (the deal's current is_deleted), test_account (strpos(lower(account name), 'test')
--   > 0), internal_account (url_domain(website) is acme.io or a subdomain; acme.io is canon.yaml's
--   internal_domains; url_domain = trim, lower-case, drop http(s)://, drop www., cut at the first
--   / : ? #), omitted_forecast (state forecast_category = 'Omitted'), missing_amount (state
--   amount IS NULL). Only unexcluded rows are summed.
-- * Money: the state amount in the deal's (current) currency_iso_code; USD as it is, any other
--   currency / the crm.dated_conversion_rate row with start_date <= D < next_start_date (LEFT
--   JOIN: no rate means a NULL value, which the sum skips), rounded to the cent per deal, half
--   away from zero. DuckDB divides decimals in DOUBLE, so the rounding is made exact in both
--   engines: a DOUBLE estimate k of the cents, corrected by at most one cent with exact DECIMAL
--   products only: for amount >= 0 the answer k satisfies (2k-1)*rate <= 200*amount < (2k+1)*rate
--   (for a negative amount, (2k-1)*rate < 200*amount <= (2k+1)*rate).
-- * value = the exact DECIMAL sum (0.00 when nothing is counted).
-- Written for DuckDB: each deal's state is one arg_max per deal, the row's fields as a struct,
-- keyed by the struct (created_date, id): the latest by created_date, ties to the highest id.
-- History ids are the extract's key, present and unique, so this is the row the ROW_NUMBER
-- above picks.
--
-- Formulations tried (median of 5 runs at scale 200, bench-data/s200-seed42, every formulation
-- run alternately in one session by the harness's own driver/command; a shared 2-core VM with
-- other work running at times, 2026-12-04: compare the times within a list, not across days).
-- "same" = the answer equal to the cent to the previous shared file's (and so to canon's).
-- The deal's created_date bound (open_pipeline v2) was added to the kept formulation after these
-- timings (2026-12-07, not timed again).
--   1. the shared file before this one (ROW_NUMBER window, rn = 1): 1.247 s, same
--   2. the same window with QUALIFY: 1.260 s, same
--   3. arg_max(struct_pack(stage_name, amount, forecast_category), struct_pack(created_date, id))
--      grouped by opportunity_id: 0.972 s, same  <- kept (below)
--   4. max(created_date) per deal, then max(id) among the rows at it, joined back: 1.010 s, same
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
state AS (
  SELECT opportunity_id,
         arg_max(struct_pack(stage_name, amount, forecast_category), struct_pack(created_date, id)) AS s
  FROM crm.opportunity_history
  WHERE NOT is_deleted
    AND created_date < CAST('{as_of_end_ts}+00:00' AS TIMESTAMP WITH TIME ZONE)
  GROUP BY opportunity_id
),
deal AS (
  SELECT o.id, o.is_deleted, o.currency_iso_code AS currency,
         st.s.amount AS amount, st.s.forecast_category AS forecast_category,
         a.name AS account_name, a.domain AS account_domain
  FROM crm.opportunity o
  JOIN state st ON st.opportunity_id = o.id
  LEFT JOIN account_survivor s ON s.id = o.account_id
  LEFT JOIN account_dim a ON a.id = COALESCE(s.survivor, o.account_id)
  WHERE st.s.stage_name NOT IN ('Closed Won', 'Closed Lost')
    AND o.created_date < CAST('{as_of_end_ts}+00:00' AS TIMESTAMP WITH TIME ZONE)
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
  SELECT c.currency, c.amount, r.conversion_rate AS rate,
         CAST(ROUND(CAST(c.amount AS DOUBLE) * 100 / CAST(r.conversion_rate AS DOUBLE)) AS BIGINT) AS k
  FROM classified c
  LEFT JOIN crm.dated_conversion_rate r
    ON r.iso_code = c.currency
   AND r.start_date <= DATE '{as_of}'
   AND DATE '{as_of}' < r.next_start_date
  WHERE c.exclusion IS NULL
),
converted AS (
  SELECT CASE
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
)
SELECT CAST(COALESCE(SUM(usd), 0) AS DECIMAL(38, 2)) AS value
FROM converted
