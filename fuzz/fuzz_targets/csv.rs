//! CSV reader and label handling: any bytes give a table or a one-line error.
#![no_main]
use libfuzzer_sys::fuzz_target;
use richness::data::csv::{parse_csv, Header, LabelColumn};
use richness::data::inspect;
use std::path::Path;

fuzz_target!(|data: &[u8]| {
    let p = Path::new("fuzz.csv");
    for h in [Header::Auto, Header::Yes, Header::No] {
        match parse_csv(data, p, h) {
            Ok(t) => {
                assert_eq!(t.values.len(), t.rows * t.cols);
                for l in [LabelColumn::Last, LabelColumn::First, LabelColumn::Index(3), LabelColumn::Name("y".into())] {
                    if let Ok(Some(c)) = t.label_index(&l, p) {
                        let x = t.inputs(Some(c));
                        assert_eq!(x.rows(), t.rows);
                        let _ = t.labels(c, p);
                    }
                }
            }
            Err(e) => assert!(!e.to_string().contains('\n'), "multi-line error: {e}"),
        }
    }
    let _ = inspect::inspect_bytes(data, p);
});
