//! An NVIDIA GPU as a [`Backend`]: the driver API and NVRTC through `cudarc`, both
//! loaded at run time, and our kernels (`kernels.cu`) compiled to PTX when the backend
//! opens.
//!
//! Why dynamic loading: the crate builds, and its tests run, on machines with no CUDA
//! toolkit and no driver; [`CudaDevice::new`] then returns
//! [`BackendError::Unavailable`] instead of failing to link or panicking.
//!
//! The FFN operation runs as four launches on one stream: the gathered gate rows
//! (a warp per row and token), the gathered up rows, the activation with the skip rule
//! and per-token membership, and the down axpy (a thread per output column looping
//! over the active rows, so no atomics and a fixed order of additions).

use std::sync::{Arc, Mutex};
use std::time::Instant;

use cudarc::driver::{
    CudaContext, CudaFunction, CudaSlice, CudaStream, LaunchConfig, PushKernelArg,
};
use powerinfer_kernels::{Activation, FfnWeights, Matrix, Skip, WType};

use super::store::{OwnedFfn, OwnedMatrix, check_budget};
use super::{Backend, BackendError, Done, FfnSelect, Op, Threaded, Ticket, WeightId};

/// The CUDA C source of every kernel.
pub const KERNELS_CU: &str = include_str!("kernels.cu");

/// Names of the kernels in [`KERNELS_CU`].
pub const KERNEL_NAMES: [&str; 3] = ["gemv_rows", "ffn_act", "axpy_rows"];

/// Whether the NVRTC library can be loaded (the PTX compile needs it, not a GPU).
pub fn nvrtc_present() -> bool {
    // SAFETY: only tries to open the shared library by its known names; nothing from
    // it is called.
    unsafe { cudarc::nvrtc::sys::is_culib_present() }
}

/// Whether the CUDA driver library can be loaded.
pub fn driver_present() -> bool {
    // SAFETY: as in `nvrtc_present`, a library open and nothing more.
    unsafe { cudarc::driver::sys::is_culib_present() }
}

/// Compiles [`KERNELS_CU`] to PTX text with NVRTC. Why public: CI checks the CUDA
/// source on every run, on machines without a GPU.
pub fn compile_ptx() -> Result<String, BackendError> {
    if !nvrtc_present() {
        return Err(BackendError::Unavailable(
            "libnvrtc not found (install the CUDA toolkit or the nvidia-cuda-nvrtc-cu12 wheel and set LD_LIBRARY_PATH)".into(),
        ));
    }
    let opts = cudarc::nvrtc::CompileOptions {
        name: Some("powerinfer_kernels.cu".into()),
        ..Default::default()
    };
    let ptx = cudarc::nvrtc::compile_ptx_with_opts(KERNELS_CU, opts).map_err(|e| {
        BackendError::Device {
            backend: "cuda".into(),
            call: "nvrtc compile".into(),
            reason: e.to_string(),
        }
    })?;
    Ok(ptx.to_src())
}

/// A matrix in device memory.
struct DeviceMatrix {
    wtype: i32,
    rows: usize,
    cols: usize,
    row_bytes: usize,
    data: CudaSlice<u8>,
}

/// Some neurons of one FFN in device memory.
struct DeviceFfn {
    gate: DeviceMatrix,
    up: Option<DeviceMatrix>,
    down: DeviceMatrix,
    bias: Option<CudaSlice<f32>>,
    act: i32,
}

enum DeviceWeight {
    Matrix(DeviceMatrix),
    Ffn(Box<DeviceFfn>),
}

struct State {
    weights: Vec<DeviceWeight>,
    held: u64,
}

/// Opens CUDA device `ordinal` (see [`CudaDevice::new`]) behind a worker thread, so
/// the executor's host half runs while the GPU works: the backend to use.
pub fn open(ordinal: usize, budget: Option<u64>) -> Result<Threaded<CudaDevice>, BackendError> {
    Threaded::new(CudaDevice::new(ordinal, budget)?)
}

