//! What `stor` uploads, and the check that a stored file holds exactly that. Content must be
//! cheap to produce at GiB/s and still differ between files: one fixed 1 MiB block of noise,
//! repeated, with the file's identity and the block number stamped on the start of each block.

use crate::client::Transfer;
use std::fs::File;
use std::io::{self, Read, Write};
use std::path::Path;

/// The repeated unit.
pub const BLOCK: usize = 1 << 20;
/// Uploads go to the socket in slices of this size, so that progress is counted, and a stop
/// noticed, several times per block.
const SLICE: usize = 256 * 1024;
/// The stamp: magic, client, iteration (u32 each after the magic), block number (u64).
const MAGIC: &[u8; 8] = b"ftpbench";
const STAMP: usize = 24;

/// Which upload a file is: one per client and iteration.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FileId {
    pub client: u32,
    pub iteration: u32,
}

impl FileId {
    /// The file name on the server, relative to the session's working directory.
    pub fn name(self) -> String {
        format!("bench-stor-{}-{}.bin", self.client, self.iteration)
    }
}

pub struct Pattern {
    block: Vec<u8>,
}

impl Pattern {
    /// The same noise every time (xorshift with a fixed seed), so a file can be checked later
    /// by regenerating it; noise rather than zeros so nothing on the way can compress it.
    pub fn new() -> Pattern {
        let mut state = 0x9e37_79b9_7f4a_7c15u64;
        let block = (0..BLOCK)
            .map(|_| {
                state ^= state << 13;
                state ^= state >> 7;
                state ^= state << 17;
                (state >> 24) as u8
            })
            .collect();
        Pattern { block }
    }

    /// Block `index` of file `id`.
    fn block(&mut self, id: FileId, index: u64) -> &[u8] {
        self.block[..8].copy_from_slice(MAGIC);
        self.block[8..12].copy_from_slice(&id.client.to_le_bytes());
        self.block[12..16].copy_from_slice(&id.iteration.to_le_bytes());
        self.block[16..STAMP].copy_from_slice(&index.to_le_bytes());
        &self.block
    }

    /// Writes the `size` bytes of file `id` to `out`, handing each slice's length to
    /// `progress`, which returns whether to go on.
    pub fn write(
        &mut self,
        out: &mut impl Write,
        id: FileId,
        size: u64,
        mut progress: impl FnMut(usize) -> bool,
    ) -> io::Result<Transfer> {
        let mut written = 0u64;
        let mut index = 0u64;
        while written < size {
            let len = (size - written).min(BLOCK as u64) as usize;
            for slice in self.block(id, index)[..len].chunks(SLICE) {
                out.write_all(slice)?;
                written += slice.len() as u64;
                if !progress(slice.len()) {
                    return Ok(Transfer::Stopped(written));
                }
            }
            index += 1;
        }
        Ok(Transfer::Complete(written))
    }

    /// Whether the file at `path` is exactly file `id` of `size` bytes; the error says where
    /// it first differs.
    pub fn verify(&mut self, path: &Path, id: FileId, size: u64) -> Result<(), String> {
        let shown = path.display();
        let mut file = File::open(path).map_err(|e| format!("{shown}: {e}"))?;
        let actual = file.metadata().map_err(|e| format!("{shown}: {e}"))?.len();
        if actual != size {
            return Err(format!("{shown}: {actual} bytes, expected {size}"));
        }
        let mut read = vec![0u8; BLOCK];
        let mut offset = 0u64;
        let mut index = 0u64;
        while offset < size {
            let len = (size - offset).min(BLOCK as u64) as usize;
            file.read_exact(&mut read[..len]).map_err(|e| format!("{shown}: {e}"))?;
            let expected = &self.block(id, index)[..len];
            // Slice equality is one memcmp; the byte-by-byte search only runs on a mismatch.
            if read[..len] != *expected {
                let at = read[..len].iter().zip(expected).position(|(a, b)| a != b).unwrap_or(0);
                return Err(format!("{shown}: content differs at byte {}", offset + at as u64));
            }
            offset += len as u64;
            index += 1;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn files_differ_and_verify() {
        let dir = std::env::temp_dir().join(format!("ftpbench-pattern-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let (a, b) = (FileId { client: 0, iteration: 0 }, FileId { client: 0, iteration: 1 });
        let size = 2 * BLOCK as u64 + 12345;
        let mut pattern = Pattern::new();
        let mut bytes = Vec::new();
        let mut reported = 0u64;
        let done = pattern.write(&mut bytes, a, size, |n| {
            reported += n as u64;
            true
        });
        assert_eq!(done.unwrap(), Transfer::Complete(size));
        assert_eq!((bytes.len() as u64, reported), (size, size));
        let path = dir.join(a.name());
        std::fs::write(&path, &bytes).unwrap();
        assert_eq!(pattern.verify(&path, a, size), Ok(()));
        assert!(pattern.verify(&path, b, size).unwrap_err().contains("differs at byte 12"), "iteration stamped");
        assert!(pattern.verify(&path, a, size + 1).unwrap_err().contains("bytes, expected"));
        bytes[BLOCK + 100] ^= 1;
        std::fs::write(&path, &bytes).unwrap();
        assert!(pattern.verify(&path, a, size).unwrap_err().contains(&format!("byte {}", BLOCK + 100)));
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn a_stop_ends_the_upload_early() {
        let mut sink = Vec::new();
        let done = Pattern::new().write(&mut sink, FileId { client: 1, iteration: 2 }, 10 * BLOCK as u64, |_| false);
        assert_eq!(done.unwrap(), Transfer::Stopped(SLICE as u64));
    }
}
