//! The extracts: missing, empty, truncated, corrupt or drifted Parquet
//! files, and rows the gates refuse (domains, duplicates, overlaps,
//! staleness, a shrunk table). Reported by system/table, file and column,
//! exit 1.

use std::sync::Arc;

use datafusion::arrow::array::{Array, ArrayRef, AsArray, RecordBatch, StringArray};
use datafusion::arrow::datatypes::{DataType, Field, Schema};

use super::harness::{Case, Family::Data, case};

const OPPORTUNITY: &str = "sample_data/crm/opportunity/part-00000.parquet";
const HISTORY: &str = "sample_data/crm/opportunity_history/part-00000.parquet";
const ACCOUNT: &str = "sample_data/crm/account/part-00000.parquet";
const RATES: &str = "sample_data/crm/dated_conversion_rate/part-00000.parquet";
const BOOKINGS: &str = "query bookings --period FY2026-Q1";

pub fn cases() -> Vec<Case> {
    vec![
        case("missing_table_folder", Data)
            .with_data()
            .remove("sample_data/crm/dated_conversion_rate")
            .run(BOOKINGS)
            .exits(1),
        case("table_folder_without_files", Data)
            .with_data()
            .remove(RATES)
            .run(BOOKINGS)
            .exits(1),
        case("file_that_is_not_parquet", Data)
            .with_data()
            .write(ACCOUNT, "not parquet at all")
            .run(BOOKINGS)
            .exits(1),
        case("empty_parquet_file", Data)
            .with_data()
            .write(ACCOUNT, "")
            .run("validate")
            .exits(1),
        case("parquet_magic_bytes_only", Data)
            .with_data()
            .write(ACCOUNT, "PAR1PAR1")
            .run("validate")
            .exits(1),
        case("truncated_parquet_in_query", Data)
            .with_data()
            .truncate(OPPORTUNITY, 100_000)
            .run(BOOKINGS)
            .exits(1),
        case("truncated_parquet_in_validate", Data)
            .with_data()
            .truncate(OPPORTUNITY, 100_000)
            .run("validate")
            .exits(1),
        case("truncated_parquet_in_sql", Data)
            .with_data()
            .truncate(OPPORTUNITY, 100_000)
            .run_args(&["sql", "SELECT count(*) FROM crm.opportunity"])
            .exits(1),
        case("unreadable_parquet_file", Data)
            .with_data()
            .chmod(ACCOUNT, 0o000)
            .run(BOOKINGS)
            .exits(1),
        case("money_column_written_as_double", Data)
            .with_data()
            .rewrite(OPPORTUNITY, amount_as_double)
            .run(BOOKINGS)
            .exits(1),
        case("failed_query_leaves_no_out_file", Data)
            .with_data()
            .rewrite(OPPORTUNITY, amount_as_double)
            .run("query bookings --period FY2026-Q1 --format json --out {case}/bookings.json")
            .exits(1)
            .leaves_no("{case}/bookings.json"),
        case("money_with_four_decimals", Data)
            .with_data()
            .rewrite(OPPORTUNITY, amount_with_scale_4)
            .run(BOOKINGS)
            .exits(1),
        case("money_as_decimal_38", Data)
            .with_data()
            .rewrite(OPPORTUNITY, amount_as_decimal_38)
            .run(BOOKINGS)
            .exits(1),
        case("timestamp_in_milliseconds", Data)
            .with_data()
            .rewrite(OPPORTUNITY, created_date_in_milliseconds)
            .run("query pipeline_created --period FY2026-Q1")
            .exits(1),
        case("timestamp_in_another_zone", Data)
            .with_data()
            .rewrite(OPPORTUNITY, created_date_in_berlin)
            .run("query pipeline_created --period FY2026-Q1")
            .exits(1),
        case("currency_without_a_rate", Data)
            .with_data()
            .rewrite(OPPORTUNITY, eur_as_chf)
            .run(BOOKINGS)
            .exits(1),
        case("rate_of_zero", Data)
            .with_data()
            .rewrite(RATES, zero_rates)
            .run(BOOKINGS)
            .exits(1),
        // No sync time on a conversion's events (null on every row;
        // freshness allowed by name): how far the data reaches is unknown, so its 90-day window
        // closes on nothing, not on the clock (FY2026-Q1's would have closed
        // on 2025-07-30).
        case("conversion_events_without_a_sync_time", Data)
            .with_data()
            .rewrite(
                "sample_data/marketing/lifecycle_stage_history/part-00000.parquet",
                without_synced,
            )
            .run("query mql_to_sql_rate --period FY2026-Q1 --allow freshness:marketing/lifecycle_stage_history")
            .exits(1),
        case("column_missing_from_the_file", Data)
            .with_data()
            .rewrite(OPPORTUNITY, without_is_won)
            .run("validate")
            .exits(1),
        case("timestamp_without_a_time_zone", Data)
            .with_data()
            .rewrite(OPPORTUNITY, created_date_without_zone)
            .run("validate")
            .exits(1),
        case("null_in_a_required_column", Data)
            .with_data()
            .rewrite(ACCOUNT, null_account_name)
            .run(BOOKINGS)
            .exits(1),
        case("value_outside_its_declared_domain", Data)
            .with_data()
            .rewrite(HISTORY, closed_dash_lost)
            .run("query open_pipeline --as-of 2025-06-30")
            .exits(1),
        case("table_copied_twice_duplicates_keys", Data)
            .with_data()
            .copy(
                OPPORTUNITY,
                "sample_data/crm/opportunity/part-00001.parquet",
            )
            .run(BOOKINGS)
            .exits(1),
        case("rate_file_copied_twice_overlaps", Data)
            .with_data()
            .copy(
                RATES,
                "sample_data/crm/dated_conversion_rate/part-00001.parquet",
            )
            .run(BOOKINGS)
            .exits(1),
        case("stale_extracts_block_the_number", Data)
            .with_data()
            .run("query bookings --period FY2026-Q1 --now 2026-01-10T00:00:00Z")
            .exits(1),
        case("stale_extracts_publish_blocked_and_exit_1", Data)
            .with_data()
            .run(
                "publish --out {case}/published --only bookings --period FY2026-Q1 \
                 --now 2026-01-10T00:00:00Z",
            )
            .exits(1),
        case("shrunk_table_blocks_publish", Data)
            .with_data()
            .before(BOOKINGS)
            .rewrite(OPPORTUNITY, first_half)
            .run("publish --out {case}/published --only bookings --period FY2026-Q1")
            .exits(1)
            .leaves_no("{case}/published"),
        case("corrupt_page_with_intact_footer_in_query", Data)
            .with_data()
            .corrupt_page(OPPORTUNITY, 0, "amount")
            .run(BOOKINGS)
            .exits(1),
        case("corrupt_page_with_intact_footer_in_validate_deep", Data)
            .with_data()
            .corrupt_page(OPPORTUNITY, 0, "lead_source")
            .run("validate --deep")
            .exits(1),
    ]
}

