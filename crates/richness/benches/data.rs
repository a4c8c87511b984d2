//! Loading the 60,000 MNIST training images from raw IDX into an f32 matrix.
//!
//! `cargo bench -p richness --bench data -- [--reps 9] [--file PATH]`
//!
//! PATH defaults to the fetched MNIST in the data folder (`richness data fetch mnist`).
//! Prints one JSON line: seconds per repetition (read + validate + convert to [0, 1]
//! f32) and the median. Skips with a message when the file is not there.

use richness::data::idx::read_idx;
use std::time::Instant;

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let arg = |name: &str| {
        args.iter()
            .position(|a| a == name)
            .and_then(|i| args.get(i + 1).cloned())
    };
    let reps: usize = arg("--reps").and_then(|v| v.parse().ok()).unwrap_or(9);
    let file = arg("--file")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|| {
            richness::data::catalog::data_dir(None)
                .map(|d| d.path.join("mnist").join("train-images-idx3-ubyte"))
                .unwrap_or_default()
        });
    if !file.is_file() {
        println!(
            "{{\"skipped\": \"no MNIST at {}; run `richness data fetch mnist`\"}}",
            file.display()
        );
        return;
    }
    let mut secs = Vec::new();
    let mut shape = (0, 0);
    for _ in 0..reps {
        let t = Instant::now();
        let arr = read_idx(&file).expect("read");
        let m = arr.images::<f32>(&file).expect("images");
        secs.push(t.elapsed().as_secs_f64());
        shape = (m.rows(), m.cols());
        std::hint::black_box(&m);
    }
    let mut sorted = secs.clone();
    sorted.sort_by(|a, b| a.partial_cmp(b).unwrap());
    println!(
        "{{\"bench\": \"mnist_train_images_idx_to_f32\", \"rows\": {}, \"cols\": {}, \"seconds\": {:?}, \"median\": {:.4}}}",
        shape.0,
        shape.1,
        secs,
        sorted[sorted.len() / 2]
    );
}
