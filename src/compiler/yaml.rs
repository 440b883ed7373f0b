//! A YAML document as a small tree in which every node keeps its position.
//!
//! Built from `saphyr-parser` events rather than a ready-made YAML value type because flow
//! needs three things those types drop: the line and column of every key and value (for
//! located errors), duplicate keys (a duplicate task name is an error, not "last one wins"),
//! and all problems of a file at once instead of the first one (serde stops at the first).

use std::collections::HashMap;

use saphyr_parser::{Event, Parser, ScalarStyle};

/// A position in the source: 1-based line and column (in characters).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Default)]
pub struct Pos {
    pub line: usize,
    pub col: usize,
}

/// A range in the source. `end` is exclusive; it may be on a later line than `start`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Span {
    pub start: Pos,
    pub end: Pos,
}

impl Span {
    fn from_parser(span: saphyr_parser::Span) -> Span {
        let pos = |m: saphyr_parser::Marker| Pos {
            line: m.line(),
            col: m.col() + 1,
        };
        Span {
            start: pos(span.start),
            end: pos(span.end),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Node {
    Scalar(Scalar),
    Seq(Vec<Node>, Span),
    Map(Vec<(Node, Node)>, Span),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Scalar {
    pub value: String,
    /// Plain scalars can mean null, booleans and numbers; quoted and block ones are strings.
    pub plain: bool,
    pub span: Span,
}

impl Node {
    pub fn span(&self) -> Span {
        match self {
            Node::Scalar(s) => s.span,
            Node::Seq(_, span) | Node::Map(_, span) => *span,
        }
    }

    /// `~`, `null` or nothing at all, unquoted.
    pub fn is_null(&self) -> bool {
        matches!(self, Node::Scalar(s) if s.plain && matches!(s.value.as_str(), "" | "~" | "null" | "Null" | "NULL"))
    }

    /// What a person would call this node in "expected X, found Y".
    pub fn kind_name(&self) -> &'static str {
        match self {
            Node::Scalar(_) if self.is_null() => "nothing",
            Node::Scalar(s) if s.plain && parse_bool(&s.value).is_some() => "a boolean",
            Node::Scalar(s) if s.plain && s.value.parse::<f64>().is_ok() => "a number",
            Node::Scalar(_) => "a string",
            Node::Seq(..) => "a list",
            Node::Map(..) => "a mapping",
        }
    }
}

/// YAML 1.2 core-schema booleans.
pub fn parse_bool(s: &str) -> Option<bool> {
    match s {
        "true" | "True" | "TRUE" => Some(true),
        "false" | "False" | "FALSE" => Some(false),
        _ => None,
    }
}

/// A YAML syntax error at a position.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SyntaxError {
    pub message: String,
    pub pos: Pos,
}

/// Aliases can expand a small file into a huge tree ("billion laughs"); no workflow needs this many.
const MAX_NODES: usize = 1_000_000;

/// Most bytes of text that aliases may add by expansion. Counting nodes is not enough: one
/// alias of an 8 MB string is one node, and 400 of them were 3.3 GB.
pub const MAX_ALIAS_BYTES: usize = 16 * 1024 * 1024;

/// Deepest nesting of lists and mappings flow accepts. A workflow needs five levels; the cap
/// keeps every recursive walk of the tree (clone, drop, counting) far from the stack's end,
/// whatever the input (`[[[[…` a hundred thousand deep would otherwise overflow it).
pub const MAX_DEPTH: usize = 64;

/// Parse one YAML document. An empty document gives `Ok(None)`.
pub fn parse(source: &str) -> Result<Option<Node>, SyntaxError> {
    let mut builder = Builder::default();
    for item in Parser::new_from_str(source) {
        let (event, span) = item.map_err(|e| SyntaxError {
            message: e.info().to_string(),
            pos: Pos {
                line: e.marker().line(),
                col: e.marker().col() + 1,
            },
        })?;
        builder.event(event, Span::from_parser(span))?;
    }
    Ok(builder.root)
}

enum Open {
    Seq(Vec<Node>, Span, usize),
    Map(Vec<(Node, Node)>, Option<Node>, Span, usize),
}

#[derive(Default)]
struct Builder {
    stack: Vec<Open>,
    anchors: HashMap<usize, Node>,
    root: Option<Node>,
    documents: usize,
    nodes: usize,
    /// Bytes of text added by expanding aliases.
    alias_bytes: usize,
}

impl Builder {
    fn event(&mut self, event: Event<'_>, span: Span) -> Result<(), SyntaxError> {
        match event {
            Event::DocumentStart(_) => {
                self.documents += 1;
                if self.documents > 1 {
                    return Err(SyntaxError {
                        message:
                            "a workflow file holds one YAML document; found a second one (`---`)"
                                .into(),
                        pos: span.start,
                    });
                }
            }
            Event::Scalar(value, style, anchor, _tag) => {
                let node = Node::Scalar(Scalar {
                    value: value.into_owned(),
                    plain: style == ScalarStyle::Plain,
                    span,
                });
                self.push(node, anchor, span)?;
            }
            Event::SequenceStart(anchor, _) => {
                self.open(span)?;
                self.stack.push(Open::Seq(Vec::new(), span, anchor))
            }
            Event::MappingStart(anchor, _) => {
                self.open(span)?;
                self.stack.push(Open::Map(Vec::new(), None, span, anchor))
            }
            Event::SequenceEnd | Event::MappingEnd => {
                let (node, anchor) = match self.stack.pop() {
                    Some(Open::Seq(items, start, anchor)) => (
                        Node::Seq(
                            items,
                            Span {
                                start: start.start,
                                end: span.end,
                            },
                        ),
                        anchor,
                    ),
                    Some(Open::Map(entries, _, start, anchor)) => (
                        Node::Map(
                            entries,
                            Span {
                                start: start.start,
                                end: span.end,
                            },
                        ),
                        anchor,
                    ),
                    None => return Ok(()),
                };
                self.push(node, anchor, span)?;
            }
            Event::Alias(id) => {
                let node = self.anchors.get(&id).cloned().ok_or_else(|| SyntaxError {
                    message: "this alias refers to an anchor that is not defined before it".into(),
                    pos: span.start,
                })?;
                let (nodes, bytes) = count(&node);
                self.nodes += nodes;
                self.alias_bytes = self.alias_bytes.saturating_add(bytes);
                if self.alias_bytes > MAX_ALIAS_BYTES {
                    return Err(SyntaxError {
                        message: format!(
                            "aliases here expand the document by more than {} MiB of text",
                            MAX_ALIAS_BYTES >> 20
                        ),
                        pos: span.start,
                    });
                }
                self.push(node, 0, span)?;
            }
            Event::Nothing | Event::StreamStart | Event::StreamEnd | Event::DocumentEnd => {}
        }
        Ok(())
    }

    fn open(&self, span: Span) -> Result<(), SyntaxError> {
        if self.stack.len() >= MAX_DEPTH {
            return Err(SyntaxError {
                message: format!(
                    "lists and mappings are nested more than {MAX_DEPTH} levels deep here"
                ),
                pos: span.start,
            });
        }
        Ok(())
    }

    fn push(&mut self, node: Node, anchor: usize, span: Span) -> Result<(), SyntaxError> {
        self.nodes += 1;
        if self.nodes > MAX_NODES {
            return Err(SyntaxError {
                message: format!("the document expands to more than {MAX_NODES} nodes (aliases?)"),
                pos: span.start,
            });
        }
        if anchor != 0 {
            self.anchors.insert(anchor, node.clone());
        }
        match self.stack.last_mut() {
            None => self.root = Some(node),
            Some(Open::Seq(items, ..)) => items.push(node),
            Some(Open::Map(entries, pending, ..)) => match pending.take() {
                None => *pending = Some(node),
                Some(key) => entries.push((key, node)),
            },
        }
        Ok(())
    }
}

/// The nodes of a tree and the bytes of its text (keys and values).
fn count(node: &Node) -> (usize, usize) {
    let add = |(n, b): (usize, usize), (m, c): (usize, usize)| (n + m, b.saturating_add(c));
    match node {
        Node::Scalar(s) => (1, s.value.len()),
        Node::Seq(items, _) => items.iter().map(count).fold((1, 0), add),
        Node::Map(entries, _) => entries
            .iter()
            .map(|(k, v)| add(count(k), count(v)))
            .fold((1, 0), add),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn root(src: &str) -> Node {
        match parse(src) {
            Ok(Some(node)) => node,
            other => panic!("expected a document, got {other:?}"),
        }
    }

    #[test]
    fn keeps_positions_and_duplicates() {
        let node = root("a: 1\nb:\n  - x\n  - 'y'\na: 2\n");
        let Node::Map(entries, _) = node else {
            panic!("not a map")
        };
        assert_eq!(entries.len(), 3, "duplicate keys are kept");
        let Node::Scalar(k) = &entries[2].0 else {
            panic!()
        };
        assert_eq!(
            (k.value.as_str(), k.span.start),
            ("a", Pos { line: 5, col: 1 })
        );
        let Node::Seq(items, _) = &entries[1].1 else {
            panic!()
        };
        let Node::Scalar(y) = &items[1] else { panic!() };
        assert_eq!((y.plain, y.span.start), (false, Pos { line: 4, col: 5 }));
    }

    #[test]
    fn aliases_expand() {
        let node = root("a: &x [1, 2]\nb: *x\n");
        let Node::Map(entries, _) = node else {
            panic!()
        };
        assert!(matches!(&entries[1].1, Node::Seq(items, _) if items.len() == 2));
    }

    #[test]
    fn billion_laughs_is_refused() {
        let mut src = String::from("a0: &a0 [x, x, x, x, x, x, x, x, x, x]\n");
        for i in 1..10 {
            let p = i - 1;
            src.push_str(&format!(
                "a{i}: &a{i} [*a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}]\n"
            ));
        }
        let err = parse(&src).expect_err("must refuse");
        assert!(err.message.contains("expands"), "{}", err.message);
    }

    #[test]
    fn aliases_of_large_text_are_refused() {
        let big = "x".repeat(1024 * 1024);
        let mut src = format!("a: &a {big}\nb:\n");
        for _ in 0..20 {
            src.push_str("  - *a\n");
        }
        let err = parse(&src).expect_err("must refuse");
        assert!(err.message.contains("MiB of text"), "{}", err.message);
        // Line 3 holds the first alias; the 17th alias passes 16 MiB.
        assert_eq!(err.pos.line, 19);
    }

    #[test]
    fn syntax_error_has_position() {
        let err = parse("a: [1, 2\nb: 3\n").expect_err("must fail");
        assert!(err.pos.line >= 1);
    }

    #[test]
    fn deep_nesting_is_refused_with_a_position() {
        for src in [
            "- ".repeat(10_000),
            "[".repeat(10_000),
            "{a: ".repeat(10_000),
        ] {
            let err = parse(&src).expect_err("must refuse");
            // saphyr's own limit on flow collections may come first.
            assert!(
                err.message.contains("nested") || err.message.contains("recursion limit"),
                "{}",
                err.message
            );
            assert_eq!(err.pos.line, 1);
        }
        let ok = format!("{}1{}", "[".repeat(MAX_DEPTH), "]".repeat(MAX_DEPTH));
        assert!(parse(&ok).is_ok());
    }

    #[test]
    fn empty_and_multi_document() {
        assert_eq!(parse("").ok(), Some(None));
        assert_eq!(parse("# only a comment\n").ok(), Some(None));
        assert!(parse("a: 1\n---\nb: 2\n").is_err());
    }
}