fn replace_column(
    b: RecordBatch,
    name: &str,
    field: Option<Field>,
    array: Option<ArrayRef>,
) -> RecordBatch {
    let i = b.schema().index_of(name).unwrap();
    let mut fields: Vec<Field> = b
        .schema()
        .fields()
        .iter()
        .map(|f| f.as_ref().clone())
        .collect();
    let mut columns = b.columns().to_vec();
    match (field, array) {
        (Some(f), Some(a)) => {
            fields[i] = f;
            columns[i] = a;
        }
        _ => {
            fields.remove(i);
            columns.remove(i);
        }
    }
    RecordBatch::try_new(Arc::new(Schema::new(fields)), columns).unwrap()
}

fn cast(b: &RecordBatch, name: &str, to: &DataType) -> ArrayRef {
    datafusion::arrow::compute::cast(b.column_by_name(name).unwrap(), to).unwrap()
}

/// `amount` as Float64 instead of Decimal128(18, 2).
fn amount_as_double(b: RecordBatch) -> RecordBatch {
    let a = cast(&b, "amount", &DataType::Float64);
    replace_column(
        b,
        "amount",
        Some(Field::new("amount", DataType::Float64, true)),
        Some(a),
    )
}

/// `amount` as Decimal128(18, 4): the same values, two more decimals.
fn amount_with_scale_4(b: RecordBatch) -> RecordBatch {
    let to = DataType::Decimal128(18, 4);
    let a = cast(&b, "amount", &to);
    replace_column(b, "amount", Some(Field::new("amount", to, true)), Some(a))
}

/// `amount` as Decimal128(38, 2): the same values, a wider precision.
fn amount_as_decimal_38(b: RecordBatch) -> RecordBatch {
    let to = DataType::Decimal128(38, 2);
    let a = cast(&b, "amount", &to);
    replace_column(b, "amount", Some(Field::new("amount", to, true)), Some(a))
}

