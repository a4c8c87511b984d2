//! Weights in `safetensors` (readable by PyTorch, JAX, numpy) and run folders.
//!
//! Layer ℓ (0-based) is stored as `layers.{ℓ}.weight` with shape [fan_out, fan_in],
//! as PyTorch's `nn.Linear` stores it (a conv layer as [C_out, C_in, k, k], as
//! `nn.Conv2d` stores it), and `layers.{ℓ}.bias` [fan_out] when present.
//! These are the *raw* weights W; the multipliers g are not folded in. The file's
//! metadata carries the parameterization (`richness.parameterization`, JSON) and the
//! architecture (`richness.arch`, JSON), so a checkpoint never loses its scaling.
//!
//! ```python
//! from safetensors.numpy import load_file
//! w = load_file("weights.safetensors")["layers.0.weight"]   # shape (fan_out, fan_in)
//! ```

use crate::error::{Error, Result};
// The file helpers moved to [`crate::files`]; re-exported here for old callers.
pub use crate::files::{read_config_text, read_file, write_atomic, write_csv, MAX_CONFIG_BYTES};
use crate::nn::{Arch, Model, WeightKind};
use crate::param::Parameterization;
use crate::tensor::{Dtype, Mat, Scalar};
use safetensors::tensor::{Dtype as StDtype, Metadata, TensorInfo};
use std::io::{Read, Seek, SeekFrom};
use std::path::Path;

/// Metadata key of the parameterization (JSON).
pub const META_PARAM: &str = "richness.parameterization";
/// Metadata key of the architecture (JSON).
pub const META_ARCH: &str = "richness.arch";

fn to_bytes<T: Scalar>(v: &[T]) -> Vec<u8> {
    let mut out = Vec::with_capacity(std::mem::size_of_val(v));
    for &x in v {
        match T::DTYPE {
            Dtype::F32 => out.extend_from_slice(&(x.f64() as f32).to_le_bytes()),
            Dtype::F64 => out.extend_from_slice(&x.f64().to_le_bytes()),
        }
    }
    out
}

/// Serialize a model's raw weights with its parameterization in the metadata.
///
/// Written here rather than with `safetensors::serialize`, which emits the metadata
/// in `HashMap` order (random per process) and would make identical runs write
/// different files. The layout is the standard one: an 8-byte little-endian header
/// length, the JSON header (keys sorted, padded with spaces to 8 bytes), the data.
/// Files are read back with the `safetensors` crate's header validation, the tensors
/// streamed from the file into the model ([`load_weights_into`]).
pub fn weights_to_bytes<T: Scalar>(model: &Model<T>) -> Result<Vec<u8>> {
    let dtype = match T::DTYPE {
        Dtype::F32 => "F32",
        Dtype::F64 => "F64",
    };
    let mut header = serde_json::Map::new();
    let mut meta = serde_json::Map::new();
    meta.insert(
        META_PARAM.into(),
        serde_json::to_string(&model.param)
            .expect("serialisable")
            .into(),
    );
    meta.insert(
        META_ARCH.into(),
        serde_json::to_string(&model.arch)
            .expect("serialisable")
            .into(),
    );
    meta.insert("format".into(), "pt".into());
    header.insert("__metadata__".into(), meta.into());
    let mut data = Vec::new();
    let mut add = |name: String,
                   shape: Vec<usize>,
                   values: &[T],
                   header: &mut serde_json::Map<String, serde_json::Value>| {
        let start = data.len();
        data.extend_from_slice(&to_bytes(values));
        header.insert(
            name,
            serde_json::json!({ "dtype": dtype, "shape": shape, "data_offsets": [start, data.len()] }),
        );
    };
    for (l, (w, b)) in model.weights.iter().zip(&model.biases).enumerate() {
        let kind = model.kind(l);
        let torch = kind.to_torch(w.as_slice());
        let values = torch.as_deref().unwrap_or(w.as_slice());
        add(
            format!("layers.{l}.weight"),
            kind.torch_shape(),
            values,
            &mut header,
        );
        if let Some(b) = b {
            add(format!("layers.{l}.bias"), vec![b.len()], b, &mut header);
        }
    }
    let mut json = serde_json::to_string(&serde_json::Value::Object(header)).expect("json");
    while json.len() % 8 != 0 {
        json.push(' ');
    }
    let mut out = Vec::with_capacity(8 + json.len() + data.len());
    out.extend_from_slice(&(json.len() as u64).to_le_bytes());
    out.extend_from_slice(json.as_bytes());
    out.extend_from_slice(&data);
    Ok(out)
}

