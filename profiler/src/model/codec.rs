//! The serialized form of [`NgramCounts`]: compact, versioned, validated on read.
//!
//! ```text
//! magic "CHPM" | version u16 LE | order u8 | 0u8 | events varint | threads varint | grams varint
//! trie: children varint, then per child: symbol varint, count varint, its trie (recursively)
//! ```
//! The grams form a prefix trie (every counted gram's prefix is itself counted, except the
//! start marker, stored with count 0), so each gram costs its last symbol and its count.

use chaperone_config::MAX_ORDER;
use rustc_hash::FxHashMap;

use super::key::{self, Gram};
use super::{ModelError, NgramCounts, Result};
use crate::syscalls::Sym;

const MAGIC: &[u8; 4] = b"CHPM";
/// The format version this build writes and reads.
pub const VERSION: u16 = 1;

/// Serializes counts.
pub fn encode(counts: &NgramCounts) -> Vec<u8> {
    // Trie order is the grams' symbols compared oldest first, a prefix before its extensions:
    // the numeric order of each gram shifted so that its oldest symbol is in the top lane (an
    // empty lane is 0, below every symbol's lane).
    let mut grams: Vec<(Gram, u64)> = counts
        .iter()
        .filter(|&(g, _)| g != 0)
        .map(|(g, c)| (g << (16 * (MAX_ORDER - key::len(g))), c))
        .collect();
    grams.sort_unstable_by_key(|&(g, _)| g);
    let mut out = Vec::with_capacity(16 + grams.len() * 4);
    out.extend_from_slice(MAGIC);
    out.extend_from_slice(&VERSION.to_le_bytes());
    // The order is at most MAX_ORDER (8).
    out.push(u8::try_from(counts.order()).unwrap_or(u8::MAX));
    out.push(0);
    put_varint(&mut out, counts.events());
    put_varint(&mut out, counts.threads());
    put_varint(&mut out, grams.len() as u64);
    encode_level(&grams, 0, &mut out);
    out
}

/// The lane value of the symbol at `depth` (0: the oldest) of a gram aligned as in [`encode`].
fn lane_at(aligned: Gram, depth: usize) -> Gram {
    (aligned >> (16 * (MAX_ORDER - 1 - depth))) & 0xFFFF
}

/// Writes the children of a node; every item of `items` extends the node's `depth` symbols.
fn encode_level(items: &[(Gram, u64)], depth: usize, out: &mut Vec<u8>) {
    let groups = || items.chunk_by(|a, b| lane_at(a.0, depth) == lane_at(b.0, depth));
    put_varint(out, groups().count() as u64);
    for group in groups() {
        let lane = lane_at(group[0].0, depth);
        put_varint(out, key::unlane(lane).map_or(0, u64::from));
        // A group starts with the node itself when that gram is counted (its next lane is empty).
        let (count, rest) = match group.first() {
            Some(&(g, c)) if depth + 1 == MAX_ORDER || lane_at(g, depth + 1) == 0 => {
                (c, &group[1..])
            }
            _ => (0, group),
        };
        put_varint(out, count);
        encode_level(rest, depth + 1, out);
    }
}

/// Reads counts written by [`encode`].
pub fn decode(bytes: &[u8]) -> Result<NgramCounts> {
    let mut r = Reader { bytes, pos: 0 };
    if r.take(4)? != MAGIC {
        return Err(ModelError::Magic);
    }
    let version = u16::from_le_bytes([r.byte()?, r.byte()?]);
    if version != VERSION {
        return Err(ModelError::Version {
            found: version,
            supported: VERSION,
        });
    }
    let order = usize::from(r.byte()?);
    if r.byte()? != 0 {
        return Err(r.corrupt("reserved byte is not zero"));
    }
    let events = r.varint()?;
    let threads = r.varint()?;
    let declared = r.varint()?;
    // Sized once for the grams the header declares, as far as the bytes left can hold (each
    // takes at least three): a forged count cannot make it reserve more than the input's size.
    let room = (bytes.len() - r.pos) / 3;
    let mut grams = FxHashMap::with_capacity_and_hasher(
        usize::try_from(declared).map_or(room, |d| d.min(room)),
        Default::default(),
    );
    let mut unigram_total = 0u64;
    decode_level(&mut r, 0, 0, order, &mut grams, &mut unigram_total)?;
    if r.pos != bytes.len() {
        return Err(r.corrupt("trailing bytes after the trie"));
    }
    if grams.len() as u64 != declared {
        return Err(r.corrupt("gram count does not match the header"));
    }
    if unigram_total != events {
        return Err(r.corrupt("single-syscall counts do not add up to the event count"));
    }
    // Every occurrence of a gram is one of its suffix too, so learning and merging never
    // break this; the scorer relies on it (each context's suffix is a context).
    let consistent = grams.iter().all(|(&gram, &count)| {
        key::len(gram) < 2 || grams.get(&key::suffix(gram)).is_some_and(|&c| c >= count)
    });
    if !consistent {
        return Err(r.corrupt("a gram is counted more often than its suffix"));
    }
    NgramCounts::from_parts(order, grams, events, threads)
}

