//! canon's own SQL functions, usable in every YAML expression.
//!
//! They exist so that company policy stays in canon.yaml and out of metric
//! text: `is_internal_domain(account.domain)` reads the internal domains of
//! the project file, so the list is written once and no query is built by
//! pasting settings into SQL.

use std::borrow::Cow;
use std::sync::Arc;

use chrono_tz::Tz;
use datafusion::arrow::array::{
    Array, ArrayRef, AsArray, BooleanArray, Date32Array, StringBuilder,
};
use datafusion::arrow::datatypes::{DataType, TimeUnit, TimestampMicrosecondType};
use datafusion::common::cast::as_string_array;
use datafusion::error::Result;
use datafusion::logical_expr::{
    ColumnarValue, ScalarFunctionArgs, ScalarUDF, ScalarUDFImpl, Signature, Volatility, create_udf,
};
use datafusion::prelude::SessionContext;

/// The host of a web address, lower-cased, without scheme, `www.`, port or path:
/// `https://www.Acme.io/x` → `acme.io`. Borrowed when the address is already
/// in lower case (most are), so a column is computed without a copy per row.
pub fn url_domain(url: &str) -> Option<Cow<'_, str>> {
    fn host(s: &str) -> Option<&str> {
        let s = s
            .strip_prefix("https://")
            .or_else(|| s.strip_prefix("http://"))
            .unwrap_or(s);
        let s = s.strip_prefix("www.").unwrap_or(s);
        let host = s.split(['/', ':', '?', '#']).next().unwrap_or("");
        (!host.is_empty()).then_some(host)
    }
    match lowered(url.trim()) {
        Cow::Borrowed(s) => host(s).map(Cow::Borrowed),
        Cow::Owned(s) => host(&s).map(|h| Cow::Owned(h.to_string())),
    }
}

/// The domain of an email address, lower-cased and trimmed (lower-casing
/// moves no `@`, so only the domain is lower-cased); borrowed when it is
/// already in lower case.
pub fn email_domain(email: &str) -> Option<Cow<'_, str>> {
    let (_, domain) = email.trim().rsplit_once('@')?;
    (!domain.is_empty()).then(|| lowered(domain))
}

/// `s` in ASCII lower case, copied only when it has a capital.
fn lowered(s: &str) -> Cow<'_, str> {
    if s.bytes().any(|b| b.is_ascii_uppercase()) {
        Cow::Owned(s.to_ascii_lowercase())
    } else {
        Cow::Borrowed(s)
    }
}

/// True when `domain` is one of `internal` or a subdomain of one.
pub fn is_internal(domain: &str, internal: &[String]) -> bool {
    InternalDomains::new(internal).hold(domain)
}

/// canon.yaml's `internal_domains`, lower-cased once, so a row is tested
/// without allocating (4.4 M contacts a query at scale 200).
#[derive(Debug, PartialEq, Eq, Hash)]
struct InternalDomains(Vec<String>);

impl InternalDomains {
    fn new(internal: &[String]) -> Self {
        InternalDomains(internal.iter().map(|i| i.to_ascii_lowercase()).collect())
    }

    /// `domain` (any case, spaces around) is one of them or a subdomain of one.
    fn hold(&self, domain: &str) -> bool {
        let d = domain.trim().as_bytes();
        self.0.iter().any(|i| {
            let i = i.as_bytes();
            if d.len() == i.len() {
                d.eq_ignore_ascii_case(i)
            } else {
                d.len() > i.len()
                    && d[d.len() - i.len() - 1] == b'.'
                    && d[d.len() - i.len()..].eq_ignore_ascii_case(i)
            }
        })
    }
}

/// A text function of one text argument, `f` applied to each row: the
/// results go straight into the output's buffer (no string allocated per
/// row when `f` borrows).
fn string_to_string(name: &str, f: fn(&str) -> Option<Cow<'_, str>>) -> ScalarUDF {
    create_udf(
        name,
        vec![DataType::Utf8],
        DataType::Utf8,
        Volatility::Immutable,
        Arc::new(move |args: &[ColumnarValue]| -> Result<ColumnarValue> {
            let arrays = ColumnarValue::values_to_arrays(args)?;
            let input = as_string_array(&arrays[0])?;
            let mut out = StringBuilder::with_capacity(input.len(), input.value_data().len());
            for v in input.iter() {
                match v.and_then(f) {
                    Some(s) => out.append_value(s),
                    None => out.append_null(),
                }
            }
            Ok(ColumnarValue::Array(Arc::new(out.finish()) as ArrayRef))
        }),
    )
}

