//! NumPy `.npy` files: a strict reader and a writer.
//!
//! Written by hand (the format is one header and raw data) so that every check the
//! tool promises happens before any allocation: the header must parse, the dtype
//! must be numeric, the shape's element count times the item size must equal the
//! bytes actually present. Nothing is ever allocated on a header's word alone.
//!
//! ```
//! use richness::data::npy::{write_npy, parse_npy, NpyData};
//! let mut buf = Vec::new();
//! write_npy(&mut buf, &[2, 3], &[1.0f64, 2.0, 3.0, 4.0, 5.0, 6.0]).unwrap();
//! let a = parse_npy(&buf, "mem.npy").unwrap();
//! assert_eq!(a.shape, vec![2, 3]);
//! assert_eq!(a.to_f64(), vec![1.0, 2.0, 3.0, 4.0, 5.0, 6.0]);
//! ```

use crate::error::{Error, Result};
use crate::tensor::Scalar;
use std::io::Write;
use std::path::Path;

/// Element data of an array, in its stored type.
#[derive(Clone, Debug, PartialEq)]
pub enum NpyData {
    F32(Vec<f32>),
    F64(Vec<f64>),
    U8(Vec<u8>),
    I8(Vec<i8>),
    I16(Vec<i16>),
    U16(Vec<u16>),
    I32(Vec<i32>),
    U32(Vec<u32>),
    I64(Vec<i64>),
    U64(Vec<u64>),
    Bool(Vec<bool>),
}

/// A C-ordered array read from a `.npy` file.
#[derive(Clone, Debug, PartialEq)]
pub struct NpyArray {
    pub shape: Vec<usize>,
    pub data: NpyData,
}

impl NpyArray {
    /// Number of elements.
    pub fn len(&self) -> usize {
        self.shape.iter().product()
    }
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
    /// The stored type as NumPy names it (`float32`, `uint8`, …).
    pub fn dtype_name(&self) -> &'static str {
        match &self.data {
            NpyData::F32(_) => "float32",
            NpyData::F64(_) => "float64",
            NpyData::U8(_) => "uint8",
            NpyData::I8(_) => "int8",
            NpyData::I16(_) => "int16",
            NpyData::U16(_) => "uint16",
            NpyData::I32(_) => "int32",
            NpyData::U32(_) => "uint32",
            NpyData::I64(_) => "int64",
            NpyData::U64(_) => "uint64",
            NpyData::Bool(_) => "bool",
        }
    }
    /// Whether the stored type is an integer or bool (labels).
    pub fn is_integer(&self) -> bool {
        !matches!(self.data, NpyData::F32(_) | NpyData::F64(_))
    }
    /// All values as f64.
    pub fn to_f64(&self) -> Vec<f64> {
        match &self.data {
            NpyData::F32(v) => v.iter().map(|&x| x as f64).collect(),
            NpyData::F64(v) => v.clone(),
            NpyData::U8(v) => v.iter().map(|&x| x as f64).collect(),
            NpyData::I8(v) => v.iter().map(|&x| x as f64).collect(),
            NpyData::I16(v) => v.iter().map(|&x| x as f64).collect(),
            NpyData::U16(v) => v.iter().map(|&x| x as f64).collect(),
            NpyData::I32(v) => v.iter().map(|&x| x as f64).collect(),
            NpyData::U32(v) => v.iter().map(|&x| x as f64).collect(),
            NpyData::I64(v) => v.iter().map(|&x| x as f64).collect(),
            NpyData::U64(v) => v.iter().map(|&x| x as f64).collect(),
            NpyData::Bool(v) => v.iter().map(|&x| x as u8 as f64).collect(),
        }
    }
    /// Integer values (labels); `None` for floating-point arrays.
    pub fn to_i64(&self) -> Option<Vec<i64>> {
        Some(match &self.data {
            NpyData::F32(_) | NpyData::F64(_) => return None,
            NpyData::U8(v) => v.iter().map(|&x| x as i64).collect(),
            NpyData::I8(v) => v.iter().map(|&x| x as i64).collect(),
            NpyData::I16(v) => v.iter().map(|&x| x as i64).collect(),
            NpyData::U16(v) => v.iter().map(|&x| x as i64).collect(),
            NpyData::I32(v) => v.iter().map(|&x| x as i64).collect(),
            NpyData::U32(v) => v.iter().map(|&x| x as i64).collect(),
            NpyData::I64(v) => v.clone(),
            NpyData::U64(v) => v.iter().map(|&x| x.min(i64::MAX as u64) as i64).collect(),
            NpyData::Bool(v) => v.iter().map(|&x| x as i64).collect(),
        })
    }
}

