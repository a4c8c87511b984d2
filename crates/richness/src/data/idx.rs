//! IDX files (MNIST, Fashion-MNIST, EMNIST, KMNIST, …), raw or gzip-compressed.
//!
//! The format (Y. LeCun's MNIST page) is a header and raw C-ordered data, all
//! big-endian:
//!
//! | bytes | meaning |
//! |---|---|
//! | 0–1 | zero |
//! | 2 | element type: `0x08` u8, `0x09` i8, `0x0B` i16, `0x0C` i32, `0x0D` f32, `0x0E` f64 |
//! | 3 | number of dimensions k |
//! | 4 … 4+4k | k dimensions, u32 each |
//! | then | the elements |
//!
//! MNIST's `train-images-idx3-ubyte` is u8 [60000, 28, 28] and its labels are u8
//! [60000]. A file that starts with the gzip magic (`1f 8b`) is decompressed first,
//! as the published `.gz` files are.
//!
//! Nothing is allocated on the header's word alone: a raw file's header must agree
//! with the file's length *before* the data buffer exists, and a gzip stream is read
//! into a buffer no larger than both what the header claims and what the compressed
//! file could possibly hold (deflate expands at most 1032:1), and must then end
//! exactly where the header says.
//!
//! ```
//! use richness::data::idx::{parse_idx, write_idx_u8};
//! let mut buf = Vec::new();
//! write_idx_u8(&mut buf, &[2, 2, 3], &[0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 255]).unwrap();
//! let a = parse_idx(&buf, "mem.idx").unwrap();
//! assert_eq!(a.shape, vec![2, 2, 3]);
//! let x = a.images::<f32>("mem.idx").unwrap();
//! assert_eq!((x.rows(), x.cols()), (2, 6));
//! assert_eq!(x.row(1)[5], 1.0); // 255 / 255
//! ```

use super::npy::NpyData;
use crate::error::{Error, Result};
use crate::tensor::{Mat, Scalar};
use std::io::{Read, Write};
use std::path::Path;

/// The two bytes every gzip stream starts with.
pub const GZIP_MAGIC: [u8; 2] = [0x1f, 0x8b];

/// Deflate's worst-case expansion (a stream of maximal back-references): no valid
/// gzip file of n bytes decompresses to more than about 1032·n bytes.
pub const DEFLATE_MAX_RATIO: u64 = 1032;

/// An IDX array: its shape and its elements in the stored type.
#[derive(Clone, Debug, PartialEq)]
pub struct IdxArray {
    pub shape: Vec<usize>,
    pub data: NpyData,
}

/// What the header says: element type code, shape, and the byte counts it implies.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct IdxHeader {
    pub type_code: u8,
    pub shape: Vec<usize>,
    /// Bytes of header (4 + 4·k).
    pub header_len: usize,
    /// Bytes of data the shape implies (checked arithmetic: it fits a usize).
    pub data_len: usize,
}

/// Size in bytes and name of an IDX element type.
pub fn type_info(code: u8) -> Option<(usize, &'static str)> {
    Some(match code {
        0x08 => (1, "u8"),
        0x09 => (1, "i8"),
        0x0B => (2, "i16"),
        0x0C => (4, "i32"),
        0x0D => (4, "f32"),
        0x0E => (8, "f64"),
        _ => return None,
    })
}

impl IdxHeader {
    /// Read the header from the front of `r`. Errors are messages without the
    /// file name (the caller adds it). `what` says what is being read ("file" or
    /// "gzip stream") so that an early end is reported precisely.
    fn read<R: Read>(r: &mut R, what: &str) -> std::result::Result<IdxHeader, String> {
        let mut head = [0u8; 4];
        read_exact_or(r, &mut head, || {
            format!("{what} ends inside the 4-byte IDX magic")
        })?;
        if head[0] != 0 || head[1] != 0 {
            return Err(format!(
                "not an IDX file (magic {:02x} {:02x} {:02x} {:02x}; IDX starts with 00 00, a type byte and a rank)",
                head[0], head[1], head[2], head[3]
            ));
        }
        let type_code = head[2];
        let (size, _) = type_info(type_code).ok_or_else(|| {
            format!(
                "unknown IDX element type 0x{type_code:02x} (expected 08, 09, 0b, 0c, 0d or 0e)"
            )
        })?;
        let k = head[3] as usize;
        if k == 0 {
            return Err("IDX header has 0 dimensions".into());
        }
        // k ≤ 255, so this buffer is at most 1,020 bytes whatever the file says.
        let mut dims = vec![0u8; 4 * k];
        read_exact_or(r, &mut dims, || {
            format!(
                "{what} ends inside the IDX header ({k} dimensions need {} bytes)",
                4 + 4 * k
            )
        })?;
        let shape: Vec<usize> = dims
            .chunks_exact(4)
            .map(|c| u32::from_be_bytes([c[0], c[1], c[2], c[3]]) as usize)
            .collect();
        let data_len = shape
            .iter()
            .try_fold(size, |acc, &d| acc.checked_mul(d))
            .ok_or_else(|| {
                format!(
                    "IDX shape {} overflows the address space",
                    fmt_shape(&shape)
                )
            })?;
        Ok(IdxHeader {
            type_code,
            shape,
            header_len: 4 + 4 * k,
            data_len,
        })
    }

