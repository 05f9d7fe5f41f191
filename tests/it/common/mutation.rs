//! Byte-level damage to real files, for the property tests that feed a parser what a broken
//! download or a careless export produces: truncate, flip a byte, insert a token of the file's
//! format, delete a run of bytes, duplicate a line.

use proptest::prelude::*;

#[derive(Debug, Clone)]
pub enum Mutation {
    Truncate(usize),
    Flip(usize, u8),
    Insert(usize, &'static [u8]),
    Delete(usize, usize),
    DuplicateLine(usize),
}

/// Mutations that insert one of `tokens`, delete fewer than `max_delete` bytes and, when
/// `duplicate_lines`, repeat a line at the end; each kind equally likely.
pub fn mutation(
    tokens: Vec<&'static [u8]>,
    max_delete: usize,
    duplicate_lines: bool,
) -> BoxedStrategy<Mutation> {
    let mut kinds = vec![
        any::<usize>().prop_map(Mutation::Truncate).boxed(),
        (any::<usize>(), any::<u8>())
            .prop_map(|(i, b)| Mutation::Flip(i, b))
            .boxed(),
        (any::<usize>(), prop::sample::select(tokens))
            .prop_map(|(i, t)| Mutation::Insert(i, t))
            .boxed(),
        (any::<usize>(), 0..max_delete)
            .prop_map(|(i, n)| Mutation::Delete(i, n))
            .boxed(),
    ];
    if duplicate_lines {
        kinds.push(any::<usize>().prop_map(Mutation::DuplicateLine).boxed());
    }
    prop::strategy::Union::new(kinds).boxed()
}

/// Applies `m` to `bytes`; positions wrap around the length, so every mutation applies.
pub fn apply(bytes: &mut Vec<u8>, m: &Mutation) {
    let n = bytes.len().max(1);
    match m {
        Mutation::Truncate(i) => bytes.truncate(i % n),
        Mutation::Flip(i, b) => {
            if let Some(x) = bytes.get_mut(i % n) {
                *x ^= b | 1;
            }
        }
        Mutation::Insert(i, t) => {
            let at = (i % n).min(bytes.len());
            bytes.splice(at..at, t.iter().copied());
        }
        Mutation::Delete(i, len) => {
            let at = (i % n).min(bytes.len());
            let end = (at + len).min(bytes.len());
            bytes.drain(at..end);
        }
        Mutation::DuplicateLine(i) => {
            let lines: Vec<&[u8]> = bytes.split(|b| *b == b'\n').collect();
            let pick = lines[i % lines.len()].to_vec();
            bytes.push(b'\n');
            bytes.extend_from_slice(&pick);
        }
    }
}
