//! The SQL expressions inside definitions (filters, measures, exclusions,
//! slices, entity fields, derived metrics): unknown names with "did you
//! mean", syntax, types, cycles, and what a governed expression may not be.
//! Located at the expression's `file:line:column`, exit 1.

use super::harness::{Case, Family::Expressions, case};

const SALES: &str = "metrics/sales.yaml";
const BOOKINGS_FILTER: &str = "    filter: is_won\n";

pub fn cases() -> Vec<Case> {
    vec![
        case("unknown_column_in_a_filter", Expressions)
            .replace(SALES, BOOKINGS_FILTER, "    filter: is_wonn\n")
            .run("validate --no-data")
            .exits(1),
        case("filter_that_does_not_parse", Expressions)
            .replace(SALES, BOOKINGS_FILTER, "    filter: \"is_won AND\"\n")
            .run("validate --no-data")
            .exits(1),
        case("statement_smuggled_into_a_filter", Expressions)
            .replace(SALES, BOOKINGS_FILTER, "    filter: \"is_won; DROP TABLE deal\"\n")
            .run("validate --no-data")
            .exits(1),
        case("unknown_function_in_a_filter", Expressions)
            .replace(SALES, BOOKINGS_FILTER, "    filter: \"is_won AND lowr(deal_type) = 'x'\"\n")
            .run("validate --no-data")
            .exits(1),
        case("filter_that_is_not_a_condition", Expressions)
            .replace(SALES, BOOKINGS_FILTER, "    filter: amount\n")
            .run("validate --no-data")
            .exits(1),
        case("aggregate_in_a_filter", Expressions)
            .replace(SALES, BOOKINGS_FILTER, "    filter: \"is_won AND sum(amount) > 0\"\n")
            .run("validate --no-data")
            .exits(1),
        case("sum_of_a_text_field", Expressions)
            .replace(SALES, "      expr: amount\n", "      expr: name\n")
            .run("validate --no-data")
            .exits(1),
        case("time_field_that_is_not_a_date", Expressions)
            .replace(SALES, "    time: close_date\n", "    time: deal_type\n")
            .run("validate --no-data")
            .exits(1),
        case("unknown_field_of_a_link", Expressions)
            .replace(
                SALES,
                "      - {name: industry, expr: account.industry}\n",
                "      - {name: industry, expr: account.industri}\n",
            )
            .run("validate --no-data")
            .exits(1),
        case("unknown_link", Expressions)
            .replace(
                SALES,
                "      - {name: industry, expr: account.industry}\n",
                "      - {name: industry, expr: acount.industry}\n",
            )
            .run("validate --no-data")
            .exits(1),
        case("unknown_exclusion", Expressions)
            .replace(
                SALES,
                "    exclusions: [deleted, test_account, internal_account, missing_amount]\n",
                "    exclusions: [deleted, test_acount, internal_account, missing_amount]\n",
            )
            .run("validate --no-data")
            .exits(1),
        case("exclusion_condition_that_does_not_parse", Expressions)
            .replace("metrics/exclusions.yaml", "    when: amount IS NULL\n", "    when: amount IS\n")
            .run("validate --no-data")
            .exits(1),
        case("entity_field_over_an_unknown_column", Expressions)
            .replace(
                "models/crm.yaml",
                "      - {name: currency, expr: currency_iso_code}\n",
                "      - {name: currency, expr: currency_iso}\n",
            )
            .run("validate --no-data")
            .exits(1),
        case("link_to_an_unknown_entity", Expressions)
            .replace(
                "models/crm.yaml",
                "      - {name: account, entity: account, field: account_id}\n",
                "      - {name: account, entity: acount, field: account_id}\n",
            )
            .run("validate --no-data")
            .exits(1),
        case("derived_metric_over_an_unknown_metric", Expressions)
            .replace(SALES, "new_bookings / nullif(bookings, 0)", "new_bookings / nullif(bookingz, 0)")
            .run("validate --no-data")
            .exits(1),
        case("derived_metric_that_reads_itself", Expressions)
            .replace(SALES, "new_bookings / nullif(bookings, 0)", "new_bookings / nullif(new_business_share, 0)")
            .run("validate --no-data")
            .exits(1),
        case("ratio_cycle", Expressions)
            .replace(SALES, "    numerator: won_deals\n", "    numerator: win_rate\n")
            .run("validate --no-data")
            .exits(1),
        case("subscription_deals_with_an_aggregate", Expressions)
            .replace("canon.yaml", "subscription_deals: \"deal_type <> 'Expansion'\"", "subscription_deals: \"count(*) > 1\"")
            .run("validate --no-data")
            .exits(1),
        case("random_in_a_filter", Expressions)
            .replace(SALES, BOOKINGS_FILTER, "    filter: \"is_won AND random() < 0.5\"\n")
            .run("validate --no-data")
            .exits(1),
        case("now_in_a_filter", Expressions)
            .replace(SALES, BOOKINGS_FILTER, "    filter: \"is_won AND close_date < now()\"\n")
            .run("validate --no-data")
            .exits(1),
        case("subquery_over_values_in_a_filter", Expressions)
            .replace(
                SALES,
                BOOKINGS_FILTER,
                "    filter: \"is_won AND deal_type IN (SELECT column1 FROM (VALUES ('New Business')))\"\n",
            )
            .run("validate --no-data")
            .exits(1),
        case("subquery_over_range_in_a_filter", Expressions)
            .replace(
                SALES,
                BOOKINGS_FILTER,
                "    filter: \"is_won AND EXISTS (SELECT 1 FROM range(10))\"\n",
            )
            .run("validate --no-data")
            .exits(1),
        case("filter_of_ten_thousand_terms", Expressions)
            .generate(SALES, || sales_with_filter(&format!("is_won AND 1{} > 0", " + 1".repeat(10_000))))
            .run("validate --no-data")
            .exits(1),
        case("filter_of_ten_thousand_or_terms", Expressions)
            .generate(SALES, || {
                let terms: Vec<String> = (0..10_000).map(|i| format!("deal_id = 'D{i}'")).collect();
                sales_with_filter(&format!("is_won AND ({})", terms.join(" OR ")))
            })
            .run("validate --no-data")
            .exits(1),
        case("filter_in_ten_thousand_parentheses", Expressions)
            .generate(SALES, || {
                sales_with_filter(&format!("{}is_won{}", "(".repeat(10_000), ")".repeat(10_000)))
            })
            .run("validate --no-data")
            .exits(1),
        // Inside the limits: `is_won AND (` + 490 terms `deal_id <> 'xN'`
        // joined by AND + `)` is 3 + 490 × 3 + 489 + 1 = 1,963 tokens; the
        // chain is balanced (10 levels, not 490) and true for every real
        // deal, so FY2026-Q1 bookings are the sample's own.
        case("and_chain_just_inside_the_token_limit_is_answered", Expressions)
            .with_data()
            .generate(SALES, || {
                let terms: Vec<String> = (0..490).map(|i| format!("deal_id <> 'x{i}'")).collect();
                sales_with_filter(&format!("is_won AND ({})", terms.join(" AND ")))
            })
            .run("query bookings --period FY2026-Q1 --format csv")
            .with_stdout()
            // Planned twice: for the answer, and for the definition's closure
            // (its sign-off), each parsing the 490 terms.
            .slow()
            .exits(0),
        // 480 terms `deal_id = 'Dn'` joined by OR (1,923 tokens): balanced,
        // 10 levels deep.
        case("or_chain_just_inside_the_token_limit_validates", Expressions)
            .generate(SALES, || {
                let terms: Vec<String> = (0..480).map(|i| format!("deal_id = 'D{i}'")).collect();
                sales_with_filter(&format!("is_won AND ({})", terms.join(" OR ")))
            })
            .run("validate --no-data")
            .exits(0),
        // 200 terms of `+ 1`: 406 tokens, but 201 levels deep, past 128.
        case("filter_nested_deeper_than_the_limit", Expressions)
            .generate(SALES, || sales_with_filter(&format!("is_won AND (1{}) > 0", " + 1".repeat(200))))
            .run("validate --no-data")
            .exits(1),
        // Data types nest like brackets: 800 `[]` overflowed the parser's
        // stack when the query ran (validate passed it).
        case("cast_to_a_type_nested_800_deep", Expressions)
            .generate(SALES, || sales_with_filter(&format!("is_won AND CAST(amount AS INT{}) IS NULL", "[]".repeat(800))))
            .run("validate --no-data")
            .exits(1),
        case("version_in_a_filter", Expressions)
            .replace(SALES, BOOKINGS_FILTER, "    filter: \"is_won AND version() LIKE '%x86_64%'\"\n")
            .run("validate --no-data")
            .exits(1),
        case("padding_to_a_length_from_the_data", Expressions)
            .replace(SALES, BOOKINGS_FILTER, "    filter: \"is_won AND length(lpad(name, 21474836)) > 0\"\n")
            .run("validate --no-data")
            .exits(1),
        case("sum_of_a_floating_point_measure", Expressions)
            .replace(SALES, "      expr: amount\n", "      expr: amount / 7e0\n")
            .run("validate --no-data")
            .exits(1),
        case("derived_metric_with_random", Expressions)
            .replace(SALES, "new_bookings / nullif(bookings, 0)", "new_bookings / nullif(bookings, 0) * random()")
            .run("validate --no-data")
            .exits(1),
        case("derived_metric_that_is_text", Expressions)
            .replace(SALES, "    expr: new_bookings / nullif(bookings, 0)\n", "    expr: \"new_bookings || 'x'\"\n")
            .run("validate --no-data")
            .exits(1),
        // DataFusion's integer arithmetic wraps: each cycle of ~60 days
        // times 4 × 10^18 is past 64 bits, and the average came out as
        // 1,012,109,889,311,239.21 days with exit 0. Now it is computed
        // exactly and fails where a value does not fit.
        case("integer_arithmetic_past_64_bits_fails", Expressions)
            .with_data()
            .replace(
                SALES,
                "      expr: \"CAST(close_date AS BIGINT) - CAST(local_date(created_at) AS BIGINT)\"\n",
                "      expr: \"(CAST(close_date AS BIGINT) - CAST(local_date(created_at) AS BIGINT)) * 4000000000000000000\"\n",
            )
            .run("query avg_sales_cycle_days --period FY2026 --format csv")
            .exits(1),
        // Every row is 4 × 10^18 (inside 64 bits), so the average is
        // exactly 4,000,000,000,000,000,000.00 days; the sum of the rows is
        // far past 64 bits, where DataFusion's integer sum wraps. The sum is
        // taken as a 38-digit decimal instead.
        case("integer_sum_past_64_bits_is_exact", Expressions)
            .with_data()
            .replace(
                SALES,
                "      expr: \"CAST(close_date AS BIGINT) - CAST(local_date(created_at) AS BIGINT)\"\n",
                "      expr: \"CAST(close_date AS BIGINT) * 0 + 4000000000000000000\"\n",
            )
            // The table groups the digits (a CSV's long number would be
            // masked as a hash in the snapshot).
            .run("query avg_sales_cycle_days --period FY2026")
            .with_stdout()
            .exits(0),
        case("division_by_zero_names_the_metric", Expressions)
            .with_data()
            .replace(SALES, "      expr: amount\n", "      expr: amount / 0\n")
            .run("query bookings --period FY2026-Q1")
            .exits(1),
        case("failed_cast_names_the_metric", Expressions)
            .with_data()
            .replace(SALES, BOOKINGS_FILTER, "    filter: \"is_won AND CAST(name AS INT) > 0\"\n")
            .run("query bookings --period FY2026-Q1")
            .exits(1),
    ]
}

/// The sample's sales.yaml with bookings' filter replaced.
fn sales_with_filter(filter: &str) -> Vec<u8> {
    let text = std::fs::read_to_string(super::common::repo().join(SALES)).unwrap();
    assert!(text.contains(BOOKINGS_FILTER));
    text.replacen(BOOKINGS_FILTER, &format!("    filter: \"{filter}\"\n"), 1)
        .into_bytes()
}
