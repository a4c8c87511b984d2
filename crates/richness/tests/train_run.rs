//! `train::run` writes per-step metrics as it goes; with `metrics_to_file_only` they
//! are not also kept in memory (issue 15: memory flat however long the run).

use richness::train::{run, RunOptions, TrainConfig};

#[test]
fn metrics_can_live_in_the_file_only() {
    let mut cfg = TrainConfig::default();
    cfg.set("model.width=16").unwrap();
    cfg.set("train.steps=40").unwrap();
    cfg.set("train.batch_size=32").unwrap();
    cfg.set("train.eval_every=10").unwrap();
    let dir = std::env::temp_dir().join(format!("richness-train-run-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let mut rows = Vec::new();
    for file_only in [false, true] {
        let out = dir.join(format!("run-{file_only}"));
        let opts = RunOptions {
            out: Some(out.clone()),
            metrics_to_file_only: file_only,
            ..RunOptions::default()
        };
        let o = run(&cfg, &opts).unwrap();
        let csv = std::fs::read_to_string(out.join("metrics.csv")).unwrap();
        let lines = csv.lines().count() - 1;
        assert!(lines > 40, "one row per step and per evaluation: {lines}");
        if file_only {
            assert!(o.metrics.is_empty());
        } else {
            assert_eq!(o.metrics.len(), lines);
        }
        rows.push(csv);
    }
    // The file is the same either way.
    assert_eq!(rows[0], rows[1]);
    let _ = std::fs::remove_dir_all(&dir);
}
