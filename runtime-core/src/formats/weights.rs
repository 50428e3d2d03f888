//! The weights file: every constant tensor of a compiled model, written by the compiler beside the
//! generated code and loaded by it at start-up, tied to that code by the model hash.
//!
//! Layout, all integers little-endian:
//!
//! ```text
//! magic        8 bytes  b"RNXTWGT\0"
//! version      u32      FORMAT_VERSION
//! reserved     u32      0
//! model_hash   u64      MODEL_HASH of the generated code this file belongs to
//! count        u64      number of tensors
//! table        count ×  { name_len u32, name bytes, rank u32, dims u64 × rank, offset u64, len u64 }
//! padding      zeros up to the first tensor's offset
//! data         f32 LE; each tensor starts at a multiple of 64 bytes from the start of the file
//! checksum     u32      CRC-32 (IEEE, as zlib computes it) of every byte before it
//! ```
//!
//! The checksum only guards against corruption (a bad copy, a truncated download), so it is the
//! fast CRC-32 of `crc32fast`; the model hash is a separate identity (`crate::formats::hash`).

use std::io::{Read, Write};
use std::path::{Path, PathBuf};

use crate::exec::buffer::Buffer;

/// The file's first eight bytes.
pub const MAGIC: [u8; 8] = *b"RNXTWGT\0";
/// The format version this runtime reads and writes. Version 1 ended with an FNV-1a 64 checksum;
/// version 2 ends with a CRC-32.
pub const FORMAT_VERSION: u32 = 2;
/// Alignment of each tensor's data, in bytes from the start of the file.
pub const ALIGN: usize = 64;

const HEADER_LEN: usize = 8 + 4 + 4 + 8 + 8;
const CHECKSUM_LEN: usize = 4;
const MAX_RANK: usize = 8;
const MAX_NAME: usize = 4096;

/// Why a weights file could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    #[error("cannot read weights file {path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("weights file is truncated: {0}")]
    Truncated(String),
    #[error("not a resnext weights file (bad magic bytes {0:02x?})")]
    BadMagic([u8; 8]),
    #[error(
        "unsupported weights file format version {found}: this runtime reads version {FORMAT_VERSION}; {}",
        version_advice(*.found)
    )]
    UnsupportedVersion { found: u32 },
    #[error(
        "weights file is corrupt: checksum {found:#010x} does not match the contents ({computed:#010x})"
    )]
    ChecksumMismatch { found: u32, computed: u32 },
    #[error(
        "weights file belongs to another model: its model hash is {found:#018x}, the code expects {expected:#018x}"
    )]
    HashMismatch { expected: u64, found: u64 },
    #[error("weights file has a bad tensor table: {0}")]
    BadTable(String),
    #[error("weights file has {found} tensors, the model needs {expected}")]
    TensorCount { expected: usize, found: usize },
}

/// What to do about a weights file of another format version.
fn version_advice(found: u32) -> String {
    let release = env!("CARGO_PKG_VERSION");
    if found < FORMAT_VERSION {
        format!(
            "the file was written by an older resnextc: rebuild the model with resnextc {release}, \
             the compiler of this runtime"
        )
    } else {
        format!(
            "the file was written by a newer resnextc: rebuild the model with resnextc {release}, \
             or update resnext-runtime to the compiler's release"
        )
    }
}

/// The checksum a weights file ends with: CRC-32 of `body`, every byte before the checksum.
pub fn checksum(body: &[u8]) -> u32 {
    crc32fast::hash(body)
}

/// Why a weights file could not be written.
#[derive(Debug, thiserror::Error)]
pub enum WriteError {
    #[error("tensor `{name}`: dims {dims:?} hold {expected} elements, data has {actual}")]
    Length {
        name: String,
        dims: Vec<usize>,
        expected: usize,
        actual: usize,
    },
    #[error(
        "tensor `{name}`: rank {rank} is above the limit {MAX_RANK}, or the name is longer than {MAX_NAME} bytes"
    )]
    Limits { name: String, rank: usize },
    #[error("cannot write weights file: {0}")]
    Io(#[from] std::io::Error),
    #[error("the weights written in memory do not load back: {0}")]
    Reload(#[from] LoadError),
}

/// One entry of the tensor table.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TensorInfo {
    pub name: String,
    pub dims: Vec<usize>,
    /// Byte offset of the data from the start of the file.
    pub offset: u64,
    /// Number of f32 elements.
    pub len: u64,
}

