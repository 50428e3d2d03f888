//! Runs a model compiled by `back::cuda` on an NVIDIA GPU: NVRTC-compiles its source at load (PTX
//! cached on disk by content hash), uploads the weights once, and launches the plan on one stream.
//!
//! CUDA is loaded dynamically through `cudarc` (feature `cuda`): the crate builds and its tests run
//! on machines without CUDA, where [`CudaModel::load`] returns [`CudaError::NoDevice`], never panics.
//! Kernel launches replay the plan; per batch size the launches may be captured once as a CUDA graph.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use cudarc::driver::{
    CudaContext, CudaFunction, CudaGraph, CudaSlice, CudaStream, DevicePtr, LaunchConfig,
    PushKernelArg, sys,
};
use cudarc::nvrtc::{CompileOptions, Ptx};

use crate::cuda::plan::{Buf, CudaPlan, PlanError};
use crate::formats::hash::Fnv64;
use crate::formats::weights::{LoadError, Weights};

/// Why a CUDA model could not load or run.
#[derive(Debug, thiserror::Error)]
pub enum CudaError {
    #[error("no CUDA device: {0}")]
    NoDevice(String),
    #[error("NVRTC cannot compile the generated CUDA source (a compiler bug): {0}")]
    Compile(String),
    #[error("CUDA driver error during {what}: {message}")]
    Driver { what: String, message: String },
    #[error(transparent)]
    Plan(#[from] PlanError),
    #[error(transparent)]
    Weights(#[from] LoadError),
    #[error("the weights file does not match the plan: {0}")]
    WeightsMismatch(String),
    #[error("input has {actual} floats, expected {expected} for batch {batch}")]
    Input {
        batch: usize,
        expected: usize,
        actual: usize,
    },
    #[error("batch {0} makes a grid dimension overflow")]
    Batch(usize),
}

fn driver<E: std::fmt::Debug>(what: impl Into<String>) -> impl FnOnce(E) -> CudaError {
    let what = what.into();
    move |e| CudaError::Driver {
        what,
        message: format!("{e:?}"),
    }
}

/// Whether the CUDA driver and NVRTC libraries can be loaded, or why not. Cheap; never panics.
pub fn available() -> Result<(), CudaError> {
    // SAFETY: only tries to dlopen the libraries by name; no symbol of them is called.
    let (cuda, nvrtc) = unsafe {
        (
            cudarc::driver::sys::is_culib_present(),
            cudarc::nvrtc::sys::is_culib_present(),
        )
    };
    if !cuda {
        return Err(CudaError::NoDevice(
            "the CUDA driver library (libcuda) is not installed".into(),
        ));
    }
    if !nvrtc {
        return Err(CudaError::NoDevice(
            "the NVRTC library (libnvrtc) is not installed".into(),
        ));
    }
    let count = CudaContext::device_count().map_err(|e| CudaError::NoDevice(format!("{e:?}")))?;
    if count < 1 {
        return Err(CudaError::NoDevice("the driver reports no device".into()));
    }
    Ok(())
}

/// Where compiled PTX is cached: `$RESNEXT_CUDA_CACHE`, else `$XDG_CACHE_HOME/resnext`, else
/// `~/.cache/resnext`; `None` disables the cache.
pub fn cache_dir() -> Option<PathBuf> {
    if let Some(d) = std::env::var_os("RESNEXT_CUDA_CACHE") {
        return Some(PathBuf::from(d));
    }
    if let Some(d) = std::env::var_os("XDG_CACHE_HOME") {
        return Some(PathBuf::from(d).join("resnext"));
    }
    std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache/resnext"))
}

/// NVRTC-compiles `source` for compute capability `arch` (`(9, 0)` → `sm_90`), reusing the cached PTX
/// of the same source and options. A cache that cannot be read or written is ignored.
fn compile(source: &str, arch: (i32, i32)) -> Result<Ptx, CudaError> {
    let options = vec![
        format!("--gpu-architecture=sm_{}{}", arch.0, arch.1),
        "--fmad=true".to_string(),
    ];
    let mut h = Fnv64::new();
    h.update_str(source);
    for o in &options {
        h.update_str(o);
    }
    let path = cache_dir().map(|d| d.join(format!("{:016x}.ptx", h.finish())));
    if let Some(text) = path.as_ref().and_then(|p| std::fs::read_to_string(p).ok()) {
        return Ok(Ptx::from_src(text));
    }
    let ptx = cudarc::nvrtc::compile_ptx_with_opts(
        source,
        CompileOptions {
            options,
            ..CompileOptions::default()
        },
    )
    .map_err(|e| CudaError::Compile(format!("{e:?}")))?;
    if let Some(p) = &path {
        let tmp = p.with_extension("ptx.tmp");
        let written = p
            .parent()
            .map(std::fs::create_dir_all)
            .transpose()
            .and_then(|_| std::fs::write(&tmp, ptx.to_src()))
            .and_then(|_| std::fs::rename(&tmp, p));
        if written.is_err() {
            let _ = std::fs::remove_file(&tmp);
        }
    }
    Ok(ptx)
}

/// A model on the GPU: its kernels, weights and (per batch size) activation arena.
pub struct CudaModel {
    stream: Arc<CudaStream>,
    plan: CudaPlan,
    functions: Vec<CudaFunction>,
    weights: CudaSlice<f32>,
    /// Arena, input and output buffers of the batch size they were sized for.
    buffers: Option<Buffers>,
    /// Captured launch sequences, per batch size, when [`CudaModel::set_graphs`] is on.
    graphs: HashMap<usize, CudaGraph>,
    use_graphs: bool,
}

struct Buffers {
    batch: usize,
    arena: CudaSlice<f32>,
    input: CudaSlice<f32>,
    output: Vec<f32>,
}

impl CudaModel {
    /// Compiles `source`, parses `plan` (its text form) and uploads the weights file at
    /// `weights_path` (written for `model_hash`) to device `ordinal`.
    pub fn load(
        source: &str,
        plan: &str,
        weights_path: impl AsRef<Path>,
        model_hash: u64,
        ordinal: usize,
    ) -> Result<CudaModel, CudaError> {
        available()?;
        let weights = Weights::load(weights_path, model_hash)?;
        Self::from_weights(source, plan, &weights, ordinal)
    }

    /// As [`CudaModel::load`], with the weights already in memory.
    pub fn from_weights(
        source: &str,
        plan: &str,
        weights: &Weights,
        ordinal: usize,
    ) -> Result<CudaModel, CudaError> {
        available()?;
        let plan = CudaPlan::parse(plan)?;
        if weights.len() != plan.weights.len() {
            return Err(CudaError::WeightsMismatch(format!(
                "{} tensors, the plan expects {}",
                weights.len(),
                plan.weights.len()
            )));
        }
        let mut host = vec![0.0f32; plan.weights_len.max(1)];
        for (i, &(offset, len)) in plan.weights.iter().enumerate() {
            let t = weights.tensor(i);
            if t.len() != len || offset + len > plan.weights_len {
                return Err(CudaError::WeightsMismatch(format!(
                    "tensor {i} has {} floats, the plan expects {len} at {offset}",
                    t.len()
                )));
            }
            host[offset..offset + len].copy_from_slice(t);
        }
        let ctx = CudaContext::new(ordinal).map_err(|e| CudaError::NoDevice(format!("{e:?}")))?;
        // SAFETY: every buffer of this model is created, written and read on its one stream, so
        // cudarc's cross-stream events are not needed (and would get in the way of graph capture).
        unsafe { ctx.disable_event_tracking() };
        let arch = ctx
            .compute_capability()
            .map_err(driver("compute capability"))?;
        let module = ctx
            .load_module(compile(source, arch)?)
            .map_err(driver("module load"))?;
        let functions = plan
            .launches
            .iter()
            .map(|l| {
                module
                    .load_function(&l.kernel)
                    .map_err(driver(format!("loading kernel `{}`", l.kernel)))
            })
            .collect::<Result<Vec<_>, _>>()?;
        let stream = ctx.new_stream().map_err(driver("stream creation"))?;
        let weights = stream.clone_htod(&host).map_err(driver("weight upload"))?;
        Ok(CudaModel {
            stream,
            plan,
            functions,
            weights,
            buffers: None,
            graphs: HashMap::new(),
            use_graphs: false,
        })
    }

    /// Capture each batch size's launches once as a CUDA graph and replay it (off by default).
    pub fn set_graphs(&mut self, on: bool) {
        self.use_graphs = on;
    }

    /// Runs the model on `batch` items (`[batch, input_len_per_item]` floats) and returns the output.
    pub fn forward(&mut self, input: &[f32], batch: usize) -> Result<Vec<f32>, CudaError> {
        let expected = batch * self.plan.input_len_per_item;
        if input.len() != expected || batch == 0 {
            return Err(CudaError::Input {
                batch,
                expected,
                actual: input.len(),
            });
        }
        self.ensure_buffers(batch)?;
        let mut buffers = self.buffers.take().ok_or(CudaError::Batch(batch))?;
        let result = self.run(&mut buffers, input, batch);
        let output = buffers.output.clone();
        self.buffers = Some(buffers);
        result.map(|()| output)
    }

    fn ensure_buffers(&mut self, batch: usize) -> Result<(), CudaError> {
        if self.buffers.as_ref().is_some_and(|b| b.batch == batch) {
            return Ok(());
        }
        // Graphs captured for other buffers point at freed memory.
        self.graphs.clear();
        self.buffers = None;
        let arena = self
            .stream
            .alloc_zeros::<f32>((batch * self.plan.arena_len_per_item).max(1))
            .map_err(driver("arena allocation"))?;
        let input = self
            .stream
            .alloc_zeros::<f32>((batch * self.plan.input_len_per_item).max(1))
            .map_err(driver("input allocation"))?;
        self.buffers = Some(Buffers {
            batch,
            arena,
            input,
            output: vec![0.0; batch * self.plan.output.1],
        });
        Ok(())
    }

    fn run(&mut self, b: &mut Buffers, input: &[f32], batch: usize) -> Result<(), CudaError> {
        self.stream
            .memcpy_htod(input, &mut b.input)
            .map_err(driver("input upload"))?;
        if self.use_graphs {
            if !self.graphs.contains_key(&batch) {
                self.stream
                    .begin_capture(sys::CUstreamCaptureMode::CU_STREAM_CAPTURE_MODE_THREAD_LOCAL)
                    .map_err(driver("graph capture"))?;
                let launched = self.launch_all(b, batch);
                let graph = self
                    .stream
                    .end_capture(sys::CUgraphInstantiate_flags(0))
                    .map_err(driver("graph capture"))?;
                launched?;
                if let Some(g) = graph {
                    self.graphs.insert(batch, g);
                }
            }
            if let Some(g) = self.graphs.get(&batch) {
                g.launch().map_err(driver("graph launch"))?;
            }
        } else {
            self.launch_all(b, batch)?;
        }
        let (offset, len) = self.plan.output;
        let out = b.arena.slice(batch * offset..batch * (offset + len));
        self.stream
            .memcpy_dtoh(&out, &mut b.output)
            .map_err(driver("output download"))?;
        self.stream.synchronize().map_err(driver("synchronize"))?;
        Ok(())
    }

    /// The GPU time of each launch (node name, median ms over `runs` runs of `batch` items), timed
    /// by CUDA events around every kernel (no graph replay: it measures the kernels, not launch
    /// overhead). The input is uploaded once.
    pub fn layer_times(
        &mut self,
        input: &[f32],
        batch: usize,
        runs: usize,
    ) -> Result<Vec<(String, f64)>, CudaError> {
        self.forward(input, batch)?;
        let buffers = self.buffers.take().ok_or(CudaError::Batch(batch))?;
        let result = self.time_launches(&buffers, batch, runs.max(1));
        self.buffers = Some(buffers);
        result
    }

    fn time_launches(
        &self,
        b: &Buffers,
        batch: usize,
        runs: usize,
    ) -> Result<Vec<(String, f64)>, CudaError> {
        let ctx = self.stream.context();
        let events = (0..=self.plan.launches.len())
            .map(|_| ctx.new_event(Some(sys::CUevent_flags::CU_EVENT_DEFAULT)))
            .collect::<Result<Vec<_>, _>>()
            .map_err(driver("event creation"))?;
        let mut samples = vec![Vec::with_capacity(runs); self.plan.launches.len()];
        for _ in 0..runs {
            self.launch_all_timed(b, batch, Some(&events))?;
            for (i, s) in samples.iter_mut().enumerate() {
                let ms = events[i]
                    .elapsed_ms(&events[i + 1])
                    .map_err(driver("event timing"))?;
                s.push(ms as f64);
            }
        }
        Ok(self
            .plan
            .launches
            .iter()
            .zip(samples)
            .map(|(l, mut s)| {
                s.sort_by(f64::total_cmp);
                (l.node.clone(), s[s.len() / 2])
            })
            .collect())
    }

    /// Launches every kernel of the plan on the stream.
    fn launch_all(&self, b: &Buffers, batch: usize) -> Result<(), CudaError> {
        self.launch_all_timed(b, batch, None)
    }

    /// As [`Self::launch_all`], recording `events[i]` before launch `i` and the last event after
    /// the last launch.
    fn launch_all_timed(
        &self,
        b: &Buffers,
        batch: usize,
        events: Option<&[cudarc::driver::CudaEvent]>,
    ) -> Result<(), CudaError> {
        let (arena, _a) = b.arena.device_ptr(&self.stream);
        let (input, _i) = b.input.device_ptr(&self.stream);
        let (weights, _w) = self.weights.device_ptr(&self.stream);
        let batch_arg = i32::try_from(batch).map_err(|_| CudaError::Batch(batch))?;
        for (index, (l, f)) in self.plan.launches.iter().zip(&self.functions).enumerate() {
            let ptr = |a: Buf| -> u64 {
                match a {
                    Buf::Null => 0,
                    Buf::Input => input,
                    Buf::Arena(o) => arena + 4 * (batch * o) as u64,
                    Buf::Weight(o) => weights + 4 * o as u64,
                }
            };
            let args = l.args.map(ptr);
            let mut grid = [0u32; 3];
            for (g, e) in grid.iter_mut().zip(l.grid) {
                *g = e.eval(batch).ok_or(CudaError::Batch(batch))?;
            }
            let cfg = LaunchConfig {
                grid_dim: (grid[0], grid[1], grid[2]),
                block_dim: (l.block[0], l.block[1], l.block[2]),
                shared_mem_bytes: 0,
            };
            if let Some(e) = events.and_then(|e| e.get(index)) {
                e.record(&self.stream).map_err(driver("event record"))?;
            }
            let mut builder = self.stream.launch_builder(f);
            for a in &args {
                builder.arg(a);
            }
            builder.arg(&batch_arg);
            // SAFETY: the kernel's signature is `(const float*, const float*, const float*, const
            // float*, float*, int)`, matching the five device pointers and the i32 pushed; every
            // pointer lies in a live allocation sized from the checked plan for this batch.
            unsafe { builder.launch(cfg) }.map_err(driver(format!("launch of `{}`", l.node)))?;
        }
        if let Some(e) = events.and_then(|e| e.last()) {
            e.record(&self.stream).map_err(driver("event record"))?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// This runs everywhere: without CUDA it checks the clear error; with a GPU, a one-kernel model.
    #[test]
    fn no_device_is_an_error_not_a_panic() {
        match available() {
            Err(e) => {
                eprintln!("skipping the GPU part: {e}");
                let err = CudaModel::from_weights("", "resnext-cuda-plan 1\n", &empty_weights(), 0);
                assert!(matches!(err, Err(CudaError::NoDevice(_))));
            }
            Ok(()) => eprintln!("a CUDA device is present; the GPU tests run in resnext-compiler"),
        }
    }

    fn empty_weights() -> Weights {
        let w = crate::formats::weights::WeightsWriter::new(0);
        let mut bytes = Vec::new();
        w.write_to(&mut bytes).expect("empty weights file");
        Weights::from_bytes(&bytes, 0).expect("empty weights file parses")
    }
}
