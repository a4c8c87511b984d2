//! Scalars and dense row-major matrices.
//!
//! Everything in the training loop is a [`Mat`]: a row-major `rows × cols` block of
//! `f32` or `f64`. A batch of B examples with n features is a `B × n` matrix (one
//! example per row, as in PyTorch), and a dense layer's weight is `fan_out × fan_in`
//! (PyTorch's `nn.Linear` layout), so weights round-trip through `safetensors`
//! without transposes.
//!
//! ```
//! use richness::tensor::Mat;
//! let mut m = Mat::<f64>::zeros(2, 3);
//! m[(1, 2)] = 5.0;
//! assert_eq!(m.row(1), &[0.0, 0.0, 5.0]);
//! assert_eq!(m.as_slice().len(), 6);
//! ```

use crate::simd::vectorized;
use serde::{Deserialize, Serialize};
use std::fmt::{Debug, Display};
use std::ops::{AddAssign, Index, IndexMut, MulAssign, SubAssign};

/// Floating-point precision of a run, chosen at run time.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum Dtype {
    #[default]
    F32,
    F64,
}

impl Dtype {
    pub fn name(self) -> &'static str {
        match self {
            Dtype::F32 => "f32",
            Dtype::F64 => "f64",
        }
    }
}

impl std::str::FromStr for Dtype {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "f32" | "float32" => Ok(Dtype::F32),
            "f64" | "float64" => Ok(Dtype::F64),
            _ => Err(format!("unknown dtype `{s}` (expected f32 or f64)")),
        }
    }
}

/// The floating-point types the library computes in: `f32` and `f64`.
pub trait Scalar:
    num_traits::Float
    + num_traits::FromPrimitive
    + num_traits::ToPrimitive
    + Default
    + Debug
    + Display
    + Send
    + Sync
    + AddAssign
    + SubAssign
    + MulAssign
    + std::iter::Sum
    + 'static
{
    const DTYPE: Dtype;
    /// Round an `f64` to this type.
    fn of(x: f64) -> Self;
    /// Widen to `f64`.
    fn f64(self) -> f64;
    /// The error function (for erf and GELU activations).
    fn erf(self) -> Self;
}

impl Scalar for f32 {
    const DTYPE: Dtype = Dtype::F32;
    #[inline]
    fn of(x: f64) -> Self {
        x as f32
    }
    #[inline]
    fn f64(self) -> f64 {
        self as f64
    }
    #[inline]
    fn erf(self) -> Self {
        libm::erff(self)
    }
}

impl Scalar for f64 {
    const DTYPE: Dtype = Dtype::F64;
    #[inline]
    fn of(x: f64) -> Self {
        x
    }
    #[inline]
    fn f64(self) -> f64 {
        self
    }
    #[inline]
    fn erf(self) -> Self {
        libm::erf(self)
    }
}

/// A dense row-major matrix that owns its data.
#[derive(Clone, PartialEq)]
pub struct Mat<T> {
    rows: usize,
    cols: usize,
    data: Vec<T>,
}

impl<T: Debug> Debug for Mat<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Mat[{}x{}]", self.rows, self.cols)?;
        if self.data.len() <= 16 {
            write!(f, "{:?}", self.data)?;
        }
        Ok(())
    }
}

impl<T: Copy + Default> Mat<T> {
    /// A `rows × cols` matrix of zeros.
    pub fn zeros(rows: usize, cols: usize) -> Self {
        Mat {
            rows,
            cols,
            data: vec![T::default(); rows * cols],
        }
    }

    /// Wrap row-major data. Panics if `data.len() != rows * cols` (a programming
    /// error, not an input error: callers validate shapes first).
    pub fn from_vec(rows: usize, cols: usize, data: Vec<T>) -> Self {
        assert_eq!(
            data.len(),
            rows * cols,
            "Mat::from_vec: {rows}x{cols} needs {} values",
            rows * cols
        );
        Mat { rows, cols, data }
    }

    /// Build from a function of (row, col).
    pub fn from_fn(rows: usize, cols: usize, mut f: impl FnMut(usize, usize) -> T) -> Self {
        let mut data = Vec::with_capacity(rows * cols);
        for i in 0..rows {
            for j in 0..cols {
                data.push(f(i, j));
            }
        }
        Mat { rows, cols, data }
    }

