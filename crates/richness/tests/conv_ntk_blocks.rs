//! The conv (Myrtle-5) empirical NTK does not depend on how it is computed: thread
//! count, gradient block size; bitwise, against one block holding every row on one
//! thread (which itself matches explicit Jacobians).

use richness::kernel::empirical::{empirical_ntk, NtkOptions, Outputs};
use richness::kernel::reference::ntk_reference;
use richness::linalg::Compute;
use richness::nn::{Arch, BiasInit, Model};
use richness::param::{OptimizerKind, Preset, ScaleChoice};
use richness::rng::normal_vec;
use richness::tensor::Mat;

fn gauss(seed: u64, rows: usize, cols: usize) -> Mat<f64> {
    Mat::from_vec(rows, cols, normal_vec(seed, "test-x", 0, rows * cols, 1.0))
}

#[test]
fn conv_empirical_ntk_is_bitwise_independent_of_threads_and_blocks() {
    let mut arch = Arch::myrtle5([2, 4, 4], 3, 2);
    arch.bias = true;
    arch.bias_init = BiasInit::Normal;
    let model = Model::<f64>::init(
        &arch,
        &ScaleChoice::preset(Preset::Mup),
        OptimizerKind::Sgd,
        7,
    )
    .unwrap();
    // 70 and 67 rows: two product tiles each (64 + the rest); with block 3, 24 and
    // 23 gradient blocks, the last ones partial, most straddling nothing but one
    // straddling the tile boundary; 100 is rounded to whole tiles.
    let (x1, x2) = (gauss(1, 70, 32), gauss(2, 67, 32));
    for outputs in [Outputs::Each, Outputs::Mean] {
        for x2 in [None, Some(&x2)] {
            let one_block = NtkOptions { outputs, block: 70 };
            let whole = empirical_ntk(&model, &Compute::new(1), &x1, x2, &one_block).unwrap();
            // The bookkeeping itself, not only its repeatability: the explicit J₁J₂ᵀ.
            let reference = ntk_reference(&model, &x1, x2, outputs);
            for (k, r) in whole.iter().zip(&reference) {
                let scale = r.as_slice().iter().fold(0.0f64, |m, v| m.max(v.abs()));
                for (a, b) in k.as_slice().iter().zip(r.as_slice()) {
                    assert!((a - b).abs() <= 1e-12 * scale, "{outputs:?}: {a} vs {b}");
                }
            }
            for block in [3, 64, 100, 256] {
                for threads in [1, 2] {
                    let opts = NtkOptions { outputs, block };
                    let k = empirical_ntk(&model, &Compute::new(threads), &x1, x2, &opts).unwrap();
                    assert_eq!(k.len(), whole.len());
                    for (a, b) in k.iter().zip(&whole) {
                        assert_eq!(a.shape(), b.shape());
                        assert!(
                            a.as_slice() == b.as_slice(),
                            "{outputs:?}, cross {}, block {block}, threads {threads}",
                            x2.is_some()
                        );
                    }
                }
            }
        }
    }
}
