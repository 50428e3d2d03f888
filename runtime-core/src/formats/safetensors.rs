//! Reading PyTorch `state_dict`s saved as safetensors (memory-mapped), with torchvision/timm names,
//! for models declared with the `resnext!` DSL. Behind the `safetensors` cargo feature.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::ops::Range;
use std::path::{Path, PathBuf};

use safetensors::{Dtype, SafeTensors};

/// Why a state_dict could not be read or does not fit the model.
#[derive(Debug, thiserror::Error)]
pub enum StateDictError {
    #[error("cannot read `{path}`: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("`{path}` is not a valid safetensors file: {message}")]
    Format { path: PathBuf, message: String },
    #[error("tensor `{key}` is missing")]
    Missing { key: String },
    #[error("tensor `{key}` has dtype {dtype}; only F32, F64, F16 and BF16 can be loaded")]
    Dtype { key: String, dtype: String },
    #[error("the state_dict does not fit the model:{}", mismatch_text(.missing, .unexpected, .misshaped))]
    Mismatch {
        /// Keys the model needs that the file lacks.
        missing: Vec<String>,
        /// Keys in the file that the model does not read (besides ignored bookkeeping).
        unexpected: Vec<String>,
        /// `(key, shape in the file, shape the model needs)`.
        misshaped: Vec<(String, Vec<usize>, Vec<usize>)>,
    },
    /// A load-time recipe (BatchNorm fold, kernel packing) failed on the file's values.
    #[error("cannot prepare weight `{name}` from the state_dict: {message}")]
    Prepare { name: String, message: String },
}

fn mismatch_text(
    missing: &[String],
    unexpected: &[String],
    misshaped: &[(String, Vec<usize>, Vec<usize>)],
) -> String {
    let mut s = String::new();
    if !missing.is_empty() {
        let _ = write!(s, " missing {}: {};", missing.len(), missing.join(", "));
    }
    if !unexpected.is_empty() {
        let _ = write!(
            s,
            " unexpected {}: {};",
            unexpected.len(),
            unexpected.join(", ")
        );
    }
    if !misshaped.is_empty() {
        let items: Vec<_> = misshaped
            .iter()
            .map(|(k, got, want)| format!("{k} is {got:?}, expected {want:?}"))
            .collect();
        let _ = write!(s, " wrong shape {}: {};", misshaped.len(), items.join(", "));
    }
    s.pop();
    s
}

enum Bytes {
    Mapped(memmap2::Mmap),
    Owned(Vec<u8>),
}

impl Bytes {
    fn as_slice(&self) -> &[u8] {
        match self {
            Bytes::Mapped(m) => m,
            Bytes::Owned(v) => v,
        }
    }
}

struct Entry {
    dtype: Dtype,
    shape: Vec<usize>,
    /// Byte range in the whole file.
    bytes: Range<usize>,
}

/// A state_dict: tensor names (normalised, see [`normalize_key`]) to shapes and data in a
/// memory-mapped safetensors file. Values are converted to f32 when asked for.
pub struct StateDict {
    bytes: Bytes,
    tensors: BTreeMap<String, Entry>,
}

/// The torchvision name for a state_dict key: strips the `module.` prefix that
/// `nn.DataParallel`/DDP checkpoints add. timm's ResNet/ResNeXt use torchvision's names already
/// (`conv1`, `bn1`, `layer1.0.conv2`, `layer1.0.downsample.0`, `fc`).
pub fn normalize_key(key: &str) -> &str {
    key.strip_prefix("module.").unwrap_or(key)
}

/// Keys that carry no model parameter (BatchNorm's training counter) and are never "unexpected".
pub fn is_bookkeeping(key: &str) -> bool {
    key.ends_with(".num_batches_tracked")
}

impl StateDict {
    /// Memory-maps and indexes a safetensors file.
    pub fn open(path: impl AsRef<Path>) -> Result<StateDict, StateDictError> {
        let path = path.as_ref();
        let io = |source| StateDictError::Io {
            path: path.to_path_buf(),
            source,
        };
        let file = std::fs::File::open(path).map_err(io)?;
        // SAFETY: the map is read-only and private to this value. Like every reader of mapped
        // weights (safetensors, llama.cpp), we rely on the file not being truncated or rewritten
        // while the model loads; the data is copied out (converted to f32) before `open`'s caller
        // uses it, and all offsets were bounds-checked by `SafeTensors::deserialize`.
        let map = unsafe { memmap2::Mmap::map(&file) }.map_err(io)?;
        StateDict::index(Bytes::Mapped(map), path)
    }

    /// Indexes a safetensors file held in memory.
    pub fn from_bytes(bytes: Vec<u8>) -> Result<StateDict, StateDictError> {
        StateDict::index(Bytes::Owned(bytes), Path::new("<memory>"))
    }

