//! Reading and writing `.npy` files of little-endian f32 in C order (format versions 1 to 3), the
//! batch format of generated model binaries and of the PyTorch reference outputs.

use std::io::Write;
use std::path::{Path, PathBuf};

const MAGIC: &[u8; 6] = b"\x93NUMPY";
const MAX_HEADER: usize = 1 << 20;

/// Why an `.npy` file could not be read or written.
#[derive(Debug, thiserror::Error)]
pub enum NpyError {
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{path}: not an .npy file (bad magic)")]
    BadMagic { path: PathBuf },
    #[error("{path}: unsupported .npy version {major}.{minor}")]
    UnsupportedVersion { path: PathBuf, major: u8, minor: u8 },
    #[error("{path}: bad .npy header: {message}")]
    BadHeader { path: PathBuf, message: String },
    #[error("{path}: dtype `{descr}` is not supported; only little-endian float32 ('<f4') is")]
    UnsupportedDtype { path: PathBuf, descr: String },
    #[error("{path}: Fortran-order arrays are not supported; save with np.ascontiguousarray")]
    FortranOrder { path: PathBuf },
    #[error("{path}: shape {shape:?} needs {expected} bytes of data, the file has {actual}")]
    DataLength {
        path: PathBuf,
        shape: Vec<usize>,
        expected: u128,
        actual: usize,
    },
    #[error("{path}: shape {shape:?} has more elements than this machine can address")]
    ShapeTooLarge { path: PathBuf, shape: Vec<usize> },
    #[error("shape {shape:?} holds {expected} elements, data has {actual}")]
    ShapeMismatch {
        shape: Vec<usize>,
        expected: usize,
        actual: usize,
    },
}

/// Reads an f32 `.npy` file: `(shape, data)` in C order.
pub fn read_f32(path: impl AsRef<Path>) -> Result<(Vec<usize>, Vec<f32>), NpyError> {
    let path = path.as_ref();
    let bytes = std::fs::read(path).map_err(|source| NpyError::Io {
        path: path.to_path_buf(),
        source,
    })?;
    parse_f32(&bytes).map_err(|e| e.at(path))
}

/// Parses the bytes of an f32 `.npy` file; errors carry an empty path.
pub fn parse_f32(bytes: &[u8]) -> Result<(Vec<usize>, Vec<f32>), NpyError> {
    let path = PathBuf::new();
    let bad = |message: String| NpyError::BadHeader {
        path: PathBuf::new(),
        message,
    };
    if bytes.len() < 8 || &bytes[..6] != MAGIC {
        return Err(NpyError::BadMagic { path });
    }
    let (major, minor) = (bytes[6], bytes[7]);
    let (len_bytes, start) = match major {
        1 => (2, 10),
        2 | 3 => (4, 12),
        _ => return Err(NpyError::UnsupportedVersion { path, major, minor }),
    };
    if bytes.len() < start {
        return Err(bad("the file ends inside the header length".into()));
    }
    let mut len = [0u8; 4];
    len[..len_bytes].copy_from_slice(&bytes[8..8 + len_bytes]);
    let header_len = u32::from_le_bytes(len) as usize;
    if header_len > MAX_HEADER || start + header_len > bytes.len() {
        return Err(bad(format!(
            "header length {header_len} runs past the end of the file"
        )));
    }
    let header = std::str::from_utf8(&bytes[start..start + header_len])
        .map_err(|_| bad("the header is not text".into()))?;
    let descr = dict_value(header, "descr").ok_or_else(|| bad("no 'descr' key".into()))?;
    let descr = descr.trim().trim_matches(|c| c == '\'' || c == '"');
    if descr != "<f4" {
        return Err(NpyError::UnsupportedDtype {
            path,
            descr: descr.to_string(),
        });
    }
    match dict_value(header, "fortran_order").map(str::trim) {
        Some("False") => {}
        Some("True") => return Err(NpyError::FortranOrder { path }),
        _ => return Err(bad("no valid 'fortran_order' key".into())),
    }
    let shape_text = dict_value(header, "shape").ok_or_else(|| bad("no 'shape' key".into()))?;
    let shape = parse_shape(shape_text).ok_or_else(|| bad(format!("bad shape {shape_text}")))?;
    let data = &bytes[start + header_len..];
    let Some(expected) = element_count(&shape).and_then(|n| n.checked_mul(4)) else {
        return Err(NpyError::ShapeTooLarge { path, shape });
    };
    if expected != data.len() {
        return Err(NpyError::DataLength {
            path,
            shape,
            expected: expected as u128,
            actual: data.len(),
        });
    }
    let values = data
        .chunks_exact(4)
        .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
        .collect();
    Ok((shape, values))
}