/// Read and validate a `.npy` file.
pub fn read_npy(path: impl AsRef<Path>) -> Result<NpyArray> {
    let path = path.as_ref();
    let bytes = crate::files::read_file(path, None)?;
    parse_npy(&bytes, path)
}

const MAGIC: &[u8] = b"\x93NUMPY";

/// Parse `.npy` bytes; `path` only names the source in errors.
pub fn parse_npy(bytes: &[u8], path: impl AsRef<Path>) -> Result<NpyArray> {
    let err = |m: String| Error::file(path.as_ref(), m);
    if bytes.len() < 10 || &bytes[..6] != MAGIC {
        return Err(err("not a .npy file (missing \\x93NUMPY magic)".into()));
    }
    let major = bytes[6];
    let (hlen, hstart): (usize, usize) = match major {
        1 => (u16::from_le_bytes([bytes[8], bytes[9]]) as usize, 10),
        2 | 3 => {
            if bytes.len() < 12 {
                return Err(err("truncated .npy header".into()));
            }
            (
                u32::from_le_bytes([bytes[8], bytes[9], bytes[10], bytes[11]]) as usize,
                12,
            )
        }
        v => return Err(err(format!("unsupported .npy format version {v}"))),
    };
    let hend = hstart
        .checked_add(hlen)
        .filter(|&e| e <= bytes.len())
        .ok_or_else(|| {
            err(format!(
                "truncated .npy header: it claims {hlen} bytes, the file has {}",
                bytes.len() - hstart
            ))
        })?;
    let header = std::str::from_utf8(&bytes[hstart..hend])
        .map_err(|_| err("the .npy header is not text".into()))?;
    let h = parse_header(header).map_err(|m| err(format!("bad .npy header: {m}")))?;
    if h.fortran_order {
        return Err(err(
            "Fortran-ordered arrays are not supported; save with np.ascontiguousarray".into(),
        ));
    }
    let (kind, little, size) = parse_descr(&h.descr).map_err(err)?;
    let count = h
        .shape
        .iter()
        .try_fold(1usize, |acc, &d| acc.checked_mul(d))
        .ok_or_else(|| err(format!("shape {:?} overflows", h.shape)))?;
    let data = &bytes[hend..];
    let need = count
        .checked_mul(size)
        .ok_or_else(|| err(format!("shape {:?} overflows", h.shape)))?;
    if need != data.len() {
        return Err(err(format!(
            "header says shape {:?} of {} ({} bytes of data), but the file holds {} bytes of data",
            h.shape,
            h.descr,
            need,
            data.len()
        )));
    }
    macro_rules! decode {
        ($t:ty, $n:expr, $variant:ident) => {{
            let v: Vec<$t> = data
                .chunks_exact($n)
                .map(|c| {
                    let a: [u8; $n] = c.try_into().unwrap();
                    if little {
                        <$t>::from_le_bytes(a)
                    } else {
                        <$t>::from_be_bytes(a)
                    }
                })
                .collect();
            NpyData::$variant(v)
        }};
    }
    let data = match (kind, size) {
        ('f', 4) => decode!(f32, 4, F32),
        ('f', 8) => decode!(f64, 8, F64),
        ('u', 1) => NpyData::U8(data.to_vec()),
        ('i', 1) => NpyData::I8(data.iter().map(|&b| b as i8).collect()),
        ('i', 2) => decode!(i16, 2, I16),
        ('u', 2) => decode!(u16, 2, U16),
        ('i', 4) => decode!(i32, 4, I32),
        ('u', 4) => decode!(u32, 4, U32),
        ('i', 8) => decode!(i64, 8, I64),
        ('u', 8) => decode!(u64, 8, U64),
        ('b', 1) => {
            if let Some(b) = data.iter().find(|&&b| b > 1) {
                return Err(err(format!("bool array holds the byte {b}")));
            }
            NpyData::Bool(data.iter().map(|&b| b == 1).collect())
        }
        _ => unreachable!("parse_descr admits only the types above"),
    };
    Ok(NpyArray {
        shape: h.shape,
        data,
    })
}