    fn index(bytes: Bytes, path: &Path) -> Result<StateDict, StateDictError> {
        let buffer = bytes.as_slice();
        let parsed = SafeTensors::deserialize(buffer).map_err(|e| StateDictError::Format {
            path: path.to_path_buf(),
            message: format!("{e}"),
        })?;
        let mut tensors = BTreeMap::new();
        let base = buffer.as_ptr() as usize;
        for (name, view) in parsed.iter() {
            let data = view.data();
            let start = data.as_ptr() as usize - base;
            tensors.insert(
                normalize_key(name).to_string(),
                Entry {
                    dtype: view.dtype(),
                    shape: view.shape().to_vec(),
                    bytes: start..start + data.len(),
                },
            );
        }
        Ok(StateDict { bytes, tensors })
    }

    /// Every key, sorted.
    pub fn keys(&self) -> impl Iterator<Item = &str> {
        self.tensors.keys().map(String::as_str)
    }

    pub fn shape(&self, key: &str) -> Option<&[usize]> {
        self.tensors.get(key).map(|e| e.shape.as_slice())
    }

    /// Checks the file against what a model reads, `(key, shape)` each, and reports every missing,
    /// unexpected and mis-shaped tensor in one error. Bookkeeping keys are ignored.
    pub fn check<'a>(
        &self,
        expected: impl IntoIterator<Item = (&'a str, &'a [usize])>,
    ) -> Result<(), StateDictError> {
        let mut missing = Vec::new();
        let mut misshaped = Vec::new();
        let mut seen = std::collections::BTreeSet::new();
        for (key, dims) in expected {
            seen.insert(key);
            match self.tensors.get(key) {
                None => missing.push(key.to_string()),
                // A scalar-free model never needs 0-d tensors; compare shapes exactly.
                Some(e) if e.shape != dims => {
                    misshaped.push((key.to_string(), e.shape.clone(), dims.to_vec()))
                }
                Some(_) => {}
            }
        }
        let unexpected: Vec<String> = self
            .tensors
            .keys()
            .filter(|k| !seen.contains(k.as_str()) && !is_bookkeeping(k))
            .cloned()
            .collect();
        if missing.is_empty() && unexpected.is_empty() && misshaped.is_empty() {
            Ok(())
        } else {
            Err(StateDictError::Mismatch {
                missing,
                unexpected,
                misshaped,
            })
        }
    }

    /// The tensor's values as f32, row-major.
    pub fn tensor(&self, key: &str) -> Result<Vec<f32>, StateDictError> {
        let entry = self
            .tensors
            .get(key)
            .ok_or_else(|| StateDictError::Missing {
                key: key.to_string(),
            })?;
        let bytes = &self.bytes.as_slice()[entry.bytes.clone()];
        let values = match entry.dtype {
            Dtype::F32 => bytes
                .chunks_exact(4)
                .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
                .collect(),
            Dtype::F64 => bytes
                .chunks_exact(8)
                .map(|b| {
                    f64::from_le_bytes([b[0], b[1], b[2], b[3], b[4], b[5], b[6], b[7]]) as f32
                })
                .collect(),
            Dtype::BF16 => bytes
                .chunks_exact(2)
                .map(|b| f32::from_bits((u16::from_le_bytes([b[0], b[1]]) as u32) << 16))
                .collect(),
            Dtype::F16 => bytes
                .chunks_exact(2)
                .map(|b| f16_to_f32(u16::from_le_bytes([b[0], b[1]])))
                .collect(),
            other => {
                return Err(StateDictError::Dtype {
                    key: key.to_string(),
                    dtype: format!("{other:?}"),
                });
            }
        };
        Ok(values)
    }
}

/// Deterministic pseudo-random values for the state_dict tensor `key` of shape `dims`, in the range
/// a trained network has: BatchNorm `weight` in [0.6, 1.4], `bias` and `running_mean` in
/// [-0.3, 0.3], `running_var` in [0.5, 1.5]; conv/linear weights uniform with He-like scale
/// `±√(3 / fan_in)`, biases in [-0.1, 0.1]. The same `(key, seed)` always gives the same values.
pub fn random_tensor(key: &str, dims: &[usize], seed: u64) -> Vec<f32> {
    let len: usize = dims.iter().product();
    // FNV-1a of the key, mixed with the seed, seeds a SplitMix64 stream per tensor.
    let mut state = key.bytes().fold(0xcbf2_9ce4_8422_2325u64, |h, b| {
        (h ^ b as u64).wrapping_mul(0x0100_0000_01b3)
    }) ^ seed.wrapping_mul(0x9e37_79b9_7f4a_7c15);
    let mut uniform = move || {
        state = state.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = state;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        ((z ^ (z >> 31)) >> 40) as f32 / (1u64 << 24) as f32
    };
    let (lo, hi) = if key.ends_with("running_var") {
        (0.5, 1.5)
    } else if key.ends_with("running_mean") || (dims.len() == 1 && key.ends_with(".bias")) {
        if key.starts_with("fc") {
            (-0.1, 0.1)
        } else {
            (-0.3, 0.3)
        }
    } else if dims.len() == 1 {
        (0.6, 1.4)
    } else {
        let fan_in: usize = dims[1..].iter().product();
        let a = (3.0 / fan_in.max(1) as f32).sqrt();
        (-a, a)
    };
    (0..len).map(|_| lo + (hi - lo) * uniform()).collect()
}