/// `is_internal_domain(domain)`, bound to canon.yaml's internal domains.
/// A type of its own (not a closure) so that a plan written out carries the
/// list it was built with (run::wire): read back under another canon.yaml,
/// it computes what it computed where it was planned.
#[derive(Debug, PartialEq, Eq, Hash)]
struct IsInternalDomain {
    /// As canon.yaml spells them (what goes over the wire).
    internal: Vec<String>,
    lowered: InternalDomains,
    signature: Signature,
}

impl IsInternalDomain {
    fn new(internal: Vec<String>) -> Self {
        IsInternalDomain {
            lowered: InternalDomains::new(&internal),
            internal,
            signature: Signature::exact(vec![DataType::Utf8], Volatility::Immutable),
        }
    }
}

impl ScalarUDFImpl for IsInternalDomain {
    fn name(&self) -> &str {
        "is_internal_domain"
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, _arg_types: &[DataType]) -> Result<DataType> {
        Ok(DataType::Boolean)
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        let arrays = ColumnarValue::values_to_arrays(&args.args)?;
        let input = as_string_array(&arrays[0])?;
        let out: BooleanArray = (0..input.len())
            .map(|i| (!input.is_null(i)).then(|| self.lowered.hold(input.value(i))))
            .collect();
        Ok(ColumnarValue::Array(Arc::new(out) as ArrayRef))
    }
}

/// `local_date(ts)`: the calendar day of an instant in the reporting zone
/// (bound to canon.yaml's zone, carried with a plan like [`IsInternalDomain`]'s list).
#[derive(Debug, PartialEq, Eq, Hash)]
struct LocalDate {
    zone: Tz,
    signature: Signature,
}

impl LocalDate {
    fn new(zone: Tz) -> Self {
        LocalDate {
            zone,
            signature: Signature::exact(
                vec![DataType::Timestamp(
                    TimeUnit::Microsecond,
                    Some("UTC".into()),
                )],
                Volatility::Immutable,
            ),
        }
    }
}

impl ScalarUDFImpl for LocalDate {
    fn name(&self) -> &str {
        "local_date"
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, _arg_types: &[DataType]) -> Result<DataType> {
        Ok(DataType::Date32)
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        let arrays = ColumnarValue::values_to_arrays(&args.args)?;
        let input = arrays[0].as_primitive::<TimestampMicrosecondType>();
        let out: Date32Array = input
            .iter()
            .map(|v| v.and_then(|micros| local_day_number(micros, self.zone)))
            .collect();
        Ok(ColumnarValue::Array(Arc::new(out) as ArrayRef))
    }
}

/// The project settings a function is bound to, as they travel with a plan
/// (run::wire): the functions themselves are known by name everywhere, but
/// `is_internal_domain` and `local_date` compute with canon.yaml's
/// settings, and a plan must compute the same wherever it runs.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(tag = "function", rename_all = "snake_case")]
pub enum BoundFunction {
    IsInternalDomain { internal_domains: Vec<String> },
    LocalDate { zone: String },
}

impl BoundFunction {
    /// The settings `udf` is bound to; `None` for a function bound to none.
    pub fn of(udf: &ScalarUDF) -> Option<Self> {
        let inner = udf.inner();
        if let Some(f) = inner.downcast_ref::<IsInternalDomain>() {
            Some(BoundFunction::IsInternalDomain {
                internal_domains: f.internal.clone(),
            })
        } else {
            inner
                .downcast_ref::<LocalDate>()
                .map(|f| BoundFunction::LocalDate {
                    zone: f.zone.name().to_string(),
                })
        }
    }

    /// The function, bound to these settings.
    pub fn udf(&self) -> std::result::Result<ScalarUDF, String> {
        Ok(match self {
            BoundFunction::IsInternalDomain { internal_domains } => {
                ScalarUDF::new_from_impl(IsInternalDomain::new(internal_domains.clone()))
            }
            BoundFunction::LocalDate { zone } => {
                let zone: Tz = zone
                    .parse()
                    .map_err(|_| format!("local_date's zone {zone:?} is not a known time zone"))?;
                ScalarUDF::new_from_impl(LocalDate::new(zone))
            }
        })
    }

    /// The name of the function these settings are for.
    pub fn name(&self) -> &'static str {
        match self {
            BoundFunction::IsInternalDomain { .. } => "is_internal_domain",
            BoundFunction::LocalDate { .. } => "local_date",
        }
    }
}

/// Days since 1970-01-01 of the local date of `micros` in `zone`.
pub fn local_day_number(micros: i64, zone: Tz) -> Option<i32> {
    let utc = chrono::DateTime::from_timestamp_micros(micros)?;
    let local = utc.with_timezone(&zone).date_naive();
    let epoch = chrono::NaiveDate::from_ymd_opt(1970, 1, 1)?;
    i32::try_from((local - epoch).num_days()).ok()
}

