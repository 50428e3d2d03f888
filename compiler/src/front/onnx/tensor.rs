//! Constant tensors of an ONNX model (initializers, `Constant` values): decoding of every storage
//! form (`raw_data`, typed fields, external data files) with bounds checks on sizes and offsets.

use std::io::{Read, Seek, SeekFrom};
use std::path::{Component, Path};

use tract_onnx::pb::{self, tensor_proto::DataLocation, tensor_proto::DataType};

/// A constant tensor, decoded. Integers of every width become `i64`; float types other than f32
/// are kept as a name only, so the op that would use them can say what it got.
#[derive(Clone, Debug)]
pub(crate) struct ConstTensor {
    pub name: String,
    pub dims: Vec<usize>,
    pub data: ConstData,
}

#[derive(Clone, Debug)]
pub(crate) enum ConstData {
    F32(Vec<f32>),
    I64(Vec<i64>),
    /// INT8 (quantized weights and zero points of the ONNX QDQ form).
    I8(Vec<i8>),
    /// UINT8 (quantized activations' zero points).
    U8(Vec<u8>),
    /// A data type we do not decode, by its ONNX name.
    Other(&'static str),
}

impl ConstTensor {
    pub fn dtype_name(&self) -> &'static str {
        match self.data {
            ConstData::F32(_) => "FLOAT",
            ConstData::I64(_) => "INT64",
            ConstData::I8(_) => "INT8",
            ConstData::U8(_) => "UINT8",
            ConstData::Other(name) => name,
        }
    }

    /// The single value of a one-element float tensor (a Clip bound, a scalar attribute).
    pub fn scalar_f32(&self) -> Option<f32> {
        match &self.data {
            ConstData::F32(v) if v.len() == 1 => Some(v[0]),
            _ => None,
        }
    }

    /// The values of an integer tensor as a list (a Reshape shape, ReduceMean axes).
    pub fn ints(&self) -> Option<&[i64]> {
        match &self.data {
            ConstData::I64(v) => Some(v),
            _ => None,
        }
    }
}

/// Decodes `t`. Errors are messages for the caller to attach the initializer's or node's name to.
pub(crate) fn decode(t: &pb::TensorProto, base_dir: Option<&Path>) -> Result<ConstTensor, String> {
    let mut dims = Vec::with_capacity(t.dims.len());
    for &d in &t.dims {
        dims.push(
            usize::try_from(d).map_err(|_| format!("negative dimension {d} in {:?}", t.dims))?,
        );
    }
    let len = dims
        .iter()
        .try_fold(1usize, |acc, &d| acc.checked_mul(d))
        .ok_or_else(|| format!("shape {:?} is too large", t.dims))?;
    if t.segment.is_some() {
        return Err("segmented tensors are not supported".into());
    }
    let dtype = DataType::try_from(t.data_type)
        .map_err(|_| format!("unknown data type {}", t.data_type))?;
    let external = t.data_location == Some(DataLocation::External as i32);
    let raw = if external {
        Some(read_external(t, base_dir)?)
    } else if !t.raw_data.is_empty() {
        Some(t.raw_data.clone())
    } else {
        None
    };
    let data = match dtype {
        DataType::Float => ConstData::F32(match raw {
            Some(bytes) => from_le::<4, f32>(&bytes, len, f32::from_le_bytes)?,
            None => typed(&t.float_data, len)?,
        }),
        DataType::Double => ConstData::Other("DOUBLE"),
        DataType::Int64 => ConstData::I64(match raw {
            Some(bytes) => from_le::<8, i64>(&bytes, len, i64::from_le_bytes)?,
            None => typed(&t.int64_data, len)?,
        }),
        DataType::Int32 => ConstData::I64(match raw {
            Some(bytes) => from_le::<4, i64>(&bytes, len, |b| i32::from_le_bytes(b).into())?,
            None => typed(&t.int32_data, len)?
                .into_iter()
                .map(i64::from)
                .collect(),
        }),
        DataType::Int8 => ConstData::I8(match raw {
            Some(bytes) => from_le::<1, i8>(&bytes, len, |b| b[0] as i8)?,
            None => typed(&t.int32_data, len)?
                .into_iter()
                .map(|v| v as i8)
                .collect(),
        }),
        DataType::Uint8 => ConstData::U8(match raw {
            Some(bytes) => bytes_exact(bytes, len)?,
            None => typed(&t.int32_data, len)?
                .into_iter()
                .map(|v| v as u8)
                .collect(),
        }),
        DataType::Bool => ConstData::I64(match raw {
            Some(bytes) => from_le::<1, i64>(&bytes, len, |b| b[0].into())?,
            None => typed(&t.int32_data, len)?
                .into_iter()
                .map(i64::from)
                .collect(),
        }),
        other => ConstData::Other(other.as_str_name()),
    };
    Ok(ConstTensor {
        name: t.name.clone(),
        dims,
        data,
    })
}