/// Writes `data` as a C-order f32 `.npy` (version 1.0) of the given shape.
pub fn write_f32(path: impl AsRef<Path>, shape: &[usize], data: &[f32]) -> Result<(), NpyError> {
    let path = path.as_ref();
    let bytes = to_bytes(shape, data)?;
    let io = |source| NpyError::Io {
        path: path.to_path_buf(),
        source,
    };
    let mut f = std::fs::File::create(path).map_err(io)?;
    f.write_all(&bytes).map_err(io)?;
    f.flush().map_err(io)
}

/// The bytes of a C-order f32 `.npy` (version 1.0).
pub fn to_bytes(shape: &[usize], data: &[f32]) -> Result<Vec<u8>, NpyError> {
    let Some(expected) = element_count(shape) else {
        return Err(NpyError::ShapeTooLarge {
            path: PathBuf::new(),
            shape: shape.to_vec(),
        });
    };
    if expected != data.len() {
        return Err(NpyError::ShapeMismatch {
            shape: shape.to_vec(),
            expected,
            actual: data.len(),
        });
    }
    let dims = match shape {
        [d] => format!("({d},)"),
        _ => format!(
            "({})",
            shape
                .iter()
                .map(|d| d.to_string())
                .collect::<Vec<_>>()
                .join(", ")
        ),
    };
    let mut header = format!("{{'descr': '<f4', 'fortran_order': False, 'shape': {dims}, }}");
    // numpy pads the header with spaces so the data starts at a multiple of 64, ending with '\n'.
    let total = (10 + header.len() + 1).next_multiple_of(64);
    header.extend(std::iter::repeat_n(' ', total - 10 - header.len() - 1));
    header.push('\n');
    let mut out = Vec::with_capacity(total + 4 * data.len());
    out.extend_from_slice(MAGIC);
    out.extend_from_slice(&[1, 0]);
    let header_len = u16::try_from(header.len()).map_err(|_| NpyError::BadHeader {
        path: PathBuf::new(),
        message: format!(
            "a shape of {} dimensions does not fit a version 1.0 header",
            shape.len()
        ),
    })?;
    out.extend_from_slice(&header_len.to_le_bytes());
    out.extend_from_slice(header.as_bytes());
    out.extend(data.iter().flat_map(|x| x.to_le_bytes()));
    Ok(out)
}

impl NpyError {
    fn at(self, p: &Path) -> NpyError {
        let p = p.to_path_buf();
        match self {
            NpyError::Io { source, .. } => NpyError::Io { path: p, source },
            NpyError::BadMagic { .. } => NpyError::BadMagic { path: p },
            NpyError::UnsupportedVersion { major, minor, .. } => NpyError::UnsupportedVersion {
                path: p,
                major,
                minor,
            },
            NpyError::BadHeader { message, .. } => NpyError::BadHeader { path: p, message },
            NpyError::UnsupportedDtype { descr, .. } => {
                NpyError::UnsupportedDtype { path: p, descr }
            }
            NpyError::FortranOrder { .. } => NpyError::FortranOrder { path: p },
            NpyError::DataLength {
                shape,
                expected,
                actual,
                ..
            } => NpyError::DataLength {
                path: p,
                shape,
                expected,
                actual,
            },
            NpyError::ShapeTooLarge { shape, .. } => NpyError::ShapeTooLarge { path: p, shape },
            e @ NpyError::ShapeMismatch { .. } => e,
        }
    }
}