    /// The element type's name (`u8`, `f32`, …).
    pub fn dtype_name(&self) -> &'static str {
        type_info(self.type_code).map(|t| t.1).unwrap_or("?")
    }
}

/// `read_exact`, with an early end turned into `msg` and other errors kept.
fn read_exact_or<R: Read>(
    r: &mut R,
    buf: &mut [u8],
    msg: impl FnOnce() -> String,
) -> std::result::Result<(), String> {
    r.read_exact(buf).map_err(|e| {
        if e.kind() == std::io::ErrorKind::UnexpectedEof {
            msg()
        } else {
            io_msg(&e)
        }
    })
}

/// An I/O error from a decoder, as a message (flate2 reports corrupt data as I/O errors).
fn io_msg(e: &std::io::Error) -> String {
    match e.kind() {
        std::io::ErrorKind::InvalidInput | std::io::ErrorKind::InvalidData => {
            format!("corrupt gzip stream ({e})")
        }
        std::io::ErrorKind::UnexpectedEof => format!("truncated gzip stream ({e})"),
        _ => e.to_string(),
    }
}

/// `60000 × 28 × 28`.
pub fn fmt_shape(shape: &[usize]) -> String {
    shape
        .iter()
        .map(|d| d.to_string())
        .collect::<Vec<_>>()
        .join(" × ")
}

/// Read and validate an IDX file, raw or gzip-compressed.
pub fn read_idx(path: impl AsRef<Path>) -> Result<IdxArray> {
    let path = path.as_ref();
    let mut f = std::fs::File::open(path).map_err(|e| Error::io(path, e))?;
    if !f.metadata().map_err(|e| Error::io(path, e))?.is_file() {
        return Err(Error::file(path, "is not a regular file"));
    }
    let file_len = f.metadata().map_err(|e| Error::io(path, e))?.len();
    let mut magic = [0u8; 2];
    let got = read_up_to(&mut f, &mut magic).map_err(|e| Error::io(path, e))?;
    if got == 2 && magic == GZIP_MAGIC {
        // Compressed files are small (the whole point); reading one whole allocates
        // exactly the file's size.
        let bytes = crate::files::read_file(path, None)?;
        let raw = gunzip_idx(&bytes).map_err(|m| Error::file(path, m))?;
        return decode(raw.0, raw.1, path);
    }
    // Raw: read the header, check the length, then allocate exactly the data.
    let mut r = std::io::Read::chain(&magic[..got], &mut f);
    let h = IdxHeader::read(&mut r, "file").map_err(|m| Error::file(path, m))?;
    let have = file_len.saturating_sub(h.header_len as u64);
    if have != h.data_len as u64 {
        return Err(Error::file(path, size_mismatch(&h, have)));
    }
    let mut data = vec![0u8; h.data_len];
    r.read_exact(&mut data)
        .map_err(|e| Error::file(path, format!("file changed while being read ({e})")))?;
    decode(h, data, path)
}

/// Parse IDX bytes (raw or gzip); `path` only names the source in errors.
pub fn parse_idx(bytes: &[u8], path: impl AsRef<Path>) -> Result<IdxArray> {
    let path = path.as_ref();
    if bytes.starts_with(&GZIP_MAGIC) {
        let (h, data) = gunzip_idx(bytes).map_err(|m| Error::file(path, m))?;
        return decode(h, data, path);
    }
    let mut r = bytes;
    let h = IdxHeader::read(&mut r, "file").map_err(|m| Error::file(path, m))?;
    if r.len() != h.data_len {
        return Err(Error::file(path, size_mismatch(&h, r.len() as u64)));
    }
    decode(h, r.to_vec(), path)
}