fn decode_level(
    r: &mut Reader<'_>,
    prefix: Gram,
    depth: usize,
    order: usize,
    grams: &mut FxHashMap<Gram, u64>,
    unigram_total: &mut u64,
) -> Result<()> {
    let children = r.varint()?;
    if children > 0 && depth >= order.min(MAX_ORDER) {
        return Err(r.corrupt("gram longer than the model order"));
    }
    // Each child takes at least three bytes, which bounds a forged child count.
    if children > (r.bytes.len() - r.pos) as u64 / 3 + 1 {
        return Err(r.corrupt("more children than bytes left"));
    }
    let mut previous: Option<u64> = None;
    for _ in 0..children {
        let sym = r.varint()?;
        if sym > u64::from(Sym::MAX - 1) {
            return Err(r.corrupt("symbol out of range"));
        }
        if previous.is_some_and(|p| p >= sym) {
            return Err(r.corrupt("children not in ascending order"));
        }
        previous = Some(sym);
        let gram = (prefix << 16) | key::lane(Sym::try_from(sym).unwrap_or(Sym::MAX - 1));
        let count = r.varint()?;
        if count > 0 {
            grams.insert(gram, count);
            if depth == 0 {
                *unigram_total = unigram_total
                    .checked_add(count)
                    .ok_or_else(|| r.corrupt("counts overflow"))?;
            }
        }
        decode_level(r, gram, depth + 1, order, grams, unigram_total)?;
    }
    Ok(())
}

fn put_varint(out: &mut Vec<u8>, mut v: u64) {
    loop {
        // Masked to seven bits, so the conversion never fails.
        let low = u8::try_from(v & 0x7F).unwrap_or(0);
        v >>= 7;
        if v == 0 {
            out.push(low);
            return;
        }
        out.push(low | 0x80);
    }
}

struct Reader<'a> {
    bytes: &'a [u8],
    pos: usize,
}

