//! Pre-parse guards: what is refused before the recursive XML parser sees a byte.
//!
//! The size limit, DTD refusal and this nesting bound are what keep a hostile document from
//! pinning memory or blowing the stack. Nothing here may allocate in proportion to nesting or
//! recurse; it reads bytes and counts.

use super::ParseError;

/// An upper bound of the element nesting depth roxmltree would reach, computed without
/// recursion. It stops counting once `stop_above` is exceeded. Quotes are honoured inside tags
/// but a `<` ends a tag, as in roxmltree (which rejects `<` in attribute values), so this never
/// under-counts what the real parser would recurse into.
pub(super) fn max_nesting_depth(bytes: &[u8], stop_above: usize) -> usize {
    fn find(bytes: &[u8], from: usize, needle: &[u8]) -> Option<usize> {
        bytes
            .get(from..)?
            .windows(needle.len())
            .position(|w| w == needle)
            .map(|p| p + from)
    }
    let n = bytes.len();
    let (mut depth, mut max, mut i) = (0usize, 0usize, 0usize);
    while i < n {
        if bytes.get(i) != Some(&b'<') {
            i += 1;
            continue;
        }
        let rest = bytes.get(i..).unwrap_or_default();
        if rest.starts_with(b"<!--") {
            i = find(bytes, i + 4, b"-->").map_or(n, |p| p + 3);
        } else if rest.starts_with(b"<![CDATA[") {
            i = find(bytes, i + 9, b"]]>").map_or(n, |p| p + 3);
        } else if rest.starts_with(b"<?") {
            i = find(bytes, i + 2, b"?>").map_or(n, |p| p + 2);
        } else if rest.starts_with(b"</") {
            depth = depth.saturating_sub(1);
            i += 2;
        } else if rest.starts_with(b"<!") {
            i += 2;
        } else {
            let mut j = i + 1;
            let mut quote: Option<u8> = None;
            let mut self_closing = false;
            while let Some(&b) = bytes.get(j) {
                match quote {
                    Some(q) if b == q => quote = None,
                    Some(_) if b == b'<' => break,
                    Some(_) => {}
                    None => match b {
                        b'"' | b'\'' => quote = Some(b),
                        b'>' => {
                            self_closing = bytes.get(j.saturating_sub(1)) == Some(&b'/');
                            break;
                        }
                        b'<' => break,
                        _ => {}
                    },
                }
                j += 1;
            }
            if !self_closing {
                depth += 1;
                max = max.max(depth);
                if max > stop_above {
                    return max;
                }
            }
            i = if bytes.get(j) == Some(&b'>') {
                j + 1
            } else {
                j
            };
        }
    }
    max
}

/// reported at 1:1, which would point a reader at the wrong end of a truncated download).
pub(super) fn xml_error(e: roxmltree::Error, text: &str) -> ParseError {
    use roxmltree::Error as E;
    match e {
        E::DtdDetected => ParseError::DtdRefused,
        E::UnclosedRootNode | E::NoRootNode => {
            let line = text.matches('\n').count() + 1;
            let column = text.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
            ParseError::Xml(format!("{e} (the input ends at {line}:{column})"))
        }
        other => ParseError::Xml(other.to_string()),
    }
}
