//! Packing of n-grams into one `u128`: eight 16-bit lanes, the newest symbol in the lowest lane,
//! each lane holding `symbol + 1` so that an empty lane (0) marks the end of a shorter gram.

use chaperone_config::MAX_ORDER;

use crate::syscalls::Sym;

/// The start-of-thread marker: the context of a thread's first syscall.
pub const BOS: Sym = Sym::MAX - 1;

/// An n-gram (or a context) of up to [`MAX_ORDER`] symbols, packed.
pub type Gram = u128;

const LANE: u32 = 16;

/// The lane value of a symbol.
#[inline]
pub(crate) fn lane(sym: Sym) -> Gram {
    Gram::from(sym) + 1
}

/// The symbol in a lane value (`None` for the empty lane).
#[inline]
pub(crate) fn unlane(value: Gram) -> Option<Sym> {
    // Lanes are masked to 16 bits, so the value fits.
    Sym::try_from(value & 0xFFFF)
        .ok()
        .and_then(|v| v.checked_sub(1))
}

/// Keeps the newest `len` symbols of a gram.
#[inline]
pub(crate) fn truncate(gram: Gram, len: usize) -> Gram {
    if len >= MAX_ORDER {
        gram
    } else {
        gram & ((1u128 << (LANE as usize * len)) - 1)
    }
}

/// Appends a symbol as the newest one, keeping at most `len` symbols.
#[inline]
pub(crate) fn push(gram: Gram, sym: Sym, len: usize) -> Gram {
    truncate((gram << LANE) | lane(sym), len)
}

/// Number of symbols in a gram.
#[inline]
pub(crate) fn len(gram: Gram) -> usize {
    ((128 - gram.leading_zeros()).div_ceil(LANE)) as usize
}

/// Drops the oldest symbol (the suffix one shorter).
#[inline]
pub(crate) fn suffix(gram: Gram) -> Gram {
    let n = len(gram);
    if n == 0 {
        0
    } else {
        truncate(gram, n - 1)
    }
}

/// The newest symbol.
#[inline]
pub(crate) fn last(gram: Gram) -> Option<Sym> {
    unlane(gram)
}

/// All but the newest symbol (the context the last symbol followed).
#[inline]
pub(crate) fn context(gram: Gram) -> Gram {
    gram >> LANE
}

/// The symbols, oldest first.
pub fn symbols(gram: Gram) -> Vec<Sym> {
    (0..len(gram))
        .rev()
        .filter_map(|i| unlane(gram >> (LANE as usize * i)))
        .collect()
}

/// Packs symbols given oldest first (at most [`MAX_ORDER`]; older ones are dropped).
pub fn pack(symbols: &[Sym]) -> Gram {
    symbols.iter().fold(0, |g, &s| push(g, s, MAX_ORDER))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pack_and_unpack() {
        let g = pack(&[3, 0, 7]);
        assert_eq!(len(g), 3);
        assert_eq!(symbols(g), vec![3, 0, 7]);
        assert_eq!(last(g), Some(7));
        assert_eq!(symbols(context(g)), vec![3, 0]);
        assert_eq!(symbols(suffix(g)), vec![0, 7]);
        assert_eq!(len(0), 0);
        assert_eq!(last(0), None);
    }

    #[test]
    fn push_keeps_newest() {
        let mut g = 0;
        for s in 0..10 {
            g = push(g, s, 4);
        }
        assert_eq!(symbols(g), vec![6, 7, 8, 9]);
        let full = pack(&[1, 2, 3, 4, 5, 6, 7, 8, 9]);
        assert_eq!(symbols(full), vec![2, 3, 4, 5, 6, 7, 8, 9]);
        assert_eq!(symbols(pack(&[BOS, 1])), vec![BOS, 1]);
    }
}
