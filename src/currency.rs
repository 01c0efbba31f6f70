//! The base currency of canon.yaml: an ISO 4217 currency, checked when the
//! project loads.
//!
//! Every amount in another currency is converted to it and amounts already
//! in it are not, so a base currency no extract can hold (`usd`, `US`,
//! `EURO`) would convert every amount, and `XXX` (ISO's "no currency") or
//! `XTS` (its testing code) say nothing a reader can trust.
//!
//! The codes are hard-coded: ISO 4217's list of active currency codes as
//! published in 2025 (list one), without the fund codes (BOV, CHE, CHW,
//! CLF, COU, MXV, USN, UYI, UYW: units of account, not a company's books)
//! and without the X codes that are no currency (precious metals, bond
//! market units, SDR, testing, none). When ISO adds a currency, add it here.

use crate::error::Diagnostic;
use crate::spec::ProjectSpec;
use crate::spec::load::SourceFile;
use crate::yaml_path;

/// ISO 4217 active currency codes (2025), sorted.
pub const ISO_4217: &[&str] = &[
    "AED", "AFN", "ALL", "AMD", "ANG", "AOA", "ARS", "AUD", "AWG", "AZN", "BAM", "BBD", "BDT",
    "BGN", "BHD", "BIF", "BMD", "BND", "BOB", "BRL", "BSD", "BTN", "BWP", "BYN", "BZD", "CAD",
    "CDF", "CHF", "CLP", "CNY", "COP", "CRC", "CUP", "CVE", "CZK", "DJF", "DKK", "DOP", "DZD",
    "EGP", "ERN", "ETB", "EUR", "FJD", "FKP", "GBP", "GEL", "GHS", "GIP", "GMD", "GNF", "GTQ",
    "GYD", "HKD", "HNL", "HTG", "HUF", "IDR", "ILS", "INR", "IQD", "IRR", "ISK", "JMD", "JOD",
    "JPY", "KES", "KGS", "KHR", "KMF", "KPW", "KRW", "KWD", "KYD", "KZT", "LAK", "LBP", "LKR",
    "LRD", "LSL", "LYD", "MAD", "MDL", "MGA", "MKD", "MMK", "MNT", "MOP", "MRU", "MUR", "MVR",
    "MWK", "MXN", "MYR", "MZN", "NAD", "NGN", "NIO", "NOK", "NPR", "NZD", "OMR", "PAB", "PEN",
    "PGK", "PHP", "PKR", "PLN", "PYG", "QAR", "RON", "RSD", "RUB", "RWF", "SAR", "SBD", "SCR",
    "SDG", "SEK", "SGD", "SHP", "SLE", "SLL", "SOS", "SRD", "SSP", "STN", "SVC", "SYP", "SZL",
    "THB", "TJS", "TMT", "TND", "TOP", "TRY", "TTD", "TWD", "TZS", "UAH", "UGX", "USD", "UYU",
    "UZS", "VED", "VES", "VND", "VUV", "WST", "XAF", "XCD", "XCG", "XOF", "XPF", "YER", "ZAR",
    "ZMW", "ZWG",
];

/// ISO 4217 codes that are not a currency, with what they are.
const NOT_CURRENCIES: &[(&str, &str)] = &[
    ("XXX", "ISO 4217's code for \"no currency\""),
    ("XTS", "ISO 4217's code reserved for testing"),
    ("XAU", "gold, not a currency"),
    ("XAG", "silver, not a currency"),
    ("XPT", "platinum, not a currency"),
    ("XPD", "palladium, not a currency"),
    ("XDR", "the IMF's special drawing right, a unit of account"),
    ("XSU", "the SUCRE, a unit of account"),
    ("XUA", "the ADB unit of account"),
    ("XBA", "a bond market unit"),
    ("XBB", "a bond market unit"),
    ("XBC", "a bond market unit"),
    ("XBD", "a bond market unit"),
    ("BOV", "a fund code (Mvdol), not a currency"),
    ("CHE", "a fund code (WIR euro), not a currency"),
    ("CHW", "a fund code (WIR franc), not a currency"),
    ("CLF", "a fund code (Unidad de Fomento), not a currency"),
    ("COU", "a fund code (Unidad de Valor Real), not a currency"),
    ("MXV", "a fund code (Unidad de Inversion), not a currency"),
    ("USN", "a fund code (US dollar next day), not a currency"),
    (
        "UYI",
        "a fund code (Uruguay peso en unidades indexadas), not a currency",
    ),
    ("UYW", "a fund code (Unidad previsional), not a currency"),
];

/// Why `code` is not an ISO 4217 currency, or None when it is one.
pub fn refuse(code: &str) -> Option<String> {
    if ISO_4217.binary_search(&code).is_ok() {
        return None;
    }
    if let Some((_, what)) = NOT_CURRENCIES.iter().find(|(c, _)| *c == code) {
        return Some(format!(
            "base_currency `{code}` is {what}: name the currency the company reports in, e.g. USD or EUR"
        ));
    }
    let upper = code.trim().to_ascii_uppercase();
    let hint = if ISO_4217.binary_search(&upper.as_str()).is_ok() {
        format!("did you mean `{upper}`?")
    } else if let Some(c) = ISO_4217
        .iter()
        .find(|c| upper.len() > 3 && upper.starts_with(*c))
    {
        format!("did you mean `{c}`?")
    } else {
        "write its three capital letters, e.g. USD, EUR or GBP".to_string()
    };
    Some(format!(
        "base_currency `{code}` is not an ISO 4217 currency code: {hint}"
    ))
}

/// The located problem with canon.yaml's `base_currency`, if any.
pub fn check_base(file: &SourceFile<ProjectSpec>) -> Option<Diagnostic> {
    refuse(&file.spec.base_currency).map(|message| Diagnostic {
        location: file.at(&yaml_path!["base_currency"]),
        message,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_list_is_sorted_and_three_capital_letters() {
        assert!(ISO_4217.windows(2).all(|w| w[0] < w[1]));
        assert!(
            ISO_4217
                .iter()
                .all(|c| c.len() == 3 && c.bytes().all(|b| b.is_ascii_uppercase()))
        );
        for (c, _) in NOT_CURRENCIES {
            assert!(!ISO_4217.contains(c), "{c} is both");
        }
    }

    #[test]
    fn currencies_pass_and_everything_else_is_refused() {
        for ok in ["USD", "EUR", "GBP", "JPY", "CHF", "XOF"] {
            assert_eq!(refuse(ok), None, "{ok}");
        }
        assert!(refuse("XXX").unwrap().contains("no currency"));
        assert!(refuse("XTS").unwrap().contains("testing"));
        assert!(refuse("usd").unwrap().contains("did you mean `USD`"));
        assert!(refuse("EURO").unwrap().contains("did you mean `EUR`"));
        let us = refuse("US").unwrap();
        assert!(
            us.contains("not an ISO 4217") && !us.contains("did you mean"),
            "{us}"
        );
        assert!(refuse("").is_some());
    }
}
