//! NPY reader: any bytes give an array whose shape matches its data, or a one-line
//! error.
#![no_main]
use libfuzzer_sys::fuzz_target;
use richness::data::{inspect, npy};
use std::path::Path;

fuzz_target!(|data: &[u8]| {
    match npy::parse_npy(data, "fuzz.npy") {
        Ok(a) => {
            assert_eq!(a.to_f64().len(), a.len());
            let _ = a.to_i64();
        }
        Err(e) => assert!(!e.to_string().contains('\n'), "multi-line error: {e}"),
    }
    let _ = inspect::inspect_bytes(data, Path::new("fuzz.npy"));
});
