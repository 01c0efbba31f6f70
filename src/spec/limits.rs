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
/// [`MAX_DEPTH`], or carries a tag canon would ignore, if any. A text that does not parse is not judged here:
/// serde_yaml reports its syntax error with its own location.
pub fn depth_breach(text: &str) -> Option<Breach> {
    let mut parser = Parser::new_from_str(text);
    let mut depth = 0usize;
    // yaml-rust2's marks: 1-based lines (0 before the first), 0-based columns.
    let breach = |line: usize, col: usize| too_deep(line.max(1), col + 1);
    loop {
        let (event, mark) = match parser.next_token() {
            Ok(next) => next,
            // yaml-rust2 gives up past 255 levels, possibly before it has
            // given the events of the first 64 (it looks ahead for keys).
            Err(e) if e.info().contains("recursion limit") => {
                return Some(breach(e.marker().line(), e.marker().col()));
            }
            // yaml-rust2 refuses some texts libyaml (serde_yaml's parser)
            // reads, a tab inside a flow collection for one: the depth
            // must then be bounded without it.
            Err(_) => return rough_depth_breach(text),
        };
        let tag = match &event {
            Event::Scalar(_, _, _, tag)
            | Event::SequenceStart(_, tag)
            | Event::MappingStart(_, tag) => tag.as_ref(),
            _ => None,
        };
        if let Some(tag) = tag.filter(|t| !core_tag(t)) {
            return Some(Breach {
                line: mark.line().max(1),
                column: mark.col() + 1,
                message: format!(
                    "the tag `{}{}` means nothing to canon, which would read the value as if it were not there: write the value without it",
                    if tag.handle == "tag:yaml.org,2002:" {
                        "!!"
                    } else {
                        "!"
                    },
                    tag.suffix
                ),
            });
        }
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

/// The breach of [`MAX_DEPTH`] at `line`, `column` (1-based).
fn too_deep(line: usize, column: usize) -> Breach {
    Breach {
        line,
        column,
        message: format!(
            "mappings and sequences nest more than {MAX_DEPTH} levels deep here; \
             a definition file is limited to {MAX_DEPTH} levels"
        ),
    }
}

/// YAML's core tags (`!!str`, `!!int`, …) and the non-specific `!`, which
/// say what the value already is; any other tag (`!!binary`, `!custom`)
/// would be silently dropped by serde_yaml.
fn core_tag(tag: &yaml_rust2::parser::Tag) -> bool {
    (tag.handle == "tag:yaml.org,2002:"
        && ["str", "int", "float", "bool", "null", "map", "seq"].contains(&tag.suffix.as_str()))
        || (tag.handle.is_empty() && tag.suffix == "!")
}

/// The first place `text` nests deeper than [`MAX_DEPTH`] by a scan that
/// needs no parser: flow brackets outside quotes and comments, plus the
/// `- ` and `? ` indicators that open a line (`- - - x` nests three
/// sequences). It can only overestimate what a parser would see inside
/// quoted text it misreads, and it is used only for a text yaml-rust2 has
/// refused, so a valid definition never meets it.
fn rough_depth_breach(text: &str) -> Option<Breach> {
    let mut flow = 0usize;
    let mut quote: Option<char> = None;
    for (l, line) in text.lines().enumerate() {
        let mut chars = line.chars().enumerate().peekable();
        let mut opening = 0usize;
        let mut at_start = true;
        let mut previous = ' ';
        while let Some((c, ch)) = chars.next() {
            let depth = match quote {
                Some('\'') if ch == '\'' => {
                    if chars.peek().map(|(_, n)| *n) == Some('\'') {
                        chars.next();
                    } else {
                        quote = None;
                    }
                    None
                }
                Some('"') if ch == '\\' => {
                    chars.next();
                    None
                }
                Some('"') if ch == '"' => {
                    quote = None;
                    None
                }
                Some(_) => None,
                None => match ch {
                    '#' if previous.is_whitespace() => break,
                    '\'' | '"' if previous.is_whitespace() || "[{,".contains(previous) => {
                        quote = Some(ch);
                        None
                    }
                    '[' | '{' => {
                        flow += 1;
                        Some(flow + opening)
                    }
                    ']' | '}' => {
                        flow = flow.saturating_sub(1);
                        None
                    }
                    '-' | '?'
                        if at_start && chars.peek().is_none_or(|(_, n)| n.is_whitespace()) =>
                    {
                        opening += 1;
                        Some(flow + opening)
                    }
                    _ => None,
                },
            };
            if !ch.is_whitespace() && !matches!(ch, '-' | '?') {
                at_start = false;
            }
            previous = ch;
            if let Some(depth) = depth
                && depth > MAX_DEPTH
            {
                return Some(too_deep(l + 1, c + 1));
            }
        }
    }
    None
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

    /// A definition whose `description` is `n` nested, closed `[`.
    fn nested_description(n: usize) -> String {
        format!(
            "domain: x\ndescription: {}{}\n",
            "[".repeat(n),
            "]".repeat(n)
        )
    }

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
        let text = nested_description(65);
        let breach = depth_breach(&text).unwrap();
        assert_eq!((breach.line, breach.column), (2, 77));
        // Exactly 64 (the mapping of the document counts as the first level,
        // so 63 brackets) is accepted.
        let text = nested_description(63);
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
        let text = nested_description(256);
        let breach = depth_breach(&text).unwrap();
        assert_eq!(breach.line, 2);
        assert!(breach.message.contains("64 levels"), "{}", breach.message);
    }

    #[test]
    fn a_text_yaml_rust2_refuses_is_still_bounded() {
        // A tab inside a flow sequence: yaml-rust2 refuses it, libyaml
        // reads it (100,000 levels took 48 s there). Line 2 opens one `[`;
        // on line 3 (a tab, then the brackets) the 64th `[` is level 65,
        // at column 1 + 64 = 65.
        let text = format!(
            "domain: x\ndescription: [\n\t[{}{}]]\n",
            "[".repeat(100),
            "]".repeat(100)
        );
        let breach = depth_breach(&text).unwrap();
        assert_eq!((breach.line, breach.column), (3, 65));
        // Compact sequences on one line count too: `- ` × 70.
        let text = format!("a: [\n\t]\nb:\n{}x\n", "- ".repeat(70));
        let breach = rough_depth_breach(&text).unwrap();
        assert_eq!((breach.line, breach.column), (4, 129));
        // Brackets inside quotes and comments are text.
        let text = format!("a: '{}' # {}\n", "[".repeat(100), "{".repeat(100));
        assert_eq!(rough_depth_breach(&text), None);
    }

    #[test]
    fn tags_other_than_the_core_ones_are_refused_where_they_are() {
        assert_eq!(depth_breach("a: !!str 1\nb: !!int 2\nc: ! x\n"), None);
        // `description: !custom y`: located at its value, `y`, column 22.
        let breach = depth_breach("domain: x\ndescription: !custom y\n").unwrap();
        assert_eq!((breach.line, breach.column), (2, 22));
        assert!(
            breach.message.starts_with("the tag `!custom`"),
            "{}",
            breach.message
        );
        let breach = depth_breach("domain: !!binary aGVsbG8=\n").unwrap();
        assert!(
            breach.message.starts_with("the tag `!!binary`"),
            "{}",
            breach.message
        );
    }

    #[test]
    fn positions_count_characters_not_bytes() {
        // "é" is two bytes and one character: the bad byte after "x: é" is
        // at line 2, column 5.
        let bytes = b"a: 1\nx: \xc3\xa9\xff";
        assert_eq!(position_of(bytes, 10), (2, 5));
    }
}