    /// The rows `idx` of `self`, in that order.
    pub fn select_rows(&self, idx: &[usize]) -> Self {
        let mut data = Vec::with_capacity(idx.len() * self.cols);
        for &i in idx {
            data.extend_from_slice(self.row(i));
        }
        Mat {
            rows: idx.len(),
            cols: self.cols,
            data,
        }
    }

    /// The first `n` rows.
    pub fn head(&self, n: usize) -> Self {
        let n = n.min(self.rows);
        Mat {
            rows: n,
            cols: self.cols,
            data: self.data[..n * self.cols].to_vec(),
        }
    }

    /// Change the number of rows without reallocating when `rows * cols` fits in
    /// the capacity already held (used for the last, shorter minibatch).
    pub fn set_rows(&mut self, rows: usize) {
        self.data.resize(rows * self.cols, T::default());
        self.rows = rows;
    }

    /// Copy `other` into `self` (same shape required).
    pub fn copy_from(&mut self, other: &Mat<T>) {
        assert_eq!((self.rows, self.cols), (other.rows, other.cols));
        self.data.copy_from_slice(&other.data);
    }

    /// The transpose, as a new matrix.
    pub fn transposed(&self) -> Self {
        Mat::from_fn(self.cols, self.rows, |i, j| self[(j, i)])
    }
}

impl<T> Mat<T> {
    pub fn rows(&self) -> usize {
        self.rows
    }
    pub fn cols(&self) -> usize {
        self.cols
    }
    pub fn shape(&self) -> (usize, usize) {
        (self.rows, self.cols)
    }
    pub fn as_slice(&self) -> &[T] {
        &self.data
    }
    pub fn as_mut_slice(&mut self) -> &mut [T] {
        &mut self.data
    }
    pub fn into_vec(self) -> Vec<T> {
        self.data
    }
    pub fn row(&self, i: usize) -> &[T] {
        &self.data[i * self.cols..(i + 1) * self.cols]
    }
    pub fn row_mut(&mut self, i: usize) -> &mut [T] {
        &mut self.data[i * self.cols..(i + 1) * self.cols]
    }
    /// A read-only view for matrix products.
    pub fn view(&self) -> MatRef<'_, T> {
        MatRef {
            data: &self.data,
            rows: self.rows,
            cols: self.cols,
            rs: self.cols,
            cs: 1,
        }
    }
    /// A mutable view for matrix products.
    pub fn view_mut(&mut self) -> MatMut<'_, T> {
        MatMut {
            data: &mut self.data,
            rows: self.rows,
            cols: self.cols,
        }
    }
}

impl<T: Scalar> Mat<T> {
    /// Convert element type (f32 ↔ f64).
    pub fn cast<U: Scalar>(&self) -> Mat<U> {
        Mat {
            rows: self.rows,
            cols: self.cols,
            data: self.data.iter().map(|&x| U::of(x.f64())).collect(),
        }
    }
    /// Frobenius norm, accumulated in f64.
    pub fn norm(&self) -> f64 {
        norm(&self.data)
    }
}

impl<T: Copy + Default> Default for Mat<T> {
    fn default() -> Self {
        Mat::zeros(0, 0)
    }
}

impl<T> Index<(usize, usize)> for Mat<T> {
    type Output = T;
    #[inline]
    fn index(&self, (i, j): (usize, usize)) -> &T {
        debug_assert!(i < self.rows && j < self.cols);
        &self.data[i * self.cols + j]
    }
}

impl<T> IndexMut<(usize, usize)> for Mat<T> {
    #[inline]
    fn index_mut(&mut self, (i, j): (usize, usize)) -> &mut T {
        debug_assert!(i < self.rows && j < self.cols);
        &mut self.data[i * self.cols + j]
    }
}

/// A read-only matrix view with arbitrary strides: element (i, j) is
/// `data[i * rs + j * cs]`. Transposing swaps the strides and costs nothing.
#[derive(Clone, Copy)]
pub struct MatRef<'a, T> {
    pub data: &'a [T],
    pub rows: usize,
    pub cols: usize,
    pub rs: usize,
    pub cs: usize,
}