/// Builds a weights file from borrowed tensors; used by the compiler.
#[derive(Debug)]
pub struct WeightsWriter<'a> {
    model_hash: u64,
    tensors: Vec<(String, Vec<usize>, &'a [f32])>,
}

impl<'a> WeightsWriter<'a> {
    pub fn new(model_hash: u64) -> WeightsWriter<'a> {
        WeightsWriter {
            model_hash,
            tensors: Vec::new(),
        }
    }

    /// Adds a tensor and returns its index, the one `Weights::tensor` takes.
    pub fn add(
        &mut self,
        name: impl Into<String>,
        dims: &[usize],
        data: &'a [f32],
    ) -> Result<usize, WriteError> {
        let name = name.into();
        let expected: usize = dims.iter().product();
        if expected != data.len() {
            return Err(WriteError::Length {
                name,
                dims: dims.to_vec(),
                expected,
                actual: data.len(),
            });
        }
        if dims.len() > MAX_RANK || name.len() > MAX_NAME {
            return Err(WriteError::Limits {
                name,
                rank: dims.len(),
            });
        }
        self.tensors.push((name, dims.to_vec(), data));
        Ok(self.tensors.len() - 1)
    }

    /// The table as it will be written (names, dims, offsets).
    pub fn table(&self) -> Vec<TensorInfo> {
        let table_len: usize = self
            .tensors
            .iter()
            .map(|(name, dims, _)| 4 + name.len() + 4 + 8 * dims.len() + 16)
            .sum();
        let mut offset = (HEADER_LEN + table_len).next_multiple_of(ALIGN);
        self.tensors
            .iter()
            .map(|(name, dims, data)| {
                let info = TensorInfo {
                    name: name.clone(),
                    dims: dims.clone(),
                    offset: offset as u64,
                    len: data.len() as u64,
                };
                offset = (offset + 4 * data.len()).next_multiple_of(ALIGN);
                info
            })
            .collect()
    }

    /// Writes the whole file to `out`.
    pub fn write_to(&self, out: impl Write) -> Result<(), WriteError> {
        let mut out = HashingWriter {
            inner: std::io::BufWriter::new(out),
            hash: crc32fast::Hasher::new(),
            written: 0,
        };
        out.put(&MAGIC)?;
        out.put(&FORMAT_VERSION.to_le_bytes())?;
        out.put(&0u32.to_le_bytes())?;
        out.put(&self.model_hash.to_le_bytes())?;
        out.put(&(self.tensors.len() as u64).to_le_bytes())?;
        let table = self.table();
        for t in &table {
            out.put(&(t.name.len() as u32).to_le_bytes())?;
            out.put(t.name.as_bytes())?;
            out.put(&(t.dims.len() as u32).to_le_bytes())?;
            for &d in &t.dims {
                out.put(&(d as u64).to_le_bytes())?;
            }
            out.put(&t.offset.to_le_bytes())?;
            out.put(&t.len.to_le_bytes())?;
        }
        let mut buf = Vec::new();
        for (t, (_, _, data)) in table.iter().zip(&self.tensors) {
            out.pad_to(t.offset as usize)?;
            for chunk in data.chunks(16 * 1024) {
                buf.clear();
                buf.extend(chunk.iter().flat_map(|x| x.to_le_bytes()));
                out.put(&buf)?;
            }
        }
        let end = out.written.next_multiple_of(ALIGN);
        out.pad_to(end)?;
        let HashingWriter {
            mut inner, hash, ..
        } = out;
        inner.write_all(&hash.finalize().to_le_bytes())?;
        inner.flush()?;
        Ok(())
    }

    /// Writes the whole file to `path`.
    pub fn write(&self, path: impl AsRef<Path>) -> Result<(), WriteError> {
        self.write_to(std::fs::File::create(path)?)
    }

    /// Bytes of the file [`WeightsWriter::write_to`] writes.
    pub fn file_len(&self) -> usize {
        let table = self.table();
        let end = match table.last() {
            Some(t) => t.offset as usize + 4 * t.len as usize,
            None => HEADER_LEN,
        };
        end.next_multiple_of(ALIGN) + CHECKSUM_LEN
    }

    /// The loaded weights these tensors make, written straight into the buffer [`Weights`] keeps
    /// (no file, no intermediate byte vector) and checked as a loaded file is.
    pub fn to_weights(&self) -> Result<Weights, WriteError> {
        let len = self.file_len();
        let mut data = Buffer::zeroed(len.div_ceil(4));
        let mut rest = &mut bytemuck::cast_slice_mut::<f32, u8>(&mut data)[..len];
        self.write_to(&mut rest)?;
        if !rest.is_empty() {
            return Err(WriteError::Io(std::io::Error::other(format!(
                "{} of {len} bytes left unwritten",
                rest.len()
            ))));
        }
        Ok(Weights::from_buffer(data, len, self.model_hash)?)
    }
}