/// One CUDA device; its operations block until their results are back on the host
/// (wrap it in [`Threaded`], as [`open`] does).
pub struct CudaDevice {
    name: String,
    budget: Option<u64>,
    stream: Arc<CudaStream>,
    gemv: CudaFunction,
    act: CudaFunction,
    axpy: CudaFunction,
    state: Arc<Mutex<State>>,
}

impl std::fmt::Debug for CudaDevice {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CudaDevice")
            .field("name", &self.name)
            .finish()
    }
}

fn wtype_code(t: WType) -> Result<i32, BackendError> {
    Ok(match t {
        WType::F32 => 0,
        WType::F16 => 1,
        WType::Q8_0 => 2,
        WType::Q4_0 => 3,
        WType::Q4_1 => 4,
        other => {
            return Err(BackendError::Unavailable(format!(
                "the CUDA kernels take F32, F16, Q8_0, Q4_0 and Q4_1 weights, not {other}"
            )));
        }
    })
}

fn act_code(a: Activation) -> i32 {
    match a {
        Activation::Relu => 0,
        Activation::ReGlu => 1,
        Activation::DRelu => 2,
        Activation::SwiGlu => 3,
        Activation::GeGlu => 4,
        Activation::Gelu => 5,
    }
}

impl CudaDevice {
    /// Opens device `ordinal` with an optional byte budget (default: its free memory
    /// less 10%). Fails with [`BackendError::Unavailable`] where there is no driver, no
    /// device, or no NVRTC.
    pub fn new(ordinal: usize, budget: Option<u64>) -> Result<CudaDevice, BackendError> {
        if !driver_present() {
            return Err(BackendError::Unavailable(
                "libcuda not found (no NVIDIA driver)".into(),
            ));
        }
        let dev = |call: &str| {
            let call = call.to_string();
            move |e: cudarc::driver::DriverError| BackendError::Device {
                backend: format!("cuda:{ordinal}"),
                call: call.clone(),
                reason: e.to_string(),
            }
        };
        let ctx = CudaContext::new(ordinal).map_err(dev("cuCtxCreate"))?;
        let ptx = compile_ptx()?;
        let module = ctx
            .load_module(cudarc::nvrtc::Ptx::from_src(ptx))
            .map_err(dev("cuModuleLoad"))?;
        let f = |name: &str| module.load_function(name).map_err(dev(name));
        let gpu = ctx.name().unwrap_or_else(|_| "unknown GPU".into());
        let budget = match budget {
            Some(b) => Some(b),
            None => {
                let (free, _) = ctx.mem_get_info().map_err(dev("cuMemGetInfo"))?;
                Some(free as u64 / 10 * 9)
            }
        };
        Ok(CudaDevice {
            name: format!("cuda:{ordinal} {gpu}"),
            budget,
            stream: ctx.default_stream(),
            gemv: f("gemv_rows")?,
            act: f("ffn_act")?,
            axpy: f("axpy_rows")?,
            state: Arc::new(Mutex::new(State {
                weights: Vec::new(),
                held: 0,
            })),
        })
    }