impl<'a, T> MatRef<'a, T> {
    /// A row-major view of `rows × cols` values.
    pub fn new(data: &'a [T], rows: usize, cols: usize) -> Self {
        assert!(
            data.len() >= rows * cols,
            "MatRef::new: slice of {} < {rows}x{cols}",
            data.len()
        );
        MatRef {
            data: &data[..rows * cols],
            rows,
            cols,
            rs: cols,
            cs: 1,
        }
    }
    /// The transposed view.
    pub fn t(self) -> Self {
        MatRef {
            data: self.data,
            rows: self.cols,
            cols: self.rows,
            rs: self.cs,
            cs: self.rs,
        }
    }
}

/// A mutable row-major matrix view (the destination of a product).
pub struct MatMut<'a, T> {
    pub data: &'a mut [T],
    pub rows: usize,
    pub cols: usize,
}

impl<'a, T> MatMut<'a, T> {
    /// A row-major view of `rows × cols` values.
    pub fn new(data: &'a mut [T], rows: usize, cols: usize) -> Self {
        assert!(
            data.len() >= rows * cols,
            "MatMut::new: slice of {} < {rows}x{cols}",
            data.len()
        );
        MatMut {
            data: &mut data[..rows * cols],
            rows,
            cols,
        }
    }
}

/// Σᵢ term(xᵢ, yᵢ) in f64 over eight interleaved partial sums: one running sum is a
/// dependent addition per element (~4 cycles, which the compiler may not reorder);
/// eight let the reductions of a probe's [batch, width] activations run at the speed
/// of the loads.
#[inline(always)]
fn sum_pairs<T: Scalar>(x: &[T], y: &[T], term: impl Fn(f64, f64) -> f64) -> f64 {
    const LANES: usize = 8;
    let n = x.len().min(y.len());
    let (xa, xb) = x[..n].split_at(n - n % LANES);
    let (ya, yb) = y[..n].split_at(n - n % LANES);
    let mut acc = [0.0f64; LANES];
    for (xc, yc) in xa.chunks_exact(LANES).zip(ya.chunks_exact(LANES)) {
        for k in 0..LANES {
            acc[k] += term(xc[k].f64(), yc[k].f64());
        }
    }
    let tail: f64 = xb
        .iter()
        .zip(yb)
        .map(|(&a, &b)| term(a.f64(), b.f64()))
        .sum();
    acc.iter().sum::<f64>() + tail
}

/// Euclidean norm of a slice, accumulated in f64.
pub fn norm<T: Scalar>(x: &[T]) -> f64 {
    vectorized(
        #[inline(always)]
        || sum_pairs(x, x, |a, _| a * a),
    )
    .sqrt()
}

/// Inner product of two slices, accumulated in f64.
pub fn dot<T: Scalar>(x: &[T], y: &[T]) -> f64 {
    debug_assert_eq!(x.len(), y.len());
    vectorized(
        #[inline(always)]
        || sum_pairs(x, y, |a, b| a * b),
    )
}

/// ‖x − y‖, accumulated in f64.
pub fn dist<T: Scalar>(x: &[T], y: &[T]) -> f64 {
    debug_assert_eq!(x.len(), y.len());
    vectorized(
        #[inline(always)]
        || sum_pairs(x, y, |a, b| (a - b) * (a - b)),
    )
    .sqrt()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reductions_match_plain_sums_at_every_tail_length() {
        for len in [0usize, 1, 7, 8, 9, 63, 1000, 1003] {
            let x: Vec<f64> = (0..len)
                .map(|i| ((i * 37) % 101) as f64 / 50.0 - 1.0)
                .collect();
            let y: Vec<f64> = (0..len)
                .map(|i| ((i * 53) % 97) as f64 / 40.0 - 1.2)
                .collect();
            let n: f64 = x.iter().map(|a| a * a).sum::<f64>().sqrt();
            let d: f64 = x.iter().zip(&y).map(|(a, b)| a * b).sum();
            let e: f64 = x
                .iter()
                .zip(&y)
                .map(|(a, b)| (a - b) * (a - b))
                .sum::<f64>()
                .sqrt();
            assert!((norm(&x) - n).abs() <= 1e-12 * n.max(1.0), "norm at {len}");
            assert!(
                (dot(&x, &y) - d).abs() <= 1e-12 * n.max(1.0) * 10.0,
                "dot at {len}"
            );
            assert!(
                (dist(&x, &y) - e).abs() <= 1e-12 * e.max(1.0),
                "dist at {len}"
            );
        }
    }
}