/// The function `name` among those bound to no setting (`url_domain`,
/// `email_domain`): what a cluster's processes register by name.
pub fn stateless(name: &str) -> Option<ScalarUDF> {
    match name {
        "url_domain" => Some(string_to_string("url_domain", url_domain)),
        "email_domain" => Some(string_to_string("email_domain", email_domain)),
        _ => None,
    }
}

/// Registers `url_domain`, `email_domain`, `is_internal_domain` (bound to the
/// project's internal domains) and `local_date` (bound to its reporting zone).
pub fn register(ctx: &SessionContext, internal_domains: &[String], zone: Tz) {
    ctx.register_udf(string_to_string("url_domain", url_domain));
    ctx.register_udf(string_to_string("email_domain", email_domain));
    ctx.register_udf(ScalarUDF::new_from_impl(IsInternalDomain::new(
        internal_domains.to_vec(),
    )));
    ctx.register_udf(ScalarUDF::new_from_impl(LocalDate::new(zone)));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn domains_are_normalized() {
        assert_eq!(
            url_domain("https://www.acme.io/x").as_deref(),
            Some("acme.io")
        );
        assert_eq!(url_domain(" Example.COM ").as_deref(), Some("example.com"));
        assert_eq!(
            url_domain("http://x.co.uk:8080/a?b").as_deref(),
            Some("x.co.uk")
        );
        assert_eq!(url_domain(""), None);
        assert_eq!(email_domain(" Jo@Acme.IO ").as_deref(), Some("acme.io"));
        assert_eq!(email_domain("nobody"), None);
    }

    #[test]
    fn local_date_is_the_day_in_the_zone() {
        // 2025-02-01T05:00:00Z is 2025-01-31 21:00 in Los Angeles (PST, UTC-8).
        let micros = 1_738_386_000_000_000;
        let day = local_day_number(micros, chrono_tz::America::Los_Angeles).unwrap();
        let jan31 = chrono::NaiveDate::from_ymd_opt(2025, 1, 31).unwrap();
        assert_eq!(
            i64::from(day),
            (jan31 - chrono::NaiveDate::from_ymd_opt(1970, 1, 1).unwrap()).num_days()
        );
    }

    #[test]
    fn internal_means_the_domain_or_a_subdomain() {
        let internal = vec!["acme.io".to_string()];
        assert!(is_internal("acme.io", &internal));
        assert!(is_internal("eu.acme.io", &internal));
        assert!(!is_internal("notacme.io", &internal));
        assert!(!is_internal("acme.io.evil.com", &internal));
        // Any case, spaces around, either side.
        assert!(is_internal(" EU.Acme.IO ", &internal));
        assert!(is_internal("acme.io", &["ACME.io".to_string()]));
        assert!(!is_internal("io", &internal));
        assert!(!is_internal("xacme.io", &internal));
        assert!(!is_internal("", &internal));
    }

    #[test]
    fn an_email_domain_is_after_the_last_at_lower_cased() {
        assert_eq!(email_domain(" Bob@Corp.COM ").as_deref(), Some("corp.com"));
        assert_eq!(email_domain("a@b@Acme.io").as_deref(), Some("acme.io"));
        assert_eq!(email_domain("no-at-sign"), None);
        assert_eq!(email_domain("trailing@"), None);
        assert_eq!(email_domain("  "), None);
    }

    // The columnar path: rows already in lower case (borrowed), with
    // capitals (copied), without a domain, and null, in one column.
    #[tokio::test]
    async fn the_functions_compute_a_column_row_by_row() {
        let ctx = SessionContext::new();
        register(&ctx, &["acme.io".to_string()], chrono_tz::UTC);
        let batches = ctx
            .sql(
                "SELECT email_domain(e) AS d, url_domain(u) AS h FROM (VALUES \
                 ('jo@acme.io', 'https://www.acme.io/x'), \
                 (' Bob@Corp.COM ', 'HTTP://Shop.Example.COM:8080'), \
                 ('no-at-sign', ''), \
                 (NULL, NULL)) AS t(e, u)",
            )
            .await
            .unwrap()
            .collect()
            .await
            .unwrap();
        let column = |name: &str| -> Vec<Option<String>> {
            batches
                .iter()
                .flat_map(|b| {
                    let a = b.column_by_name(name).unwrap().as_string::<i32>().clone();
                    (0..a.len())
                        .map(|i| (!a.is_null(i)).then(|| a.value(i).to_string()))
                        .collect::<Vec<_>>()
                })
                .collect()
        };
        let some = |s: &str| Some(s.to_string());
        assert_eq!(
            column("d"),
            vec![some("acme.io"), some("corp.com"), None, None]
        );
        assert_eq!(
            column("h"),
            vec![some("acme.io"), some("shop.example.com"), None, None]
        );
    }
}
