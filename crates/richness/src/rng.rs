//! Named random streams: every random draw derives from (seed, purpose, index).
//!
//! No global random state: weights of layer 3 come from the stream
//! `(seed, "init/weight", 3)`, a minibatch order from `(seed, "shuffle", epoch)`,
//! and so on. Two runs with the same seed therefore see the same numbers whatever
//! else they do, and a parallel loop draws the same numbers whatever the thread
//! count (work is split into fixed chunks, each with its own stream).
//!
//! ```
//! use richness::rng::{stream, normal_vec};
//! use rand::Rng;
//! let a: u64 = stream(7, "shuffle", 0).random();
//! let b: u64 = stream(7, "shuffle", 0).random();
//! assert_eq!(a, b);
//! assert_ne!(a, stream(7, "shuffle", 1).random::<u64>());
//! let w = normal_vec(7, "init/weight", 0, 1000, 1.0);
//! assert_eq!(w, normal_vec(7, "init/weight", 0, 1000, 1.0));
//! ```

use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use rand_distr::{Distribution, StandardNormal};
use rayon::prelude::*;

/// The random generator used everywhere (ChaCha8: fast, portable, reproducible).
pub type Rng = ChaCha8Rng;

/// Values per independently seeded chunk in [`normal_vec`].
const CHUNK: usize = 1 << 16;

fn splitmix(mut z: u64) -> u64 {
    z = z.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// FNV-1a, a fixed hash (std's hasher may change between Rust releases).
fn fnv1a(s: &str) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in s.bytes() {
        h ^= b as u64;
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    h
}

/// The stream for (seed, purpose, index).
pub fn stream(seed: u64, purpose: &str, index: u64) -> Rng {
    let key = splitmix(splitmix(seed) ^ fnv1a(purpose))
        ^ splitmix(index.wrapping_add(0x5851_F42D_4C95_7F2D));
    let mut bytes = [0u8; 32];
    for (i, chunk) in bytes.chunks_exact_mut(8).enumerate() {
        chunk.copy_from_slice(&splitmix(key.wrapping_add(i as u64)).to_le_bytes());
    }
    Rng::from_seed(bytes)
}

/// `len` draws from N(0, std²) of stream (seed, purpose, index), computed in
/// parallel chunks with one sub-stream each, so the values do not depend on the
/// number of threads.
pub fn normal_vec(seed: u64, purpose: &str, index: u64, len: usize, std: f64) -> Vec<f64> {
    let mut out = vec![0.0; len];
    let base = splitmix(seed ^ splitmix(index));
    out.par_chunks_mut(CHUNK)
        .enumerate()
        .for_each(|(c, chunk)| {
            let mut rng = stream(base, purpose, c as u64);
            for v in chunk.iter_mut() {
                let u: f64 = StandardNormal.sample(&mut rng);
                *v = std * u;
            }
        });
    out
}

/// A `rows × cols` matrix of N(0, std²) draws in which row i comes from its own
/// stream (seed, purpose, index, i) and its first `cols` values: the matrix for a
/// smaller `rows` or `cols` is the leading block of the one for a larger size.
///
/// This *nests* initializations across widths: a width-n network's weights are the
/// leading block of the width-2n network's. Each width's weights are still i.i.d.
/// Gaussian; only the joint distribution across widths is coupled, which removes
/// most of the seed-to-seed noise from width-scaling slopes.
pub fn normal_rows(
    seed: u64,
    purpose: &str,
    index: u64,
    rows: usize,
    cols: usize,
    std: f64,
) -> Vec<f64> {
    let mut out = vec![0.0; rows * cols];
    fill_normal_rows(&mut out, seed, purpose, index, cols, std);
    out
}

/// [`normal_rows`] written straight into `out` (rows × `cols`, row-major) in the
/// caller's precision: each draw is made in f64 and rounded once, so an f32 matrix
/// holds exactly the rounded f64 draws without a temporary f64 copy (134 MB at
/// width 4096).
pub fn fill_normal_rows<T: crate::tensor::Scalar>(
    out: &mut [T],
    seed: u64,
    purpose: &str,
    index: u64,
    cols: usize,
    std: f64,
) {
    let base = splitmix(seed ^ splitmix(index));
    if cols == 0 {
        return;
    }
    out.par_chunks_mut(cols).enumerate().for_each(|(i, row)| {
        let mut rng = stream(base, purpose, i as u64);
        for v in row.iter_mut() {
            let u: f64 = StandardNormal.sample(&mut rng);
            *v = T::of(std * u);
        }
    });
}

/// A uniformly random permutation of 0..n (Fisher–Yates) from the given stream.
pub fn permutation(rng: &mut Rng, n: usize) -> Vec<usize> {
    use rand::Rng as _;
    let mut p: Vec<usize> = (0..n).collect();
    for i in (1..n).rev() {
        let j = rng.random_range(0..=i);
        p.swap(i, j);
    }
    p
}