struct HashingWriter<W: Write> {
    inner: W,
    hash: crc32fast::Hasher,
    written: usize,
}

impl<W: Write> HashingWriter<W> {
    fn put(&mut self, bytes: &[u8]) -> std::io::Result<()> {
        self.hash.update(bytes);
        self.written += bytes.len();
        self.inner.write_all(bytes)
    }

    fn pad_to(&mut self, offset: usize) -> std::io::Result<()> {
        let zeros = [0u8; ALIGN];
        while self.written < offset {
            let n = (offset - self.written).min(ALIGN);
            self.put(&zeros[..n])?;
        }
        Ok(())
    }
}

/// A loaded weights file: the tensor table and the whole file, read once into one buffer where
/// the tensors are used in place. Each starts 64 bytes aligned in the file, so at a multiple of
/// 16 floats of the buffer; the header, table and padding around them are a few KB of the file.
///
/// One copy only: the file is read straight into its final buffer (no byte vector that is then
/// converted), so a model's weights are resident once while it loads, not twice.
#[derive(Debug)]
pub struct Weights {
    model_hash: u64,
    table: Vec<TensorInfo>,
    /// Element offset of each tensor in `data` (its byte offset in the file over 4).
    starts: Vec<usize>,
    /// The whole file, zero-padded to whole floats; in huge pages where it can be (see
    /// [`Buffer`]): the deep layers stream their weights.
    data: Buffer,
}

impl Weights {
    /// Loads and checks the file at `path`: magic, version, checksum, then the model hash against
    /// `expected_hash` (the generated code's `MODEL_HASH`), then every table entry against the file.
    pub fn load(path: impl AsRef<Path>, expected_hash: u64) -> Result<Weights, LoadError> {
        let path = path.as_ref();
        let io = |source| LoadError::Io {
            path: path.to_path_buf(),
            source,
        };
        let mut file = std::fs::File::open(path).map_err(io)?;
        let meta = file.metadata().map_err(io)?;
        if !meta.is_file() {
            // A pipe or device has no length to size the buffer by: read it whole first.
            let mut bytes = Vec::new();
            file.read_to_end(&mut bytes).map_err(io)?;
            return Weights::from_bytes(&bytes, expected_hash);
        }
        let len = usize::try_from(meta.len()).map_err(|_| {
            LoadError::Truncated(format!("{} bytes do not fit in memory", meta.len()))
        })?;
        let mut data = Buffer::zeroed(len.div_ceil(4));
        let bytes: &mut [u8] = bytemuck::cast_slice_mut(&mut data);
        file.read_exact(&mut bytes[..len]).map_err(|e| {
            if e.kind() == std::io::ErrorKind::UnexpectedEof {
                LoadError::Truncated(format!("the file shrank below its {len} bytes while read"))
            } else {
                io(e)
            }
        })?;
        Weights::from_buffer(data, len, expected_hash)
    }

    /// Parses a whole weights file held in memory (copied once into the weights' own buffer);
    /// see [`Weights::load`].
    pub fn from_bytes(bytes: &[u8], expected_hash: u64) -> Result<Weights, LoadError> {
        let mut data = Buffer::zeroed(bytes.len().div_ceil(4));
        bytemuck::cast_slice_mut::<f32, u8>(&mut data)[..bytes.len()].copy_from_slice(bytes);
        Weights::from_buffer(data, bytes.len(), expected_hash)
    }

