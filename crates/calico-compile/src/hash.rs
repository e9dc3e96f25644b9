//! A stable content hash for object keys (FNV-1a, 128 bits) over an explicit byte encoding.
//!
//! Keys must not change between builds or Rust versions (the reconciler persists them), so
//! nothing here goes through `std::hash`; every value is written field by field.

use std::net::IpAddr;

use ipnet::IpNet;

const OFFSET: u128 = 0x6c62272e07bb014262b821756295c58d;
const PRIME: u128 = 0x0000000001000000000000000000013B;

/// FNV-1a over explicitly encoded fields.
#[derive(Debug, Clone)]
pub(crate) struct StableHasher(u128);

impl Default for StableHasher {
    fn default() -> Self {
        StableHasher(OFFSET)
    }
}

impl StableHasher {
    pub(crate) fn bytes(&mut self, bytes: &[u8]) -> &mut Self {
        for b in bytes {
            self.0 ^= u128::from(*b);
            self.0 = self.0.wrapping_mul(PRIME);
        }
        self
    }

    pub(crate) fn u8(&mut self, v: u8) -> &mut Self {
        self.bytes(&[v])
    }

    pub(crate) fn u16(&mut self, v: u16) -> &mut Self {
        self.bytes(&v.to_be_bytes())
    }

    pub(crate) fn u32(&mut self, v: u32) -> &mut Self {
        self.bytes(&v.to_be_bytes())
    }

    /// Length-prefixed, so that `("ab","c")` and `("a","bc")` differ.
    pub(crate) fn str(&mut self, s: &str) -> &mut Self {
        // Truncation is harmless: the length only separates fields.
        self.u32(s.len() as u32).bytes(s.as_bytes())
    }

    pub(crate) fn addr(&mut self, a: &IpAddr) -> &mut Self {
        match a {
            IpAddr::V4(v4) => self.u8(4).bytes(&v4.octets()),
            IpAddr::V6(v6) => self.u8(6).bytes(&v6.octets()),
        }
    }

    pub(crate) fn net(&mut self, n: &IpNet) -> &mut Self {
        self.addr(&n.addr()).u8(n.prefix_len())
    }

    /// 24 hex digits (96 bits) are plenty to keep keys short and collisions out of reach for
    /// the number of objects one node holds.
    pub(crate) fn finish_hex(&self) -> String {
        format!("{:024x}", self.0 >> 32)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn length_prefix_separates_fields() {
        let mut g = StableHasher::default();
        g.str("ab").str("c");
        let mut k = StableHasher::default();
        k.str("a").str("bc");
        assert_ne!(g.finish_hex(), k.finish_hex());
        assert_eq!(g.finish_hex().len(), 24);
    }
}