    fn err(&self, call: &'static str) -> impl Fn(cudarc::driver::DriverError) -> BackendError + '_ {
        move |e| BackendError::Device {
            backend: self.name.clone(),
            call: call.into(),
            reason: e.to_string(),
        }
    }

    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        // Uploads insert whole weight sets, so a poisoned lock guards a consistent state.
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn to_device(&self, m: &OwnedMatrix) -> Result<DeviceMatrix, BackendError> {
        Ok(DeviceMatrix {
            wtype: wtype_code(m.wtype)?,
            rows: m.rows,
            cols: m.cols,
            row_bytes: m.data.len().checked_div(m.rows).unwrap_or(0),
            data: self
                .stream
                .clone_htod(&m.data)
                .map_err(self.err("memcpy to device"))?,
        })
    }

    /// Stores the weight set `make` copies to the device (`bytes` of weights),
    /// refusing it first if it would pass the budget (so nothing is copied then).
    fn insert(
        &self,
        name: &str,
        bytes: u64,
        make: impl FnOnce() -> Result<DeviceWeight, BackendError>,
    ) -> Result<WeightId, BackendError> {
        let mut st = self.state();
        let total = check_budget(&self.name, self.budget, st.held, name, bytes)?;
        st.weights.push(make()?);
        st.held = total;
        Ok(WeightId(st.weights.len() - 1))
    }

    /// `y[b][k] = W[idx[k]]·x[b]` into `y` (n × m).
    #[allow(clippy::too_many_arguments)]
    fn launch_gemv(
        &self,
        w: &DeviceMatrix,
        idx: Option<&CudaSlice<i32>>,
        m: usize,
        x: &CudaSlice<f32>,
        n: usize,
        y: &mut CudaSlice<f32>,
    ) -> Result<(), BackendError> {
        const WARPS: usize = 8;
        let cfg = LaunchConfig {
            grid_dim: (m.div_ceil(WARPS).max(1) as u32, n as u32, 1),
            block_dim: (32 * WARPS as u32, 1, 1),
            shared_mem_bytes: 0,
        };
        let (row_bytes, wtype, cols, m_i, n_i) = (
            w.row_bytes as i64,
            w.wtype,
            w.cols as i32,
            m as i32,
            n as i32,
        );
        let null = 0u64;
        let mut b = self.stream.launch_builder(&self.gemv);
        b.arg(&w.data).arg(&row_bytes).arg(&wtype).arg(&cols);
        match idx {
            Some(i) => b.arg(i),
            None => b.arg(&null),
        };
        b.arg(&m_i).arg(x).arg(&n_i).arg(y);
        // SAFETY: the argument list matches `gemv_rows` in kernels.cu (pointers, i64,
        // i32s, in order); every index is below `w.rows` (checked on the host before
        // upload), `x` holds n × cols and `y` n × m floats, so no thread reads or
        // writes past a buffer.
        unsafe { b.launch(cfg) }.map_err(self.err("gemv_rows"))?;
        Ok(())
    }

    fn run_ffn(
        &self,
        f: &DeviceFfn,
        xs: &[f32],
        n: usize,
        select: &FfnSelect,
        skip: Skip,
    ) -> Result<Done, BackendError> {
        let neurons = f.gate.rows;
        // The union of the tokens' candidates, and per token which of it it may use.
        let (cand, member): (Vec<u32>, Option<Vec<u8>>) = match select {
            FfnSelect::All => ((0..neurons as u32).collect(), None),
            FfnSelect::Shared(c) => (c.clone(), None),
            FfnSelect::PerToken(sets) => {
                let mut all: Vec<u32> = sets.iter().flatten().copied().collect();
                all.sort_unstable();
                all.dedup();
                let mut mask = vec![0u8; n * all.len()];
                for (b, s) in sets.iter().enumerate() {
                    for &i in s {
                        if let Ok(k) = all.binary_search(&i) {
                            mask[b * all.len() + k] = 1;
                        }
                    }
                }
                (all, Some(mask))
            }
        };
        if let Some(&bad) = cand.iter().find(|&&i| i as usize >= neurons) {
            return Err(BackendError::Kernel {
                context: self.name.clone(),
                source: powerinfer_kernels::KernelError::BadIndex {
                    position: 0,
                    index: bad,
                    rows: neurons,
                },
            });
        }
        let (m, d) = (cand.len(), f.gate.cols);
        let e = |c: &'static str| self.err(c);
        let mut ys = self.stream.alloc_zeros::<f32>(n * d).map_err(e("alloc"))?;
        if m == 0 {
            let out = self.stream.clone_dtoh(&ys).map_err(e("memcpy to host"))?;
            return Ok(Done {
                ys: out,
                active: vec![0; n],
                ..Done::default()
            });
        }
        let idx: Vec<i32> = cand.iter().map(|&i| i as i32).collect();
        let idx = self
            .stream
            .clone_htod(&idx)
            .map_err(e("memcpy to device"))?;
        let x = self.stream.clone_htod(xs).map_err(e("memcpy to device"))?;
        let mut g = self.stream.alloc_zeros::<f32>(n * m).map_err(e("alloc"))?;
        self.launch_gemv(&f.gate, Some(&idx), m, &x, n, &mut g)?;
        let mut u = self.stream.alloc_zeros::<f32>(n * m).map_err(e("alloc"))?;
        if let Some(up) = &f.up {
            self.launch_gemv(up, Some(&idx), m, &x, n, &mut u)?;
        }
        let mask = member
            .as_ref()
            .map(|mk| self.stream.clone_htod(mk))
            .transpose()
            .map_err(e("memcpy to device"))?;
        let threshold = match skip {
            Skip::None => -1.0f32,
            Skip::Below(t) => t,
        };
        let mut h = self.stream.alloc_zeros::<f32>(n * m).map_err(e("alloc"))?;
        {
            let (m_i, n_i, act) = (m as i32, n as i32, f.act);
            let null = 0u64;
            let total = (n * m) as u32;
            let cfg = LaunchConfig {
                grid_dim: (total.div_ceil(256), 1, 1),
                block_dim: (256, 1, 1),
                shared_mem_bytes: 0,
            };
            let mut b = self.stream.launch_builder(&self.act);
            b.arg(&g);
            match &f.up {
                Some(_) => b.arg(&u),
                None => b.arg(&null),
            };
            match &f.bias {
                Some(bs) => b.arg(bs),
                None => b.arg(&null),
            };
            b.arg(&idx);
            match &mask {
                Some(mk) => b.arg(mk),
                None => b.arg(&null),
            };
            b.arg(&act).arg(&threshold).arg(&m_i).arg(&n_i).arg(&mut h);
            // SAFETY: arguments match `ffn_act` in kernels.cu; g, u, h (and the mask)
            // hold n × m values, `idx` m indices below the bias's length (the uploaded
            // neurons), and the grid covers exactly n × m threads with a bound check in
            // the kernel.
            unsafe { b.launch(cfg) }.map_err(e("ffn_act"))?;
        }
        {
            let (row_bytes, wtype, dim, m_i, n_i) = (
                f.down.row_bytes as i64,
                f.down.wtype,
                d as i32,
                m as i32,
                n as i32,
            );
            let cfg = LaunchConfig {
                grid_dim: ((d as u32).div_ceil(128), n as u32, 1),
                block_dim: (128, 1, 1),
                shared_mem_bytes: 0,
            };
            let mut b = self.stream.launch_builder(&self.axpy);
            b.arg(&f.down.data)
                .arg(&row_bytes)
                .arg(&wtype)
                .arg(&dim)
                .arg(&idx);
            b.arg(&h).arg(&m_i).arg(&n_i).arg(&mut ys);
            // SAFETY: arguments match `axpy_rows` in kernels.cu; `idx` holds m indices
            // below the down rows' count, h n × m values, ys n × dim.
            unsafe { b.launch(cfg) }.map_err(e("axpy_rows"))?;
        }
        let out = self.stream.clone_dtoh(&ys).map_err(e("memcpy to host"))?;
        // Neurons computed per token, counted as the host kernels count them: every
        // candidate without a skip rule, else those whose activation is not 0 (only
        // then are the activations copied back).
        let active = match skip {
            Skip::None => (0..n)
                .map(|b| {
                    member.as_ref().map_or(m, |mk| {
                        mk[b * m..(b + 1) * m].iter().filter(|&&v| v != 0).count()
                    })
                })
                .collect(),
            Skip::Below(_) => {
                let hv = self.stream.clone_dtoh(&h).map_err(e("memcpy to host"))?;
                hv.chunks_exact(m)
                    .map(|hb| hb.iter().filter(|&&v| v != 0.0).count())
                    .collect()
            }
        };
        Ok(Done {
            ys: out,
            active,
            link_bytes: 4 * (xs.len() + n * d) as u64,
            ..Done::default()
        })
    }

    fn run_matmul(&self, w: &DeviceMatrix, xs: &[f32], n: usize) -> Result<Done, BackendError> {
        let e = |c: &'static str| self.err(c);
        let x = self.stream.clone_htod(xs).map_err(e("memcpy to device"))?;
        let mut y = self
            .stream
            .alloc_zeros::<f32>(n * w.rows)
            .map_err(e("alloc"))?;
        self.launch_gemv(w, None, w.rows, &x, n, &mut y)?;
        let ys = self.stream.clone_dtoh(&y).map_err(e("memcpy to host"))?;
        Ok(Done {
            link_bytes: 4 * (xs.len() + ys.len()) as u64,
            ys,
            ..Done::default()
        })
    }
}

impl Backend for CudaDevice {
    fn name(&self) -> String {
        self.name.clone()
    }