    /// The magic and version, the first checks on any file.
    fn header(bytes: &[u8]) -> Result<(), LoadError> {
        let mut r = Reader { bytes, pos: 0 };
        let magic: [u8; 8] = r.array("magic")?;
        if magic != MAGIC {
            return Err(LoadError::BadMagic(magic));
        }
        let version = r.u32("version")?;
        if version != FORMAT_VERSION {
            return Err(LoadError::UnsupportedVersion { found: version });
        }
        Ok(())
    }

    /// Checks and indexes the file held in the first `len` bytes of `data`, then (on a
    /// big-endian target) turns its tensors' little-endian floats into native ones in place.
    fn from_buffer(mut data: Buffer, len: usize, expected_hash: u64) -> Result<Weights, LoadError> {
        let bytes = &bytemuck::cast_slice::<f32, u8>(&data)[..len];
        let (model_hash, table) = Weights::parse(bytes, expected_hash)?;
        // Offsets are 64-byte aligned and within the file (checked by `parse`).
        let starts: Vec<usize> = table.iter().map(|t| t.offset as usize / 4).collect();
        if cfg!(target_endian = "big") {
            for (t, &start) in table.iter().zip(&starts) {
                for x in &mut data[start..start + t.len as usize] {
                    *x = f32::from_bits(u32::from_le(x.to_bits()));
                }
            }
        }
        Ok(Weights {
            model_hash,
            table,
            starts,
            data,
        })
    }

    /// Every check of a whole file (magic, version, checksum, model hash, table and its bounds):
    /// the model hash and the tensor table.
    fn parse(bytes: &[u8], expected_hash: u64) -> Result<(u64, Vec<TensorInfo>), LoadError> {
        Weights::header(bytes)?;
        let mut r = Reader {
            bytes,
            pos: MAGIC.len() + 4,
        };
        if bytes.len() < HEADER_LEN + CHECKSUM_LEN {
            return Err(LoadError::Truncated(format!(
                "{} bytes, shorter than a header and checksum",
                bytes.len()
            )));
        }
        let (body, tail) = bytes.split_at(bytes.len() - CHECKSUM_LEN);
        let mut found = [0u8; CHECKSUM_LEN];
        found.copy_from_slice(tail);
        let found = u32::from_le_bytes(found);
        let computed = checksum(body);
        if found != computed {
            return Err(LoadError::ChecksumMismatch { found, computed });
        }
        let _reserved = r.u32("header")?;
        let model_hash = r.u64("model hash")?;
        if model_hash != expected_hash {
            return Err(LoadError::HashMismatch {
                expected: expected_hash,
                found: model_hash,
            });
        }
        let mut r = Reader {
            bytes: body,
            pos: r.pos,
        };
        let count = r.u64("tensor count")?;
        // Every table entry takes at least 24 bytes: bound the count before allocating for it.
        if count > (body.len() / 24) as u64 {
            return Err(LoadError::BadTable(format!(
                "{count} tensors cannot fit in a {}-byte file",
                bytes.len()
            )));
        }
        let mut table = Vec::with_capacity(count as usize);
        for i in 0..count {
            let name_len = r.u32("tensor name length")? as usize;
            if name_len > MAX_NAME {
                return Err(LoadError::BadTable(format!(
                    "tensor {i}: name length {name_len} is above {MAX_NAME}"
                )));
            }
            let name = String::from_utf8(r.take(name_len, "tensor name")?.to_vec())
                .map_err(|_| LoadError::BadTable(format!("tensor {i}: name is not UTF-8")))?;
            let rank = r.u32("tensor rank")? as usize;
            if rank > MAX_RANK {
                return Err(LoadError::BadTable(format!(
                    "tensor {i} `{name}`: rank {rank} is above {MAX_RANK}"
                )));
            }
            let mut dims = Vec::with_capacity(rank);
            for _ in 0..rank {
                let d = r.u64("tensor dims")?;
                dims.push(usize::try_from(d).map_err(|_| {
                    LoadError::BadTable(format!("tensor {i} `{name}`: dimension {d} is too large"))
                })?);
            }
            let offset = r.u64("tensor offset")?;
            let len = r.u64("tensor length")?;
            let elements = dims
                .iter()
                .try_fold(1u64, |acc, &d| acc.checked_mul(d as u64));
            if elements != Some(len) {
                return Err(LoadError::BadTable(format!(
                    "tensor {i} `{name}`: dims {dims:?} do not hold {len} elements"
                )));
            }
            table.push(TensorInfo {
                name,
                dims,
                offset,
                len,
            });
        }
        let data_start = r.pos.next_multiple_of(ALIGN) as u64;
        let mut prev_end = data_start;
        for (i, t) in table.iter().enumerate() {
            let end = t.len.checked_mul(4).and_then(|b| b.checked_add(t.offset));
            let bad = |why: &str| {
                Err(LoadError::BadTable(format!(
                    "tensor {i} `{}`: offset {} length {} {why}",
                    t.name, t.offset, t.len
                )))
            };
            match end {
                _ if t.offset % ALIGN as u64 != 0 => return bad("is not 64-byte aligned"),
                _ if t.offset < prev_end => {
                    return bad("overlaps the table or the previous tensor");
                }
                Some(end) if end <= body.len() as u64 => prev_end = end,
                _ => return bad("runs past the end of the file"),
            }
        }
        Ok((model_hash, table))
    }

