//! A bounds-checked cursor over a byte slice: the only place that reads primitives (SPEC §2).
//!
//! Every read checks the remaining length first and fails with a [`DecodeError`] naming what it
//! was reading; nothing here panics or allocates. Offsets in errors are `base + position`, so a
//! reader over a frame's body reports offsets counted from the start of the frame.

use crate::DecodeError;

/// A cursor over borrowed bytes.
pub(crate) struct Reader<'a> {
    /// The bytes being read. Invariant: `position <= bytes.len()`.
    bytes: &'a [u8],
    /// Index of the next unread byte.
    position: usize,
    /// Added to `position` in error offsets.
    base: usize,
}

impl<'a> Reader<'a> {
    /// A reader over `bytes` whose offsets are reported as `base + position`.
    pub(crate) fn new(bytes: &'a [u8], base: usize) -> Self {
        Reader {
            bytes,
            position: 0,
            base,
        }
    }

    /// Index of the next unread byte, relative to the start of `bytes`.
    #[inline]
    pub(crate) fn position(&self) -> usize {
        self.position
    }

    /// The offset of the next unread byte as reported in errors.
    #[inline]
    pub(crate) fn offset(&self) -> usize {
        self.base + self.position
    }

    /// Number of unread bytes.
    #[inline]
    pub(crate) fn remaining(&self) -> usize {
        self.bytes.len() - self.position
    }

    /// Takes the next `n` bytes.
    #[inline]
    pub(crate) fn take(&mut self, n: usize, what: &'static str) -> Result<&'a [u8], DecodeError> {
        if n > self.remaining() {
            return Err(DecodeError::Truncated {
                what,
                offset: self.offset(),
            });
        }
        let start = self.position;
        self.position += n;
        Ok(&self.bytes[start..self.position])
    }

    /// Takes exactly `N` bytes as an array.
    #[inline]
    fn take_array<const N: usize>(&mut self, what: &'static str) -> Result<[u8; N], DecodeError> {
        let slice = self.take(N, what)?;
        let mut array = [0u8; N];
        array.copy_from_slice(slice);
        Ok(array)
    }

    /// Reads one byte.
    #[inline]
    pub(crate) fn u8(&mut self, what: &'static str) -> Result<u8, DecodeError> {
        Ok(self.take_array::<1>(what)?[0])
    }

    /// Reads a little-endian `u32`.
    #[inline]
    pub(crate) fn u32(&mut self, what: &'static str) -> Result<u32, DecodeError> {
        Ok(u32::from_le_bytes(self.take_array(what)?))
    }

    /// Reads a little-endian `i32`.
    #[inline]
    pub(crate) fn i32(&mut self, what: &'static str) -> Result<i32, DecodeError> {
        Ok(i32::from_le_bytes(self.take_array(what)?))
    }

    /// Reads a little-endian `u64`.
    #[inline]
    pub(crate) fn u64(&mut self, what: &'static str) -> Result<u64, DecodeError> {
        Ok(u64::from_le_bytes(self.take_array(what)?))
    }

    /// Reads a little-endian `i64`.
    #[inline]
    pub(crate) fn i64(&mut self, what: &'static str) -> Result<i64, DecodeError> {
        Ok(i64::from_le_bytes(self.take_array(what)?))
    }

    /// Reads a non-negative `i32` count or length.
    #[inline]
    pub(crate) fn count(&mut self, what: &'static str) -> Result<usize, DecodeError> {
        let offset = self.offset();
        let value = self.i32(what)?;
        usize::try_from(value).map_err(|_| DecodeError::Negative {
            what,
            value,
            offset,
        })
    }

    /// Reads a length-prefixed byte string (`str` or blob): the range it occupies, relative to
    /// the start of `bytes`. The length is checked against the remaining bytes before anything is
    /// done with it.
    #[inline]
    pub(crate) fn length_prefixed(
        &mut self,
        what: &'static str,
    ) -> Result<std::ops::Range<usize>, DecodeError> {
        let offset = self.offset();
        let length = self.count(what)?;
        let start = self.position;
        // Report a value that runs past the end at the offset of its length prefix: where the
        // value starts.
        self.take(length, what)
            .map_err(|_| DecodeError::Truncated { what, offset })?;
        Ok(start..self.position)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_little_endian_and_reports_offsets() {
        let bytes = [1, 0, 0, 0, 0xff, 0xff, 0xff, 0xff, 7];
        let mut reader = Reader::new(&bytes, 100);
        assert_eq!(reader.u32("a"), Ok(1));
        assert_eq!(
            reader.count("string length"),
            Err(DecodeError::Negative {
                what: "string length",
                value: -1,
                offset: 104
            })
        );
        assert_eq!(reader.u8("b"), Ok(7));
        assert_eq!(
            reader.u8("c"),
            Err(DecodeError::Truncated {
                what: "c",
                offset: 109
            })
        );
    }

    #[test]
    fn huge_length_is_truncation_not_allocation() {
        let bytes = [0xff, 0xff, 0xff, 0x7f, 1, 2];
        let mut reader = Reader::new(&bytes, 0);
        assert_eq!(
            reader.length_prefixed("blob"),
            Err(DecodeError::Truncated {
                what: "blob",
                offset: 0
            })
        );
    }
}
