//! Checkpoints: `weights.safetensors` holds the raw weights in PyTorch's layout and
//! loads back into the same model, for dense and convolutional layers.

use richness::io::{load_weights_into, save_weights};
use richness::linalg::Compute;
use richness::nn::{Activation, Arch, BiasInit, Model, Trace};
use richness::param::{OptimizerKind, Preset, ScaleChoice};
use richness::rng::normal_vec;
use safetensors::SafeTensors;

fn tmp(name: &str) -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("richness-weights-io-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    dir.join(name)
}

fn tensor_f64(st: &SafeTensors<'_>, name: &str) -> (Vec<usize>, Vec<f64>) {
    let v = st.tensor(name).unwrap();
    let values = v
        .data()
        .chunks_exact(8)
        .map(|c| f64::from_le_bytes(c.try_into().unwrap()))
        .collect();
    (v.shape().to_vec(), values)
}

#[test]
fn conv_weights_are_saved_as_conv2d_does_and_compute_the_layer() {
    // Without biases, so the first pre-activation is g·(W ⋆ x) alone.
    let (c_in, h, w, width) = (3, 5, 6, 4);
    let arch = Arch::myrtle5([c_in, h, w], width, 2);
    let model = Model::<f64>::init(
        &arch,
        &ScaleChoice::preset(Preset::Mup),
        OptimizerKind::Sgd,
        7,
    )
    .unwrap();
    let path = tmp("conv.safetensors");
    save_weights(&model, &path).unwrap();
    let bytes = std::fs::read(&path).unwrap();
    let st = SafeTensors::deserialize(&bytes).unwrap();
    let (shape, w0) = tensor_f64(&st, "layers.0.weight");
    assert_eq!(shape, vec![width, c_in, 3, 3]);
    let (shape_ro, _) = tensor_f64(&st, "layers.4.weight");
    assert_eq!(shape_ro, vec![2, width]);

    // PyTorch's Conv2d(c_in, width, 3, padding=1) on one CHW image, written out here
    // from the saved tensor alone, must equal the model's own first pre-activation
    // (stored HWC).
    let x = normal_vec(3, "x", 0, c_in * h * w, 1.0);
    let mut trace = Trace::new(&model, 1);
    model.forward(&Compute::new(1), &x, 1, &mut trace);
    let g = model.param.layers[0].multiplier;
    let mut worst: f64 = 0.0;
    for o in 0..width {
        for y in 0..h {
            for xx in 0..w {
                let mut s = 0.0;
                for c in 0..c_in {
                    for ky in 0..3 {
                        for kx in 0..3 {
                            let (iy, ix) =
                                (y as isize + ky as isize - 1, xx as isize + kx as isize - 1);
                            if iy < 0 || ix < 0 || iy >= h as isize || ix >= w as isize {
                                continue;
                            }
                            s += w0[((o * c_in + c) * 3 + ky) * 3 + kx]
                                * x[(c * h + iy as usize) * w + ix as usize];
                        }
                    }
                }
                let ours = trace.z[0][(0, (y * w + xx) * width + o)];
                worst = worst.max((g * s - ours).abs() / (1.0 + ours.abs()));
            }
        }
    }
    assert!(
        worst < 1e-12,
        "conv from the saved tensor differs by {worst:e}"
    );
}

#[test]
fn a_saved_myrtle5_loads_back_bit_for_bit() {
    let mut arch = Arch::myrtle5([3, 6, 6], 4, 3);
    arch.bias = true;
    arch.bias_init = BiasInit::Normal;
    let choice = ScaleChoice::preset(Preset::Mup);
    let a = Model::<f64>::init(&arch, &choice, OptimizerKind::Sgd, 1).unwrap();
    let mut b = Model::<f64>::init(&arch, &choice, OptimizerKind::Sgd, 2).unwrap();
    assert_ne!(a.weights[0].as_slice(), b.weights[0].as_slice());
    let path = tmp("myrtle.safetensors");
    save_weights(&a, &path).unwrap();
    load_weights_into(&mut b, &path).unwrap();
    for l in 0..a.depth() {
        assert_eq!(
            a.weights[l].as_slice(),
            b.weights[l].as_slice(),
            "layer {l}"
        );
        assert_eq!(a.biases[l], b.biases[l], "bias {l}");
    }
    // And saving again gives the same bytes.
    let again = tmp("myrtle-again.safetensors");
    save_weights(&b, &again).unwrap();
    assert_eq!(
        std::fs::read(&path).unwrap(),
        std::fs::read(&again).unwrap()
    );
}