/// Serialize named tensors (name, PyTorch shape, values) with string metadata, in
/// the layout of [`weights_to_bytes`] (keys sorted, so identical inputs give
/// identical files).
pub fn tensors_to_bytes<T: Scalar>(
    metadata: &[(&str, String)],
    tensors: &[(String, Vec<usize>, Vec<T>)],
) -> Vec<u8> {
    let dtype = match T::DTYPE {
        Dtype::F32 => "F32",
        Dtype::F64 => "F64",
    };
    let mut header = serde_json::Map::new();
    let mut meta = serde_json::Map::new();
    for (k, v) in metadata {
        meta.insert(k.to_string(), v.clone().into());
    }
    meta.insert("format".into(), "pt".into());
    header.insert("__metadata__".into(), meta.into());
    let mut data = Vec::new();
    for (name, shape, values) in tensors {
        let start = data.len();
        data.extend_from_slice(&to_bytes(values));
        header.insert(
            name.clone(),
            serde_json::json!({ "dtype": dtype, "shape": shape, "data_offsets": [start, data.len()] }),
        );
    }
    let mut json = serde_json::to_string(&serde_json::Value::Object(header)).expect("json");
    while json.len() % 8 != 0 {
        json.push(' ');
    }
    let mut out = Vec::with_capacity(8 + json.len() + data.len());
    out.extend_from_slice(&(json.len() as u64).to_le_bytes());
    out.extend_from_slice(json.as_bytes());
    out.extend_from_slice(&data);
    out
}

