//! Where a YAML node is, so that semantic errors can say file:line:column.
//!
//! serde_yaml reports positions only for syntax and type errors. A metric that
//! names an unknown column parses fine and is wrong only in meaning, so
//! validation needs a second, position-keeping view of the same text: a tree
//! of marks built from yaml-rust2's event stream, addressed by the same path
//! (keys and indices) that the serde types were read from.

use yaml_rust2::parser::{Event, MarkedEventReceiver, Parser};
use yaml_rust2::scanner::Marker;

/// One step of a path into a YAML document.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Step {
    Key(String),
    Index(usize),
}

impl From<&str> for Step {
    fn from(s: &str) -> Self {
        Step::Key(s.to_string())
    }
}

impl From<usize> for Step {
    fn from(i: usize) -> Self {
        Step::Index(i)
    }
}

/// Builds a path: `yaml_path!["metrics", 3, "filter"]` (an array of steps).
#[macro_export]
macro_rules! yaml_path {
    ($($step:expr),* $(,)?) => {
        [$($crate::spec::locate::Step::from($step)),*]
    };
}

/// A document's text and, once a position is asked for, its index. Most
/// runs never show a position, so most never parse the text twice.
pub struct LazyIndex {
    text: String,
    index: std::sync::OnceLock<YamlIndex>,
}

impl LazyIndex {
    pub fn new(text: String) -> LazyIndex {
        LazyIndex {
            text,
            index: std::sync::OnceLock::new(),
        }
    }

    /// As [`YamlIndex::locate`].
    pub fn locate(&self, path: &[Step]) -> (usize, usize) {
        self.index
            .get_or_init(|| YamlIndex::parse(&self.text))
            .locate(path)
    }
}

impl std::fmt::Debug for LazyIndex {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("LazyIndex")
    }
}

#[derive(Debug, Clone)]
enum Node {
    Scalar,
    Seq(Vec<Marked>),
    Map(Vec<(String, Marked)>),
}

#[derive(Debug, Clone)]
struct Marked {
    line: usize,
    column: usize,
    node: Node,
}

/// The positions of every node of one YAML document.
#[derive(Debug, Clone)]
pub struct YamlIndex {
    root: Option<Marked>,
}

impl YamlIndex {
    /// Parses `text`; a text that does not parse yields an index that locates
    /// everything at 1:1 (serde_yaml reports the syntax error itself).
    pub fn parse(text: &str) -> YamlIndex {
        let mut builder = Builder::default();
        let mut parser = Parser::new_from_str(text);
        if parser.load(&mut builder, false).is_err() {
            return YamlIndex { root: None };
        }
        YamlIndex {
            root: builder.done.into_iter().next(),
        }
    }

    /// Line and column (1-based) of the node at `path`, or of its deepest
    /// existing ancestor when the path goes further than the document.
    pub fn locate(&self, path: &[Step]) -> (usize, usize) {
        let Some(mut node) = self.root.as_ref() else {
            return (1, 1);
        };
        for step in path {
            let next = match (&node.node, step) {
                (Node::Map(entries), Step::Key(k)) => {
                    entries.iter().find(|(key, _)| key == k).map(|(_, v)| v)
                }
                (Node::Seq(items), Step::Index(i)) => items.get(*i),
                _ => None,
            };
            match next {
                Some(n) => node = n,
                None => break,
            }
        }
        (node.line, node.column)
    }
}

enum Frame {
    Seq(Marked),
    Map(Marked, Option<String>),
}

#[derive(Default)]
struct Builder {
    stack: Vec<Frame>,
    done: Vec<Marked>,
}

impl Builder {
    fn push_value(&mut self, value: Marked, scalar_text: Option<String>) {
        match self.stack.last_mut() {
            None => self.done.push(value),
            Some(Frame::Seq(seq)) => {
                if let Node::Seq(items) = &mut seq.node {
                    items.push(value);
                }
            }
            Some(Frame::Map(map, pending_key)) => match pending_key.take() {
                None => {
                    // yaml-rust2 marks a block mapping after its first key; the
                    // mapping is where that key is.
                    if matches!(&map.node, Node::Map(entries) if entries.is_empty()) {
                        map.line = value.line;
                        map.column = value.column;
                    }
                    *pending_key = Some(scalar_text.unwrap_or_default())
                }
                Some(key) => {
                    if let Node::Map(entries) = &mut map.node {
                        entries.push((key, value));
                    }
                }
            },
        }
    }
}

impl MarkedEventReceiver for Builder {
    fn on_event(&mut self, ev: Event, mark: Marker) {
        let at = |node| Marked {
            line: mark.line().max(1),
            column: mark.col() + 1,
            node,
        };
        match ev {
            Event::Scalar(text, ..) => self.push_value(at(Node::Scalar), Some(text)),
            Event::Alias(_) => self.push_value(at(Node::Scalar), Some(String::new())),
            Event::SequenceStart(..) => self.stack.push(Frame::Seq(at(Node::Seq(Vec::new())))),
            Event::MappingStart(..) => self.stack.push(Frame::Map(at(Node::Map(Vec::new())), None)),
            Event::SequenceEnd | Event::MappingEnd => {
                if let Some(frame) = self.stack.pop() {
                    let done = match frame {
                        Frame::Seq(m) | Frame::Map(m, _) => m,
                    };
                    self.push_value(done, None);
                }
            }
            _ => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const TEXT: &str = "domain: sales\nmetrics:\n  - name: bookings\n    filter: \"is_won\"\n  - name: win_rate\n    slices: [type, industry]\n";

    #[test]
    fn locates_values_by_path() {
        let index = YamlIndex::parse(TEXT);
        assert_eq!(index.locate(&yaml_path!["domain"]), (1, 9));
        assert_eq!(index.locate(&yaml_path!["metrics", 0, "filter"]), (4, 13));
        // `    slices: [type, industry]`: `industry` starts at column 20.
        assert_eq!(
            index.locate(&yaml_path!["metrics", 1, "slices", 1]),
            (6, 20)
        );
    }

    #[test]
    fn falls_back_to_the_deepest_existing_ancestor() {
        let index = YamlIndex::parse(TEXT);
        // metrics[1] exists (`  - name: win_rate`: its mapping starts at the
        // `name` key, line 5 column 5), its `filter` does not.
        assert_eq!(index.locate(&yaml_path!["metrics", 1, "filter"]), (5, 5));
    }
}
