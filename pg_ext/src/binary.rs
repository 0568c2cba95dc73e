//! Reading and building `jsonb` in its binary form, for the hot functions (`news2`,
//! `news2_total`), without a `serde_json::Value` in between.
//!
//! [`crate::jsonb::read`] walks a `jsonb` with Postgres's iterator into a `Value` (an allocation
//! per key, `numeric_out` per number, a guarded FFI call per token): right for every function,
//! too slow for a rule scored over millions of stored rows (docs/benchmarks.md). Here a flat
//! object is read straight from its bytes — the on-disk `jsonb` container format
//! (`src/include/utils/jsonb.h`, stable since 9.4 because it is stored on disk) and `numeric`'s
//! binary form (`src/backend/utils/adt/numeric.c`) — into typed fields, and a result is built
//! as a `JsonbValue` tree, already in `jsonb`'s key order, that one `JsonbValueToJsonb` call
//! encodes.
//!
//! The reader is a fast path, never the only path: whatever it does not recognise (a nested
//! value, a number with a fraction where a whole number is read, a number too large for the
//! exact decoding below, a value of the wrong type) makes it answer `None`, and the caller
//! reads the argument the general way, which accepts or refuses it with the usual error.

use pgrx::pg_sys;

#[cfg(target_endian = "big")]
compile_error!("careplane's binary jsonb reader assumes a little-endian varlena header");

const JB_CMASK: u32 = 0x0FFF_FFFF;
const JB_FSCALAR: u32 = 0x1000_0000;
const JB_FOBJECT: u32 = 0x2000_0000;
const JENTRY_OFFLENMASK: u32 = 0x0FFF_FFFF;
const JENTRY_TYPEMASK: u32 = 0x7000_0000;
const JENTRY_HAS_OFF: u32 = 0x8000_0000;
const JENTRY_ISSTRING: u32 = 0x0000_0000;
const JENTRY_ISNUMERIC: u32 = 0x1000_0000;
const JENTRY_ISBOOL_FALSE: u32 = 0x2000_0000;
const JENTRY_ISBOOL_TRUE: u32 = 0x3000_0000;
const JENTRY_ISNULL: u32 = 0x4000_0000;

/// The most members [`members`] reads from one object; a larger object is left to the general
/// reader.
pub const MAX_MEMBERS: usize = 32;

/// One member's value as stored.
#[derive(Debug, Clone, Copy)]
pub enum Scalar<'a> {
    Null,
    Bool(bool),
    /// The string's UTF-8 bytes (jsonb_in has checked them).
    String(&'a [u8]),
    /// A `numeric` datum's bytes, header included.
    Numeric(&'a [u8]),
    /// An array or object.
    Container,
}

fn u32_at(b: &[u8], at: usize) -> Option<u32> {
    Some(u32::from_ne_bytes(b.get(at..at + 4)?.try_into().ok()?))
}

/// Calls `f` with every member of the object stored in `container` (a `jsonb`'s bytes after
/// its varlena header), in storage order. `None` when the value is not an object, has more than
/// [`MAX_MEMBERS`] members, is not well formed, or `f` answered `None`.
pub fn members<'a>(container: &'a [u8], mut f: impl FnMut(&'a [u8], Scalar<'a>) -> Option<()>) -> Option<()> {
    let header = u32_at(container, 0)?;
    if header & JB_FOBJECT == 0 || header & JB_FSCALAR != 0 {
        return None;
    }
    let n = (header & JB_CMASK) as usize;
    if n > MAX_MEMBERS {
        return None;
    }
    let base_at = 4 + 8 * n;
    let data = container.get(base_at..)?;
    let entry = |i: usize| u32_at(container, 4 + 4 * i);
    // Each entry stores either its length or, every so often, its end offset (JENTRY_HAS_OFF);
    // the next entry starts where it ends. Keys come first (entries 0..n), then the values
    // (n..2n): one pass finds where the keys end, the next walks keys and values side by side.
    let next = |start: usize, e: u32| -> Option<(usize, usize, u32)> {
        let field = (e & JENTRY_OFFLENMASK) as usize;
        let end = if e & JENTRY_HAS_OFF != 0 { field } else { start + field };
        (end >= start && end <= data.len()).then_some((start, end, e & JENTRY_TYPEMASK))
    };
    let mut keys_end = 0usize;
    for i in 0..n {
        keys_end = next(keys_end, entry(i)?)?.1;
    }
    let (mut key_at, mut value_at) = (0usize, keys_end);
    for i in 0..n {
        let (ks, ke, ktype) = next(key_at, entry(i)?)?;
        let (vs, ve, vtype) = next(value_at, entry(n + i)?)?;
        (key_at, value_at) = (ke, ve);
        if ktype != JENTRY_ISSTRING {
            return None;
        }
        let value = match vtype {
            JENTRY_ISNULL => Scalar::Null,
            JENTRY_ISBOOL_FALSE => Scalar::Bool(false),
            JENTRY_ISBOOL_TRUE => Scalar::Bool(true),
            JENTRY_ISSTRING => Scalar::String(&data[vs..ve]),
            // A numeric starts at the next 4-byte boundary (the padding counts in its length).
            JENTRY_ISNUMERIC => Scalar::Numeric(data.get(((vs + 3) & !3)..ve)?),
            _ => Scalar::Container,
        };
        f(&data[ks..ke], value)?;
    }
    Some(())
}