    /// Checks that the file holds exactly `expected` tensors (what the generated code indexes).
    pub fn expect_count(self, expected: usize) -> Result<Weights, LoadError> {
        if self.table.len() != expected {
            return Err(LoadError::TensorCount {
                expected,
                found: self.table.len(),
            });
        }
        Ok(self)
    }

    pub fn model_hash(&self) -> u64 {
        self.model_hash
    }

    pub fn len(&self) -> usize {
        self.table.len()
    }

    pub fn is_empty(&self) -> bool {
        self.table.is_empty()
    }

    pub fn info(&self, index: usize) -> Option<&TensorInfo> {
        self.table.get(index)
    }

    /// The data of tensor `index`.
    ///
    /// # Panics
    /// If `index >= self.len()`; generated code checks the count once with [`Weights::expect_count`].
    pub fn tensor(&self, index: usize) -> &[f32] {
        let start = self.starts[index];
        &self.data[start..start + self.table[index].len as usize]
    }
}

struct Reader<'a> {
    bytes: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize, what: &str) -> Result<&'a [u8], LoadError> {
        match self.pos.checked_add(n) {
            Some(end) if end <= self.bytes.len() => {
                let s = &self.bytes[self.pos..end];
                self.pos = end;
                Ok(s)
            }
            _ => Err(LoadError::Truncated(format!(
                "the file ends inside the {what} (at byte {})",
                self.pos
            ))),
        }
    }

    fn array<const N: usize>(&mut self, what: &str) -> Result<[u8; N], LoadError> {
        let mut a = [0u8; N];
        a.copy_from_slice(self.take(N, what)?);
        Ok(a)
    }

    fn u32(&mut self, what: &str) -> Result<u32, LoadError> {
        Ok(u32::from_le_bytes(self.array(what)?))
    }

    fn u64(&mut self, what: &str) -> Result<u64, LoadError> {
        Ok(u64::from_le_bytes(self.array(what)?))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const HASH: u64 = 0x1234_5678_9abc_def0;

    fn sample() -> Vec<u8> {
        let a: Vec<f32> = (0..6).map(|i| i as f32 * 0.5).collect();
        let b = vec![-1.0f32, 2.5, f32::MIN_POSITIVE];
        let mut w = WeightsWriter::new(HASH);
        assert_eq!(w.add("conv.weight", &[2, 3], &a).unwrap(), 0);
        assert_eq!(w.add("fc.bias", &[3], &b).unwrap(), 1);
        let mut out = Vec::new();
        w.write_to(&mut out).unwrap();
        out
    }

    /// Recomputes the trailing checksum after a deliberate edit, so the edit reaches the later checks.
    fn reseal(bytes: &mut [u8]) {
        let n = bytes.len() - CHECKSUM_LEN;
        let sum = checksum(&bytes[..n]);
        bytes[n..].copy_from_slice(&sum.to_le_bytes());
    }

    #[test]
    fn round_trip() {
        let w = Weights::from_bytes(&sample(), HASH).unwrap();
        assert_eq!(w.len(), 2);
        assert_eq!(w.tensor(0), &[0.0, 0.5, 1.0, 1.5, 2.0, 2.5]);
        assert_eq!(w.tensor(1), &[-1.0, 2.5, f32::MIN_POSITIVE]);
        assert_eq!(w.info(1).unwrap().name, "fc.bias");
        assert_eq!(w.info(0).unwrap().dims, vec![2, 3]);
        for i in 0..2 {
            assert_eq!(w.info(i).unwrap().offset % 64, 0);
        }
        assert!(w.expect_count(3).is_err());
    }

    #[test]
    fn round_trip_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("m.weights");
        let data = vec![1.0f32; 1000];
        let mut w = WeightsWriter::new(7);
        w.add("x", &[10, 100], &data).unwrap();
        w.write(&path).unwrap();
        let loaded = Weights::load(&path, 7).unwrap();
        assert_eq!(loaded.tensor(0), data.as_slice());
        match Weights::load(dir.path().join("missing"), 7) {
            Err(e @ LoadError::Io { .. }) => assert!(e.to_string().contains("missing")),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn to_weights_is_the_written_file_loaded() {
        let a: Vec<f32> = (0..300).map(|i| i as f32 - 7.25).collect();
        let b = [f32::MAX, -0.0, 1e-40];
        for tensors in [
            &[][..],
            &[(&a[..], &[3, 100][..])][..],
            &[(&a[..], &[300][..]), (&b[..], &[3][..])][..],
        ] {
            let mut w = WeightsWriter::new(HASH);
            for (i, (data, dims)) in tensors.iter().enumerate() {
                w.add(format!("t{i}"), dims, data).unwrap();
            }
            let mut bytes = Vec::new();
            w.write_to(&mut bytes).unwrap();
            assert_eq!(bytes.len(), w.file_len());
            let direct = w.to_weights().unwrap();
            let loaded = Weights::from_bytes(&bytes, HASH).unwrap();
            assert_eq!(direct.len(), tensors.len());
            assert_eq!(loaded.len(), tensors.len());
            assert_eq!(direct.model_hash(), HASH);
            for (i, (data, _)) in tensors.iter().enumerate() {
                assert_eq!(direct.info(i), loaded.info(i));
                let (x, y) = (direct.tensor(i), loaded.tensor(i));
                assert!(
                    x.iter().zip(y).all(|(p, q)| p.to_bits() == q.to_bits()) && x.len() == y.len()
                );
                assert_eq!(y, *data);
            }
        }
    }

    #[test]
    fn writer_rejects_wrong_length() {
        let mut w = WeightsWriter::new(0);
        assert!(matches!(
            w.add("x", &[2, 2], &[1.0; 3]),
            Err(WriteError::Length { .. })
        ));
    }

    #[test]
    fn every_truncation_is_an_error() {
        let bytes = sample();
        for n in 0..bytes.len() {
            assert!(
                Weights::from_bytes(&bytes[..n], HASH).is_err(),
                "prefix {n}"
            );
        }
        assert!(matches!(
            Weights::from_bytes(&bytes[..10], HASH),
            Err(LoadError::Truncated(_))
        ));
    }

    #[test]
    fn bad_magic() {
        let mut bytes = sample();
        bytes[0] = b'X';
        assert!(matches!(
            Weights::from_bytes(&bytes, HASH),
            Err(LoadError::BadMagic(_))
        ));
    }

    #[test]
    fn unsupported_version() {
        let mut bytes = sample();
        bytes[8] = 99;
        let e = Weights::from_bytes(&bytes, HASH).unwrap_err();
        assert!(
            matches!(e, LoadError::UnsupportedVersion { found: 99 }),
            "{e}"
        );
        assert!(e.to_string().contains("newer resnextc"), "{e}");
    }

    /// A version 1 file, laid out as that format was (a trailing FNV-1a 64 of the body), written
    /// here byte by byte rather than by the writer under test.
    fn version_1_file() -> Vec<u8> {
        let mut out = MAGIC.to_vec();
        out.extend_from_slice(&1u32.to_le_bytes());
        out.extend_from_slice(&0u32.to_le_bytes());
        out.extend_from_slice(&HASH.to_le_bytes());
        out.extend_from_slice(&1u64.to_le_bytes());
        out.extend_from_slice(&1u32.to_le_bytes());
        out.push(b'b');
        out.extend_from_slice(&1u32.to_le_bytes());
        out.extend_from_slice(&1u64.to_le_bytes());
        out.extend_from_slice(&64u64.to_le_bytes());
        out.extend_from_slice(&1u64.to_le_bytes());
        out.resize(64, 0);
        out.extend_from_slice(&1.5f32.to_le_bytes());
        out.resize(128, 0);
        let sum = crate::formats::hash::fnv1a64(&out);
        out.extend_from_slice(&sum.to_le_bytes());
        out
    }

    #[test]
    fn version_1_files_say_rebuild() {
        let e = Weights::from_bytes(&version_1_file(), HASH).unwrap_err();
        assert!(
            matches!(e, LoadError::UnsupportedVersion { found: 1 }),
            "{e}"
        );
        let text = e.to_string();
        assert!(
            text.contains("version 1")
                && text.contains(&format!("reads version {FORMAT_VERSION}"))
                && text.contains("older resnextc")
                && text.contains("rebuild the model with resnextc"),
            "{text}"
        );
    }

    #[test]
    fn checksum_is_crc32() {
        // The CRC-32 (IEEE) check value of the catalogue of parametrised CRC algorithms.
        assert_eq!(checksum(b"123456789"), 0xcbf4_3926);
        assert_eq!(checksum(b""), 0);
        let bytes = sample();
        let n = bytes.len() - CHECKSUM_LEN;
        assert_eq!(bytes[n..], checksum(&bytes[..n]).to_le_bytes());
    }

    #[test]
    fn every_flipped_byte_is_a_checksum_error() {
        let bytes = sample();
        // Past magic and version, every byte (header, table, padding, data, checksum) is covered.
        for i in 12..bytes.len() {
            for bit in [0x01, 0x40, 0x80] {
                let mut b = bytes.clone();
                b[i] ^= bit;
                let e = Weights::from_bytes(&b, HASH).unwrap_err();
                assert!(
                    matches!(e, LoadError::ChecksumMismatch { .. }),
                    "byte {i} bit {bit:#x}: {e}"
                );
                assert!(e.to_string().contains("corrupt"), "{e}");
            }
        }
    }

    #[test]
    fn hash_mismatch_says_other_model() {
        let e = Weights::from_bytes(&sample(), HASH + 1).unwrap_err();
        assert!(matches!(e, LoadError::HashMismatch { .. }));
        assert!(e.to_string().contains("another model"), "{e}");
    }

    #[test]
    fn bad_tables() {
        let base = sample();
        let count_at = 24;
        // A huge tensor count must be refused before allocating.
        let mut b = base.clone();
        b[count_at..count_at + 8].copy_from_slice(&u64::MAX.to_le_bytes());
        reseal(&mut b);
        assert!(matches!(
            Weights::from_bytes(&b, HASH),
            Err(LoadError::BadTable(_))
        ));
        // First entry: name_len(4) "conv.weight"(11) rank(4) dims(16) offset(8) len(8).
        let entry = HEADER_LEN;
        let offset_at = entry + 4 + 11 + 4 + 16;
        for (at, value, what) in [
            (offset_at, u64::MAX - 3, "offset overflow"),
            (offset_at, 1 << 40, "offset past the end"),
            (offset_at, 65, "misaligned"),
            (offset_at, 0, "overlaps the table"),
            (offset_at + 8, 7, "len disagrees with dims"),
            (entry + 4 + 11 + 4, 1 << 62, "huge dim"),
        ] {
            let mut b = base.clone();
            b[at..at + 8].copy_from_slice(&value.to_le_bytes());
            reseal(&mut b);
            let e = Weights::from_bytes(&b, HASH).unwrap_err();
            assert!(matches!(e, LoadError::BadTable(_)), "{what}: {e}");
        }
        let mut b = base.clone();
        b[entry..entry + 4].copy_from_slice(&100_000u32.to_le_bytes());
        reseal(&mut b);
        assert!(matches!(
            Weights::from_bytes(&b, HASH),
            Err(LoadError::BadTable(_))
        ));
        let mut b = base.clone();
        b[entry + 4 + 11..entry + 4 + 11 + 4].copy_from_slice(&1000u32.to_le_bytes());
        reseal(&mut b);
        assert!(matches!(
            Weights::from_bytes(&b, HASH),
            Err(LoadError::BadTable(_))
        ));
    }
}