#[test]
fn a_saved_mlp_loads_back_bit_for_bit() {
    let mut arch = Arch::mlp(vec![5, 7, 7, 2], richness::nn::Activation::Tanh);
    arch.bias = true;
    arch.bias_init = BiasInit::Normal;
    let choice = ScaleChoice::preset(Preset::Ntp);
    let a = Model::<f32>::init(&arch, &choice, OptimizerKind::Sgd, 3).unwrap();
    let mut b = Model::<f32>::init(&arch, &choice, OptimizerKind::Sgd, 4).unwrap();
    let path = tmp("mlp.safetensors");
    save_weights(&a, &path).unwrap();
    let bytes = std::fs::read(&path).unwrap();
    let st = SafeTensors::deserialize(&bytes).unwrap();
    assert_eq!(st.tensor("layers.0.weight").unwrap().shape(), &[7, 5]);
    assert_eq!(st.tensor("layers.2.bias").unwrap().shape(), &[2]);
    load_weights_into(&mut b, &path).unwrap();
    for l in 0..a.depth() {
        assert_eq!(a.weights[l].as_slice(), b.weights[l].as_slice());
        assert_eq!(a.biases[l], b.biases[l]);
    }
}

#[test]
fn damaged_weight_files_are_refused_before_anything_is_allocated_from_them() {
    let arch = Arch::mlp(vec![3, 5, 2], Activation::Relu);
    let model = Model::<f64>::init(
        &arch,
        &ScaleChoice::preset(Preset::Mup),
        OptimizerKind::Sgd,
        1,
    )
    .unwrap();
    let good = richness::io::weights_to_bytes(&model).unwrap();
    let n = u64::from_le_bytes(good[..8].try_into().unwrap()) as usize;
    let mut cases: Vec<(&str, Vec<u8>)> = vec![
        ("empty", vec![]),
        ("shorter than the length field", good[..5].to_vec()),
        ("data cut short", good[..good.len() - 8].to_vec()),
        ("trailing bytes", [good.clone(), vec![0u8; 8]].concat()),
        ("header cut short", good[..8 + n / 2].to_vec()),
    ];
    // A header length far beyond the file (and beyond any sane allocation).
    let mut huge = good.clone();
    huge[..8].copy_from_slice(&(u64::MAX / 2).to_le_bytes());
    cases.push(("huge header length", huge));
    for (what, bytes) in cases {
        let path = tmp(&format!("damaged-{}.safetensors", what.replace(' ', "-")));
        std::fs::write(&path, &bytes).unwrap();
        let mut m = Model::<f64>::zeros(&arch, model.param.clone()).unwrap();
        assert!(load_weights_into(&mut m, &path).is_err(), "{what}: loaded");
        assert!(
            richness::io::read_weights_meta(&path).is_err(),
            "{what}: metadata read"
        );
    }
    // The intact file loads, into either precision.
    let path = tmp("intact.safetensors");
    std::fs::write(&path, &good).unwrap();
    let mut m = Model::<f32>::zeros(&arch, model.param.clone()).unwrap();
    load_weights_into(&mut m, &path).unwrap();
    for (a, b) in m.weights.iter().zip(&model.weights) {
        for (&x, &y) in a.as_slice().iter().zip(b.as_slice()) {
            assert_eq!(x, y as f32);
        }
    }
}
