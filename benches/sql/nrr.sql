-- nrr (metrics/customers.yaml, kind cohort over the snapshot metric arr) as of T, by hand.
-- Parameters: {as_of} = T, {t0} = T0 = the same day twelve months earlier, clamped to the month
-- end (2024-02-29 -> 2023-02-28), as canon's cohort::t0_of computes it.
--
-- How it encodes the governed definition (canon's src/compile/cohort.rs + simple.rs):
-- * ARR at day D: Recurring charges (billing.rate_plan_charge) of the LATEST version of their
--   subscription (inner join on is_latest_version), in force at D: effective_start_date <= D and
--   (effective_end_date missing or > D). Each charge is worth 12 * mrr in USD at the rate in
--   force on T (crm.dated_conversion_rate: start_date <= T < next_start_date) for BOTH instants
--   (constant currency), rounded to the cent per charge half away from zero; USD charges are
--   not divided. The rounding is done in exact integer arithmetic on cents and micro-units of
--   the rate (round(c * 10^6 / r) = floor((2|c| 10^6 + r) / (2r)), sign restored), because
--   DuckDB divides DECIMALs in DOUBLE; "(n - n % d) / d" is an exact integer in both engines
--   (DataFusion: BIGINT division; DuckDB: DOUBLE of an exact multiple, cast back to BIGINT).
--   A charge with no rate converts to NULL and adds nothing (as in canon).
-- * Customer: the billing account's crm_id resolved through crm.account.master_record_id
--   chains (recursive CTE) to the surviving CRM account if the CRM knows it; otherwise the
--   billing account is its own customer 'billing:<id>'.
-- * Deleted charges and deleted subscription versions are outside ARR (arr v2's filter);
--   written below as exclusions, which gives the same number.
-- * Exclusions (a charge counts only when none holds; each is false when NULL, as in canon's
--   CASE): deleted (charge, subscription version or billing account is_deleted), test_account
--   (lower(coalesce(CRM survivor name, billing account name)) contains 'test'),
--   internal_account (url_domain of the CRM survivor's website is acme.io or a subdomain:
--   trimmed, lower-cased, http(s):// and www. stripped, cut at the first / : ? #).
-- * Cohort: customers whose ARR at T0 (included charges) is > 0; ending = their ARR at T (0 when
--   none). NRR = sum(ending) / sum(start), rounded half away from zero to 6 decimals (canon's
--   RATIO_SCALE), computed on integer cents and returned as DECIMAL(38, 6).
WITH RECURSIVE
crm_edge AS (
    SELECT id, master_record_id AS into_id
    FROM crm.account
    WHERE id IS NOT NULL AND master_record_id IS NOT NULL
),
crm_chain (id, survivor) AS (
    SELECT id, into_id FROM crm_edge
    UNION ALL
    SELECT c.id, e.into_id FROM crm_chain c JOIN crm_edge e ON e.id = c.survivor
),
crm_survivor AS (
    -- the end of each chain: a survivor that was not itself merged away
    SELECT c.id, c.survivor
    FROM crm_chain c LEFT JOIN crm_edge e ON e.id = c.survivor
    WHERE e.id IS NULL
),
crm_site AS (
    SELECT
        id,
        name,
        CASE WHEN LOWER(TRIM(website)) LIKE 'https://%' THEN SUBSTR(LOWER(TRIM(website)), 9)
             WHEN LOWER(TRIM(website)) LIKE 'http://%' THEN SUBSTR(LOWER(TRIM(website)), 8)
             ELSE LOWER(TRIM(website)) END AS site
    FROM crm.account
),
crm_host AS (
    SELECT
        id,
        name,
        SPLIT_PART(SPLIT_PART(SPLIT_PART(SPLIT_PART(
            CASE WHEN site LIKE 'www.%' THEN SUBSTR(site, 5) ELSE site END,
            '/', 1), ':', 1), '?', 1), '#', 1) AS domain
    FROM crm_site
),
customer AS (
    SELECT
        ba.id AS billing_account_id,
        ba.is_deleted,
        COALESCE(ca.id, 'billing:' || ba.id) AS customer_id,
        COALESCE(ca.name, ba.name) AS customer_name,
        ca.domain
    FROM billing.account ba
    LEFT JOIN crm_survivor s ON s.id = ba.crm_id
    LEFT JOIN crm_host ca ON ca.id = COALESCE(s.survivor, ba.crm_id)
),
charge AS (
    SELECT
        rc.effective_start_date AS valid_from,
        rc.effective_end_date AS valid_to,
        cu.customer_id,
        rc.transaction_currency AS currency,
        CAST(12 * rc.mrr * 100 AS BIGINT) AS raw_cents,
        CAST(fx.conversion_rate * 1000000 AS BIGINT) AS rate_micros,
        CASE
            WHEN rc.is_deleted OR sub.is_deleted OR cu.is_deleted THEN 0
            WHEN STRPOS(LOWER(cu.customer_name), 'test') > 0 THEN 0
            WHEN cu.domain = 'acme.io' OR cu.domain LIKE '%.acme.io' THEN 0
            ELSE 1
        END AS included
    FROM billing.rate_plan_charge rc
    JOIN billing.subscription sub ON sub.id = rc.subscription_id AND sub.is_latest_version
    LEFT JOIN customer cu ON cu.billing_account_id = sub.account_id
    LEFT JOIN crm.dated_conversion_rate fx
        ON fx.iso_code = rc.transaction_currency
       AND fx.start_date <= DATE '{as_of}'
       AND DATE '{as_of}' < fx.next_start_date
    WHERE rc.charge_type = 'Recurring'
      AND rc.effective_start_date <= DATE '{as_of}'
),
charge_rounding AS (
    SELECT
        valid_from,
        valid_to,
        customer_id,
        currency,
        raw_cents,
        included,
        2 * ABS(raw_cents) * 1000000 + rate_micros AS num,
        2 * rate_micros AS den
    FROM charge
),
charge_usd AS (
    SELECT
        valid_from,
        valid_to,
        customer_id,
        included,
        CASE WHEN currency = 'USD' THEN raw_cents
             WHEN raw_cents < 0 THEN -CAST((num - num % den) / den AS BIGINT)
             ELSE CAST((num - num % den) / den AS BIGINT)
        END AS cents
    FROM charge_rounding
),
arr_t0 AS (
    SELECT customer_id, SUM(cents) AS a
    FROM charge_usd
    WHERE included = 1
      AND valid_from <= DATE '{t0}'
      AND (valid_to IS NULL OR valid_to > DATE '{t0}')
    GROUP BY customer_id
),
arr_t AS (
    SELECT customer_id, SUM(cents) AS b
    FROM charge_usd
    WHERE included = 1
      AND valid_from <= DATE '{as_of}'
      AND (valid_to IS NULL OR valid_to > DATE '{as_of}')
    GROUP BY customer_id
),
cohort AS (
    SELECT t0.a, COALESCE(t.b, 0) AS b
    FROM arr_t0 t0
    LEFT JOIN arr_t t ON t.customer_id = t0.customer_id
    WHERE t0.a > 0
),
totals AS (
    SELECT
        SUM(b) AS ending,
        2 * ABS(SUM(b)) * 1000000 + SUM(a) AS num,
        2 * SUM(a) AS den
    FROM cohort
),
ratio AS (
    SELECT
        CASE WHEN ending < 0 THEN -CAST((num - num % den) / den AS BIGINT)
             ELSE CAST((num - num % den) / den AS BIGINT)
        END AS micros
    FROM totals
)
SELECT CAST(CAST(micros AS DECIMAL(38, 6)) * CAST(0.000001 AS DECIMAL(38, 6)) AS DECIMAL(38, 6)) AS value
FROM ratio