    fn budget(&self) -> Option<u64> {
        self.budget
    }

    fn bytes_held(&self) -> u64 {
        self.state().held
    }

    fn upload_matrix(&self, name: &str, m: &Matrix) -> Result<WeightId, BackendError> {
        let bytes = (m.rows() * m.row_bytes()) as u64;
        self.insert(name, bytes, || {
            Ok(DeviceWeight::Matrix(self.to_device(&OwnedMatrix::copy(m))?))
        })
    }

    fn upload_ffn(
        &self,
        name: &str,
        w: &FfnWeights,
        neurons: &[u32],
        down_type: WType,
    ) -> Result<WeightId, BackendError> {
        let bytes = super::ffn_neuron_bytes(w, down_type)? * neurons.len() as u64;
        self.insert(name, bytes, || {
            let f = OwnedFfn::gather(name, w, neurons, down_type)?;
            Ok(DeviceWeight::Ffn(Box::new(DeviceFfn {
                gate: self.to_device(&f.gate)?,
                up: f.up.as_ref().map(|u| self.to_device(u)).transpose()?,
                down: self.to_device(&f.down)?,
                bias: f
                    .gate_bias
                    .as_ref()
                    .map(|b| self.stream.clone_htod(b))
                    .transpose()
                    .map_err(self.err("memcpy to device"))?,
                act: act_code(f.act),
            })))
        })
    }

    fn release_all(&self) {
        let mut st = self.state();
        st.weights.clear();
        st.held = 0;
    }

    fn submit(&self, op: Op) -> Result<Ticket, BackendError> {
        // Kernels are queued on the stream and the copy back waits for them, so the
        // result is ready when this returns ([`open`] runs it on a worker thread).
        let start = Instant::now();
        let st = self.state();
        let unknown = |kind, id: WeightId| BackendError::UnknownWeight {
            backend: self.name.clone(),
            kind,
            id: id.0,
        };
        let done = match &op {
            Op::MatMul { w, xs, n } => match st.weights.get(w.0) {
                Some(DeviceWeight::Matrix(m)) => self.run_matmul(m, xs, *n),
                _ => Err(unknown("matrix", *w)),
            },
            Op::Ffn {
                w,
                xs,
                n,
                select,
                skip,
            } => match st.weights.get(w.0) {
                Some(DeviceWeight::Ffn(f)) => self.run_ffn(f, xs, *n, select, *skip),
                _ => Err(unknown("ffn", *w)),
            },
        };
        Ok(Ticket::ready(done.map(|mut d| {
            d.device_time = start.elapsed();
            d
        })))
    }
}