struct Header {
    descr: String,
    fortran_order: bool,
    shape: Vec<usize>,
}

/// (kind, little-endian, item size) of a supported numeric descr.
fn parse_descr(d: &str) -> std::result::Result<(char, bool, usize), String> {
    let mut chars = d.chars();
    let (order, rest) = match chars.next() {
        Some(c @ ('<' | '>' | '|' | '=')) => (c, chars.as_str()),
        _ => ('=', d),
    };
    let little = order != '>';
    let mut rc = rest.chars();
    let kind = rc.next().ok_or_else(|| format!("empty dtype `{d}`"))?;
    if kind == 'O' {
        return Err("object arrays (dtype `O`) are not supported: save a numeric array".into());
    }
    let size: usize = rc
        .as_str()
        .parse()
        .map_err(|_| format!("unsupported dtype `{d}`"))?;
    let ok = matches!(
        (kind, size),
        ('f', 4 | 8) | ('u' | 'i', 1 | 2 | 4 | 8) | ('b', 1)
    );
    if !ok {
        return Err(format!(
            "unsupported dtype `{d}` (expected float32/64, (u)int8–64 or bool)"
        ));
    }
    Ok((kind, little, size))
}

/// Parse the Python dict literal of a .npy header.
fn parse_header(s: &str) -> std::result::Result<Header, String> {
    let mut p = Lit {
        s: s.as_bytes(),
        i: 0,
    };
    p.ws();
    p.expect(b'{')?;
    let (mut descr, mut fortran, mut shape) = (None, None, None);
    loop {
        p.ws();
        if p.eat(b'}') {
            break;
        }
        let key = p.string()?;
        p.ws();
        p.expect(b':')?;
        p.ws();
        match key.as_str() {
            "descr" => {
                if p.peek() == Some(b'[') {
                    return Err("structured dtypes are not supported".into());
                }
                descr = Some(p.string()?)
            }
            "fortran_order" => fortran = Some(p.boolean()?),
            "shape" => shape = Some(p.tuple()?),
            k => return Err(format!("unexpected key `{k}`")),
        }
        p.ws();
        if !p.eat(b',') {
            p.ws();
            p.expect(b'}')?;
            break;
        }
    }
    Ok(Header {
        descr: descr.ok_or("missing `descr`")?,
        fortran_order: fortran.ok_or("missing `fortran_order`")?,
        shape: shape.ok_or("missing `shape`")?,
    })
}

struct Lit<'a> {
    s: &'a [u8],
    i: usize,
}

