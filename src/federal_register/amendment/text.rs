//! Text extraction: the reader-visible prose of an element, as the printed page shows it.
//!
//! Footnote markers, page breaks and GPO's pretty-printing are layout, not text, and must never
//! leak into a name; line elements (`LI`, `P`, `FP`) are kept apart as [`Segment`]s because the
//! entity cell uses them to tell aliases from addresses. The walk is iterative: the tree may be
//! hundreds deep.

use roxmltree::{Document, Node};

pub(super) fn is(node: Node, tag: &str) -> bool {
    node.is_element() && node.tag_name().name().eq_ignore_ascii_case(tag)
}

pub(super) fn has_ancestor(node: Node, tag: &str) -> bool {
    node.ancestors().skip(1).any(|a| is(a, tag))
}

/// Elements whose text is not part of the reader-visible prose of a cell: footnote markers and
/// page breaks (a `<PRTPAGE/>` can fall in the middle of a word).
const SKIPPED: &[&str] = &["SU", "FTREF", "PRTPAGE", "FTNT"];
/// Elements that start a new line of a cell.
const BLOCKS: &[&str] = &["LI", "P", "FP"];

#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Segment {
    /// True for text inside an `<LI>` (or another block), false for the cell's running text.
    pub(super) is_line: bool,
    pub(super) text: String,
}

/// The cell's text split at line elements, whitespace-collapsed, empty pieces dropped.
pub(super) fn segments(doc: &Document, node: Node) -> Vec<Segment> {
    let input = doc.input_text();
    let mut out: Vec<Segment> = Vec::new();
    let mut current = String::new();
    let mut is_line = false;
    let mut skip = 0usize;
    let flush = |out: &mut Vec<Segment>, current: &mut String, is_line: bool| {
        let text = collapse(current);
        if !text.is_empty() {
            out.push(Segment { is_line, text });
        }
        current.clear();
    };
    walk(node, |edge| match edge {
        Edge::Open(n) if n.is_element() => {
            let name = n.tag_name().name();
            if SKIPPED.iter().any(|s| s.eq_ignore_ascii_case(name)) {
                skip += 1;
            } else if skip == 0 && n != node && BLOCKS.iter().any(|s| s.eq_ignore_ascii_case(name))
            {
                flush(&mut out, &mut current, is_line);
                is_line = true;
            }
        }
        Edge::Close(n) if n.is_element() => {
            let name = n.tag_name().name();
            if SKIPPED.iter().any(|s| s.eq_ignore_ascii_case(name)) {
                skip = skip.saturating_sub(1);
            } else if skip == 0 && n != node && BLOCKS.iter().any(|s| s.eq_ignore_ascii_case(name))
            {
                flush(&mut out, &mut current, is_line);
                is_line = false;
            }
        }
        Edge::Open(n) if n.is_text() && skip == 0 => {
            current.push_str(&layout_free_text(input, n));
        }
        _ => {}
    });
    flush(&mut out, &mut current, is_line);
    out
}

#[derive(Clone, Copy)]
enum Edge<'a, 'i> {
    Open(Node<'a, 'i>),
    Close(Node<'a, 'i>),
}

/// Depth-first walk of `root`'s subtree without recursion (the tree may be hundreds deep).
fn walk<'a, 'i>(root: Node<'a, 'i>, mut f: impl FnMut(Edge<'a, 'i>)) {
    let mut cur = root;
    f(Edge::Open(cur));
    loop {
        if let Some(child) = cur.first_child() {
            cur = child;
            f(Edge::Open(cur));
            continue;
        }
        loop {
            f(Edge::Close(cur));
            if cur == root {
                return;
            }
            if let Some(sibling) = cur.next_sibling() {
                cur = sibling;
                f(Edge::Open(cur));
                break;
            }
            match cur.parent() {
                Some(p) => cur = p,
                None => return,
            }
        }
    }
}

pub(super) fn flat_text(doc: &Document, node: Node) -> String {
    let parts: Vec<String> = segments(doc, node).into_iter().map(|s| s.text).collect();
    parts.join(" ")
}

pub(super) fn collapse(s: &str) -> String {
    s.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// The text of one text node with pretty-printing removed.
///
/// GPO's bulk XML is indented: every child element starts a new line, so `Tech<PRTPAGE/>nology`
/// arrives as `Tech\n    <PRTPAGE/>\n    nology` and `the <E>X</E> (also` as
/// `the \n    <E>X</E>\n     (also`. A pretty-printer only ever adds a newline plus the
/// indentation at the edges of a text node, keeping the original spaces; so a newline at an edge
/// is layout (dropped, keeping only indentation beyond the neighbouring element's column), while
/// a newline between two words of the same text node is a real space.
fn layout_free_text(input: &str, text_node: Node) -> String {
    let raw = text_node.text().unwrap_or_default();
    if !raw.contains('\n') {
        return raw.to_string();
    }
    let is_ws = |c: char| c == ' ' || c == '\t' || c == '\r' || c == '\n';
    let core = raw.trim_matches(is_ws);
    let lead = raw
        .get(..raw.len() - raw.trim_start_matches(is_ws).len())
        .unwrap_or_default();
    let trail = raw
        .get(raw.trim_end_matches(is_ws).len()..)
        .unwrap_or_default();

    let column_of = |n: Option<Node>| -> Option<usize> {
        let n = n.filter(|n| n.is_element())?;
        line_column(input, n.range().start)
    };
    let prev = text_node.prev_sibling();
    let next = text_node.next_sibling();

    let mut out = String::new();
    if core.is_empty() {
        // Only layout between two elements: keep the spaces written before the line break and
        // any indentation beyond the next element's column.
        out.push_str(before_first_newline(raw));
        if let Some(col) = column_of(next) {
            out.push_str(&" ".repeat(after_last_newline(raw).saturating_sub(col)));
        }
        return out;
    }
    if lead.contains('\n') {
        out.push_str(before_first_newline(lead));
        match (prev, column_of(prev).or_else(|| column_of(next))) {
            // Text opening its parent: leading space is trimmed later anyway.
            (None, _) => {}
            (Some(_), Some(col)) => {
                out.push_str(&" ".repeat(after_last_newline(lead).saturating_sub(col)));
            }
            // A hand-written newline after an inline element: a real space.
            (Some(_), None) => out.push(' '),
        }
    } else {
        out.push_str(lead);
    }
    out.push_str(&core.replace(['\n', '\r'], " "));
    if trail.contains('\n') {
        if next.is_some() || column_of(prev).is_some() {
            out.push_str(before_first_newline(trail));
        } else {
            out.push(' ');
        }
    } else {
        out.push_str(trail);
    }
    out
}

fn before_first_newline(s: &str) -> &str {
    s.split('\n')
        .next()
        .unwrap_or_default()
        .trim_end_matches('\r')
}

fn after_last_newline(s: &str) -> usize {
    s.rsplit('\n')
        .next()
        .map(|t| t.chars().take_while(|c| *c == ' ' || *c == '\t').count())
        .unwrap_or(0)
}

/// The column of `pos` if only spaces or tabs precede it on its line.
fn line_column(input: &str, pos: usize) -> Option<usize> {
    let before = input.get(..pos)?;
    let line_start = before.rfind('\n').map_or(0, |p| p + 1);
    let prefix = before.get(line_start..)?;
    prefix
        .chars()
        .all(|c| c == ' ' || c == '\t')
        .then(|| prefix.chars().count())
}
