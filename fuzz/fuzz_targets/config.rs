//! Config parsing: any text gives a config or a one-line error; a parsed config
//! serialises and parses back to itself, and its data spec parses or errs cleanly.
#![no_main]
use libfuzzer_sys::fuzz_target;
use richness::data::DataSource;
use richness::train::TrainConfig;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    match TrainConfig::from_toml(text, "fuzz.toml") {
        Ok(c) => {
            if let Ok(src) = c.data.dataset.parse::<DataSource>() {
                let again: DataSource = src.to_string().parse().expect("a displayed spec parses");
                assert_eq!(again, src);
            }
        }
        Err(e) => assert!(!e.to_string().contains('\n'), "multi-line error: {e}"),
    }
    // Data specs on their own (the part after `dataset =`).
    if let Ok(src) = text.parse::<DataSource>() {
        let again: DataSource = src.to_string().parse().expect("a displayed spec parses");
        assert_eq!(again, src);
    }
});