impl Lit<'_> {
    fn peek(&self) -> Option<u8> {
        self.s.get(self.i).copied()
    }
    fn ws(&mut self) {
        while matches!(self.peek(), Some(b' ' | b'\n' | b'\t' | b'\r')) {
            self.i += 1;
        }
    }
    fn eat(&mut self, c: u8) -> bool {
        if self.peek() == Some(c) {
            self.i += 1;
            true
        } else {
            false
        }
    }
    fn expect(&mut self, c: u8) -> std::result::Result<(), String> {
        if self.eat(c) {
            Ok(())
        } else {
            Err(format!("expected `{}` at byte {}", c as char, self.i))
        }
    }
    fn string(&mut self) -> std::result::Result<String, String> {
        let q = self
            .peek()
            .filter(|&q| q == b'\'' || q == b'"')
            .ok_or_else(|| format!("expected a string at byte {}", self.i))?;
        self.i += 1;
        let start = self.i;
        while let Some(c) = self.peek() {
            if c == q {
                let out = String::from_utf8_lossy(&self.s[start..self.i]).into_owned();
                self.i += 1;
                return Ok(out);
            }
            self.i += 1;
        }
        Err("unterminated string".into())
    }
    fn boolean(&mut self) -> std::result::Result<bool, String> {
        if self.s[self.i..].starts_with(b"True") {
            self.i += 4;
            Ok(true)
        } else if self.s[self.i..].starts_with(b"False") {
            self.i += 5;
            Ok(false)
        } else {
            Err(format!("expected True or False at byte {}", self.i))
        }
    }
    fn tuple(&mut self) -> std::result::Result<Vec<usize>, String> {
        self.expect(b'(')?;
        let mut out = Vec::new();
        loop {
            self.ws();
            if self.eat(b')') {
                return Ok(out);
            }
            let start = self.i;
            while matches!(self.peek(), Some(b'0'..=b'9')) {
                self.i += 1;
            }
            if start == self.i {
                return Err(format!("expected a dimension at byte {}", self.i));
            }
            let txt = std::str::from_utf8(&self.s[start..self.i]).unwrap();
            out.push(
                txt.parse::<usize>()
                    .map_err(|_| format!("dimension {txt} is too large"))?,
            );
            self.ws();
            if self.eat(b'L') {
                self.ws();
            }
            if !self.eat(b',') {
                self.ws();
                self.expect(b')')?;
                return Ok(out);
            }
        }
    }
}

/// Write a C-ordered f32/f64 array as `.npy` (format 1.0).
pub fn write_npy<T: Scalar, W: Write>(
    w: &mut W,
    shape: &[usize],
    data: &[T],
) -> std::io::Result<()> {
    assert_eq!(
        shape.iter().product::<usize>(),
        data.len(),
        "write_npy: shape and data disagree"
    );
    let descr = match T::DTYPE {
        crate::tensor::Dtype::F32 => "<f4",
        crate::tensor::Dtype::F64 => "<f8",
    };
    let shape_txt = match shape.len() {
        1 => format!("({},)", shape[0]),
        _ => format!(
            "({})",
            shape
                .iter()
                .map(|d| d.to_string())
                .collect::<Vec<_>>()
                .join(", ")
        ),
    };
    let mut header =
        format!("{{'descr': '{descr}', 'fortran_order': False, 'shape': {shape_txt}, }}");
    // Pad so that the data starts on a 64-byte boundary; the header ends in '\n'.
    let total = 10 + header.len() + 1;
    header.push_str(&" ".repeat((64 - total % 64) % 64));
    header.push('\n');
    w.write_all(MAGIC)?;
    w.write_all(&[1, 0])?;
    w.write_all(&(header.len() as u16).to_le_bytes())?;
    w.write_all(header.as_bytes())?;
    let mut buf = Vec::with_capacity(std::mem::size_of_val(data));
    for &x in data {
        match T::DTYPE {
            crate::tensor::Dtype::F32 => buf.extend_from_slice(&(x.f64() as f32).to_le_bytes()),
            crate::tensor::Dtype::F64 => buf.extend_from_slice(&x.f64().to_le_bytes()),
        }
    }
    w.write_all(&buf)
}