/// Read exactly the named tensors of a safetensors file (F32 or F64) in the given
/// order, each with its expected shape; a missing, extra, misshapen or non-finite
/// tensor is a one-line error naming it. Returns the values and the metadata.
pub fn read_named_tensors<T: Scalar>(
    path: impl AsRef<Path>,
    expected: &[(String, Vec<usize>)],
) -> Result<(Vec<Vec<T>>, std::collections::HashMap<String, String>)> {
    let path = path.as_ref();
    let mut header = read_header(path)?;
    for name in header.meta.offset_keys() {
        if !expected.iter().any(|(n, _)| *n == name) {
            return Err(Error::file(
                path,
                format!(
                    "unexpected tensor `{name}` (the model has {} tensors: {})",
                    expected.len(),
                    expected
                        .iter()
                        .map(|e| e.0.as_str())
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
            ));
        }
    }
    let mut infos = Vec::with_capacity(expected.len());
    for (name, shape) in expected {
        let info = header
            .meta
            .info(name)
            .ok_or_else(|| Error::file(path, format!("missing tensor `{name}`")))?
            .clone();
        if info.shape != *shape {
            return Err(Error::file(
                path,
                format!(
                    "tensor `{name}` has shape {:?}, the model needs {:?}",
                    info.shape, shape
                ),
            ));
        }
        infos.push(info);
    }
    let mut out = Vec::with_capacity(expected.len());
    for (info, (name, shape)) in infos.iter().zip(expected) {
        let mut values = vec![T::zero(); shape.iter().product()];
        read_values_into(&mut header, info, &mut values, path, name)?;
        all_finite(&values, path, name)?;
        out.push(values);
    }
    let meta = header.meta.metadata().clone().unwrap_or_default();
    Ok((out, meta))
}

/// Metadata key of a GPT's spec (JSON).
pub const META_GPT: &str = "richness.gpt";
/// Metadata key of a GPT's attention multiplier c_att.
pub const META_ATTENTION: &str = "richness.attention_scale";

/// The tensors of a GPT as nanoGPT names and uses them (theory.md §9; docs/gpt.md):
/// *effective* weights, every multiplier folded in, so that nanoGPT's forward pass
/// (plain `nn.Linear`/`nn.Embedding`, softmax of q·k/√d_h, plain GELU, LayerNorm
/// gains of 1) computes exactly this model's logits:
///
/// | tensor | value |
/// |---|---|
/// | `transformer.wte.weight`, `.wpe.weight` | g_E E, g_P P |
/// | `h.{l}.attn.c_attn.weight` | g_A W_A, query rows × c_att √d_h |
/// | `h.{l}.attn.c_proj.weight` | β g_O W_O |
/// | `h.{l}.mlp.c_fc.weight` | g_1 W_1 |
/// | `h.{l}.mlp.c_proj.weight` | β g_2 c W_2 (c the GELU gain) |
/// | `lm_head.weight` | g_L W_L (g_L E when tied: then it differs from wte) |
/// | `h.{l}.ln_1.weight`, `.ln_2.weight`, `transformer.ln_f.weight` | ones (no parameters here) |
///
/// Each entry is (name, shape, the factor on each raw row: one per row).
fn gpt_export_layout<T: Scalar>(gpt: &crate::nn::gpt::Gpt<T>) -> Vec<(String, usize, Vec<f64>)> {
    let s = &gpt.spec;
    let n = s.width;
    (0..s.rows())
        .map(|i| {
            let mut f = vec![gpt.multiplier(i); s.shape(i).0];
            if i >= 2 && i < s.lm_head() {
                match (i - 2) % crate::nn::gpt::PER_BLOCK {
                    // nanoGPT divides q·k by √d_h; richness multiplies by c_att.
                    0 => {
                        let q = gpt.c_att * (s.head_dim as f64).sqrt();
                        f[..n].iter_mut().for_each(|v| *v *= q);
                    }
                    // nanoGPT's GELU has no gain.
                    3 => f.iter_mut().for_each(|v| *v *= s.gain),
                    _ => {}
                }
            }
            (s.name(i), i, f)
        })
        .collect()
}

fn gpt_norm_names(spec: &crate::nn::gpt::GptSpec) -> Vec<String> {
    let mut v: Vec<String> = (0..spec.blocks)
        .flat_map(|l| {
            [
                format!("transformer.h.{l}.ln_1.weight"),
                format!("transformer.h.{l}.ln_2.weight"),
            ]
        })
        .collect();
    v.push("transformer.ln_f.weight".into());
    v
}

/// Write a GPT's weights under nanoGPT's names (see [`gpt_export_layout`]) with the
/// spec, parameterization and c_att in the metadata.
pub fn save_gpt_weights<T: Scalar>(
    gpt: &crate::nn::gpt::Gpt<T>,
    path: impl AsRef<Path>,
) -> Result<()> {
    let s = &gpt.spec;
    let mut tensors = Vec::new();
    for (name, i, f) in gpt_export_layout(gpt) {
        let w = if i == s.lm_head() {
            gpt.readout()
        } else {
            &gpt.tensors[i]
        };
        let cols = w.cols();
        let values: Vec<T> = w
            .as_slice()
            .iter()
            .enumerate()
            .map(|(k, &x)| T::of(f[k / cols]) * x)
            .collect();
        tensors.push((name, vec![w.rows(), cols], values));
    }
    for name in gpt_norm_names(s) {
        tensors.push((name, vec![s.width], vec![T::one(); s.width]));
    }
    let meta = [
        (META_GPT, serde_json::to_string(s).expect("json")),
        (META_PARAM, serde_json::to_string(&gpt.param).expect("json")),
        (META_ATTENTION, format!("{:e}", gpt.c_att)),
    ];
    write_atomic(path.as_ref(), &tensors_to_bytes(&meta, &tensors))
}

/// Load a GPT's weights written by [`save_gpt_weights`] (or by PyTorch under the
/// same names and meaning) into `gpt`, dividing every multiplier out again, so a file
/// loads into a model of any gauge and gives the same function. Refused in one line:
/// a missing or misshapen tensor, LayerNorm gains other than 1, a tied model whose
/// `lm_head.weight` is not g_L/g_E times `wte`, a zero factor (c_att = 0).
pub fn load_gpt_weights_into<T: Scalar>(
    gpt: &mut crate::nn::gpt::Gpt<T>,
    path: impl AsRef<Path>,
) -> Result<()> {
    let path = path.as_ref();
    let s = gpt.spec.clone();
    let layout = gpt_export_layout(gpt);
    let mut expected: Vec<(String, Vec<usize>)> = layout
        .iter()
        .map(|(name, i, _)| {
            let (r, c) = s.shape(*i);
            (name.clone(), vec![r, c])
        })
        .collect();
    let norms = gpt_norm_names(&s);
    expected.extend(norms.iter().map(|n| (n.clone(), vec![s.width])));
    let (values, _) = read_named_tensors::<T>(path, &expected)?;
    for (k, name) in norms.iter().enumerate() {
        let v = &values[layout.len() + k];
        if v.iter().any(|&x| x != T::one()) {
            return Err(Error::file(
                path,
                format!("`{name}` is not all ones: richness's LayerNorm has no parameters (fold a trained gain into the next layer first)"),
            ));
        }
    }
    let mut raw: Vec<Vec<T>> = Vec::new();
    for ((name, i, f), v) in layout.iter().zip(&values) {
        let cols = s.shape(*i).1;
        if f.iter().any(|&x| x == 0.0 || !x.is_finite()) {
            return Err(Error::file(
                path,
                format!("`{name}`: a multiplier of this model is 0, so its raw weights cannot be recovered"),
            ));
        }
        raw.push(
            v.iter()
                .enumerate()
                .map(|(k, &x)| x / T::of(f[k / cols]))
                .collect(),
        );
    }
    if s.tie {
        // The file holds both uses of E; they must agree.
        let (e, l) = (&raw[crate::nn::gpt::WTE], &raw[s.lm_head()]);
        let scale = e
            .iter()
            .map(|x| x.f64().abs())
            .fold(0.0, f64::max)
            .max(f64::MIN_POSITIVE);
        let tol = if T::DTYPE == Dtype::F32 { 1e-5 } else { 1e-12 };
        if e.iter()
            .zip(l)
            .any(|(a, b)| (a.f64() - b.f64()).abs() > tol * scale)
        {
            return Err(Error::file(
                path,
                "the model ties lm_head to wte, but lm_head.weight is not g_L/g_E × transformer.wte.weight in this file",
            ));
        }
    }
    for (i, v) in raw.into_iter().enumerate().take(gpt.tensors.len()) {
        gpt.tensors[i].as_mut_slice().copy_from_slice(&v);
    }
    Ok(())
}

/// Write `weights.safetensors`.
pub fn save_weights<T: Scalar>(model: &Model<T>, path: impl AsRef<Path>) -> Result<()> {
    let path = path.as_ref();
    let bytes = weights_to_bytes(model)?;
    write_atomic(path, &bytes)
}

/// What a weights file says about itself.
#[derive(Clone, Debug)]
pub struct WeightsMeta {
    pub param: Option<Parameterization>,
    pub arch: Option<Arch>,
}

/// An output folder that holds one run.
///
/// A folder that does not exist or is empty is written in place. A folder that
/// already holds files is refused unless `overwrite` is set; then the new run is
/// written into a sibling (`.NAME.partial`) and, once finished, renamed over the old
/// one as a whole, so the files of two runs never sit side by side. An interrupted
/// run leaves the old folder untouched (and its own files in `.NAME.partial`, which
/// the next run removes).
#[derive(Debug)]
pub struct RunFolder {
    target: std::path::PathBuf,
    work: std::path::PathBuf,
    staged: bool,
    /// `.NAME.lock` beside the folder, held until the run is in place: a second
    /// run on the same folder is refused instead of mixing its files in.
    _lock: crate::files::Lock,
}

impl RunFolder {
    /// Claim `target` for a new run (see the type's docs).
    pub fn begin(target: &Path, overwrite: bool) -> Result<Self> {
        // The refusals that need no lock first: they must not leave a lock file
        // beside a folder the run never claims (`--out /etc`).
        if let Ok(m) = std::fs::metadata(target) {
            if !m.is_dir() {
                return Err(Error::file(target, "exists and is not a folder"));
            }
            if !overwrite {
                Self::refuse_used(target)?;
            }
        }
        let parent = target
            .parent()
            .filter(|p| !p.as_os_str().is_empty())
            .unwrap_or_else(|| Path::new("."));
        std::fs::create_dir_all(parent).map_err(|e| Error::io(parent, e))?;
        let lock_path = sibling(target, "lock");
        let mut holder = String::new();
        let lock = crate::files::Lock::try_acquire(&lock_path, &mut holder)?.ok_or_else(|| {
            Error::file(
                target,
                format!("another run is writing to this folder ({holder}): wait for it, or choose another --out"),
            )
        })?;
        // Under the lock, the folder's state is settled: look again.
        let (target, work, staged) = Self::claim(target, overwrite)?;
        Ok(RunFolder {
            target,
            work,
            staged,
            _lock: lock,
        })
    }

    /// A folder holding files, without `overwrite`: refused, naming a few.
    fn refuse_used(target: &Path) -> Result<()> {
        let mut names: Vec<String> = std::fs::read_dir(target)
            .map_err(|e| Error::io(target, e))?
            .filter_map(|e| e.ok())
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .collect();
        if names.is_empty() {
            return Ok(());
        }
        names.sort();
        let shown = names.iter().take(3).cloned().collect::<Vec<_>>().join(", ");
        Err(Error::config(format!(
            "{}: the folder already holds files ({shown}{}): pass --overwrite to replace its contents as a whole, or choose another --out",
            target.display(),
            if names.len() > 3 { ", …" } else { "" }
        )))
    }

    /// (target, work folder, staged) of a claim made under the lock.
    fn claim(
        target: &Path,
        overwrite: bool,
    ) -> Result<(std::path::PathBuf, std::path::PathBuf, bool)> {
        match std::fs::metadata(target) {
            Ok(m) if !m.is_dir() => Err(Error::file(target, "exists and is not a folder")),
            Ok(_) => {
                let empty = std::fs::read_dir(target)
                    .map_err(|e| Error::io(target, e))?
                    .next()
                    .is_none();
                if empty {
                    return Ok((target.to_path_buf(), target.to_path_buf(), false));
                }
                if !overwrite {
                    Self::refuse_used(target)?;
                }
                let target = target.canonicalize().map_err(|e| Error::io(target, e))?;
                let work = sibling(&target, "partial");
                if work.exists() {
                    std::fs::remove_dir_all(&work).map_err(|e| Error::io(&work, e))?;
                }
                std::fs::create_dir_all(&work).map_err(|e| Error::io(&work, e))?;
                Ok((target, work, true))
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                std::fs::create_dir_all(target).map_err(|e| Error::io(target, e))?;
                Ok((target.to_path_buf(), target.to_path_buf(), false))
            }
            Err(e) => Err(Error::io(target, e)),
        }
    }

    /// Where the run's files go now.
    pub fn path(&self) -> &Path {
        &self.work
    }

    /// Put the finished run in place (a staged run replaces the old folder).
    pub fn finish(self) -> Result<()> {
        if !self.staged {
            return Ok(());
        }
        let old = sibling(&self.target, "old");
        if old.exists() {
            std::fs::remove_dir_all(&old).map_err(|e| Error::io(&old, e))?;
        }
        std::fs::rename(&self.target, &old).map_err(|e| Error::io(&self.target, e))?;
        std::fs::rename(&self.work, &self.target).map_err(|e| Error::io(&self.target, e))?;
        let _ = std::fs::remove_dir_all(&old);
        Ok(())
    }
}

/// NaN or ±inf in a weights file (or an f64 value beyond f32's range, read into an
/// f32 model) would train to a NaN checkpoint and still "complete": refuse it,
/// naming the tensor and the flat index (in the file's order).
fn all_finite<T: Scalar>(values: &[T], path: &Path, name: &str) -> Result<()> {
    match values.iter().position(|v| !v.f64().is_finite()) {
        Some(i) => Err(Error::file(
            path,
            format!(
                "tensor `{name}` holds a non-finite value ({}) at flat index {i}: weights must be finite",
                values[i].f64()
            ),
        )),
        None => Ok(()),
    }
}

/// `DIR/.NAME.what` beside `DIR/NAME`.
fn sibling(target: &Path, what: &str) -> std::path::PathBuf {
    let name = target
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "run".into());
    target
        .parent()
        .unwrap_or_else(|| Path::new("."))
        .join(format!(".{name}.{what}"))
}

