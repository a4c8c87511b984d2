//! IDX reader (raw and gzip): any bytes give a value or a one-line error, never a
//! panic, and never an allocation beyond what the bytes can hold.
#![no_main]
use libfuzzer_sys::fuzz_target;
use richness::data::{idx, inspect};
use std::path::Path;

fuzz_target!(|data: &[u8]| {
    if let Ok(a) = idx::parse_idx(data, "fuzz.idx") {
        let _ = a.images::<f32>("fuzz.idx");
        let _ = a.labels("fuzz.idx", Some(10));
        let _ = a.labels("fuzz.idx", None);
        let _ = a.image_shape();
    } else if let Err(e) = idx::parse_idx(data, "fuzz.idx") {
        assert!(!e.to_string().contains('\n'), "multi-line error: {e}");
    }
    let _ = inspect::inspect_bytes(data, Path::new("fuzz-idx3-ubyte"));
});