/// `created_date` in milliseconds (UTC): the same instants, another unit.
fn created_date_in_milliseconds(b: RecordBatch) -> RecordBatch {
    use datafusion::arrow::datatypes::TimeUnit;
    let to = DataType::Timestamp(TimeUnit::Millisecond, Some("UTC".into()));
    let a = cast(&b, "created_date", &to);
    replace_column(
        b,
        "created_date",
        Some(Field::new("created_date", to, false)),
        Some(a),
    )
}

/// `created_date` labelled Europe/Berlin: the same instants, another zone.
fn created_date_in_berlin(b: RecordBatch) -> RecordBatch {
    use datafusion::arrow::datatypes::TimeUnit;
    let to = DataType::Timestamp(TimeUnit::Microsecond, Some("Europe/Berlin".into()));
    let a = cast(&b, "created_date", &to);
    replace_column(
        b,
        "created_date",
        Some(Field::new("created_date", to, false)),
        Some(a),
    )
}

/// Every EUR deal says CHF, a currency without a rate.
fn eur_as_chf(b: RecordBatch) -> RecordBatch {
    map_strings(
        b,
        "currency_iso_code",
        |s| if s == "EUR" { "CHF" } else { s },
    )
}

/// Every rate is 0 (units of the currency per 1 USD).
fn zero_rates(b: RecordBatch) -> RecordBatch {
    let column = b.column_by_name("conversion_rate").unwrap();
    let zero = datafusion::arrow::array::Decimal128Array::from(vec![0i128; column.len()])
        .with_precision_and_scale(18, 6)
        .unwrap();
    let field = b
        .schema()
        .field_with_name("conversion_rate")
        .unwrap()
        .clone();
    replace_column(b, "conversion_rate", Some(field), Some(Arc::new(zero)))
}

/// `column` (text) with every value passed through `f`.
fn map_strings(b: RecordBatch, column: &str, f: fn(&str) -> &str) -> RecordBatch {
    let values = b.column_by_name(column).unwrap().as_string::<i32>();
    let a: StringArray = values.iter().map(|s| s.map(f)).collect();
    let field = b.schema().field_with_name(column).unwrap().clone();
    replace_column(b, column, Some(field), Some(Arc::new(a)))
}

fn without_is_won(b: RecordBatch) -> RecordBatch {
    replace_column(b, "is_won", None, None)
}

/// `_fivetran_synced` null on every row: no sync time.
fn without_synced(b: RecordBatch) -> RecordBatch {
    let ty = b
        .column_by_name("_fivetran_synced")
        .unwrap()
        .data_type()
        .clone();
    let nulls = datafusion::arrow::array::new_null_array(&ty, b.num_rows());
    replace_column(
        b,
        "_fivetran_synced",
        Some(Field::new("_fivetran_synced", ty, true)),
        Some(nulls),
    )
}

/// `created_date` as a timestamp without a zone (local time, not UTC).
fn created_date_without_zone(b: RecordBatch) -> RecordBatch {
    use datafusion::arrow::datatypes::TimeUnit;
    let to = DataType::Timestamp(TimeUnit::Microsecond, None);
    let a = cast(&b, "created_date", &to);
    replace_column(
        b,
        "created_date",
        Some(Field::new("created_date", to, false)),
        Some(a),
    )
}

/// The first account's name is null (the model says `name` is required).
fn null_account_name(b: RecordBatch) -> RecordBatch {
    let names = b.column_by_name("name").unwrap().as_string::<i32>();
    let a: StringArray = (0..names.len())
        .map(|i| (i > 0).then(|| names.value(i).to_string()))
        .collect();
    replace_column(
        b,
        "name",
        Some(Field::new("name", DataType::Utf8, true)),
        Some(Arc::new(a)),
    )
}

/// Every history row at `Closed Lost` says `Closed - Lost`, a stage the
/// model does not declare (it would count as open pipeline).
fn closed_dash_lost(b: RecordBatch) -> RecordBatch {
    let stages = b.column_by_name("stage_name").unwrap().as_string::<i32>();
    let a: StringArray = stages
        .iter()
        .map(|s| {
            s.map(|s| {
                if s == "Closed Lost" {
                    "Closed - Lost"
                } else {
                    s
                }
            })
        })
        .collect();
    let nullable = b
        .schema()
        .field_with_name("stage_name")
        .unwrap()
        .is_nullable();
    replace_column(
        b,
        "stage_name",
        Some(Field::new("stage_name", DataType::Utf8, nullable)),
        Some(Arc::new(a)),
    )
}

fn first_half(b: RecordBatch) -> RecordBatch {
    let n = b.num_rows() / 2;
    b.slice(0, n)
}