/// Most header bytes accepted (the `safetensors` crate's own limit).
const MAX_HEADER_BYTES: u64 = 100_000_000;

/// A safetensors file's header, read and validated without reading the data: the
/// tensors' offsets must tile the data exactly (the crate's own checks), and the
/// data must end exactly at the end of the file. Nothing is allocated from a size
/// the header claims before that size is checked against the file's length.
struct Header {
    file: std::fs::File,
    /// Offset of the data section in the file.
    data_start: u64,
    meta: Metadata,
}

fn read_header(path: &Path) -> Result<Header> {
    let bad = |what: String| Error::file(path, format!("not a valid safetensors file: {what}"));
    let mut file = std::fs::File::open(path).map_err(|e| Error::io(path, e))?;
    let fmeta = file.metadata().map_err(|e| Error::io(path, e))?;
    if !fmeta.is_file() {
        return Err(Error::file(path, "is not a regular file"));
    }
    let len = fmeta.len();
    if len < 8 {
        return Err(bad(format!(
            "{len} bytes, shorter than the 8-byte header length"
        )));
    }
    let mut n8 = [0u8; 8];
    file.read_exact(&mut n8).map_err(|e| Error::io(path, e))?;
    let n = u64::from_le_bytes(n8);
    if n > MAX_HEADER_BYTES || n > len - 8 {
        return Err(bad(format!(
            "header of {n} bytes in a file of {len} bytes (at most {MAX_HEADER_BYTES})"
        )));
    }
    let mut header = vec![0u8; n as usize];
    file.read_exact(&mut header)
        .map_err(|e| Error::io(path, e))?;
    // Deserialising `Metadata` runs the crate's validation: offsets contiguous from
    // 0, each tensor's byte length equal to its shape times its dtype's size.
    let meta: Metadata = serde_json::from_slice(&header).map_err(|e| bad(e.to_string()))?;
    let data_start = 8 + n;
    if data_start.checked_add(meta.data_len() as u64) != Some(len) {
        return Err(bad(format!(
            "the tensors cover {} data bytes, the file holds {}",
            meta.data_len(),
            len - data_start
        )));
    }
    Ok(Header {
        file,
        data_start,
        meta,
    })
}