impl Reader<'_> {
    fn corrupt(&self, reason: &'static str) -> ModelError {
        ModelError::Corrupt {
            offset: self.pos,
            reason,
        }
    }

    fn take(&mut self, n: usize) -> Result<&[u8]> {
        let end = self
            .pos
            .checked_add(n)
            .filter(|&e| e <= self.bytes.len())
            .ok_or_else(|| self.corrupt("unexpected end of data"))?;
        let s = &self.bytes[self.pos..end];
        self.pos = end;
        Ok(s)
    }

    fn byte(&mut self) -> Result<u8> {
        Ok(self.take(1)?[0])
    }

    fn varint(&mut self) -> Result<u64> {
        let mut v = 0u64;
        for shift in (0..64).step_by(7) {
            let b = self.byte()?;
            let bits = u64::from(b & 0x7F);
            if shift == 63 && bits > 1 {
                return Err(self.corrupt("varint overflows 64 bits"));
            }
            v |= bits << shift;
            if b & 0x80 == 0 {
                return Ok(v);
            }
        }
        Err(self.corrupt("varint longer than ten bytes"))
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::model::{NgramCounts, NgramScorer, Smoothing};

    fn sample() -> NgramCounts {
        let mut m = NgramCounts::new(4).unwrap();
        m.learn_sequence(&[1, 2, 3, 1, 2, 3, 300, 2]);
        m.learn_sequence(&[2, 2, 2]);
        m.learn_sequence(&[]);
        m
    }

    #[test]
    fn round_trip() {
        let m = sample();
        let bytes = encode(&m);
        assert_eq!(decode(&bytes).unwrap(), m);
    }

    #[test]
    fn empty_round_trip() {
        let m = NgramCounts::new(6).unwrap();
        assert_eq!(decode(&encode(&m)).unwrap(), m);
    }

    #[test]
    fn version_mismatch_is_reported() {
        let mut bytes = encode(&sample());
        bytes[4] = 9;
        let err = decode(&bytes).unwrap_err();
        assert!(
            matches!(
                err,
                ModelError::Version {
                    found: 9,
                    supported: VERSION
                }
            ),
            "{err:?}"
        );
        assert_eq!(
            err.to_string(),
            "model format version 9 is not supported (this build reads version 1)"
        );
    }

    #[test]
    fn bad_magic_and_truncation_are_errors() {
        let bytes = encode(&sample());
        assert!(matches!(decode(b"nope"), Err(ModelError::Magic)));
        for cut in 0..bytes.len() {
            assert!(decode(&bytes[..cut]).is_err(), "truncated at {cut} decoded");
        }
        let mut extra = bytes.clone();
        extra.push(0);
        let err = decode(&extra).unwrap_err();
        assert!(
            matches!(err, ModelError::Corrupt { offset, .. } if offset == bytes.len()),
            "the byte after the model: {err:?}"
        );
        assert!(
            err.to_string().contains(&format!("byte {}", bytes.len())),
            "the message gives the offset: {err}"
        );
    }

    #[test]
    fn a_forged_gram_count_is_an_error_not_an_allocation() {
        // The header declares u64::MAX grams before an empty trie: the table is sized by the
        // bytes that follow, and the count is refused.
        let mut bytes = MAGIC.to_vec();
        bytes.extend_from_slice(&VERSION.to_le_bytes());
        bytes.extend_from_slice(&[4, 0, 0, 0]);
        put_varint(&mut bytes, u64::MAX);
        bytes.push(0);
        let err = decode(&bytes).unwrap_err();
        assert!(
            err.to_string()
                .contains("gram count does not match the header"),
            "{err}"
        );
    }

    #[test]
    fn flipped_bytes_decode_to_valid_models_or_errors() {
        let bytes = encode(&sample());
        for i in 0..bytes.len() {
            for bit in 0..8 {
                let mut b = bytes.clone();
                b[i] ^= 1 << bit;
                // Whatever decodes must be a well-formed model that survives a round trip
                // and compiles into a scorer.
                if let Ok(m) = decode(&b) {
                    assert_eq!(decode(&encode(&m)).unwrap(), m);
                    NgramScorer::new(&m, Smoothing::default()).unwrap();
                }
            }
        }
    }

    /// A profile file learning cannot write, whose counts used to make the scorer panic.
    pub(crate) const FORGED: &[u8] = &[
        b'C', b'H', b'P', b'M', 1, 0, 3, 0, // magic, version 1, order 3, reserved
        1, 1, 2, // one event, one thread, two grams
        1, 1, 1, // one oldest symbol: 1, counted once
        1, 2, 0, // under it 2, [1, 2] not counted
        1, 3, 1, 0, // under that 3: [1, 2, 3] once, the end
    ];

    /// `sample` with its grams changed by `change`, encoded: a file learning cannot write.
    fn forged(change: impl FnOnce(&mut FxHashMap<Gram, u64>)) -> Vec<u8> {
        let m = sample();
        let mut grams: FxHashMap<Gram, u64> = m.iter().collect();
        change(&mut grams);
        encode(&NgramCounts::from_parts(m.order(), grams, m.events(), m.threads()).unwrap())
    }

    #[test]
    fn a_gram_counted_more_often_than_its_suffix_is_corrupt() {
        // Found by fuzzing (fuzz/, model_codec): such counts made the scorer panic.
        let missing = forged(|g| {
            g.remove(&key::pack(&[2, 3]));
        });
        let fewer = forged(|g| {
            g.insert(key::pack(&[2, 3]), 1);
        });
        // By hand: order 3, grams [1] and [1, 2, 3]; the context [1, 2] has no suffix [2].
        let by_hand = FORGED.to_vec();
        for bytes in [missing, fewer, by_hand] {
            let err = decode(&bytes).unwrap_err();
            assert!(
                err.to_string()
                    .contains("a gram is counted more often than its suffix"),
                "{err}"
            );
        }
    }
}
