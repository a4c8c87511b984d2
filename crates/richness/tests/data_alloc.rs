//! "No allocation larger than the file itself implies": a counting allocator
//! records the largest single allocation each thread makes while a reader rejects a
//! file whose header claims far more data than the file holds.

use flate2::{write::GzEncoder, Compression};
use richness::data::{cifar, csv, idx, inspect, npy};
use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::io::Write;
use std::path::Path;

struct Counting;

thread_local! {
    static LARGEST: Cell<usize> = const { Cell::new(0) };
}

unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, l: Layout) -> *mut u8 {
        let _ = LARGEST.try_with(|m| m.set(m.get().max(l.size())));
        System.alloc(l)
    }
    unsafe fn dealloc(&self, p: *mut u8, l: Layout) {
        System.dealloc(p, l)
    }
    unsafe fn realloc(&self, p: *mut u8, l: Layout, new: usize) -> *mut u8 {
        let _ = LARGEST.try_with(|m| m.set(m.get().max(new)));
        System.realloc(p, l, new)
    }
}

#[global_allocator]
static A: Counting = Counting;

/// The largest single allocation `f` makes on this thread.
fn largest<T>(f: impl FnOnce() -> T) -> (T, usize) {
    LARGEST.with(|m| m.set(0));
    let out = f();
    (out, LARGEST.with(|m| m.get()))
}

fn gz(b: &[u8]) -> Vec<u8> {
    let mut e = GzEncoder::new(Vec::new(), Compression::default());
    e.write_all(b).unwrap();
    e.finish().unwrap()
}

/// Fixed working memory a reader may use whatever the file: buffers and the
/// inflate state (miniz_oxide's is ≈ 40 kB).
const SLACK: usize = 128 << 10;

#[test]
fn lying_headers_allocate_nothing_big() {
    let dir = std::env::temp_dir().join(format!("richness-alloc-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let mut npy_huge = Vec::new();
    npy::write_npy_raw(&mut npy_huge, "<f8", &[1 << 31, 1 << 31], &[0; 64]).unwrap();
    let mnist_head = [0u8, 0, 8, 3, 0, 0, 0xea, 0x60, 0, 0, 0, 28, 0, 0, 0, 28];
    let cases: Vec<(&str, Vec<u8>)> = vec![
        // 2^32 − 1 × 2^32 − 1 images, raw and gzipped.
        (
            "huge-idx3-ubyte",
            vec![0, 0, 8, 2, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff],
        ),
        (
            "huge-idx3-ubyte.gz",
            gz(&[0, 0, 8, 2, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff]),
        ),
        // MNIST's header with almost no data: 47 MB claimed.
        ("mnist-idx3-ubyte", [&mnist_head[..], &[0u8; 100]].concat()),
        (
            "mnist-idx3-ubyte.gz",
            gz(&[&mnist_head[..], &[0u8; 100]].concat()),
        ),
        ("huge.npy", npy_huge),
        ("huge.csv", b"1,2,3\n4,5\n".to_vec()),
        ("data_batch_1.bin", vec![3; 3073 * 2 + 5]),
    ];
    for (name, bytes) in cases {
        let p = dir.join(name);
        std::fs::write(&p, &bytes).unwrap();
        let bound = SLACK.max(2 * bytes.len());
        let (r, big) = largest(|| idx::read_idx(&p).map(|_| ()));
        if name.contains("idx") {
            assert!(r.is_err(), "{name}");
            assert!(
                big <= bound,
                "{name}: read_idx allocated {big} bytes at once (file: {} bytes)",
                bytes.len()
            );
        }
        let (r, big) = largest(|| inspect::inspect(&p).map(|_| ()));
        assert!(r.is_err(), "{name} inspected as valid");
        assert!(
            big <= bound,
            "{name}: inspect allocated {big} bytes at once (file: {} bytes)",
            bytes.len()
        );
        let (_, big) = largest(|| {
            let _ = idx::parse_idx(&bytes, Path::new(name));
            let _ = npy::parse_npy(&bytes, Path::new(name));
            let _ = csv::parse_csv(&bytes, Path::new(name), csv::Header::Auto);
            let _ = cifar::parse_batch(&bytes, Path::new(name), cifar::Cifar::Ten);
        });
        assert!(
            big <= bound,
            "{name}: a parser allocated {big} bytes at once (file: {} bytes)",
            bytes.len()
        );
    }
}
