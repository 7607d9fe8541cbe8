//! Value encodings of the sled backend: a format byte, then fields as
//! fixed-width big-endian numbers or 4-byte-length-prefixed bytes; decoding
//! never trusts a length and never panics.

use crate::StoreError;

/// The first byte of every encoded record value, for later migrations.
pub(crate) const VALUE_FORMAT: u8 = 1;

/// Builds one value.
pub(crate) struct Writer(Vec<u8>);

impl Writer {
    pub(crate) fn new() -> Self {
        Self(vec![VALUE_FORMAT])
    }

    /// A writer that reuses `buffer` (cleared first), so that a caller
    /// encoding many values allocates once.
    pub(crate) fn reusing(mut buffer: Vec<u8>) -> Self {
        buffer.clear();
        buffer.push(VALUE_FORMAT);
        Self(buffer)
    }

    pub(crate) fn bytes(mut self, bytes: &[u8]) -> Result<Self, StoreError> {
        let len = u32::try_from(bytes.len()).map_err(|_| {
            StoreError::backend(format!(
                "a value of {} bytes is larger than the 4 GiB a record can hold",
                bytes.len()
            ))
        })?;
        self.0.extend_from_slice(&len.to_be_bytes());
        self.0.extend_from_slice(bytes);
        Ok(self)
    }

    pub(crate) fn i64(mut self, value: i64) -> Self {
        self.0.extend_from_slice(&value.to_be_bytes());
        self
    }

    pub(crate) fn u32(mut self, value: u32) -> Self {
        self.0.extend_from_slice(&value.to_be_bytes());
        self
    }

    pub(crate) fn u8(mut self, value: u8) -> Self {
        self.0.push(value);
        self
    }

    pub(crate) fn finish(self) -> Vec<u8> {
        self.0
    }
}

/// Reads one value of a record family, checking every length.
pub(crate) struct Reader<'a> {
    rest: &'a [u8],
    family: &'static str,
}

impl<'a> Reader<'a> {
    pub(crate) fn new(value: &'a [u8], family: &'static str) -> Result<Self, StoreError> {
        let mut reader = Self {
            rest: value,
            family,
        };
        let format = reader.u8()?;
        if format != VALUE_FORMAT {
            return Err(StoreError::corrupt(
                family,
                format!("unknown value format {format}"),
            ));
        }
        Ok(reader)
    }

    fn take(&mut self, n: usize) -> Result<&'a [u8], StoreError> {
        if self.rest.len() < n {
            return Err(StoreError::corrupt(self.family, "value is truncated"));
        }
        let (head, tail) = self.rest.split_at(n);
        self.rest = tail;
        Ok(head)
    }

    fn array<const N: usize>(&mut self) -> Result<[u8; N], StoreError> {
        let mut out = [0; N];
        out.copy_from_slice(self.take(N)?);
        Ok(out)
    }

    pub(crate) fn u8(&mut self) -> Result<u8, StoreError> {
        Ok(self.array::<1>()?[0])
    }

    pub(crate) fn u32(&mut self) -> Result<u32, StoreError> {
        Ok(u32::from_be_bytes(self.array()?))
    }

    pub(crate) fn i64(&mut self) -> Result<i64, StoreError> {
        Ok(i64::from_be_bytes(self.array()?))
    }

    pub(crate) fn bytes(&mut self) -> Result<Vec<u8>, StoreError> {
        let len = usize::try_from(self.u32()?)
            .map_err(|_| StoreError::corrupt(self.family, "length does not fit in memory"))?;
        Ok(self.take(len)?.to_vec())
    }

    pub(crate) fn string(&mut self) -> Result<String, StoreError> {
        let family = self.family;
        String::from_utf8(self.bytes()?).map_err(|_| StoreError::corrupt(family, "id is not UTF-8"))
    }

    /// Ends decoding; trailing bytes mean the value is not what we think it is.
    pub(crate) fn finish(self) -> Result<(), StoreError> {
        if self.rest.is_empty() {
            Ok(())
        } else {
            Err(StoreError::corrupt(self.family, "value has trailing bytes"))
        }
    }
}

/// Fixed 8-byte big-endian numbers (counters, sequence numbers, state meta).
pub(crate) fn u64_at(bytes: &[u8], at: usize, family: &'static str) -> Result<u64, StoreError> {
    bytes
        .get(at..at + 8)
        .and_then(|b| <[u8; 8]>::try_from(b).ok())
        .map(u64::from_be_bytes)
        .ok_or_else(|| StoreError::corrupt(family, "number is truncated"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_round_trip_and_damaged_values_are_refused_without_panicking() {
        let value = Writer::new().bytes(b"key").unwrap().i64(-5).u8(7).finish();
        let mut reader = Reader::new(&value, "test").unwrap();
        assert_eq!(reader.bytes().unwrap(), b"key");
        assert_eq!(reader.i64().unwrap(), -5);
        assert_eq!(reader.u8().unwrap(), 7);
        reader.finish().unwrap();

        for cut in 0..value.len() {
            let result = Reader::new(&value[..cut], "test").and_then(|mut r| {
                r.bytes()?;
                r.i64()?;
                r.u8()?;
                r.finish()
            });
            assert!(matches!(result, Err(StoreError::Corrupt { .. })), "{cut}");
        }
        let mut huge = vec![VALUE_FORMAT];
        huge.extend_from_slice(&u32::MAX.to_be_bytes());
        assert!(Reader::new(&huge, "test").unwrap().bytes().is_err());
        assert!(u64_at(&[1, 2, 3], 0, "test").is_err());
    }
}
