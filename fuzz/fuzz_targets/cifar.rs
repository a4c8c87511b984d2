//! CIFAR-10/100 batch reader: any bytes give a batch or a one-line error.
#![no_main]
use libfuzzer_sys::fuzz_target;
use richness::data::cifar::{parse_batch, Cifar};
use richness::data::inspect;
use std::path::Path;

fuzz_target!(|data: &[u8]| {
    for kind in [Cifar::Ten, Cifar::Hundred] {
        match parse_batch(data, "fuzz.bin", kind) {
            Ok(b) => {
                assert_eq!(b.pixels.len(), b.len() * 3072);
                assert!(b.labels.iter().all(|&l| l < 100));
            }
            Err(e) => assert!(!e.to_string().contains('\n'), "multi-line error: {e}"),
        }
    }
    let _ = Cifar::guess(Path::new("fuzz.bin"), data.len() as u64);
    let _ = inspect::inspect_bytes(data, Path::new("fuzz.bin"));
});
