//! The command line: unknown metrics, periods, slices and grains, `--now`,
//! `--allow`, and `canon sql`'s read-only refusals. A bad request exits 2
//! (clap's usage errors too); an engine error in ad-hoc SQL exits 1.

use super::harness::{Case, Family::Requests, case};

pub fn cases() -> Vec<Case> {
    vec![
        case("unknown_metric_with_did_you_mean", Requests)
            .run("query bookin --period 2025-03")
            .exits(2),
        case("month_thirteen", Requests)
            .run("query bookings --period 2025-13")
            .exits(2),
        case("period_that_does_not_parse", Requests)
            .run("query bookings --period FY26Q1")
            .exits(2),
        case("fiscal_quarter_five", Requests)
            .run("query bookings --period FY2026-Q5")
            .exits(2),
        case("february_the_thirtieth", Requests)
            .run("query bookings --period 2025-02-30")
            .exits(2),
        // A year whose end is in year 10000: refused (it was answered, with
        // a period end no published file can write as a date).
        case("the_year_9999", Requests)
            .with_data()
            .run("query bookings --period 9999")
            .exits(2)
            .with_stdout(),
        case("the_year_2999", Requests)
            .with_data()
            .run("query bookings --period 2999")
            .exits(0),
        case("snapshot_as_of_a_day_with_a_grain", Requests)
            .with_data()
            .run("query arr --as-of 2025-06-30 --grain month")
            .exits(2),
        case("parquet_to_the_terminal", Requests)
            .with_data()
            .run("query bookings --period FY2026-Q1 --format parquet")
            .exits(2),
        case("period_that_ends_before_it_starts", Requests)
            .run("query bookings --from 2025-05-01 --to 2025-02-01")
            .exits(2),
        case("from_without_to", Requests)
            .run("query bookings --from 2025-05-01")
            .exits(2),
        case("period_and_from_together", Requests)
            .run("query bookings --period 2025-03 --from 2025-03-01 --to 2025-04-01")
            .exits(2),
        case("flow_metric_as_of_a_day", Requests)
            .with_data()
            .run("query bookings --as-of 2025-06-30")
            .exits(2),
        case("query_without_a_period", Requests)
            .with_data()
            .run("query bookings")
            .exits(2),
        case("sample_of_scale_zero", Requests)
            .run("sample --out {case}/acme --scale 0")
            .exits(2),
        case("memory_limit_flag_that_is_not_a_size", Requests)
            .with_data()
            .run_args(&["sql", "--memory-limit", "lots", "SELECT 1"])
            .exits(2),
        case("unapproved_slice", Requests)
            .with_data()
            .run("query bookings --period 2025-03 --by region")
            .exits(2),
        case("unknown_grain", Requests)
            .run("query bookings --period 2025 --grain week")
            .exits(2),
        case("unknown_format", Requests)
            .run("query bookings --period 2025-03 --format xml")
            .exits(2),
        case("now_that_is_not_an_instant", Requests)
            .with_data()
            .run("query bookings --period FY2026-Q1 --now yesterday")
            .exits(2),
        case("allow_of_an_unknown_gate", Requests)
            .with_data()
            .run("query bookings --period FY2026-Q1 --allow unique:crm/opportunity")
            .exits(2),
        case("allow_of_an_unknown_table", Requests)
            .with_data()
            .run("query bookings --period FY2026-Q1 --allow uniqueness:crm/opp")
            .exits(2),
        // A count to date is not published beside final numbers.
        case("publish_allowing_an_open_conversion_window", Requests)
            .with_data()
            .run("publish --out published --allow conversion_window:*")
            .leaves_no("published")
            .exits(2),
        case("allow_without_a_table", Requests)
            .with_data()
            .run("query bookings --period FY2026-Q1 --allow uniqueness")
            .exits(2),
        case("data_root_that_does_not_exist", Requests)
            .run("query bookings --period FY2026-Q1 --data /no/such/folder")
            .exits(2),
        case("part_of_an_accounting_period", Requests)
            .with_data()
            .run("query recognized_revenue --from 2025-02-15 --to 2025-04-01")
            .exits(2),
        case("reconcile_part_of_an_accounting_period", Requests)
            .with_data()
            .run("reconcile bookings_to_revenue --from 2025-02-15 --to 2025-04-01")
            .exits(2),
        case("unknown_reconciliation", Requests)
            .with_data()
            .run("reconcile bookings_to_revnue --period FY2026-Q2")
            .exits(2),
        case("publish_only_an_unknown_metric", Requests)
            .with_data()
            .run("publish --out {case}/published --only bookin")
            .exits(2)
            .leaves_no("{case}/published"),
        case("sql_copy_is_refused", Requests)
            .with_data()
            .run_args(&[
                "sql",
                "COPY (SELECT 1 AS x) TO '../written.csv' STORED AS CSV",
            ])
            .exits(2)
            .leaves_no("{case}/written.csv"),
        case("sql_insert_is_refused", Requests)
            .with_data()
            .run_args(&[
                "sql",
                "INSERT INTO crm.opportunity SELECT * FROM crm.opportunity LIMIT 1",
            ])
            .exits(2),
        case("sql_explain_analyze_copy_is_refused", Requests)
            .with_data()
            .run_args(&[
                "sql",
                "EXPLAIN ANALYZE COPY (SELECT 1 AS x) TO '../written.csv' STORED AS CSV",
            ])
            .exits(2)
            .leaves_no("{case}/written.csv"),
        case("sql_set_is_refused", Requests)
            .with_data()
            .run_args(&["sql", "SET datafusion.execution.batch_size = 1"])
            .exits(2),
        case("sql_over_an_unknown_table", Requests)
            .with_data()
            .run_args(&["sql", "SELECT * FROM crm.nope"])
            .exits(1),
        case("sql_that_does_not_parse", Requests)
            .with_data()
            .run_args(&["sql", "SELEC 1"])
            .exits(2),
        // 30,000 terms: 60,001 tokens, over `canon sql`'s 20,000 (a tree
        // that deep overflowed the stack before any limit).
        case("sql_of_thirty_thousand_terms", Requests)
            .with_data()
            .run_args(&["sql", &format!("SELECT 1{} AS n", " + 1".repeat(30_000))])
            .exits(2),
        // 300 terms of `+ 1`: 601 tokens, but an expression 301 levels
        // deep, past `canon sql`'s 256 (planning time grows with the
        // square of the depth: 9,000 levels ran 22 s, then overflowed).
        case("sql_nested_deeper_than_the_limit", Requests)
            .with_data()
            .run_args(&["sql", &format!("SELECT 1{} AS n", " + 1".repeat(300))])
            .exits(2),
        // 1,000 alternatives joined by OR are balanced, 11 levels deep, and
        // answered: every opportunity has an id, so the count is all 4,547 rows
        // (`SELECT count(*) FROM crm.opportunity`).
        case("sql_or_chain_of_a_thousand_terms_is_answered", Requests)
            .with_data()
            .run_args(&[
                "sql",
                &format!(
                    "SELECT count(*) AS n FROM crm.opportunity WHERE id IS NOT NULL OR {}",
                    (1..1_000)
                        .map(|i| format!("id = 'x{i}'"))
                        .collect::<Vec<_>>()
                        .join(" OR ")
                ),
            ])
            .with_stdout()
            .exits(0),
        // 3,000 query blocks took 45 s to plan; 6,600 overflowed the stack.
        case("sql_union_of_three_thousand_selects", Requests)
            .with_data()
            .run_args(&["sql", &vec!["SELECT 1 AS n"; 3_000].join(" UNION ALL ")])
            .exits(2),
        // 1,000 relations (here plain tables, no SELECT each) took minutes.
        case("sql_of_a_thousand_comma_joins", Requests)
            .with_data()
            .run_args(&[
                "sql",
                &format!(
                    "SELECT 1 AS n FROM {} LIMIT 0",
                    (0..1_000)
                        .map(|i| format!("crm.opportunity o{i}"))
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
            ])
            .exits(2),
        case("sql_cast_to_a_type_nested_3000_deep", Requests)
            .with_data()
            .run_args(&[
                "sql",
                &format!("SELECT CAST(1 AS INT{}) AS n", "[]".repeat(3_000)),
            ])
            .exits(2),
        case("duplicate_slice_in_by", Requests)
            .with_data()
            .run("query bookings --period FY2026-Q1 --by deal_type,deal_type")
            .exits(2),
        case("daily_bookings_over_ten_thousand_years", Requests)
            .with_data()
            .run("query bookings --from 0001-01-01 --to 9999-12-31 --grain day")
            .exits(2),
        // The bucket limit, within the years canon reads.
        case("daily_bookings_over_eleven_centuries", Requests)
            .with_data()
            .run("query bookings --from 1900-01-01 --to 2999-12-31 --grain day")
            .exits(2),
        // 366 daily snapshots in one pass; each day is the single snapshot's
        // number (checked by hand: 2024-06-30 gives 17,391,485.30 and
        // 2024-12-31 gives 20,519,768.48 USD, as `--as-of` those days does).
        case("daily_open_pipeline_over_a_year", Requests)
            .with_data()
            .run("query open_pipeline --from 2024-01-01 --to 2025-01-01 --grain day --format csv")
            .exits(0)
            .with_stdout()
            .slow(),
        case("check_format_csv", Requests)
            .with_data()
            .run("check --format csv")
            .exits(2),
    ]
}