/// A `numeric`'s sign, weight (of its first base-10,000 digit), display scale and digits.
struct NumericParts<'a> {
    negative: bool,
    weight: i32,
    dscale: u32,
    digits: &'a [u8],
}

impl NumericParts<'_> {
    fn digit(&self, i: usize) -> Option<u64> {
        let d = i16::from_ne_bytes(self.digits.get(2 * i..2 * i + 2)?.try_into().ok()?);
        (0..10_000).contains(&d).then_some(d as u64)
    }
    fn ndigits(&self) -> usize {
        self.digits.len() / 2
    }
}

/// Reads a `numeric` datum; `None` for NaN and the infinities, and for a header this reader
/// does not know (a compressed or external datum never occurs inside a `jsonb`).
fn numeric_parts(num: &[u8]) -> Option<NumericParts<'_>> {
    let first = *num.first()?;
    let (size, hdr) = if first & 0x01 == 0x01 {
        if first == 0x01 {
            return None; // external
        }
        ((first >> 1) as usize, 1)
    } else {
        let h = u32_at(num, 0)?;
        if h & 0x03 != 0 {
            return None; // compressed
        }
        ((h >> 2) as usize, 4)
    };
    let num = num.get(..size)?;
    let n_header = u16::from_ne_bytes(num.get(hdr..hdr + 2)?.try_into().ok()?);
    if n_header & 0xC000 == 0xC000 {
        return None; // NaN, ±Infinity
    }
    if n_header & 0x8000 != 0 {
        // Short format: sign, display scale and weight in the one header word.
        let weight = (n_header & 0x003F) as i32;
        Some(NumericParts {
            negative: n_header & 0x2000 != 0,
            weight: if n_header & 0x0040 != 0 { weight - 64 } else { weight },
            dscale: u32::from((n_header & 0x1F80) >> 7),
            digits: num.get(hdr + 2..)?,
        })
    } else {
        let weight = i16::from_ne_bytes(num.get(hdr + 2..hdr + 4)?.try_into().ok()?);
        Some(NumericParts {
            negative: n_header & 0x4000 != 0,
            weight: i32::from(weight),
            dscale: u32::from(n_header & 0x3FFF),
            digits: num.get(hdr + 4..)?,
        })
    }
}

/// A whole number written without a fraction (`numeric_out` would print no decimal point)
/// and below 10^20; `None` otherwise (`12.0`, fractions and huge numbers go the general way).
pub fn numeric_i64(num: &[u8]) -> Option<i64> {
    let p = numeric_parts(num)?;
    if p.dscale != 0 {
        return None;
    }
    if p.ndigits() == 0 {
        return Some(0);
    }
    if p.weight < 0 || p.weight > 4 || p.ndigits() > p.weight as usize + 1 {
        return None;
    }
    let mut v: i64 = 0;
    for i in 0..=p.weight as usize {
        let d = if i < p.ndigits() { p.digit(i)? } else { 0 };
        v = v.checked_mul(10_000)?.checked_add(d as i64)?;
    }
    Some(if p.negative { -v } else { v })
}

/// 10^0 … 10^22: every one exact in `f64`.
const POW10: [f64; 23] = [
    1e0, 1e1, 1e2, 1e3, 1e4, 1e5, 1e6, 1e7, 1e8, 1e9, 1e10, 1e11, 1e12, 1e13, 1e14, 1e15, 1e16, 1e17, 1e18, 1e19, 1e20,
    1e21, 1e22,
];

/// The `f64` nearest to the number, when it is written with at most 22 decimals and its digits
/// (without the decimal point) make an integer below 2^53: then `significand / 10^scale` is one
/// correctly rounded division of two exact values — the same `f64` that parsing the number's
/// text (`numeric_out`, then `serde_json`) gives. `None` otherwise (the general way decides).
pub fn numeric_f64(num: &[u8]) -> Option<f64> {
    let p = numeric_parts(num)?;
    if p.ndigits() == 0 {
        return Some(0.0);
    }
    if p.dscale > 22 {
        return None;
    }
    let mut significand: u64 = 0;
    for i in 0..p.ndigits() {
        let d = p.digit(i)?;
        // This digit's power of ten in value × 10^dscale.
        let power = 4 * (p.weight - i as i32) + p.dscale as i32;
        let term = if power >= 0 {
            d.checked_mul(10u64.checked_pow(power as u32)?)?
        } else {
            let div = 10u64.checked_pow((-power) as u32)?;
            if d % div != 0 {
                return None; // digits beyond the display scale: not what numeric stores
            }
            d / div
        };
        significand = significand.checked_add(term)?;
    }
    if significand >= 1 << 53 {
        return None;
    }
    let f = significand as f64 / POW10[p.dscale as usize];
    Some(if p.negative { -f } else { f })
}

