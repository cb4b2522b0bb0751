//! sha256 of files and streams, as lowercase hex.
//!
//! [`HashingReader`] wraps any reader and hashes what passes through it, so a copy and
//! its digest are one pass (uv's `uv-extract` does the same); [`hash_file`] is that
//! reader drained.

use std::fs::File;
use std::io::{self, Read};

use camino::Utf8Path;
use sha2::{Digest, Sha256};

/// Large reads keep hashing at memory speed; 1 MiB is past the point of diminishing returns.
pub(crate) const HASH_BUFFER: usize = 1 << 20;

/// Hashes every byte read through it.
pub(crate) struct HashingReader<R> {
    inner: R,
    hasher: Sha256,
}

impl<R: Read> HashingReader<R> {
    pub(crate) fn new(inner: R) -> HashingReader<R> {
        HashingReader { inner, hasher: Sha256::new() }
    }

    /// The digest of everything read so far, as lowercase hex.
    pub(crate) fn finish(self) -> String {
        hex(&self.hasher.finalize())
    }
}

impl<R: Read> Read for HashingReader<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.hasher.update(&buf[..n]);
        Ok(n)
    }
}

/// The sha256 of a whole file, as lowercase hex.
pub fn hash_file(path: &Utf8Path) -> io::Result<String> {
    hash_reader(File::open(path)?)
}

/// The sha256 of everything `reader` gives, read in [`HASH_BUFFER`] pieces.
pub(crate) fn hash_reader(reader: impl Read) -> io::Result<String> {
    let mut reader = HashingReader::new(reader);
    let mut buf = vec![0u8; HASH_BUFFER];
    loop {
        match reader.read(&mut buf) {
            Ok(0) => break,
            Ok(_) => {}
            Err(err) if err.kind() == io::ErrorKind::Interrupted => {}
            Err(err) => return Err(err),
        }
    }
    Ok(reader.finish())
}

/// Lowercase hex of `bytes`.
pub fn hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut out = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        out.push(char::from(DIGITS[usize::from(b >> 4)]));
        out.push(char::from(DIGITS[usize::from(b & 0xf)]));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hex_is_lowercase_and_complete() {
        assert_eq!(hex(&[0x00, 0xab, 0xff]), "00abff");
    }

    #[test]
    fn hash_file_matches_the_known_digest_of_abc() {
        let dir = tempfile::tempdir().unwrap();
        let path = camino::Utf8PathBuf::try_from(dir.path().join("abc")).unwrap();
        std::fs::write(&path, b"abc").unwrap();
        assert_eq!(
            hash_file(&path).unwrap(),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
    }
}
