//! Wire codec for VPP's binary API: big-endian, bounds-checked readers and writers.
//! Every read checks the remaining length and every write checks the value fits; nothing here
//! may panic on input, whatever bytes arrive.

use thiserror::Error;

/// Why bytes could not be decoded into a value.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum DecodeError {
    /// The input ended before the value did.
    #[error("truncated: needed {needed} more bytes at offset {offset}, {available} available")]
    Truncated {
        offset: usize,
        needed: usize,
        available: usize,
    },
    /// A regular enum got a value that is not one of its variants.
    #[error("invalid value {value} for enum {ty}")]
    InvalidEnum { ty: &'static str, value: u64 },
    /// A flag set got bits that no flag defines.
    #[error("unknown bits {bits:#x} for flags {ty}")]
    InvalidFlags { ty: &'static str, bits: u64 },
    /// A bool was neither 0 nor 1.
    #[error("invalid bool byte {0}")]
    InvalidBool(u8),
    /// A string was not UTF-8.
    #[error("string field is not valid UTF-8")]
    InvalidUtf8,
    /// A count field announces more elements than the remaining bytes can hold.
    #[error("count {count} for {field} exceeds the {remaining} remaining bytes")]
    CountTooLarge {
        field: &'static str,
        count: usize,
        remaining: usize,
    },
    /// Bytes were left over after the whole message was decoded.
    #[error("{0} trailing bytes after message")]
    TrailingBytes(usize),
    /// The message id on the wire is not the one expected.
    #[error("unexpected message id {got} (expected {expected} for {name})")]
    UnexpectedMessageId {
        name: &'static str,
        expected: u16,
        got: u16,
    },
}

/// Why a value could not be encoded.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum EncodeError {
    /// A string does not fit its fixed-size field (one byte is kept for the NUL).
    #[error("string for {field} is {len} bytes, at most {max} fit")]
    StringTooLong {
        field: &'static str,
        len: usize,
        max: usize,
    },
    /// A string holds a NUL byte, which VPP would read as its end.
    #[error("string for {field} contains a NUL byte")]
    StringHasNul { field: &'static str },
    /// A variable array is longer than its count field can say.
    #[error("array {field} has {len} elements, its count field holds at most {max}")]
    CountOverflow {
        field: &'static str,
        len: usize,
        max: u64,
    },
    /// A union member encoded to more bytes than the union holds.
    #[error("union member is {len} bytes, the union holds {size}")]
    UnionOverflow { len: usize, size: usize },
}

/// Appends big-endian values to a growing buffer.
#[derive(Debug, Default, Clone)]
pub struct Writer {
    buf: Vec<u8>,
}

impl Writer {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn with_capacity(n: usize) -> Self {
        Self {
            buf: Vec::with_capacity(n),
        }
    }

    pub fn into_inner(self) -> Vec<u8> {
        self.buf
    }

    pub fn as_slice(&self) -> &[u8] {
        &self.buf
    }

    pub fn len(&self) -> usize {
        self.buf.len()
    }

    pub fn is_empty(&self) -> bool {
        self.buf.is_empty()
    }

    pub fn put_u8(&mut self, v: u8) {
        self.buf.push(v);
    }
    pub fn put_i8(&mut self, v: i8) {
        self.buf.extend_from_slice(&v.to_be_bytes());
    }
    pub fn put_u16(&mut self, v: u16) {
        self.buf.extend_from_slice(&v.to_be_bytes());
    }
    pub fn put_i16(&mut self, v: i16) {
        self.buf.extend_from_slice(&v.to_be_bytes());
    }
    pub fn put_u32(&mut self, v: u32) {
        self.buf.extend_from_slice(&v.to_be_bytes());
    }
    pub fn put_i32(&mut self, v: i32) {
        self.buf.extend_from_slice(&v.to_be_bytes());
    }
    pub fn put_u64(&mut self, v: u64) {
        self.buf.extend_from_slice(&v.to_be_bytes());
    }
    pub fn put_i64(&mut self, v: i64) {
        self.buf.extend_from_slice(&v.to_be_bytes());
    }
    /// VPP does not byte-swap floating point (its `clib_host_to_net_f64` is the identity), so
    /// an f64 travels in host order; every platform VPP runs on is little-endian.
    pub fn put_f64(&mut self, v: f64) {
        self.buf.extend_from_slice(&v.to_le_bytes());
    }
    pub fn put_bool(&mut self, v: bool) {
        self.buf.push(u8::from(v));
    }
    pub fn put_bytes(&mut self, b: &[u8]) {
        self.buf.extend_from_slice(b);
    }
    pub fn put_zeros(&mut self, n: usize) {
        self.buf.resize(self.buf.len() + n, 0);
    }

    /// `string name[N]`: at most N-1 bytes, NUL-padded to N.
    pub fn put_fixed_string(
        &mut self,
        field: &'static str,
        s: &str,
        size: usize,
    ) -> Result<(), EncodeError> {
        check_no_nul(field, s)?;
        let max = size.saturating_sub(1);
        if s.len() > max {
            return Err(EncodeError::StringTooLong {
                field,
                len: s.len(),
                max,
            });
        }
        self.put_bytes(s.as_bytes());
        self.put_zeros(size - s.len());
        Ok(())
    }

    /// `string name[]`: a u32 byte length, then the bytes (no NUL).
    pub fn put_var_string(&mut self, field: &'static str, s: &str) -> Result<(), EncodeError> {
        check_no_nul(field, s)?;
        let len = u32::try_from(s.len()).map_err(|_| EncodeError::CountOverflow {
            field,
            len: s.len(),
            max: u64::from(u32::MAX),
        })?;
        self.put_u32(len);
        self.put_bytes(s.as_bytes());
        Ok(())
    }
}

fn check_no_nul(field: &'static str, s: &str) -> Result<(), EncodeError> {
    if s.as_bytes().contains(&0) {
        return Err(EncodeError::StringHasNul { field });
    }
    Ok(())
}

/// Converts an array length into the width of its count field, refusing what does not fit.
pub fn count_to<T: TryFrom<usize>>(
    field: &'static str,
    len: usize,
    max: u64,
) -> Result<T, EncodeError> {
    T::try_from(len).map_err(|_| EncodeError::CountOverflow { field, len, max })
}

/// Reads big-endian values from a byte slice, never past its end.
#[derive(Debug, Clone)]
pub struct Reader<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    pub fn new(buf: &'a [u8]) -> Self {
        Self { buf, pos: 0 }
    }

    pub fn position(&self) -> usize {
        self.pos
    }

    pub fn remaining(&self) -> usize {
        self.buf.len() - self.pos
    }

    /// Fails unless every byte was consumed.
    pub fn finish(&self) -> Result<(), DecodeError> {
        match self.remaining() {
            0 => Ok(()),
            n => Err(DecodeError::TrailingBytes(n)),
        }
    }

    pub fn take(&mut self, n: usize) -> Result<&'a [u8], DecodeError> {
        let available = self.remaining();
        if n > available {
            return Err(DecodeError::Truncated {
                offset: self.pos,
                needed: n,
                available,
            });
        }
        let start = self.pos;
        self.pos += n;
        Ok(&self.buf[start..start + n])
    }

    fn array<const N: usize>(&mut self) -> Result<[u8; N], DecodeError> {
        let b = self.take(N)?;
        let mut out = [0u8; N];
        out.copy_from_slice(b);
        Ok(out)
    }

    pub fn u8(&mut self) -> Result<u8, DecodeError> {
        Ok(self.array::<1>()?[0])
    }
    pub fn i8(&mut self) -> Result<i8, DecodeError> {
        Ok(i8::from_be_bytes(self.array()?))
    }
    pub fn u16(&mut self) -> Result<u16, DecodeError> {
        Ok(u16::from_be_bytes(self.array()?))
    }
    pub fn i16(&mut self) -> Result<i16, DecodeError> {
        Ok(i16::from_be_bytes(self.array()?))
    }
    pub fn u32(&mut self) -> Result<u32, DecodeError> {
        Ok(u32::from_be_bytes(self.array()?))
    }
    pub fn i32(&mut self) -> Result<i32, DecodeError> {
        Ok(i32::from_be_bytes(self.array()?))
    }
    pub fn u64(&mut self) -> Result<u64, DecodeError> {
        Ok(u64::from_be_bytes(self.array()?))
    }
    pub fn i64(&mut self) -> Result<i64, DecodeError> {
        Ok(i64::from_be_bytes(self.array()?))
    }
    /// See [`Writer::put_f64`]: host (little-endian) order.
    pub fn f64(&mut self) -> Result<f64, DecodeError> {
        Ok(f64::from_le_bytes(self.array()?))
    }
    pub fn bool(&mut self) -> Result<bool, DecodeError> {
        match self.u8()? {
            0 => Ok(false),
            1 => Ok(true),
            b => Err(DecodeError::InvalidBool(b)),
        }
    }

    pub fn bytes_array<const N: usize>(&mut self) -> Result<[u8; N], DecodeError> {
        self.array()
    }

    /// `string name[N]`: N bytes, the text ends at the first NUL.
    pub fn fixed_string(&mut self, size: usize) -> Result<String, DecodeError> {
        let raw = self.take(size)?;
        let end = raw.iter().position(|&b| b == 0).unwrap_or(raw.len());
        utf8(&raw[..end])
    }

    /// `string name[]`: a u32 byte length, then the bytes.
    pub fn var_string(&mut self, field: &'static str) -> Result<String, DecodeError> {
        let len = self.u32()? as usize;
        self.check_count(field, len, 1)?;
        let raw = self.take(len)?;
        // VPP counts a trailing NUL in some strings it builds from C vectors.
        let end = raw.iter().position(|&b| b == 0).unwrap_or(raw.len());
        utf8(&raw[..end])
    }

    /// Refuses a count whose elements (each at least `min_elem_size` bytes) cannot fit in what
    /// is left, before anything is allocated for them.
    pub fn check_count(
        &self,
        field: &'static str,
        count: usize,
        min_elem_size: usize,
    ) -> Result<(), DecodeError> {
        let remaining = self.remaining();
        if count > remaining / min_elem_size.max(1) {
            return Err(DecodeError::CountTooLarge {
                field,
                count,
                remaining,
            });
        }
        Ok(())
    }
}