fn bytes_exact(bytes: Vec<u8>, len: usize) -> Result<Vec<u8>, String> {
    if bytes.len() != len {
        return Err(format!(
            "holds {} bytes of data, its shape needs {len}",
            bytes.len()
        ));
    }
    Ok(bytes)
}

fn typed<T: Copy>(values: &[T], len: usize) -> Result<Vec<T>, String> {
    if values.len() != len {
        return Err(format!(
            "holds {} values, its shape needs {len}",
            values.len()
        ));
    }
    Ok(values.to_vec())
}

fn from_le<const N: usize, T>(
    bytes: &[u8],
    len: usize,
    f: impl Fn([u8; N]) -> T,
) -> Result<Vec<T>, String> {
    if Some(bytes.len()) != len.checked_mul(N) {
        return Err(format!(
            "holds {} bytes of data, its shape needs {len} × {N}",
            bytes.len()
        ));
    }
    Ok(bytes
        .chunks_exact(N)
        .map(|c| {
            let mut a = [0u8; N];
            a.copy_from_slice(c);
            f(a)
        })
        .collect())
}

/// Reads the bytes of an external-data tensor: `location` relative to `base_dir`, from `offset`
/// for `length` bytes (default: to the end of the file), all checked against the file's size.
fn read_external(t: &pb::TensorProto, base_dir: Option<&Path>) -> Result<Vec<u8>, String> {
    let key = |k: &str| {
        t.external_data
            .iter()
            .find(|e| e.key == k)
            .map(|e| e.value.as_str())
    };
    let location = key("location").ok_or("external data without a `location` key")?;
    let number = |k: &str| -> Result<Option<u64>, String> {
        key(k)
            .map(|v| {
                v.trim()
                    .parse::<u64>()
                    .map_err(|_| format!("external data `{k}` is not a byte count: {v:?}"))
            })
            .transpose()
    };
    let offset = number("offset")?.unwrap_or(0);
    let length = number("length")?;
    let rel = Path::new(location);
    // The spec makes `location` relative to the model; refusing absolute paths and `..` keeps a
    // model from reading files outside its own directory.
    if rel
        .components()
        .any(|c| !matches!(c, Component::Normal(_) | Component::CurDir))
    {
        return Err(format!(
            "external data location `{location}` must be a relative path inside the model's directory"
        ));
    }
    let base = base_dir.ok_or_else(|| {
        format!("has external data in `{location}` but no base directory was given to find it")
    })?;
    let path = base.join(rel);
    let io = |e: std::io::Error| format!("external data file `{}`: {e}", path.display());
    let mut file = std::fs::File::open(&path).map_err(io)?;
    let size = file.metadata().map_err(io)?.len();
    let length = match length {
        Some(l) => l,
        None => size.checked_sub(offset).ok_or_else(|| {
            format!(
                "external data offset {offset} is past the end of `{}` ({size} bytes)",
                path.display()
            )
        })?,
    };
    if offset.checked_add(length).is_none_or(|end| end > size) {
        return Err(format!(
            "external data range {offset}+{length} is outside `{}` ({size} bytes)",
            path.display()
        ));
    }
    let mut bytes = vec![0u8; usize::try_from(length).map_err(|_| "external data too large")?];
    file.seek(SeekFrom::Start(offset)).map_err(io)?;
    file.read_exact(&mut bytes).map_err(io)?;
    Ok(bytes)
}