/// Read the metadata (parameterization, architecture) of a weights file (its
/// header only: the tensors are not read).
pub fn read_weights_meta(path: impl AsRef<Path>) -> Result<WeightsMeta> {
    let path = path.as_ref();
    let header = read_header(path)?;
    let map = header.meta.metadata().clone().unwrap_or_default();
    let param = match map.get(META_PARAM) {
        Some(s) => Some(
            serde_json::from_str(s)
                .map_err(|e| Error::file(path, format!("bad {META_PARAM}: {e}")))?,
        ),
        None => None,
    };
    let arch = match map.get(META_ARCH) {
        Some(s) => Some(
            serde_json::from_str(s)
                .map_err(|e| Error::file(path, format!("bad {META_ARCH}: {e}")))?,
        ),
        None => None,
    };
    Ok(WeightsMeta { param, arch })
}

/// Bytes read from the file at a time by [`read_values_into`].
const READ_CHUNK: usize = 1 << 20;

/// Read one tensor's values (F32 or F64, little-endian) from the file straight into
/// `dst`, converting to `T` a chunk at a time: no buffer of the whole tensor.
fn read_values_into<T: Scalar>(
    header: &mut Header,
    info: &TensorInfo,
    dst: &mut [T],
    path: &Path,
    name: &str,
) -> Result<()> {
    let size = match info.dtype {
        StDtype::F32 => 4,
        StDtype::F64 => 8,
        d => {
            return Err(Error::file(
                path,
                format!("tensor `{name}` has dtype {d:?}; expected F32 or F64"),
            ))
        }
    };
    let (s, e) = info.data_offsets;
    // The header's validation makes e − s the shape's element count times the
    // dtype's size, and the caller checked the shape; checked again since it sizes reads.
    if e - s != dst.len() * size {
        return Err(Error::file(path, format!("tensor `{name}`: size mismatch")));
    }
    let file = &mut header.file;
    file.seek(SeekFrom::Start(header.data_start + s as u64))
        .map_err(|e| Error::io(path, e))?;
    let mut buf = vec![0u8; READ_CHUNK.min(e - s)];
    for out in dst.chunks_mut(READ_CHUNK / size) {
        let bytes = &mut buf[..out.len() * size];
        file.read_exact(bytes).map_err(|e| Error::io(path, e))?;
        if size == 4 {
            for (d, c) in out.iter_mut().zip(bytes.chunks_exact(4)) {
                *d = T::of(f32::from_le_bytes(c.try_into().unwrap()) as f64);
            }
        } else {
            for (d, c) in out.iter_mut().zip(bytes.chunks_exact(8)) {
                *d = T::of(f64::from_le_bytes(c.try_into().unwrap()));
            }
        }
    }
    Ok(())
}