fn utf8(b: &[u8]) -> Result<String, DecodeError> {
    std::str::from_utf8(b)
        .map(str::to_owned)
        .map_err(|_| DecodeError::InvalidUtf8)
}

/// A value with a wire form.
pub trait Encode {
    fn encode(&self, w: &mut Writer) -> Result<(), EncodeError>;
}

/// A value that can be read back from its wire form.
pub trait Decode: Sized {
    fn decode(r: &mut Reader<'_>) -> Result<Self, DecodeError>;
}

macro_rules! prim {
    ($t:ty, $put:ident, $get:ident) => {
        impl Encode for $t {
            fn encode(&self, w: &mut Writer) -> Result<(), EncodeError> {
                w.$put(*self);
                Ok(())
            }
        }
        impl Decode for $t {
            fn decode(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
                r.$get()
            }
        }
    };
}
prim!(u8, put_u8, u8);
prim!(i8, put_i8, i8);
prim!(u16, put_u16, u16);
prim!(i16, put_i16, i16);
prim!(u32, put_u32, u32);
prim!(i32, put_i32, i32);
prim!(u64, put_u64, u64);
prim!(i64, put_i64, i64);
prim!(f64, put_f64, f64);
prim!(bool, put_bool, bool);

impl<T: Encode, const N: usize> Encode for [T; N] {
    fn encode(&self, w: &mut Writer) -> Result<(), EncodeError> {
        for x in self {
            x.encode(w)?;
        }
        Ok(())
    }
}

impl<T: Decode, const N: usize> Decode for [T; N] {
    fn decode(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        let mut v = Vec::with_capacity(N);
        for _ in 0..N {
            v.push(T::decode(r)?);
        }
        // The loop pushed exactly N elements, so the conversion cannot fail; map it anyway
        // rather than unwrap.
        v.try_into().map_err(|_| DecodeError::Truncated {
            offset: r.position(),
            needed: N,
            available: 0,
        })
    }
}

/// Encodes the elements of a variable array (its count was written by the caller).
pub fn encode_slice<T: Encode>(w: &mut Writer, items: &[T]) -> Result<(), EncodeError> {
    for x in items {
        x.encode(w)?;
    }
    Ok(())
}

/// Decodes `count` elements of a variable array after checking they can fit.
pub fn decode_vec<T: Decode>(
    r: &mut Reader<'_>,
    field: &'static str,
    count: usize,
    min_elem_size: usize,
) -> Result<Vec<T>, DecodeError> {
    r.check_count(field, count, min_elem_size)?;
    let mut v = Vec::with_capacity(count);
    for _ in 0..count {
        v.push(T::decode(r)?);
    }
    Ok(v)
}

/// Reads a union's bytes as one of its members (trailing padding is ignored).
pub fn union_get<T: Decode>(bytes: &[u8]) -> Result<T, DecodeError> {
    T::decode(&mut Reader::new(bytes))
}

/// Encodes a member into a union's bytes, zero-padded to the union's size.
pub fn union_set<T: Encode, const N: usize>(v: &T) -> Result<[u8; N], EncodeError> {
    let mut w = Writer::with_capacity(N);
    v.encode(&mut w)?;
    let b = w.as_slice();
    if b.len() > N {
        return Err(EncodeError::UnionOverflow {
            len: b.len(),
            size: N,
        });
    }
    let mut out = [0u8; N];
    out[..b.len()].copy_from_slice(b);
    Ok(out)
}

/// Encodes a value into a fresh buffer.
pub fn to_bytes<T: Encode + ?Sized>(v: &T) -> Result<Vec<u8>, EncodeError> {
    let mut w = Writer::new();
    v.encode(&mut w)?;
    Ok(w.into_inner())
}

/// Decodes a value that must use every byte.
pub fn from_bytes<T: Decode>(b: &[u8]) -> Result<T, DecodeError> {
    let mut r = Reader::new(b);
    let v = T::decode(&mut r)?;
    r.finish()?;
    Ok(v)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn integers_are_big_endian() {
        let mut w = Writer::new();
        w.put_u16(0x0102);
        w.put_u32(0x03040506);
        w.put_i32(-2);
        assert_eq!(w.as_slice(), &[1, 2, 3, 4, 5, 6, 0xff, 0xff, 0xff, 0xfe]);
        let mut r = Reader::new(w.as_slice());
        assert_eq!(r.u16().unwrap(), 0x0102);
        assert_eq!(r.u32().unwrap(), 0x03040506);
        assert_eq!(r.i32().unwrap(), -2);
        r.finish().unwrap();
    }

    #[test]
    fn truncated_input_is_an_error_not_a_panic() {
        let mut r = Reader::new(&[1, 2, 3]);
        assert!(matches!(r.u32(), Err(DecodeError::Truncated { .. })));
    }

    #[test]
    fn fixed_string_is_nul_padded_and_keeps_room_for_nul() {
        let mut w = Writer::new();
        w.put_fixed_string("s", "ab", 4).unwrap();
        assert_eq!(w.as_slice(), b"ab\0\0");
        assert!(matches!(
            w.put_fixed_string("s", "abcd", 4),
            Err(EncodeError::StringTooLong { .. })
        ));
        let mut r = Reader::new(b"ab\0x");
        assert_eq!(r.fixed_string(4).unwrap(), "ab");
    }

    #[test]
    fn var_string_has_u32_length_prefix() {
        let mut w = Writer::new();
        w.put_var_string("s", "hey").unwrap();
        assert_eq!(w.as_slice(), b"\0\0\0\x03hey");
        let mut r = Reader::new(w.as_slice());
        assert_eq!(r.var_string("s").unwrap(), "hey");
    }

    #[test]
    fn huge_count_is_refused_before_allocating() {
        let r = Reader::new(&[0; 8]);
        assert!(matches!(
            r.check_count("x", usize::MAX, 4),
            Err(DecodeError::CountTooLarge { .. })
        ));
    }

    #[test]
    fn bool_other_than_zero_or_one_is_refused() {
        assert_eq!(Reader::new(&[2]).bool(), Err(DecodeError::InvalidBool(2)));
    }
}