fn size_mismatch(h: &IdxHeader, have: u64) -> String {
    format!(
        "IDX header says {} {} ({} bytes of data), but the file holds {} bytes of data",
        fmt_shape(&h.shape),
        h.dtype_name(),
        h.data_len,
        have
    )
}

/// Read as many bytes as are there, up to `buf.len()`.
fn read_up_to<R: Read>(r: &mut R, buf: &mut [u8]) -> std::io::Result<usize> {
    let mut n = 0;
    while n < buf.len() {
        match r.read(&mut buf[n..]) {
            Ok(0) => break,
            Ok(k) => n += k,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(n)
}

/// Decompress a gzipped IDX file: the header, then exactly the data it implies.
///
/// The data buffer is sized from the header only after the header's claim has been
/// checked against the most the compressed bytes could expand to, and the stream
/// must end (with a valid CRC) right after the data.
pub fn gunzip_idx(compressed: &[u8]) -> std::result::Result<(IdxHeader, Vec<u8>), String> {
    let mut z = flate2::read::MultiGzDecoder::new(compressed);
    let h = IdxHeader::read(&mut z, "gzip stream")?;
    let bound = (compressed.len() as u64).saturating_mul(DEFLATE_MAX_RATIO);
    if (h.header_len as u64).saturating_add(h.data_len as u64) > bound {
        return Err(format!(
            "IDX header says {} {} ({} bytes of data), more than a {}-byte gzip file can hold",
            fmt_shape(&h.shape),
            h.dtype_name(),
            h.data_len,
            compressed.len()
        ));
    }
    crate::budget::ensure(
        || format!("decompressing {} {}", fmt_shape(&h.shape), h.dtype_name()),
        h.data_len as u128,
    )
    .map_err(|e| e.to_string())?;
    let mut data = Vec::with_capacity(h.data_len);
    // `take` stops at the claimed length, so the buffer never grows past it.
    (&mut z)
        .take(h.data_len as u64)
        .read_to_end(&mut data)
        .map_err(|e| io_msg(&e))?;
    if data.len() < h.data_len {
        return Err(format!(
            "gzip stream ends after {} bytes of data, but the IDX header says {} {} ({} bytes)",
            data.len(),
            fmt_shape(&h.shape),
            h.dtype_name(),
            h.data_len
        ));
    }
    // Reading on to the end checks the CRC and finds trailing data.
    let mut extra = [0u8; 1];
    match read_up_to(&mut z, &mut extra) {
        Ok(0) => Ok((h, data)),
        Ok(_) => Err(format!(
            "gzip stream holds more data than the IDX header's {} {} ({} bytes)",
            fmt_shape(&h.shape),
            h.dtype_name(),
            h.data_len
        )),
        Err(e) => Err(io_msg(&e)),
    }
}

/// Turn validated raw bytes into typed elements (big-endian).
fn decode(h: IdxHeader, raw: Vec<u8>, _path: &Path) -> Result<IdxArray> {
    debug_assert_eq!(raw.len(), h.data_len);
    macro_rules! be {
        ($t:ty, $n:expr, $variant:ident) => {
            NpyData::$variant(
                raw.chunks_exact($n)
                    .map(|c| <$t>::from_be_bytes(c.try_into().unwrap()))
                    .collect(),
            )
        };
    }
    let data = match h.type_code {
        0x08 => NpyData::U8(raw),
        0x09 => NpyData::I8(raw.iter().map(|&b| b as i8).collect()),
        0x0B => be!(i16, 2, I16),
        0x0C => be!(i32, 4, I32),
        0x0D => be!(f32, 4, F32),
        0x0E => be!(f64, 8, F64),
        _ => unreachable!("IdxHeader::read admits only the types above"),
    };
    Ok(IdxArray {
        shape: h.shape,
        data,
    })
}

impl IdxArray {
    /// Number of elements.
    pub fn len(&self) -> usize {
        self.shape.iter().product()
    }
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
    /// The images as an [N, prod(rest)] matrix: u8 pixels scaled by 1/255 to [0, 1],
    /// float elements as stored (and required to be finite). `path` names the file
    /// in errors.
    pub fn images<T: Scalar>(&self, path: impl AsRef<Path>) -> Result<Mat<T>> {
        let path = path.as_ref();
        if self.shape.len() < 2 {
            return Err(Error::file(
                path,
                format!(
                    "expected images [N, …], got shape {}",
                    fmt_shape(&self.shape)
                ),
            ));
        }
        let n = self.shape[0];
        let d = self.len().checked_div(n).unwrap_or(0);
        let v: Vec<T> = match &self.data {
            NpyData::U8(b) => super::unit_scaled(b),
            NpyData::F32(f) => finite(path, f.iter().map(|&x| x as f64))?,
            NpyData::F64(f) => finite(path, f.iter().copied())?,
            _ => {
                return Err(Error::file(
                    path,
                    format!(
                        "images must be u8 or float, this file holds {}",
                        self.data_name()
                    ),
                ))
            }
        };
        Ok(Mat::from_vec(n, d, v))
    }

    /// The image shape [C, H, W] of [N, H, W] (C = 1) or [N, C, H, W] data.
    pub fn image_shape(&self) -> Option<[usize; 3]> {
        match self.shape.as_slice() {
            [_, h, w] => Some([1, *h, *w]),
            [_, c, h, w] => Some([*c, *h, *w]),
            _ => None,
        }
    }

    /// Class labels from a 1-D integer array, each below `classes` when given
    /// (else at most 65,535).
    pub fn labels(&self, path: impl AsRef<Path>, classes: Option<usize>) -> Result<Vec<u32>> {
        let path = path.as_ref();
        if self.shape.len() != 1 {
            return Err(Error::file(
                path,
                format!("labels must be 1-D, got shape {}", fmt_shape(&self.shape)),
            ));
        }
        let v = match &self.data {
            NpyData::U8(b) => b.iter().map(|&x| x as i64).collect(),
            NpyData::I8(b) => b.iter().map(|&x| x as i64).collect(),
            NpyData::I16(b) => b.iter().map(|&x| x as i64).collect(),
            NpyData::I32(b) => b.iter().map(|&x| x as i64).collect(),
            _ => {
                return Err(Error::file(
                    path,
                    format!(
                        "labels must be integers, this file holds {}",
                        self.data_name()
                    ),
                ))
            }
        };
        super::check_labels(path, v, classes)
    }

    fn data_name(&self) -> &'static str {
        match self.data {
            NpyData::U8(_) => "u8",
            NpyData::I8(_) => "i8",
            NpyData::I16(_) => "i16",
            NpyData::I32(_) => "i32",
            NpyData::F32(_) => "f32",
            NpyData::F64(_) => "f64",
            _ => "?",
        }
    }
}

fn finite<T: Scalar>(path: &Path, it: impl Iterator<Item = f64>) -> Result<Vec<T>> {
    it.enumerate()
        .map(|(i, x)| {
            if x.is_finite() {
                Ok(T::of(x))
            } else {
                Err(Error::file(
                    path,
                    format!("non-finite value {x} at flat index {i}"),
                ))
            }
        })
        .collect()
}

/// Write a u8 IDX file (type 0x08): used by the tests, the fuzz seeds and anyone
/// who wants to hand their images to other IDX readers.
pub fn write_idx_u8<W: Write>(w: &mut W, shape: &[usize], data: &[u8]) -> std::io::Result<()> {
    let count: usize = shape.iter().product();
    if count != data.len()
        || shape.is_empty()
        || shape.len() > 255
        || shape.iter().any(|&d| d > u32::MAX as usize)
    {
        return Err(std::io::Error::new(
            std::io::ErrorKind::InvalidInput,
            "write_idx_u8: shape and data disagree",
        ));
    }
    w.write_all(&[0, 0, 0x08, shape.len() as u8])?;
    for &d in shape {
        w.write_all(&(d as u32).to_be_bytes())?;
    }
    w.write_all(data)
}

#[cfg(test)]
mod tests {
    use super::*;
    use flate2::{write::GzEncoder, Compression};

    fn idx(shape: &[usize], data: &[u8]) -> Vec<u8> {
        let mut b = Vec::new();
        write_idx_u8(&mut b, shape, data).unwrap();
        b
    }
    fn gz(b: &[u8]) -> Vec<u8> {
        let mut e = GzEncoder::new(Vec::new(), Compression::default());
        e.write_all(b).unwrap();
        e.finish().unwrap()
    }
    fn msg(b: &[u8]) -> String {
        parse_idx(b, "t.idx").unwrap_err().to_string()
    }

    #[test]
    fn raw_and_gzip_agree() {
        let raw = idx(&[3, 2], &[1, 2, 3, 4, 5, 6]);
        let a = parse_idx(&raw, "a").unwrap();
        assert_eq!(a.data, NpyData::U8(vec![1, 2, 3, 4, 5, 6]));
        assert_eq!(parse_idx(&gz(&raw), "a").unwrap(), a);
    }

    #[test]
    fn big_endian_types_decode() {
        let mut b = vec![0, 0, 0x0B, 1, 0, 0, 0, 2];
        b.extend_from_slice(&(-2i16).to_be_bytes());
        b.extend_from_slice(&300i16.to_be_bytes());
        assert_eq!(
            parse_idx(&b, "a").unwrap().data,
            NpyData::I16(vec![-2, 300])
        );
        let mut b = vec![0, 0, 0x0D, 1, 0, 0, 0, 1];
        b.extend_from_slice(&1.5f32.to_be_bytes());
        assert_eq!(parse_idx(&b, "a").unwrap().data, NpyData::F32(vec![1.5]));
    }

    #[test]
    fn malformed_headers_are_one_line_errors() {
        assert!(msg(b"").contains("ends inside the 4-byte IDX magic"));
        assert!(msg(b"\x01\x00\x08\x01").contains("not an IDX file"));
        assert!(msg(b"\x00\x00\x07\x01").contains("unknown IDX element type 0x07"));
        assert!(msg(b"\x00\x00\x08\x00").contains("0 dimensions"));
        assert!(msg(b"\x00\x00\x08\x03\x00\x00").contains("ends inside the IDX header"));
        assert!(msg(&idx(&[4], &[0; 4])[..7]).contains("ends inside the IDX header"));
        let mut short = idx(&[10, 10], &[0; 100]);
        short.truncate(50);
        assert!(
            msg(&short)
                .contains("says 10 × 10 u8 (100 bytes of data), but the file holds 38 bytes"),
            "{}",
            msg(&short)
        );
    }

    #[test]
    fn huge_claims_fail_before_allocating() {
        // 2^32-1 × 2^32-1 u8 images: 1.8e19 bytes, more than memory but fits a u64.
        let huge = [0, 0, 8, 2, 255, 255, 255, 255, 255, 255, 255, 255];
        assert!(
            msg(&huge).contains("(18446744065119617025 bytes of data), but the file holds 0"),
            "{}",
            msg(&huge)
        );
        // Three such dimensions of f64 overflow usize.
        let b = [
            0, 0, 0x0E, 3, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255,
        ];
        assert!(msg(&b).contains("overflows"), "{}", msg(&b));
        // Gzip streams claiming far more than they can expand to: the huge header,
        // and MNIST's 47 MB header alone (a ~30-byte file holds at most ~31 kB).
        for head in [
            huge.to_vec(),
            idx(&[60000, 28, 28], &vec![0; 60000 * 784])[..16].to_vec(),
        ] {
            let m = msg(&gz(&head));
            assert!(
                m.contains("more than a") && m.contains("gzip file can hold"),
                "{m}"
            );
        }
    }

    #[test]
    fn gzip_streams_must_match_the_header() {
        let raw = idx(&[4, 4], &[7; 16]);
        let m = msg(&gz(&raw[..raw.len() - 3]));
        assert!(m.contains("gzip stream ends after 13 bytes"), "{m}");
        let mut long = raw.clone();
        long.push(1);
        assert!(msg(&gz(&long)).contains("more data than the IDX header"));
        let mut bad = gz(&raw);
        let n = bad.len();
        bad[n - 6] ^= 0xff; // the CRC
        assert!(msg(&bad).contains("corrupt gzip stream"), "{}", msg(&bad));
        let mut bad = gz(&raw);
        bad[12] ^= 0x55; // the deflate data
        let m = msg(&bad);
        assert!(m.contains("gzip") || m.contains("IDX"), "{m}");
        assert!(
            msg(&bad[..12]).contains("gzip stream ends"),
            "{}",
            msg(&bad[..12])
        );
    }

    #[test]
    fn labels_are_range_checked() {
        let a = parse_idx(&idx(&[3], &[0, 9, 10]), "l").unwrap();
        let m = a.labels("l", Some(10)).unwrap_err().to_string();
        assert!(
            m.contains("label 10 at index 2") && m.contains("10 classes"),
            "{m}"
        );
        assert_eq!(a.labels("l", None).unwrap(), vec![0, 9, 10]);
    }
}
