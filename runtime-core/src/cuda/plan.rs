//! The launch plan of a model compiled for CUDA: per node the kernel, its grid/block as functions of
//! the batch, shared memory and buffers; a line-based text form the emitted crate embeds and parses.
//!
//! Plain data, no CUDA: the compiler builds it (`back::cuda`), `cuda::runner` runs it on a GPU, and
//! the CPU emulation tests run it through g++. Every kernel has the same signature:
//! `(const float* x, const float* w, const float* b, const float* r, float* y, int batch)`.
//!
//! **Device weight layout:** the tensors of the CUDA weights file, in file order, concatenated into
//! one buffer, each starting at a multiple of [`WEIGHT_ALIGN`] floats ([`weight_offsets`]).

use std::fmt::Write as _;

/// Every weight tensor starts at a multiple of this many floats (128 bytes) of the device buffer.
pub const WEIGHT_ALIGN: usize = 32;

/// Which buffer a kernel argument points at.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Buf {
    /// A null pointer: the kernel does not read this argument.
    Null,
    /// The model input, `batch × input_len_per_item` floats.
    Input,
    /// The activation arena at `batch × offset` floats (offsets are per batch item, see
    /// `plan-memory`).
    Arena(usize),
    /// The weight buffer at this float offset.
    Weight(usize),
}

/// One grid dimension: `ceil(per_item × (batch if batched else 1) / per_block)`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Extent {
    pub per_item: u64,
    pub per_block: u64,
    pub batched: bool,
}

impl Extent {
    /// A size that does not depend on the batch.
    pub fn fixed(n: u64) -> Extent {
        Extent {
            per_item: n,
            per_block: 1,
            batched: false,
        }
    }

    /// The batch size itself.
    pub fn batch() -> Extent {
        Extent {
            per_item: 1,
            per_block: 1,
            batched: true,
        }
    }

    /// `ceil(batch × per_item / per_block)`: one block per `per_block` elements of a batched value.
    pub fn batched(per_item: u64, per_block: u64) -> Extent {
        Extent {
            per_item,
            per_block,
            batched: true,
        }
    }

    /// The extent for `batch` items, or `None` if it overflows `u32`.
    pub fn eval(self, batch: usize) -> Option<u32> {
        let items = if self.batched { batch as u64 } else { 1 };
        let n = self
            .per_item
            .checked_mul(items)?
            .div_ceil(self.per_block.max(1));
        u32::try_from(n).ok()
    }
}

/// One kernel launch.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Launch {
    /// The graph node it computes (for errors and profiles).
    pub node: String,
    /// The `extern "C" __global__` function in the CUDA source.
    pub kernel: String,
    pub grid: [Extent; 3],
    pub block: [u32; 3],
    /// Shared memory the kernel declares statically, in bytes: for reports and occupancy
    /// estimates; launches request no dynamic shared memory.
    pub shared_bytes: u32,
    /// `x, w, b, r, y` in the kernel's argument order.
    pub args: [Buf; 5],
}

/// Everything the runtime needs besides the CUDA source and the weights.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct CudaPlan {
    /// Floats of activation arena per batch item.
    pub arena_len_per_item: usize,
    pub input_len_per_item: usize,
    /// `(arena offset, len)` per batch item of the model output.
    pub output: (usize, usize),
    /// `(offset, len)` in the weight buffer of each tensor of the weights file, in file order.
    pub weights: Vec<(usize, usize)>,
    /// Floats of the weight buffer.
    pub weights_len: usize,
    pub launches: Vec<Launch>,
}

/// A malformed plan text (only a compiler bug or an edited file makes one).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("CUDA plan line {line}: {message}")]
pub struct PlanError {
    pub line: usize,
    pub message: String,
}

/// The device offsets of tensors of these lengths: file order, each aligned to [`WEIGHT_ALIGN`].
/// Returns the `(offset, len)` of each and the total buffer length.
pub fn weight_offsets(lens: impl IntoIterator<Item = usize>) -> (Vec<(usize, usize)>, usize) {
    let mut at = 0;
    let slots = lens
        .into_iter()
        .map(|len| {
            let offset = at;
            at = (offset + len).next_multiple_of(WEIGHT_ALIGN);
            (offset, len)
        })
        .collect();
    (slots, at)
}