/// Write a `.npy` file.
pub fn save_npy<T: Scalar>(path: impl AsRef<Path>, shape: &[usize], data: &[T]) -> Result<()> {
    // Into memory, then a temporary name renamed over `path`: an interrupted write
    // never leaves a truncated array under the real name.
    let path = path.as_ref();
    crate::files::ensure_replaceable(path)?;
    let mut name = path.as_os_str().to_owned();
    name.push(".tmp");
    let tmp = std::path::PathBuf::from(name);
    let mut f =
        std::io::BufWriter::new(std::fs::File::create(&tmp).map_err(|e| Error::io(&tmp, e))?);
    write_npy(&mut f, shape, data).map_err(|e| Error::io(&tmp, e))?;
    f.flush().map_err(|e| Error::io(&tmp, e))?;
    drop(f);
    std::fs::rename(&tmp, path).map_err(|e| Error::io(path, e))
}

/// Write raw bytes as a `.npy` of the given NumPy descr (used by tests and fuzz seeds).
pub fn write_npy_raw<W: Write>(
    w: &mut W,
    descr: &str,
    shape: &[usize],
    raw: &[u8],
) -> std::io::Result<()> {
    let shape_txt = match shape.len() {
        1 => format!("({},)", shape[0]),
        _ => format!(
            "({})",
            shape
                .iter()
                .map(|d| d.to_string())
                .collect::<Vec<_>>()
                .join(", ")
        ),
    };
    let mut header =
        format!("{{'descr': '{descr}', 'fortran_order': False, 'shape': {shape_txt}, }}");
    let total = 10 + header.len() + 1;
    header.push_str(&" ".repeat((64 - total % 64) % 64));
    header.push('\n');
    w.write_all(MAGIC)?;
    w.write_all(&[1, 0])?;
    w.write_all(&(header.len() as u16).to_le_bytes())?;
    w.write_all(header.as_bytes())?;
    w.write_all(raw)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bytes(descr: &str, shape: &[usize], raw: &[u8]) -> Vec<u8> {
        let mut b = Vec::new();
        write_npy_raw(&mut b, descr, shape, raw).unwrap();
        b
    }

    #[test]
    fn round_trips_each_dtype() {
        let mut b = Vec::new();
        write_npy(&mut b, &[3], &[1.5f32, -2.0, 0.25]).unwrap();
        assert_eq!(
            parse_npy(&b, "a").unwrap().data,
            NpyData::F32(vec![1.5, -2.0, 0.25])
        );
        let a = parse_npy(&bytes("|u1", &[2, 2], &[0, 1, 254, 255]), "a").unwrap();
        assert_eq!(a.data, NpyData::U8(vec![0, 1, 254, 255]));
        let a = parse_npy(
            &bytes(
                "<i8",
                &[2],
                &[
                    1, 0, 0, 0, 0, 0, 0, 0, 255, 255, 255, 255, 255, 255, 255, 255,
                ],
            ),
            "a",
        )
        .unwrap();
        assert_eq!(a.to_i64().unwrap(), vec![1, -1]);
        let a = parse_npy(&bytes(">f8", &[1], &2.5f64.to_be_bytes()), "a").unwrap();
        assert_eq!(a.to_f64(), vec![2.5]);
    }

    #[test]
    fn rejects_malformed_files() {
        let msg = |b: &[u8]| parse_npy(b, "x.npy").unwrap_err().to_string();
        assert!(msg(b"hello world").contains("magic"));
        assert!(msg(&bytes("<f8", &[4], &[0; 8])).contains("holds 8 bytes"));
        assert!(msg(&bytes("|O", &[1], &[0; 8])).contains("object arrays"));
        assert!(msg(&bytes("<c16", &[1], &[0; 16])).contains("unsupported dtype"));
        assert!(msg(&bytes("<f4", &[1 << 30, 1 << 30], &[])).contains("bytes of data"));
        assert!(msg(&bytes("<f4", &[usize::MAX, 3], &[])).contains("overflows"));
        let mut b = bytes("<f4", &[1], &[0; 4]);
        b.truncate(20);
        assert!(msg(&b).contains("truncated"));
    }
}
