//! Exact decimal values as results carry them: an i128 of units at a scale,
//! the same representation as Arrow's Decimal128, so no value ever passes
//! through a float between the engine and the reader.

use std::cmp::Ordering;
use std::fmt;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Dec {
    pub units: i128,
    pub scale: u32,
}

impl Dec {
    pub const ZERO: Dec = Dec { units: 0, scale: 0 };

    pub fn new(units: i128, scale: u32) -> Dec {
        Dec { units, scale }
    }

    pub fn from_int(v: i64) -> Dec {
        Dec::new(v as i128, 0)
    }

    /// The same value at a larger scale (exact), or rounded half away from
    /// zero to a smaller one.
    pub fn rescale(self, scale: u32) -> Dec {
        match scale.cmp(&self.scale) {
            Ordering::Equal => self,
            Ordering::Greater => Dec::new(self.units * 10i128.pow(scale - self.scale), scale),
            Ordering::Less => {
                let div = 10i128.pow(self.scale - scale);
                Dec::new(div_round_half_away(self.units, div), scale)
            }
        }
    }

    /// `self / other` rounded half away from zero to `scale` places; `None`
    /// when `other` is zero. `scale` is at most [`MAX_SCALE`] (the catalog
    /// refuses more), which keeps the shifted numerator of any Decimal128
    /// money value within i128; the release build checks overflow in canon's
    /// own arithmetic (Cargo.toml), so a value beyond that stops the run
    /// instead of wrapping to a wrong number.
    pub fn div(self, other: Dec, scale: u32) -> Option<Dec> {
        if other.units == 0 {
            return None;
        }
        // self.units / 10^s1 ÷ other.units / 10^s2 = (self.units · 10^(scale + s2 − s1)) / other.units / 10^scale
        let shift = scale as i32 + other.scale as i32 - self.scale as i32;
        let (num, den) = if shift >= 0 {
            (self.units * 10i128.pow(shift as u32), other.units)
        } else {
            (self.units, other.units * 10i128.pow((-shift) as u32))
        };
        Some(Dec::new(div_round_half_away(num, den), scale))
    }

    pub fn is_zero(self) -> bool {
        self.units == 0
    }

    /// Plain digits, as JSON and CSV carry them: `-1234567.89`.
    pub fn plain(self) -> String {
        self.render(false)
    }

    /// With thousands separators, as people read it: `-1,234,567.89`.
    pub fn grouped(self) -> String {
        self.render(true)
    }

    fn render(self, group: bool) -> String {
        let negative = self.units < 0;
        let digits = self.units.unsigned_abs().to_string();
        let scale = self.scale as usize;
        let padded = if digits.len() <= scale {
            format!("{}{}", "0".repeat(scale + 1 - digits.len()), digits)
        } else {
            digits
        };
        let (int, frac) = padded.split_at(padded.len() - scale);
        let int = if group {
            group_thousands(int)
        } else {
            int.to_string()
        };
        let sign = if negative { "-" } else { "" };
        if scale == 0 {
            format!("{sign}{int}")
        } else {
            format!("{sign}{int}.{frac}")
        }
    }
}

impl Dec {
    /// The value of row `i` of a Decimal128 or Int64 column; None when null
    /// or of another type.
    pub fn from_cell(a: &dyn datafusion::arrow::array::Array, i: usize) -> Option<Dec> {
        use datafusion::arrow::array::AsArray;
        use datafusion::arrow::datatypes::{DataType, Decimal128Type, Int64Type};
        if a.is_null(i) {
            return None;
        }
        match a.data_type() {
            DataType::Decimal128(_, s) => Some(Dec::new(
                a.as_primitive::<Decimal128Type>().value(i),
                (*s).max(0) as u32,
            )),
            DataType::Int64 => Some(Dec::from_int(a.as_primitive::<Int64Type>().value(i))),
            _ => None,
        }
    }
}

impl std::ops::Add for Dec {
    type Output = Dec;
    /// Exact: the result has the larger of the two scales.
    fn add(self, other: Dec) -> Dec {
        let scale = self.scale.max(other.scale);
        Dec::new(
            self.rescale(scale).units + other.rescale(scale).units,
            scale,
        )
    }
}