/// The number of elements of `shape`, or `None` when it does not fit a `usize`.
fn element_count(shape: &[usize]) -> Option<usize> {
    shape.iter().try_fold(1usize, |n, &d| n.checked_mul(d))
}

/// The text after `'key':` in a Python dict literal, up to the next top-level comma or brace.
fn dict_value<'a>(header: &'a str, key: &str) -> Option<&'a str> {
    let at = header
        .find(&format!("'{key}'"))
        .or_else(|| header.find(&format!("\"{key}\"")))?;
    let rest = &header[at + key.len() + 2..];
    let rest = rest.trim_start().strip_prefix(':')?.trim_start();
    let mut depth = 0usize;
    for (i, c) in rest.char_indices() {
        match c {
            '(' | '[' => depth += 1,
            ')' | ']' => {
                depth = depth.checked_sub(1)?;
                if depth == 0 {
                    return Some(&rest[..=i]);
                }
            }
            ',' | '}' if depth == 0 => return Some(&rest[..i]),
            _ => {}
        }
    }
    None
}

fn parse_shape(text: &str) -> Option<Vec<usize>> {
    let inner = text.trim().strip_prefix('(')?.strip_suffix(')')?;
    inner
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(|s| s.trim_end_matches('L').parse().ok())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn with_header(major: u8, header: &str, data: &[u8]) -> Vec<u8> {
        let mut out = MAGIC.to_vec();
        out.extend_from_slice(&[major, 0]);
        if major == 1 {
            out.extend_from_slice(&(header.len() as u16).to_le_bytes());
        } else {
            out.extend_from_slice(&(header.len() as u32).to_le_bytes());
        }
        out.extend_from_slice(header.as_bytes());
        out.extend_from_slice(data);
        out
    }

    #[test]
    fn round_trip() {
        let data: Vec<f32> = (0..24).map(|i| i as f32 - 3.5).collect();
        for shape in [vec![2, 3, 4], vec![24], vec![1, 24], vec![]] {
            let data = &data[..shape.iter().product::<usize>()];
            let bytes = to_bytes(&shape, data).unwrap();
            assert_eq!((bytes.len() - 4 * data.len()) % 64, 0);
            let (s, d) = parse_f32(&bytes).unwrap();
            assert_eq!(s, shape);
            assert_eq!(d, data);
        }
    }

    #[test]
    fn file_round_trip_and_missing_file() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("x.npy");
        write_f32(&p, &[2, 2], &[1.0, 2.0, 3.0, 4.0]).unwrap();
        assert_eq!(
            read_f32(&p).unwrap(),
            (vec![2, 2], vec![1.0, 2.0, 3.0, 4.0])
        );
        let e = read_f32(dir.path().join("nope.npy")).unwrap_err();
        assert!(matches!(e, NpyError::Io { .. }) && e.to_string().contains("nope.npy"));
        assert!(matches!(
            write_f32(&p, &[3], &[1.0]),
            Err(NpyError::ShapeMismatch { .. })
        ));
    }

    #[test]
    fn version_2_header() {
        let h = "{'descr': '<f4', 'fortran_order': False, 'shape': (2,), }\n";
        let b = with_header(2, h, &[0, 0, 128, 63, 0, 0, 0, 64]);
        assert_eq!(parse_f32(&b).unwrap(), (vec![2], vec![1.0, 2.0]));
    }

    #[test]
    fn rejects_what_it_cannot_read() {
        let ok = "{'descr': '<f4', 'fortran_order': False, 'shape': (1,), }\n";
        let four = [0u8; 4];
        assert!(matches!(
            parse_f32(b"hello world"),
            Err(NpyError::BadMagic { .. })
        ));
        assert!(matches!(
            parse_f32(&with_header(9, ok, &four)),
            Err(NpyError::UnsupportedVersion { major: 9, .. })
        ));
        let f8 = "{'descr': '<f8', 'fortran_order': False, 'shape': (1,), }\n";
        assert!(matches!(
            parse_f32(&with_header(1, f8, &[0; 8])),
            Err(NpyError::UnsupportedDtype { .. })
        ));
        let be = "{'descr': '>f4', 'fortran_order': False, 'shape': (1,), }\n";
        assert!(matches!(
            parse_f32(&with_header(1, be, &four)),
            Err(NpyError::UnsupportedDtype { .. })
        ));
        let fortran = "{'descr': '<f4', 'fortran_order': True, 'shape': (1,), }\n";
        assert!(matches!(
            parse_f32(&with_header(1, fortran, &four)),
            Err(NpyError::FortranOrder { .. })
        ));
        assert!(matches!(
            parse_f32(&with_header(1, ok, &[0; 5])),
            Err(NpyError::DataLength { .. })
        ));
        let noshape = "{'descr': '<f4', 'fortran_order': False, }\n";
        assert!(matches!(
            parse_f32(&with_header(1, noshape, &four)),
            Err(NpyError::BadHeader { .. })
        ));
        let huge =
            "{'descr': '<f4', 'fortran_order': False, 'shape': (99999999999, 99999999999), }\n";
        assert!(matches!(
            parse_f32(&with_header(1, huge, &four)),
            Err(NpyError::ShapeTooLarge { .. })
        ));
        let full = with_header(1, ok, &four);
        for n in 0..full.len() {
            assert!(parse_f32(&full[..n]).is_err(), "prefix {n}");
        }
    }

    /// Shapes whose element or byte count does not fit a `usize` are an error naming the shape,
    /// never a wrapped product that a short data section could then match.
    #[test]
    fn absurd_shapes_are_errors() {
        let max = usize::MAX;
        let cases = [
            // Elements overflow.
            "(4294967296, 4294967296, 16)".to_string(),
            // Elements fit, bytes (4 per element) do not.
            format!("({},)", max / 2),
            // Products that wrap to 0 and to 1 (4 bytes, the data given below) in 64 bits.
            "(4294967296, 4294967296)".to_string(),
            format!("({max}, {max})"),
        ];
        for shape in cases {
            let h = format!("{{'descr': '<f4', 'fortran_order': False, 'shape': {shape}, }}\n");
            for data in [&[][..], &[0u8; 4][..]] {
                let e = parse_f32(&with_header(1, &h, data)).unwrap_err();
                assert!(
                    matches!(e, NpyError::ShapeTooLarge { .. }),
                    "{shape} with {} bytes: {e}",
                    data.len()
                );
                assert!(e.to_string().contains("more elements than"), "{e}");
            }
        }
        let e = read_f32_bytes_at_path(&with_header(
            1,
            &format!("{{'descr': '<f4', 'fortran_order': False, 'shape': ({max}, 2), }}\n"),
            &[],
        ));
        assert!(
            e.contains("big.npy") && e.contains("more elements than"),
            "{e}"
        );
        assert!(matches!(
            to_bytes(&[max, 2], &[]),
            Err(NpyError::ShapeTooLarge { .. })
        ));
        // A legitimate zero-size array whose other dimension is huge still reads.
        let zero = format!("{{'descr': '<f4', 'fortran_order': False, 'shape': (0, {max}), }}\n");
        assert_eq!(
            parse_f32(&with_header(1, &zero, &[])).unwrap(),
            (vec![0, max], vec![])
        );
    }

    fn read_f32_bytes_at_path(bytes: &[u8]) -> String {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("big.npy");
        std::fs::write(&p, bytes).unwrap();
        read_f32(&p).unwrap_err().to_string()
    }
}
