//! YAML as documents: syntax, types, unknown keys and names, structure
//! (canon.yaml, models/, metrics/). Reported as `file:line:column: …`, all
//! problems at once, exit 1.

use super::harness::{Case, Family::Yaml, case};

const SALES: &str = "metrics/sales.yaml";

pub fn cases() -> Vec<Case> {
    vec![
        case("unclosed_flow_sequence", Yaml)
            .write(
                "metrics/broken.yaml",
                "domain: x\nmetrics:\n  - name: [oops\n",
            )
            .run("validate --no-data")
            .exits(1),
        case("unknown_key_in_a_metric", Yaml)
            .replace(SALES, "    filter: is_won\n", "    filtre: is_won\n")
            .run("list")
            .exits(1),
        // The label canon gives a conversion's members that are nobody:
        // an exclusion so named would be taken for them (and block).
        case("exclusion_named_like_the_null_member_label", Yaml)
            .replace(
                "metrics/marketing.yaml",
                "  - name: test_email\n",
                "  - name: \"(no member)\"\n",
            )
            .replace(
                "metrics/marketing.yaml",
                "      - test_email\n",
                "      - \"(no member)\"\n",
            )
            .run("validate --no-data")
            .exits(1),
        case("version_is_not_a_number", Yaml)
            .replace(SALES, "    version: 1\n", "    version: one\n")
            .run("validate --no-data")
            .exits(1),
        case("tab_indentation", Yaml)
            .replace(SALES, "    filter: is_won\n", "\tfilter: is_won\n")
            .run("validate --no-data")
            .exits(1),
        case("duplicate_key_in_a_mapping", Yaml)
            .replace(
                SALES,
                "    filter: is_won\n",
                "    filter: is_won\n    filter: is_closed\n",
            )
            .run("validate --no-data")
            .exits(1),
        case("metric_defined_twice", Yaml)
            .replace(SALES, "  - name: new_bookings\n", "  - name: bookings\n")
            .run("validate --no-data")
            .exits(1),
        case("unknown_entity_with_did_you_mean", Yaml)
            .replace(SALES, "    entity: deal\n", "    entity: deals\n")
            .run("validate --no-data")
            .exits(1),
        case("unknown_metric_kind", Yaml)
            .replace(SALES, "    kind: simple\n", "    kind: simpel\n")
            .run("validate --no-data")
            .exits(1),
        case("unknown_status", Yaml)
            .replace(SALES, "    status: certified\n", "    status: approved\n")
            .run("validate --no-data")
            .exits(1),
        case("certified_metric_without_owner", Yaml)
            .replace(SALES, "    owner: Sales Operations\n", "")
            .run("validate --no-data")
            .exits(1),
        case("undefined_alias", Yaml)
            .replace(
                SALES,
                "    slices: *deal_slices\n",
                "    slices: *deal_slicez\n",
            )
            .run("validate --no-data")
            .exits(1),
        case("metrics_file_is_a_list", Yaml)
            .write("metrics/list.yaml", "- bookings\n- arr\n")
            .run("validate --no-data")
            .exits(1),
        case("empty_metrics_file", Yaml)
            .write("metrics/empty.yaml", "")
            .run("validate --no-data")
            .exits(1),
        case("two_problems_in_two_files_at_once", Yaml)
            .replace(SALES, "    entity: deal\n", "    entity: deals\n")
            .replace(
                "models/crm.yaml",
                "    key: deal_id\n",
                "    key: deal_idd\n",
            )
            .run("validate --no-data")
            .exits(1),
        // `required` on a link to an entity that resolves merges (not
        // checked through them yet): refused where it is written.
        case("required_link_to_an_entity_with_merges", Yaml)
            .replace(
                "models/marketing.yaml",
                "      - {name: contact, entity: contact, field: contact_id}\n",
                "      - {name: contact, entity: contact, field: contact_id, required: true}\n",
            )
            .run("validate --no-data")
            .exits(1),
        // A required link whose field is built through another link (null
        // where that one finds nothing, which the gate would pass as "not
        // set"): refused, located at `required`.
        case("required_link_field_built_through_a_link", Yaml)
            .with_data()
            .replace(
                "models/finance.yaml",
                "      - {name: period_id, expr: accounting_period_id}\n",
                "      - {name: raw_period_id, expr: accounting_period_id}\n      - {name: period_id, expr: p0.period_id}\n",
            )
            .replace(
                "models/finance.yaml",
                "      - {name: period, entity: accounting_period, field: period_id, required: true}\n",
                "      - {name: p0, entity: accounting_period, field: raw_period_id}\n      - {name: period, entity: accounting_period, field: period_id, required: true}\n",
            )
            .run("query recognized_revenue --period FY2026-Q1")
            .exits(1),
        // A required link whose field and key differ in type: the gate's
        // equality and the metric's join could disagree, so refused.
        case("required_link_field_of_another_type", Yaml)
            .with_data()
            .replace(
                "models/finance.yaml",
                "      - {name: period_id, expr: accounting_period_id}\n",
                "      - {name: period_id, expr: \"CAST(accounting_period_id AS DOUBLE) + 0.5\"}\n",
            )
            .run("query recognized_revenue --period FY2026-Q1")
            .exits(1),
        // A lookup's filter that is not a condition, located at the filter.
        case("lookup_filter_that_is_not_a_condition", Yaml)
            .with_data()
            .replace(
                "metrics/reconciliation.yaml",
                "filter: NOT is_deleted}",
                "filter: version}",
            )
            .run("reconcile bookings_to_revenue --period FY2026-Q1")
            .exits(1),
        // The same filter found by `canon validate`, over no data (it used
        // to plan no reconciliation: only a reconcile, check or publish did).
        case("lookup_filter_that_is_not_a_condition_in_validate", Yaml)
            .replace(
                "metrics/reconciliation.yaml",
                "filter: NOT is_deleted}",
                "filter: version}",
            )
            .run("validate --no-data")
            .exits(1),
        // A lookup value the looked-up entity does not have: located at
        // `value`, with the entity's fields (the engine said only "no field
        // named deal_idd", nowhere).
        case("lookup_value_that_is_not_a_field", Yaml)
            .replace(
                "metrics/reconciliation.yaml",
                "value: deal_id,",
                "value: deal_idd,",
            )
            .run("validate --no-data")
            .exits(1),
        // A slice named like a result row's own column (`complete`,
        // `period`, `value`, …): its values were lost in JSON, and CSV and
        // Parquet files got two columns of one name that readers refuse.
        case("slice_named_like_a_result_column", Yaml)
            .replace(
                "metrics/sales.yaml",
                "      - {name: lead_source, expr: lead_source}\n",
                "      - {name: lead_source, expr: lead_source}\n      - {name: complete, expr: deal_type}\n",
            )
            .run("validate --no-data")
            .exits(1),
        // A lookup of an entity that does not exist: located at `entity`
        // with a did-you-mean, among the other problems (it was an
        // unlocated request error, exit 2, that hid every other one).
        case("lookup_entity_that_is_unknown", Yaml)
            .replace(
                "metrics/reconciliation.yaml",
                "lookup: {entity: subscription,",
                "lookup: {entity: subscriptionz,",
            )
            .replace(
                "metrics/sales.yaml",
                "      - {name: deal_type, expr: deal_type}\n",
                "      - {name: deal_type, expr: nosuch_type}\n",
            )
            .run("validate --no-data")
            .exits(1),
        // Two link rules wrong at once, and both of a lookup's fields:
        // every problem is reported, not only the first.
        case("link_rules_wrong_in_three_places", Yaml)
            .replace(
                "metrics/reconciliation.yaml",
                "{name: opportunity, expr: deal_id}",
                "{name: opportunity, expr: deal_idx}",
            )
            .replace(
                "metrics/reconciliation.yaml",
                "key: original_id, from: subscription_original_id, value: deal_id,",
                "key: original_idd, from: subscription_original_id, value: deal_idd,",
            )
            .run("validate --no-data")
            .exits(1),
        // A lookup key of another type than `from`: both were compared as
        // text, so an integer version matched subscription ids by their
        // printed form and moved money between the bridge's lines.
        case("lookup_key_of_another_type", Yaml)
            .replace("metrics/reconciliation.yaml", "key: original_id,", "key: version,")
            .run("validate --no-data")
            .exits(1),
        // Slice names are compared without case (DuckDB, SQLite and Spark
        // refuse a file with `Value` and `value`) and must be names.
        case("slice_named_value_in_another_case", Yaml)
            .replace(
                "metrics/sales.yaml",
                "      - {name: lead_source, expr: lead_source}\n",
                "      - {name: lead_source, expr: lead_source}\n      - {name: Value, expr: deal_type}\n      - {name: \"deal type\", expr: deal_type}\n      - {name: DEAL_TYPE, expr: deal_type}\n",
            )
            .run("validate --no-data")
            .exits(1),
        // A declared `unique:` field that the entity does not have.
        case("unique_field_that_is_not_a_field", Yaml)
            .replace(
                "models/billing.yaml",
                "{field: original_id, among:",
                "{field: original_idd, among:",
            )
            .run("validate --no-data")
            .exits(1),
        // `among` that is not true or false per row: placed in models/, not
        // in the metric that reads the entity.
        case("unique_among_that_is_not_a_condition", Yaml)
            .with_data()
            .replace(
                "models/billing.yaml",
                "among: is_latest_version AND NOT is_deleted,",
                "among: original_id,",
            )
            .run("query arr --as-of 2025-12-31")
            .exits(1),
        // A rule on a conversion's events, which no other gate reads: each
        // contact has several lifecycle events, so mqls is blocked by it.
        case("unique_on_a_conversions_events", Yaml)
            .with_data()
            .replace(
                "models/marketing.yaml",
                "      - {name: contact, entity: contact, field: contact_id}\n",
                "      - {name: contact, entity: contact, field: contact_id}\n    unique:\n      - {field: contact_id, reason: one event per contact}\n",
            )
            .run("query mqls --period FY2026-Q2")
            .exits(1),
        case("accepted_values_with_an_unquoted_null", Yaml)
            .replace(
                "models/crm.yaml",
                "accepted_values: [Prospect, Customer, Partner, Other]",
                "accepted_values: [Prospect, Customer, Partner, Other, null]",
            )
            .run("validate --no-data")
            .exits(1),
        case("entity_field_with_an_underscore_name", Yaml)
            .replace(
                "models/finance.yaml",
                "      - {name: start_date}\n",
                "      - {name: _start_date}\n",
            )
            .run("validate --no-data")
            .exits(1),
        case("entity_with_two_systems_of_record", Yaml)
            .replace(
                "models/finance.yaml",
                "  - name: accounting_period\n    description: A monthly period of the books.",
                "  - name: deal\n    description: A monthly period of the books.",
            )
            .run("validate --no-data")
            .exits(1),
        case("bridge_sign_that_does_not_tie_out", Yaml)
            .replace(
                "metrics/reconciliation.yaml",
                "        sign: '-'\n",
                "        sign: '+'\n",
            )
            .run("validate --no-data")
            .exits(1),
        case("bridge_amount_with_did_you_mean", Yaml)
            .replace(
                "metrics/reconciliation.yaml",
                "holds: lines_after_period",
                "holds: lines_after_perod",
            )
            .run("validate --no-data")
            .exits(1),
        case("memory_limit_is_not_a_size", Yaml)
            .replace("canon.yaml", "memory_limit: 2GiB", "memory_limit: 2 gigs")
            .run("validate --no-data")
            .exits(1),
        case("match_rate_threshold_above_one", Yaml)
            .replace(
                "canon.yaml",
                "match_rate_warn_below: 0.9",
                "match_rate_warn_below: 1.5",
            )
            .run("validate --no-data")
            .exits(1),
        case("unknown_key_in_canon_yaml", Yaml)
            .replace("canon.yaml", "base_currency: USD\n", "base_curency: USD\n")
            .run("list")
            .exits(1),
        case("billion_laughs_aliases", Yaml)
            .generate("metrics/laughs.yaml", laughs)
            .run("validate --no-data")
            .exits(1),
        case("utf8_bom_at_the_start_of_a_file", Yaml)
            .write(
                "metrics/bom.yaml",
                "\u{feff}domain: x\ndescription: y\nmetrics: []\n",
            )
            .run("validate --no-data")
            .exits(0),
        case("scale_of_forty_decimals", Yaml)
            .with_data()
            .replace(SALES, "    scale: 2\n", "    scale: 40\n")
            .run("query avg_sales_cycle_days --period FY2026-Q1")
            .exits(1),
        case("bad_reporting_zone", Yaml)
            .replace(
                "canon.yaml",
                "reporting_zone: America/Los_Angeles",
                "reporting_zone: America/Los_Angles",
            )
            .run("validate --no-data")
            .exits(1),
        case("bad_fiscal_year_start_month", Yaml)
            .replace(
                "canon.yaml",
                "fiscal_year_start_month: 2",
                "fiscal_year_start_month: 13",
            )
            .run("validate --no-data")
            .exits(1),
        case("base_currency_xxx", Yaml)
            .replace("canon.yaml", "base_currency: USD", "base_currency: XXX")
            .run("validate --no-data")
            .exits(1),
        case("non_utf8_bytes_are_located", Yaml)
            .generate(SALES, sales_with_a_latin1_byte)
            .run("validate --no-data")
            .exits(1),
        case("yaml_brackets_nested_100000_deep", Yaml)
            .generate("metrics/deep.yaml", || nested("[", "]", 100_000))
            .run("validate --no-data")
            .exits(1),
        case("yaml_maps_nested_100000_deep", Yaml)
            .generate("metrics/deep.yaml", || nested("{a: ", "}", 100_000))
            .run("validate --no-data")
            .exits(1),
        // A tab inside a flow sequence: yaml-rust2 refuses the text, which
        // serde_yaml reads (48 s for this file before the depth was bounded
        // without yaml-rust2 too).
        case("yaml_tab_then_brackets_nested_100000_deep", Yaml)
            .generate("metrics/deep.yaml", || {
                format!(
                    "domain: x\ndescription: [\n\t[{}{}]]\n",
                    "[".repeat(100_000),
                    "]".repeat(100_000)
                )
                .into_bytes()
            })
            .run("validate --no-data")
            .exits(1),
        // serde_yaml drops a tag it does not know and reads the value as if
        // the tag were not there.
        case("unknown_tag_on_a_value", Yaml)
            .replace(
                SALES,
                "    label: Bookings\n",
                "    label: !custom Bookings\n",
            )
            .run("validate --no-data")
            .exits(1),
        case("target_partitions_of_twenty_thousand", Yaml)
            .replace(
                "canon.yaml",
                "  memory_limit: 2GiB\n",
                "  memory_limit: 2GiB\n  target_partitions: 20000\n",
            )
            .run("validate --no-data")
            .exits(1),
        case("max_buckets_past_the_ceiling", Yaml)
            .replace(
                "canon.yaml",
                "  memory_limit: 2GiB\n",
                "  memory_limit: 2GiB\n  max_buckets: 18446744073709551615\n",
            )
            .run("validate --no-data")
            .exits(1),
        case("yaml_file_of_100_mib", Yaml)
            .generate("metrics/huge.yaml", huge_description)
            .run("validate --no-data")
            .exits(1),
    ]
}