impl std::ops::Sub for Dec {
    type Output = Dec;
    fn sub(self, other: Dec) -> Dec {
        self + Dec::new(-other.units, other.scale)
    }
}

impl fmt::Display for Dec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.plain())
    }
}

impl serde::Serialize for Dec {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.plain())
    }
}

/// Reads the plain digits `Serialize` writes (`-1234567.89`), keeping the
/// scale as written, so a stored result reads back to the same value.
impl<'de> serde::Deserialize<'de> for Dec {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Dec, D::Error> {
        let text = String::deserialize(d)?;
        text.parse().map_err(serde::de::Error::custom)
    }
}

impl std::str::FromStr for Dec {
    type Err = String;

    fn from_str(text: &str) -> Result<Dec, String> {
        let bad = || format!("`{text}` is not a plain decimal number");
        let (negative, digits) = match text.strip_prefix('-') {
            Some(rest) => (true, rest),
            None => (false, text),
        };
        let (int, frac) = digits.split_once('.').unwrap_or((digits, ""));
        if int.is_empty() || !int.bytes().chain(frac.bytes()).all(|b| b.is_ascii_digit()) {
            return Err(bad());
        }
        let units: i128 = format!("{int}{frac}").parse().map_err(|_| bad())?;
        Ok(Dec::new(
            if negative { -units } else { units },
            frac.len() as u32,
        ))
    }
}

fn group_thousands(int: &str) -> String {
    let mut out = String::with_capacity(int.len() + int.len() / 3);
    for (i, c) in int.chars().enumerate() {
        if i > 0 && (int.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// The most decimal places a metric may ask for (`scale:`).
pub const MAX_SCALE: u32 = 12;

/// Integer division rounding half away from zero (−0.5 → −1), the rounding
/// rule of every money conversion in metrics.md.
pub fn div_round_half_away(num: i128, den: i128) -> i128 {
    let q = num / den;
    let r = num % den;
    if 2 * r.abs() >= den.abs() {
        if (num < 0) != (den < 0) { q - 1 } else { q + 1 }
    } else {
        q
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_exactly() {
        assert_eq!(Dec::new(123456789, 2).grouped(), "1,234,567.89");
        assert_eq!(Dec::new(-5, 2).plain(), "-0.05");
        assert_eq!(Dec::new(1000, 0).grouped(), "1,000");
        assert_eq!(Dec::new(7, 6).plain(), "0.000007");
    }

    #[test]
    fn rounds_half_away_from_zero() {
        // -0.125 → -0.13; 0.125 → 0.13; 0.124 → 0.12
        assert_eq!(Dec::new(-125, 3).rescale(2), Dec::new(-13, 2));
        assert_eq!(Dec::new(125, 3).rescale(2), Dec::new(13, 2));
        assert_eq!(Dec::new(124, 3).rescale(2), Dec::new(12, 2));
    }

    #[test]
    fn reads_back_what_it_writes() {
        for (text, units, scale) in [
            ("-1234567.89", -123456789, 2),
            ("0.000001", 1, 6),
            ("42", 42, 0),
        ] {
            let d: Dec = text.parse().unwrap();
            assert_eq!((d.units, d.scale), (units, scale));
            assert_eq!(d.plain(), text);
        }
        assert!("1,234.00".parse::<Dec>().is_err());
        assert!("-.5".parse::<Dec>().is_err());
        assert!("".parse::<Dec>().is_err());
    }

    #[test]
    fn divides_to_a_scale() {
        // 2 / 3 = 0.666667 at 6 places; 1 / 8 = 0.125000
        assert_eq!(
            Dec::from_int(2).div(Dec::from_int(3), 6),
            Some(Dec::new(666667, 6))
        );
        assert_eq!(
            Dec::new(100, 2).div(Dec::from_int(8), 6),
            Some(Dec::new(125000, 6))
        );
        assert_eq!(Dec::from_int(1).div(Dec::ZERO, 6), None);
        // 10.00 + 0.005 = 10.005
        assert_eq!(Dec::new(1000, 2) + Dec::new(5, 3), Dec::new(10005, 3));
    }
}
