//! "Did you mean" hints: the closest known name to one written wrong. A
//! leaf module, so that every layer that reads a name (the calendar, the
//! catalog, slicing, the bridge's lines) can suggest one without importing
//! the catalog.

/// The closest known name within two edits, for "did you mean" hints.
pub fn did_you_mean<'a>(name: &str, known: &[&'a str]) -> Option<&'a str> {
    known
        .iter()
        .map(|k| (edit_distance(name, k), *k))
        .filter(|(d, _)| *d <= 2)
        .min()
        .map(|(_, k)| k)
}

fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut cur = vec![i + 1];
        for (j, cb) in b.iter().enumerate() {
            let sub = prev[j] + usize::from(ca != *cb);
            cur.push(sub.min(prev[j + 1] + 1).min(cur[j] + 1));
        }
        prev = cur;
    }
    prev[b.len()]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn suggests_close_names_only() {
        let known = ["bookings", "new_bookings", "win_rate"];
        assert_eq!(did_you_mean("booking", &known), Some("bookings"));
        assert_eq!(did_you_mean("winrate", &known), Some("win_rate"));
        assert_eq!(did_you_mean("churn", &known), None);
    }
}