/// IEEE half → single, exactly (every f16 is an f32).
fn f16_to_f32(h: u16) -> f32 {
    let sign = ((h >> 15) as u32) << 31;
    let exp = ((h >> 10) & 0x1f) as u32;
    let mant = (h & 0x3ff) as u32;
    let bits = match (exp, mant) {
        (0, 0) => sign,
        // Subnormal: value = mant · 2^-24.
        (0, m) => return sign_of(h) * (m as f32) * 2f32.powi(-24),
        (0x1f, m) => sign | 0x7f80_0000 | (m << 13),
        (e, m) => sign | ((e + 127 - 15) << 23) | (m << 13),
    };
    f32::from_bits(bits)
}

fn sign_of(h: u16) -> f32 {
    if h >> 15 == 1 { -1.0 } else { 1.0 }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A safetensors file written by hand from the format's definition (not by the crate we read with).
    fn file(entries: &[(&str, &str, &[usize], &[u8])]) -> Vec<u8> {
        let mut header = String::from("{");
        let mut data = Vec::new();
        for (i, (name, dtype, shape, bytes)) in entries.iter().enumerate() {
            if i > 0 {
                header.push(',');
            }
            let (a, b) = (data.len(), data.len() + bytes.len());
            header.push_str(&format!(
                "\"{name}\":{{\"dtype\":\"{dtype}\",\"shape\":{shape:?},\"data_offsets\":[{a},{b}]}}"
            ));
            data.extend_from_slice(bytes);
        }
        header.push('}');
        let mut out = (header.len() as u64).to_le_bytes().to_vec();
        out.extend_from_slice(header.as_bytes());
        out.extend_from_slice(&data);
        out
    }

    fn f32_bytes(v: &[f32]) -> Vec<u8> {
        v.iter().flat_map(|x| x.to_le_bytes()).collect()
    }

    #[test]
    fn reads_f32_f16_bf16_and_strips_module_prefix() {
        let w = f32_bytes(&[1.0, -2.5, 3.25, 0.0]);
        let half = [0x3c00u16, 0xc000, 0x0001]; // 1, -2, smallest subnormal
        let half: Vec<u8> = half.iter().flat_map(|x| x.to_le_bytes()).collect();
        let bf: Vec<u8> = [0x3f80u16, 0xc020]
            .iter()
            .flat_map(|x| x.to_le_bytes())
            .collect();
        let sd = StateDict::from_bytes(file(&[
            ("module.conv1.weight", "F32", &[2, 2], &w),
            ("h", "F16", &[3], &half),
            ("b", "BF16", &[2], &bf),
        ]))
        .unwrap();
        assert_eq!(sd.shape("conv1.weight"), Some(&[2usize, 2][..]));
        assert_eq!(sd.tensor("conv1.weight").unwrap(), [1.0, -2.5, 3.25, 0.0]);
        assert_eq!(sd.tensor("h").unwrap(), [1.0, -2.0, 2f32.powi(-24)]);
        assert_eq!(sd.tensor("b").unwrap(), [1.0, -2.5]);
    }

    #[test]
    fn check_lists_every_missing_unexpected_and_misshaped_tensor() {
        let one = f32_bytes(&[1.0]);
        let four = f32_bytes(&[0.0; 4]);
        let sd = StateDict::from_bytes(file(&[
            ("a", "F32", &[4], &four),
            ("b", "F32", &[1], &one),
            ("extra", "F32", &[1], &one),
            ("bn.num_batches_tracked", "F32", &[1], &one),
        ]))
        .unwrap();
        let err = sd
            .check([("a", &[2usize, 2][..]), ("b", &[1][..]), ("gone", &[3][..])])
            .unwrap_err();
        let StateDictError::Mismatch {
            missing,
            unexpected,
            misshaped,
        } = &err
        else {
            panic!("{err}");
        };
        assert_eq!(missing, &["gone"]);
        assert_eq!(unexpected, &["extra"]);
        assert_eq!(misshaped, &[("a".to_string(), vec![4], vec![2, 2])]);
        let text = err.to_string();
        assert!(text.contains("missing 1: gone") && text.contains("a is [4], expected [2, 2]"));
    }

    #[test]
    fn garbage_and_truncation_are_errors() {
        assert!(StateDict::from_bytes(b"not a safetensors file".to_vec()).is_err());
        let mut f = file(&[("a", "F32", &[4], &f32_bytes(&[0.0; 4]))]);
        f.truncate(f.len() - 3);
        assert!(matches!(
            StateDict::from_bytes(f),
            Err(StateDictError::Format { .. })
        ));
        assert!(StateDict::open("/nonexistent/x.safetensors").is_err());
    }
}