/// The sample's sales.yaml with `é` in bookings' label written in Latin-1
/// (one byte 0xE9): line 5, column 22 (`    label: Bookings r` is 21 characters).
fn sales_with_a_latin1_byte() -> Vec<u8> {
    let text = std::fs::read_to_string(super::common::repo().join(SALES)).unwrap();
    let text = text.replacen(
        "    label: Bookings\n",
        "    label: Bookings r\u{1}sum\u{1}\n",
        1,
    );
    text.bytes()
        .map(|b| if b == 1 { 0xE9 } else { b })
        .collect()
}

/// Nine levels of anchors, each ten aliases of the one before (10⁹ strings
/// if expanded), under an unknown key, then used where a text is expected:
/// refused without expanding them.
fn laughs() -> Vec<u8> {
    let mut text =
        String::from("domain: x\nx:\n  - &a0 [lol, lol, lol, lol, lol, lol, lol, lol, lol, lol]\n");
    for i in 1..=9 {
        let aliases = vec![format!("*a{}", i - 1); 10].join(", ");
        text.push_str(&format!("  - &a{i} [{aliases}]\n"));
    }
    text.push_str("description: *a9\n");
    text.into_bytes()
}

/// `domain: x` and a description nested `depth` deep.
fn nested(open: &str, close: &str, depth: usize) -> Vec<u8> {
    format!(
        "domain: x\ndescription: {}{}\n",
        open.repeat(depth),
        close.repeat(depth)
    )
    .into_bytes()
}

fn huge_description() -> Vec<u8> {
    let mut text = b"domain: x\ndescription: \"".to_vec();
    text.extend(std::iter::repeat_n(b'x', 100 << 20));
    text.extend(b"\"\n");
    text
}
