//! Bounds on a definition file, checked before serde_yaml reads it.
//!
//! serde_yaml (libyaml) takes time quadratic in nesting depth: 100,000
//! nested `[` took 52 s, and `{a: ` nested as deep ran past a minute. A
//! reviewed definition is a few kilobytes and a handful of levels deep, so
//! canon refuses anything far beyond that with a located error, and what it
//! accepts loads in time linear in its size. The depth is measured with
//! yaml-rust2's event stream, which stops at the first level past the limit,
//! so a hostile file costs no more than its first few hundred events.

use yaml_rust2::parser::{Event, Parser};

/// The largest definition file canon reads. The sample's largest is about
/// 20 KiB; a definition fifty times that is a generated file, not a review.
pub const MAX_FILE_BYTES: u64 = 1 << 20;

/// The deepest nesting of mappings and sequences in a definition file. The
/// sample's deepest is 6 (a metric's measure inside a metric inside the
/// file's `metrics` list).
pub const MAX_DEPTH: usize = 64;

/// A limit a file broke: where, and a message naming the limit.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Breach {
    pub line: usize,
    pub column: usize,
    pub message: String,
}

/// The first place `text` nests mappings and sequences deeper than
/// [`MAX_DEPTH`], if any. A text that does not parse is not judged here:
/// serde_yaml reports its syntax error with its own location.
pub fn depth_breach(text: &str) -> Option<Breach> {
    let mut parser = Parser::new_from_str(text);
    let mut depth = 0usize;
    let breach = |line: usize, col: usize| Breach {
        line: line.max(1),
        column: col + 1,
        message: format!(
            "mappings and sequences nest more than {MAX_DEPTH} levels deep here; \
             a definition file is limited to {MAX_DEPTH} levels"
        ),
    };
    loop {
        let (event, mark) = match parser.next_token() {
            Ok(next) => next,
            // yaml-rust2 gives up past 255 levels, possibly before it has
            // given the events of the first 64 (it looks ahead for keys).
            Err(e) if e.info().contains("recursion limit") => {
                return Some(breach(e.marker().line(), e.marker().col()));
            }
            Err(_) => return None,
        };
        match event {
            Event::SequenceStart(..) | Event::MappingStart(..) => {
                depth += 1;
                if depth > MAX_DEPTH {
                    return Some(breach(mark.line(), mark.col()));
                }
            }
            Event::SequenceEnd | Event::MappingEnd => depth = depth.saturating_sub(1),
            Event::StreamEnd => return None,
            _ => {}
        }
    }
}

/// The message for a file of `bytes` bytes, over [`MAX_FILE_BYTES`].
pub fn size_message(bytes: u64) -> String {
    format!(
        "the file is {} bytes; a definition file is limited to {} bytes (1 MiB)",
        crate::decimal::Dec::from_int(bytes as i64).grouped(),
        crate::decimal::Dec::from_int(MAX_FILE_BYTES as i64).grouped(),
    )
}

/// Line and column (1-based, in characters) of the byte at `offset` of
/// `bytes`, for the first byte that is not UTF-8: the text before it is
/// valid, so its characters can be counted.
pub fn position_of(bytes: &[u8], offset: usize) -> (usize, usize) {
    let before = String::from_utf8_lossy(&bytes[..offset.min(bytes.len())]);
    let line = before.matches('\n').count() + 1;
    let column = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
    (line, column)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_sample_shape_is_well_inside_the_depth() {
        let text = "metrics:\n  - name: a\n    measure: {agg: sum, expr: amount}\n";
        assert_eq!(depth_breach(text), None);
    }

    #[test]
    fn depth_is_located_at_the_first_level_past_the_limit() {
        // The document's mapping is level 1, so of 65 `[` on line 2 the
        // 64th is level 65: `description: ` is 13 columns, so the first `[`
        // is at column 14 and the 64th at 14 + 63 = 77.
        let text = format!(
            "domain: x\ndescription: {}{}\n",
            "[".repeat(65),
            "]".repeat(65)
        );
        let breach = depth_breach(&text).unwrap();
        assert_eq!((breach.line, breach.column), (2, 77));
        // Exactly 64 (the mapping of the document counts as the first level,
        // so 63 brackets) is accepted.
        let text = format!(
            "domain: x\ndescription: {}{}\n",
            "[".repeat(63),
            "]".repeat(63)
        );
        assert_eq!(depth_breach(&text), None);
    }

    #[test]
    fn a_hundred_thousand_levels_stop_at_the_limit() {
        let text = format!("a: {}{}", "{a: ".repeat(100_000), "}".repeat(100_000));
        let breach = depth_breach(&text).unwrap();
        // 1 (the document's mapping) + 63 `{a: ` = 64; the 64th `{` (the
        // 65th level) starts at column 4 + 63 × 4 = 256.
        assert_eq!((breach.line, breach.column), (1, 256));
    }

    #[test]
    fn past_the_parsers_own_limit_is_a_depth_breach_too() {
        // yaml-rust2 stops at 256 levels before giving any event of them;
        // that is past the limit all the same.
        let text = format!(
            "domain: x\ndescription: {}{}\n",
            "[".repeat(256),
            "]".repeat(256)
        );
        let breach = depth_breach(&text).unwrap();
        assert_eq!(breach.line, 2);
        assert!(breach.message.contains("64 levels"), "{}", breach.message);
    }

    #[test]
    fn positions_count_characters_not_bytes() {
        // "é" is two bytes and one character: the bad byte after "x: é" is
        // at line 2, column 5.
        let bytes = b"a: 1\nx: \xc3\xa9\xff";
        assert_eq!(position_of(bytes, 10), (2, 5));
    }
}