impl CudaPlan {
    /// Checks that every buffer a launch names lies inside its arena, input or weight buffer.
    pub fn check(&self) -> Result<(), PlanError> {
        let bad = |line: usize, message: String| Err(PlanError { line, message });
        if self.output.0 + self.output.1 > self.arena_len_per_item {
            return bad(0, "the output lies outside the arena".into());
        }
        for (i, l) in self.launches.iter().enumerate() {
            for a in l.args {
                match a {
                    Buf::Arena(o) if o >= self.arena_len_per_item => {
                        return bad(i, format!("`{}`: arena offset {o} out of range", l.node));
                    }
                    Buf::Weight(o) if o >= self.weights_len.max(1) => {
                        return bad(i, format!("`{}`: weight offset {o} out of range", l.node));
                    }
                    _ => {}
                }
            }
            if l.block.iter().map(|&b| b as u64).product::<u64>() > 1024 || l.block.contains(&0) {
                return bad(i, format!("`{}`: bad block {:?}", l.node, l.block));
            }
        }
        Ok(())
    }

    /// The text form: a header line per field, then one `launch` line per kernel.
    pub fn to_text(&self) -> String {
        let mut s = String::new();
        let _ = writeln!(s, "resnext-cuda-plan 1");
        let _ = writeln!(s, "arena {}", self.arena_len_per_item);
        let _ = writeln!(s, "input {}", self.input_len_per_item);
        let _ = writeln!(s, "output {} {}", self.output.0, self.output.1);
        let _ = writeln!(s, "weights_len {}", self.weights_len);
        for (o, l) in &self.weights {
            let _ = writeln!(s, "weight {o} {l}");
        }
        for l in &self.launches {
            let grid: Vec<String> = l.grid.iter().map(|e| extent_text(*e)).collect();
            let args: Vec<String> = l.args.iter().map(|a| buf_text(*a)).collect();
            let _ = writeln!(
                s,
                "launch {} grid={} block={},{},{} smem={} args={} node={}",
                l.kernel,
                grid.join(","),
                l.block[0],
                l.block[1],
                l.block[2],
                l.shared_bytes,
                args.join(","),
                l.node
            );
        }
        s
    }

    /// Parses [`CudaPlan::to_text`]'s output and checks it.
    pub fn parse(text: &str) -> Result<CudaPlan, PlanError> {
        let mut plan = CudaPlan::default();
        let mut lines = text.lines().enumerate();
        match lines.next() {
            Some((_, "resnext-cuda-plan 1")) => {}
            _ => {
                return Err(PlanError {
                    line: 1,
                    message: "missing the `resnext-cuda-plan 1` header".into(),
                });
            }
        }
        for (i, line) in lines {
            let err = |message: String| PlanError {
                line: i + 1,
                message,
            };
            let num = |s: Option<&str>| -> Result<usize, PlanError> {
                s.and_then(|s| s.parse().ok())
                    .ok_or_else(|| err(format!("expected a number in `{line}`")))
            };
            let mut words = line.split(' ');
            match words.next() {
                Some("arena") => plan.arena_len_per_item = num(words.next())?,
                Some("input") => plan.input_len_per_item = num(words.next())?,
                Some("output") => plan.output = (num(words.next())?, num(words.next())?),
                Some("weights_len") => plan.weights_len = num(words.next())?,
                Some("weight") => plan.weights.push((num(words.next())?, num(words.next())?)),
                Some("launch") => plan.launches.push(parse_launch(line).map_err(err)?),
                Some("") | None => {}
                Some(other) => return Err(err(format!("unknown record `{other}`"))),
            }
        }
        plan.check()?;
        Ok(plan)
    }
}

fn extent_text(e: Extent) -> String {
    match (e.batched, e.per_block) {
        (true, 1) if e.per_item == 1 => "b".into(),
        (false, 1) => format!("{}", e.per_item),
        (b, d) => format!("{}{}/{}", if b { "b*" } else { "" }, e.per_item, d),
    }
}