// ------------------------------------------------------------------------------------------------
// Building a result.

/// A `numeric` datum of a small whole number, laid out as `int64_to_numeric` makes it (short
/// header, weight 0, one base-10,000 digit; zero has no digit).
#[repr(C, align(8))]
struct SmallNumeric([u8; 8]);

const fn small_numeric(n: u8) -> SmallNumeric {
    if n == 0 {
        SmallNumeric([6 << 2, 0, 0, 0, 0x00, 0x80, 0, 0])
    } else {
        SmallNumeric([8 << 2, 0, 0, 0, 0x00, 0x80, n, 0])
    }
}

static SMALL_NUMERICS: [SmallNumeric; 21] = {
    let mut out = [const { SmallNumeric([0; 8]) }; 21];
    let mut i = 0;
    while i < 21 {
        out[i] = small_numeric(i as u8);
        i += 1;
    }
    out
};

/// A `jsonb` number 0–20 (the NEWS2 scores and totals), from a static numeric datum.
pub fn small_int(n: u8) -> pg_sys::JsonbValue {
    let numeric = &SMALL_NUMERICS.get(usize::from(n)).expect("a NEWS2 score is at most 20").0;
    let mut v = pg_sys::JsonbValue { type_: pg_sys::jbvType::jbvNumeric, ..Default::default() };
    v.val.numeric = numeric.as_ptr().cast_mut().cast();
    v
}

pub fn null() -> pg_sys::JsonbValue {
    pg_sys::JsonbValue { type_: pg_sys::jbvType::jbvNull, ..Default::default() }
}

pub fn boolean(b: bool) -> pg_sys::JsonbValue {
    let mut v = pg_sys::JsonbValue { type_: pg_sys::jbvType::jbvBool, ..Default::default() };
    v.val.boolean = b;
    v
}

/// A string pointing at static text (`JsonbValueToJsonb` copies it).
pub fn text(s: &'static str) -> pg_sys::JsonbValue {
    let mut v = pg_sys::JsonbValue { type_: pg_sys::jbvType::jbvString, ..Default::default() };
    v.val.string.val = s.as_ptr().cast_mut().cast();
    v.val.string.len = i32::try_from(s.len()).expect("a static string is small");
    v
}

pub fn pair(key: &'static str, value: pg_sys::JsonbValue) -> pg_sys::JsonbPair {
    pg_sys::JsonbPair { key: text(key), value, order: 0 }
}

fn key_bytes(p: &pg_sys::JsonbPair) -> &[u8] {
    let s = unsafe { p.key.val.string };
    unsafe { std::slice::from_raw_parts(s.val.cast::<u8>(), s.len as usize) }
}

/// An object of `pairs` (distinct keys), put in `jsonb`'s key order first (shorter keys
/// first, then bytewise, as `pushJsonbValue` sorts them); `pairs` must outlive the value.
pub fn object(pairs: &mut [pg_sys::JsonbPair]) -> pg_sys::JsonbValue {
    pairs.sort_unstable_by(|a, b| {
        let (a, b) = (key_bytes(a), key_bytes(b));
        a.len().cmp(&b.len()).then_with(|| a.cmp(b))
    });
    for (i, p) in pairs.iter_mut().enumerate() {
        p.order = i as u32;
    }
    let mut v = pg_sys::JsonbValue { type_: pg_sys::jbvType::jbvObject, ..Default::default() };
    v.val.object.nPairs = pairs.len() as i32;
    v.val.object.pairs = pairs.as_mut_ptr();
    v
}

/// An array of `elems`; `elems` must outlive the value.
pub fn array(elems: &mut [pg_sys::JsonbValue]) -> pg_sys::JsonbValue {
    let mut v = pg_sys::JsonbValue { type_: pg_sys::jbvType::jbvArray, ..Default::default() };
    v.val.array.nElems = elems.len() as i32;
    v.val.array.elems = elems.as_mut_ptr();
    v.val.array.rawScalar = false;
    v
}

/// Encodes a tree built by the functions above as a `jsonb` datum (in the current memory
/// context).
pub fn encode(root: &mut pg_sys::JsonbValue) -> pg_sys::Datum {
    pg_sys::Datum::from(unsafe { pg_sys::JsonbValueToJsonb(root) })
}
