//! The one strict byte reader and its writer twin.
//!
//! Every parser in this crate reads through [`Reader`]: reads past the end are
//! [`ParseError::Truncated`], and [`Reader::finish`] turns leftover bytes into
//! [`ParseError::TrailingBytes`]. All integers are little-endian, as in the SGX ABI.

use crate::ParseError;

/// A strict little-endian cursor over a byte slice.
#[derive(Debug, Clone)]
pub struct Reader<'a> {
    buf: &'a [u8],
    pos: usize,
    /// Absolute offset of `buf[0]` in the outermost input, for error messages.
    base: usize,
}

impl<'a> Reader<'a> {
    /// Starts reading at the beginning of `buf`.
    pub fn new(buf: &'a [u8]) -> Self {
        Self {
            buf,
            pos: 0,
            base: 0,
        }
    }

    /// The absolute offset of the next byte to be read.
    pub fn offset(&self) -> usize {
        self.base + self.pos
    }

    /// Takes the next `n` bytes as a reader of their own; its errors keep absolute offsets.
    pub fn sub(&mut self, n: usize, field: &'static str) -> Result<Reader<'a>, ParseError> {
        let base = self.offset();
        let buf = self.take(n, field)?;
        Ok(Reader { buf, pos: 0, base })
    }

    /// How many bytes are left.
    pub fn remaining(&self) -> usize {
        self.buf.len().saturating_sub(self.pos)
    }

    /// Reads `n` bytes; `field` names what was being read in the error.
    pub fn take(&mut self, n: usize, field: &'static str) -> Result<&'a [u8], ParseError> {
        let end = self.pos.checked_add(n).filter(|&e| e <= self.buf.len());
        match end.and_then(|end| self.buf.get(self.pos..end).map(|s| (s, end))) {
            Some((s, end)) => {
                self.pos = end;
                Ok(s)
            }
            None => Err(ParseError::Truncated {
                field,
                offset: self.offset(),
                needed: n,
                available: self.remaining(),
            }),
        }
    }

    /// Reads a fixed-size array.
    pub fn array<const N: usize>(&mut self, field: &'static str) -> Result<[u8; N], ParseError> {
        let s = self.take(N, field)?;
        let mut out = [0u8; N];
        out.copy_from_slice(s);
        Ok(out)
    }

    /// Reads a little-endian `u16`.
    pub fn u16(&mut self, field: &'static str) -> Result<u16, ParseError> {
        self.array::<2>(field).map(u16::from_le_bytes)
    }

    /// Reads a little-endian `u32`.
    pub fn u32(&mut self, field: &'static str) -> Result<u32, ParseError> {
        self.array::<4>(field).map(u32::from_le_bytes)
    }

    /// Reads a little-endian `u64`.
    pub fn u64(&mut self, field: &'static str) -> Result<u64, ParseError> {
        self.array::<8>(field).map(u64::from_le_bytes)
    }

    /// Ends the read: any byte left over is [`ParseError::TrailingBytes`].
    pub fn finish(self) -> Result<(), ParseError> {
        match self.remaining() {
            0 => Ok(()),
            count => Err(ParseError::TrailingBytes {
                offset: self.offset(),
                count,
            }),
        }
    }
}

/// Appends little-endian fields to a buffer: the encoder twin of [`Reader`].
#[derive(Debug, Default, Clone)]
pub struct Writer {
    buf: Vec<u8>,
}

impl Writer {
    /// An empty writer with room for `cap` bytes.
    pub fn with_capacity(cap: usize) -> Self {
        Self {
            buf: Vec::with_capacity(cap),
        }
    }

    /// Appends raw bytes.
    pub fn bytes(&mut self, b: &[u8]) -> &mut Self {
        self.buf.extend_from_slice(b);
        self
    }

    /// Appends a little-endian `u16`.
    pub fn u16(&mut self, v: u16) -> &mut Self {
        self.bytes(&v.to_le_bytes())
    }

    /// Appends a little-endian `u32`.
    pub fn u32(&mut self, v: u32) -> &mut Self {
        self.bytes(&v.to_le_bytes())
    }

    /// Appends a little-endian `u64`.
    pub fn u64(&mut self, v: u64) -> &mut Self {
        self.bytes(&v.to_le_bytes())
    }

    /// The bytes written so far.
    pub fn len(&self) -> usize {
        self.buf.len()
    }

    /// Whether nothing was written.
    pub fn is_empty(&self) -> bool {
        self.buf.is_empty()
    }

    /// The finished buffer.
    pub fn into_vec(self) -> Vec<u8> {
        self.buf
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn short_input_is_truncated_with_offset() {
        let mut r = Reader::new(&[1, 2, 3]);
        assert_eq!(r.u16("a").unwrap(), 0x0201);
        assert_eq!(
            r.u32("b"),
            Err(ParseError::Truncated {
                field: "b",
                offset: 2,
                needed: 4,
                available: 1
            })
        );
    }

    #[test]
    fn huge_take_does_not_overflow() {
        let mut r = Reader::new(&[0; 4]);
        r.take(2, "x").unwrap();
        assert!(matches!(
            r.take(usize::MAX, "y"),
            Err(ParseError::Truncated { offset: 2, .. })
        ));
    }

    #[test]
    fn leftover_bytes_are_trailing() {
        let mut r = Reader::new(&[0; 5]);
        r.u32("x").unwrap();
        assert_eq!(
            r.finish(),
            Err(ParseError::TrailingBytes {
                offset: 4,
                count: 1
            })
        );
    }

    #[test]
    fn writer_is_little_endian() {
        let mut w = Writer::default();
        w.u16(0x0102).u32(0x03040506).u64(7);
        assert_eq!(w.into_vec(), vec![2, 1, 6, 5, 4, 3, 7, 0, 0, 0, 0, 0, 0, 0]);
    }
}
