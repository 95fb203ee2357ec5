//! One random input: raw bytes, a mutated corpus file, or a generated structure.
//!
//! Mutations are deliberately simple (no coverage feedback on stable Rust): a corpus
//! file, then one to eight edits: a bit flip, a byte set, random bytes inserted, a run
//! deleted or duplicated, a fragment of the format inserted, a truncation, or a run of
//! another corpus file spliced in. Every choice is drawn from the arbtest randomness,
//! so a seed replays the same input (against the same corpus).

use arbtest::arbitrary::{Result, Unstructured};

use crate::Target;

/// Most edits applied to one corpus file.
const MAX_EDITS: usize = 8;
/// Longest run inserted, deleted or duplicated by one edit.
const MAX_RUN: usize = 64;

/// Makes one input for `target` from `u`, mutating one of `seeds` most of the time.
pub fn input(u: &mut Unstructured<'_>, seeds: &[Vec<u8>], target: &Target) -> Result<Vec<u8>> {
    match u.int_in_range(0u8..=9)? {
        0 | 1 => raw(u),
        7..=9 => match target.generate {
            Some(generate) => generate(u),
            None => mutate_or_raw(u, seeds, target),
        },
        _ => mutate_or_raw(u, seeds, target),
    }
}

fn mutate_or_raw(u: &mut Unstructured<'_>, seeds: &[Vec<u8>], target: &Target) -> Result<Vec<u8>> {
    if seeds.is_empty() { raw(u) } else { mutate(u, seeds, target.dictionary) }
}

/// Random bytes: what is left of the randomness, or a prefix of it.
fn raw(u: &mut Unstructured<'_>) -> Result<Vec<u8>> {
    let len = u.int_in_range(0..=u.len())?;
    Ok(u.bytes(len)?.to_vec())
}

/// A corpus file with one to [`MAX_EDITS`] edits.
pub fn mutate(u: &mut Unstructured<'_>, seeds: &[Vec<u8>], dictionary: &[&str]) -> Result<Vec<u8>> {
    let mut data = u.choose(seeds)?.clone();
    for _ in 0..u.int_in_range(1..=MAX_EDITS)? {
        edit(u, &mut data, seeds, dictionary)?;
    }
    Ok(data)
}

fn edit(
    u: &mut Unstructured<'_>,
    data: &mut Vec<u8>,
    seeds: &[Vec<u8>],
    dictionary: &[&str],
) -> Result<()> {
    match u.int_in_range(0u8..=7)? {
        0 if !data.is_empty() => {
            let at = u.choose_index(data.len())?;
            data[at] ^= 1 << u.int_in_range(0u8..=7)?;
        }
        1 if !data.is_empty() => {
            let at = u.choose_index(data.len())?;
            data[at] = u.arbitrary()?;
        }
        2 => {
            let at = u.int_in_range(0..=data.len())?;
            let len = u.int_in_range(1..=8)?;
            let bytes = u.bytes(len.min(u.len()))?.to_vec();
            data.splice(at..at, bytes);
        }
        3 => {
            let (start, end) = run(u, data.len())?;
            data.drain(start..end);
        }
        4 => {
            let (start, end) = run(u, data.len())?;
            let copy = data[start..end].to_vec();
            let at = u.int_in_range(0..=data.len())?;
            data.splice(at..at, copy);
        }
        5 if !dictionary.is_empty() => {
            let at = u.int_in_range(0..=data.len())?;
            let fragment = u.choose(dictionary)?.as_bytes().to_vec();
            data.splice(at..at, fragment);
        }
        6 => data.truncate(u.int_in_range(0..=data.len())?),
        _ => {
            let other = u.choose(seeds)?;
            let (start, end) = run(u, other.len())?;
            let at = u.int_in_range(0..=data.len())?;
            let replaced = u.int_in_range(0..=(data.len() - at).min(MAX_RUN))?;
            data.splice(at..at + replaced, other[start..end].iter().copied());
        }
    }
    Ok(())
}

/// A run `start..end` of at most [`MAX_RUN`] bytes within `len`.
fn run(u: &mut Unstructured<'_>, len: usize) -> Result<(usize, usize)> {
    let start = u.int_in_range(0..=len)?;
    let end = start + u.int_in_range(0..=(len - start).min(MAX_RUN))?;
    Ok((start, end))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mutations_stay_in_bounds_and_change_the_seed_sometimes() {
        let seeds = vec![b"version: V1\nallocations: {}\n".to_vec(), Vec::new(), vec![0xA1]];
        let mut changed = 0;
        for round in 0u32..2000 {
            let entropy: Vec<u8> =
                (0..256u32).map(|i| (i.wrapping_mul(2_654_435_761) ^ round) as u8).collect();
            let mut u = Unstructured::new(&entropy);
            let mutated = mutate(&mut u, &seeds, &["key: ", "[", "\n"]).expect("enough entropy");
            changed += usize::from(!seeds.contains(&mutated));
        }
        assert!(changed > 1000, "only {changed} of 2000 mutations changed their seed");
    }
}