fn parse_extent(s: &str) -> Option<Extent> {
    if s == "b" {
        return Some(Extent::batch());
    }
    let (batched, rest) = match s.strip_prefix("b*") {
        Some(r) => (true, r),
        None => (false, s),
    };
    let (per_item, per_block) = match rest.split_once('/') {
        Some((a, b)) => (a.parse().ok()?, b.parse().ok()?),
        None => (rest.parse().ok()?, 1),
    };
    (per_block > 0).then_some(Extent {
        per_item,
        per_block,
        batched,
    })
}

fn buf_text(b: Buf) -> String {
    match b {
        Buf::Null => "-".into(),
        Buf::Input => "in".into(),
        Buf::Arena(o) => format!("a{o}"),
        Buf::Weight(o) => format!("w{o}"),
    }
}

fn parse_buf(s: &str) -> Option<Buf> {
    match s {
        "-" => Some(Buf::Null),
        "in" => Some(Buf::Input),
        _ => {
            let (kind, n) = s.split_at_checked(1)?;
            let n = n.parse().ok()?;
            match kind {
                "a" => Some(Buf::Arena(n)),
                "w" => Some(Buf::Weight(n)),
                _ => None,
            }
        }
    }
}

fn parse_launch(line: &str) -> Result<Launch, String> {
    let bad = || format!("malformed launch `{line}`");
    // The node name is last and may hold spaces.
    let (head, node) = line.split_once(" node=").ok_or_else(bad)?;
    let mut words = head.split(' ').skip(1);
    let kernel = words.next().ok_or_else(bad)?.to_string();
    let mut field = |key: &str| -> Result<&str, String> {
        words
            .next()
            .and_then(|w| w.strip_prefix(key))
            .ok_or_else(bad)
    };
    let grid: Vec<Extent> = field("grid=")?
        .split(',')
        .map(parse_extent)
        .collect::<Option<_>>()
        .ok_or_else(bad)?;
    let block: Vec<u32> = field("block=")?
        .split(',')
        .map(|b| b.parse().ok())
        .collect::<Option<_>>()
        .ok_or_else(bad)?;
    let shared_bytes = field("smem=")?.parse().map_err(|_| bad())?;
    let args: Vec<Buf> = field("args=")?
        .split(',')
        .map(parse_buf)
        .collect::<Option<_>>()
        .ok_or_else(bad)?;
    Ok(Launch {
        node: node.to_string(),
        kernel,
        grid: grid.try_into().map_err(|_| bad())?,
        block: block.try_into().map_err(|_| bad())?,
        shared_bytes,
        args: args.try_into().map_err(|_| bad())?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_round_trips() {
        let plan = CudaPlan {
            arena_len_per_item: 4096,
            input_len_per_item: 12,
            output: (1024, 10),
            weights: vec![(0, 40), (64, 3)],
            weights_len: 96,
            launches: vec![Launch {
                node: "/layer1/conv 1".into(),
                kernel: "k0_conv".into(),
                grid: [
                    Extent::batched(1000, 256),
                    Extent::fixed(3),
                    Extent::batch(),
                ],
                block: [256, 1, 1],
                shared_bytes: 0,
                args: [
                    Buf::Input,
                    Buf::Weight(0),
                    Buf::Weight(64),
                    Buf::Null,
                    Buf::Arena(16),
                ],
            }],
        };
        let text = plan.to_text();
        assert_eq!(CudaPlan::parse(&text), Ok(plan.clone()));
        assert_eq!(plan.launches[0].grid[0].eval(3), Some(12));
        assert_eq!(plan.launches[0].grid[2].eval(7), Some(7));
        assert!(CudaPlan::parse(&text.replace("a16", "a9999")).is_err());
        assert!(CudaPlan::parse("nonsense").is_err());
    }

    #[test]
    fn weights_are_aligned() {
        let (slots, len) = weight_offsets([40, 3, 32]);
        assert_eq!(slots, vec![(0, 40), (64, 3), (96, 32)]);
        assert_eq!(len, 128);
    }
}