/// Overwrite `model`'s weights with those in a safetensors file. Every tensor the
/// model has must be present with the right shape; unknown tensors are an error.
/// F32 and F64 files load into models of either precision. A centred model
/// (`param.center`) is re-centred at the loaded weights.
///
/// The file is streamed: the header is read and validated first (tensor offsets
/// tiling the data, the data ending at the end of the file), every name, shape and
/// dtype is checked, and only then are the values read, a megabyte at a time,
/// straight into the model's weights (no copy of the file or of a tensor is held).
/// An I/O error while reading the values leaves the model's weights unspecified.
pub fn load_weights_into<T: Scalar>(model: &mut Model<T>, path: impl AsRef<Path>) -> Result<()> {
    let path = path.as_ref();
    let mut header = read_header(path)?;
    let mut expected = Vec::new();
    for (l, b) in model.biases.iter().enumerate() {
        expected.push((format!("layers.{l}.weight"), model.kind(l).torch_shape()));
        if let Some(b) = b {
            expected.push((format!("layers.{l}.bias"), vec![b.len()]));
        }
    }
    for name in header.meta.offset_keys() {
        if !expected.iter().any(|(n, _)| *n == name) {
            return Err(Error::file(
                path,
                format!(
                    "unexpected tensor `{name}` (the model has {} tensors: {})",
                    expected.len(),
                    expected
                        .iter()
                        .map(|e| e.0.as_str())
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
            ));
        }
    }
    // Every check on names, shapes and dtypes comes before the first value is
    // written into the model; only an I/O error while reading can leave it part-loaded.
    let mut infos = Vec::with_capacity(expected.len());
    for (name, shape) in &expected {
        let info = header
            .meta
            .info(name)
            .ok_or_else(|| Error::file(path, format!("missing tensor `{name}`")))?
            .clone();
        if info.shape != *shape {
            return Err(Error::file(
                path,
                format!(
                    "tensor `{name}` has shape {:?}, the model needs {:?}",
                    info.shape, shape
                ),
            ));
        }
        if !matches!(info.dtype, StDtype::F32 | StDtype::F64) {
            return Err(Error::file(
                path,
                format!(
                    "tensor `{name}` has dtype {:?}; expected F32 or F64",
                    info.dtype
                ),
            ));
        }
        infos.push(info);
    }
    let mut it = infos.iter().zip(&expected);
    for l in 0..model.depth() {
        let (info, (name, _)) = it.next().expect("one per tensor");
        let kind = model.kind(l);
        if kind.torch_native() {
            // The stored layout is PyTorch's: read in place.
            read_values_into(
                &mut header,
                info,
                model.weights[l].as_mut_slice(),
                path,
                name,
            )?;
            all_finite(model.weights[l].as_slice(), path, name)?;
        } else {
            let mut values = vec![T::zero(); model.weights[l].as_slice().len()];
            read_values_into(&mut header, info, &mut values, path, name)?;
            all_finite(&values, path, name)?;
            kind.from_torch(&values, model.weights[l].as_mut_slice());
        }
        if let Some(b) = model.biases[l].as_mut() {
            let (info, (name, _)) = it.next().expect("one per tensor");
            read_values_into(&mut header, info, b, path, name)?;
            all_finite(b, path, name)?;
        }
    }
    // A centred model is centred at the weights it starts from: these.
    model.recenter();
    Ok(())
}

/// Save a matrix as a 2-D `.npy`.
pub fn save_mat_npy<T: Scalar>(path: impl AsRef<Path>, m: &Mat<T>) -> Result<()> {
    crate::data::npy::save_npy(path, &[m.rows(), m.cols()], m.as_slice())
}
