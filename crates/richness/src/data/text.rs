//! Text as next-token sequences: the embedded Shakespeare corpus (the default data
//! of `--arch gpt`) and the user's own UTF-8 files.
//!
//! A text of L tokens t₀ … t_{L−1} (characters, or bytes) is split by position: the
//! first L − ⌊f·L⌋ tokens train, the last ⌊f·L⌋ test (f = `test_fraction`, 0.1 by
//! default). Each part of P tokens is cut into sequences of the context length T
//! with stride S (default S = T: windows that do not overlap):
//!
//! ```text
//! n = ⌊(P − T − 1)/S⌋ + 1  sequences,  x[i][t] = t_{iS+t},  y[i][t] = t_{iS+t+1}  (0 ≤ t < T)
//! ```
//!
//! so `y` is `x` shifted by one token and every target lies inside its own part
//! (no test token is a training target). A part shorter than T + 1 tokens holds no
//! sequence and is refused. The [`Dataset`] has `x` and `y` of shape [n, T] holding
//! token ids as floats (exact in f32 up to 2²⁴; vocabularies here are at most
//! [`MAX_CHAR_VOCAB`]), no labels, and the [`Vocab`] in `vocab`, which maps ids back
//! to text.
//!
//! Vocabularies ([`VocabKind`]):
//! - `char` (default): the distinct Unicode scalar values of the whole text (train
//!   and test), ascending by code point, id = rank — nanoGPT's `shakespeare_char`
//!   convention. At most [`MAX_CHAR_VOCAB`] symbols.
//! - `byte`: the 256 byte values of the file's UTF-8 encoding, id = byte, whatever
//!   occurs (a model trained on one file reads any other).
//!
//! As a data spec:
//!
//! ```text
//! shakespeare[:vocab=char|byte,context=T,stride=S,test_fraction=F]
//! text:PATH[,vocab=char|byte][,context=T][,stride=S][,test_fraction=F]
//! ```
//!
//! `context` is normally the model's (`model.context`, handed to
//! [`TextSpec::load`]); given in the spec it must agree with the model's, and data
//! tools without a model (`data inspect`, `data export`) use it, else
//! [`DEFAULT_CONTEXT`].
//!
//! Files are refused in one line when they are not UTF-8 (with the byte offset of
//! the first bad byte), empty, shorter than one context + 1 tokens, have more
//! distinct characters than [`MAX_CHAR_VOCAB`], are folders, FIFOs or devices, or
//! would need more memory than the [budget](crate::budget) allows (checked from the
//! file's size on disk before anything is read).
//!
//! ```
//! use richness::data::text::{Corpus, VocabKind};
//! let c = Corpus::from_text("toy", "abcab", VocabKind::Char, 0.0).unwrap();
//! assert_eq!(c.tokens, [0, 1, 2, 0, 1]);
//! let split = c.sequences(2, 1).unwrap();
//! let d = &split.train;
//! assert_eq!((d.x.row(0), d.y.row(0)), (&[0.0, 1.0][..], &[1.0, 2.0][..]));
//! assert_eq!(d.len(), 3);
//! let vocab = d.vocab.as_ref().unwrap();
//! assert_eq!((vocab.len(), vocab.decode(&[2, 0])), (3, "ca".to_string()));
//! ```

use super::{Dataset, Split};
use crate::error::{Error, Result};
use crate::tensor::Mat;
use serde::{Deserialize, Serialize};
use std::io::Read;
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::sync::Arc;

/// The embedded corpus, gzipped (see `data/ATTRIBUTION.md` in this crate).
pub static SHAKESPEARE_TXT_GZ: &[u8] = include_bytes!("../../data/shakespeare.txt.gz");
/// Length of the embedded corpus in bytes (= characters: it is ASCII).
pub const SHAKESPEARE_BYTES: usize = 841_800;
/// SHA-256 of the uncompressed embedded corpus.
pub const SHAKESPEARE_SHA256: &str =
    "ccc8da6e1d7a58664439507d66477a06af9765208d8d216bd77e49931235d8fe";
/// The data spec `--arch gpt` uses when none is given.
pub const DEFAULT_SPEC: &str = "shakespeare";
/// Context length for data tools that have no model to take it from.
pub const DEFAULT_CONTEXT: usize = 64;
/// Share of the text, at its end, that is the test set.
pub const DEFAULT_TEST_FRACTION: f64 = 0.1;
/// Most distinct characters a `char` vocabulary may have. A character vocabulary
/// is meant for alphabets; CJK text has a few thousand characters in use, and a
/// vocabulary past this size makes the embedding and read-out the whole model
/// (and the [batch·T, V] logits large): use `vocab=byte` instead.
pub const MAX_CHAR_VOCAB: usize = 16_384;

/// How text becomes tokens.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum VocabKind {
    /// One token per Unicode scalar value, over the characters the text uses.
    #[default]
    Char,
    /// One token per byte of the UTF-8 encoding, 256 ids.
    Byte,
}

impl VocabKind {
    pub fn name(self) -> &'static str {
        match self {
            VocabKind::Char => "char",
            VocabKind::Byte => "byte",
        }
    }
}

/// The map between token ids and text.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "VocabRepr", into = "VocabRepr")]
pub struct Vocab {
    kind: VocabKind,
    /// A char vocabulary's symbols, strictly ascending (id = index); empty for bytes.
    chars: Vec<char>,
}

/// The serialised form: `{"kind": "char", "chars": "\n !…z"}`, `{"kind": "byte"}`.
#[derive(Serialize, Deserialize)]
struct VocabRepr {
    kind: VocabKind,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    chars: String,
}

impl TryFrom<VocabRepr> for Vocab {
    type Error = Error;
    fn try_from(r: VocabRepr) -> Result<Vocab> {
        match r.kind {
            VocabKind::Byte if r.chars.is_empty() => Ok(Vocab::bytes()),
            VocabKind::Byte => Err(Error::config("a byte vocabulary lists no characters")),
            VocabKind::Char => Vocab::from_chars(r.chars.chars().collect()),
        }
    }
}

impl From<Vocab> for VocabRepr {
    fn from(v: Vocab) -> VocabRepr {
        VocabRepr {
            kind: v.kind,
            chars: v.chars.into_iter().collect(),
        }
    }
}

impl Vocab {
    /// The 256 byte values.
    pub fn bytes() -> Vocab {
        Vocab {
            kind: VocabKind::Byte,
            chars: vec![],
        }
    }

    /// A char vocabulary with these symbols, which must be distinct and ascending
    /// (ids are ranks by code point), at least one and at most [`MAX_CHAR_VOCAB`].
    pub fn from_chars(chars: Vec<char>) -> Result<Vocab> {
        if chars.is_empty() {
            return Err(Error::config(
                "a char vocabulary needs at least one character",
            ));
        }
        if chars.len() > MAX_CHAR_VOCAB {
            return Err(too_many_chars(chars.len(), ""));
        }
        if let Some(w) = chars.windows(2).find(|w| w[0] >= w[1]) {
            return Err(Error::config(format!(
                "char vocabulary is not strictly ascending at {:?}, {:?}",
                w[0], w[1]
            )));
        }
        Ok(Vocab {
            kind: VocabKind::Char,
            chars,
        })
    }

    /// The char vocabulary of `text`: its distinct characters, ascending.
    pub fn chars_of(text: &str) -> Result<Vocab> {
        // ASCII through a table; the rest collected, sorted and deduplicated, which
        // for text is a short list (a set per character would cost more).
        let mut ascii = [false; 128];
        let mut other: Vec<char> = Vec::new();
        for c in text.chars() {
            if c.is_ascii() {
                ascii[c as usize] = true;
            } else {
                other.push(c);
                if other.len() > 1 << 16 {
                    other.sort_unstable();
                    other.dedup();
                    if other.len() > MAX_CHAR_VOCAB {
                        // Not all read yet: a lower bound.
                        return Err(too_many_chars(other.len(), "at least "));
                    }
                }
            }
        }
        other.sort_unstable();
        other.dedup();
        let mut chars: Vec<char> = (0u8..128)
            .filter(|&b| ascii[b as usize])
            .map(char::from)
            .collect();
        chars.extend(other);
        Vocab::from_chars(chars)
    }

    pub fn kind(&self) -> VocabKind {
        self.kind
    }

    /// Number of ids (the model's vocabulary size): distinct characters, or 256.
    pub fn len(&self) -> usize {
        match self.kind {
            VocabKind::Char => self.chars.len(),
            VocabKind::Byte => 256,
        }
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// A char vocabulary's symbols in id order (empty for bytes).
    pub fn chars(&self) -> &[char] {
        &self.chars
    }

    /// The id of a character in a char vocabulary.
    pub fn char_id(&self, c: char) -> Option<u32> {
        self.chars.binary_search(&c).ok().map(|i| i as u32)
    }

    /// Token ids of `text`; a character outside a char vocabulary is an error
    /// naming it and its character offset.
    pub fn encode(&self, text: &str) -> Result<Vec<u32>> {
        match self.kind {
            VocabKind::Byte => Ok(text.bytes().map(u32::from).collect()),
            VocabKind::Char => {
                let mut ascii = [u32::MAX; 128];
                for (i, &c) in self
                    .chars
                    .iter()
                    .enumerate()
                    .take_while(|(_, c)| c.is_ascii())
                {
                    ascii[c as usize] = i as u32;
                }
                let mut ids = Vec::with_capacity(text.len());
                for (i, c) in text.chars().enumerate() {
                    let id = if c.is_ascii() {
                        Some(ascii[c as usize]).filter(|&v| v != u32::MAX)
                    } else {
                        self.char_id(c)
                    };
                    ids.push(id.ok_or_else(|| {
                        Error::config(format!(
                            "character {c:?} (character {i}) is not in the vocabulary"
                        ))
                    })?);
                }
                Ok(ids)
            }
        }
    }

    /// The text of token ids. Ids outside the vocabulary, and byte sequences that
    /// are not UTF-8 (a model's sample may split a character), become U+FFFD.
    pub fn decode(&self, ids: &[u32]) -> String {
        match self.kind {
            VocabKind::Char => ids
                .iter()
                .map(|&i| {
                    self.chars
                        .get(i as usize)
                        .copied()
                        .unwrap_or(char::REPLACEMENT_CHARACTER)
                })
                .collect(),
            VocabKind::Byte => {
                let mut out = String::new();
                let mut bytes = Vec::with_capacity(ids.len());
                for &i in ids {
                    match u8::try_from(i) {
                        Ok(b) => bytes.push(b),
                        Err(_) => {
                            out.push_str(&String::from_utf8_lossy(&bytes));
                            bytes.clear();
                            out.push(char::REPLACEMENT_CHARACTER);
                        }
                    }
                }
                out.push_str(&String::from_utf8_lossy(&bytes));
                out
            }
        }
    }

    /// One token as it reads in a report: `'e'`, `'\n'`, `' '`; bytes that are not
    /// printable ASCII as `0xe2`.
    pub fn symbol(&self, id: u32) -> String {
        let quoted = |c: char| format!("'{}'", c.escape_debug());
        match self.kind {
            VocabKind::Char => self
                .chars
                .get(id as usize)
                .map_or_else(|| format!("<{id}?>"), |&c| quoted(c)),
            VocabKind::Byte => match u8::try_from(id) {
                Ok(b) if b.is_ascii() && (!b.is_ascii_control() || b == b'\n' || b == b'\t') => {
                    quoted(char::from(b))
                }
                Ok(b) => format!("0x{b:02x}"),
                Err(_) => format!("<{id}?>"),
            },
        }
    }
}

fn too_many_chars(n: usize, bound: &str) -> Error {
    Error::config(format!(
        "the text has {bound}{n} distinct characters, more than a char vocabulary may have ({MAX_CHAR_VOCAB}): use vocab=byte"
    ))
}

/// A tokenized text and its train/test boundary.
#[derive(Clone, Debug, PartialEq)]
pub struct Corpus {
    /// The data set's name (the file name, or `shakespeare`).
    pub name: String,
    pub vocab: Arc<Vocab>,
    /// The whole text's token ids.
    pub tokens: Vec<u32>,
    /// `tokens[..train_tokens]` train, the rest test.
    pub train_tokens: usize,
    /// What errors name: the file's path, or the name.
    origin: String,
}

impl Corpus {
    /// Tokenize `text` (a `char` vocabulary is built from it) and split it by
    /// position, the last ⌊`test_fraction`·L⌋ tokens testing.
    pub fn from_text(
        name: &str,
        text: &str,
        kind: VocabKind,
        test_fraction: f64,
    ) -> Result<Corpus> {
        Corpus::from_text_at(name, name, text, kind, test_fraction)
    }

    /// [`Corpus::from_text`] whose errors name `origin` (a file's path).
    fn from_text_at(
        name: &str,
        origin: &str,
        text: &str,
        kind: VocabKind,
        test_fraction: f64,
    ) -> Result<Corpus> {
        check_fraction(test_fraction)?;
        let at = |e: Error| match e {
            Error::Config(m) => Error::file(origin, m),
            e => e,
        };
        if text.is_empty() {
            return Err(Error::file(origin, "empty text"));
        }
        let vocab = match kind {
            VocabKind::Char => Vocab::chars_of(text).map_err(at)?,
            VocabKind::Byte => Vocab::bytes(),
        };
        crate::budget::ensure(
            || format!("text data {origin}: token ids"),
            crate::budget::product(&[text.len()], 4),
        )?;
        let tokens = vocab.encode(text).map_err(at)?;
        let test = (test_fraction * tokens.len() as f64).floor() as usize;
        Ok(Corpus {
            name: name.to_string(),
            vocab: Arc::new(vocab),
            train_tokens: tokens.len() - test,
            tokens,
            origin: origin.to_string(),
        })
    }

    pub fn train(&self) -> &[u32] {
        &self.tokens[..self.train_tokens]
    }

    pub fn test(&self) -> &[u32] {
        &self.tokens[self.train_tokens..]
    }

    /// Whether sequences of `context` tokens, `stride` apart, can be cut: the
    /// text, its training part and its test part (unless empty) each need at
    /// least context + 1 tokens.
    pub fn check_window(&self, context: usize, stride: usize) -> Result<()> {
        check_window(context, stride)?;
        let need = context.saturating_add(1);
        if self.tokens.len() < need {
            return Err(Error::file(
                &self.origin,
                format!(
                    "{} tokens, fewer than one context + 1 ({need}): use a longer text or a shorter context",
                    self.tokens.len()
                ),
            ));
        }
        for (which, part) in [("training", self.train()), ("test", self.test())] {
            if !part.is_empty() && part.len() < need {
                return Err(Error::file(
                    &self.origin,
                    format!(
                        "the {which} part ({} tokens) is shorter than one context + 1 ({need}): use a longer text, a shorter context, or another test_fraction",
                        part.len()
                    ),
                ));
            }
        }
        Ok(())
    }

    /// Training and test sequences of `context` tokens, `stride` apart (see the
    /// module docs); no test set when the test part is empty.
    pub fn sequences(&self, context: usize, stride: usize) -> Result<Split> {
        self.check_window(context, stride)?;
        let train = cut(&self.name, self.train(), context, stride, &self.vocab)?;
        let test = if self.test().is_empty() {
            None
        } else {
            Some(cut(&self.name, self.test(), context, stride, &self.vocab)?)
        };
        Ok(Split { train, test })
    }
}

/// How many sequences of `context` tokens, `stride` apart, `tokens` tokens hold:
/// ⌊(tokens − context − 1)/stride⌋ + 1, or 0 when tokens < context + 1.
pub fn sequence_count(tokens: usize, context: usize, stride: usize) -> usize {
    match tokens.checked_sub(context.saturating_add(1)) {
        Some(rest) if stride > 0 => rest / stride + 1,
        _ => 0,
    }
}

/// The [n, T] inputs and next-token targets of `tokens`.
fn cut(
    name: &str,
    tokens: &[u32],
    context: usize,
    stride: usize,
    vocab: &Arc<Vocab>,
) -> Result<Dataset> {
    let n = sequence_count(tokens.len(), context, stride);
    crate::budget::ensure(
        || {
            format!(
                "text data {name}: {n} sequences × context {context} (inputs and targets in f64)"
            )
        },
        crate::budget::product(&[n, context, 2], 8),
    )?;
    let mut x = Vec::with_capacity(n * context);
    let mut y = Vec::with_capacity(n * context);
    for i in 0..n {
        let s = i * stride;
        x.extend(tokens[s..s + context].iter().map(|&t| t as f64));
        y.extend(tokens[s + 1..s + context + 1].iter().map(|&t| t as f64));
    }
    Ok(Dataset {
        name: name.to_string(),
        x: Mat::from_vec(n, context, x),
        y: Mat::from_vec(n, context, y),
        labels: None,
        image_shape: None,
        vocab: Some(vocab.clone()),
    })
}

fn check_fraction(f: f64) -> Result<()> {
    if (0.0..=0.5).contains(&f) {
        Ok(())
    } else {
        Err(Error::config(format!(
            "text data: test_fraction must be in [0, 0.5], got {f}"
        )))
    }
}

fn check_window(context: usize, stride: usize) -> Result<()> {
    if context == 0 {
        return Err(Error::config("text data: context must be at least 1"));
    }
    if stride == 0 {
        return Err(Error::config("text data: stride must be at least 1"));
    }
    Ok(())
}

/// Where the text comes from.
#[derive(Clone, Debug, PartialEq)]
pub enum TextSource {
    /// The embedded corpus.
    Shakespeare,
    /// A UTF-8 file.
    File(PathBuf),
}

/// A text data spec (`shakespeare[:…]` or `text:PATH[,…]`; see the module docs).
#[derive(Clone, Debug, PartialEq)]
pub struct TextSpec {
    pub source: TextSource,
    pub vocab: VocabKind,
    /// The context length, when the spec fixes it.
    pub context: Option<usize>,
    /// Tokens between the starts of consecutive sequences; default the context.
    pub stride: Option<usize>,
    pub test_fraction: f64,
}

impl TextSpec {
    /// The embedded corpus with the defaults.
    pub fn shakespeare() -> TextSpec {
        TextSpec {
            source: TextSource::Shakespeare,
            vocab: VocabKind::Char,
            context: None,
            stride: None,
            test_fraction: DEFAULT_TEST_FRACTION,
        }
    }

    /// A file with the defaults.
    pub fn file(path: impl Into<PathBuf>) -> TextSpec {
        TextSpec {
            source: TextSource::File(path.into()),
            ..TextSpec::shakespeare()
        }
    }

    /// The context to cut at: the model's when given (the spec's must then agree),
    /// else the spec's, else [`DEFAULT_CONTEXT`].
    pub fn context_for(&self, model: Option<usize>) -> Result<usize> {
        match (self.context, model) {
            (Some(a), Some(b)) if a != b => Err(Error::config(format!(
                "the data spec says context={a} but the model's context is {b}: drop context= from the spec or make them agree"
            ))),
            (Some(c), _) | (None, Some(c)) => Ok(c),
            (None, None) => Ok(DEFAULT_CONTEXT),
        }
    }

    /// Sequences at the model's `context` (see [`TextSpec::context_for`]).
    pub fn load(&self, context: Option<usize>) -> Result<Split> {
        let context = self.context_for(context)?;
        let stride = self.stride.unwrap_or(context);
        check_window(context, stride)?;
        check_fraction(self.test_fraction)?;
        if let TextSource::File(p) = &self.source {
            // The whole job from the size on disk, before anything is read: the
            // bytes, the string, 4-byte ids, and inputs and targets in f64 (the
            // token count is at most the byte count).
            let len = regular_file_len(p)?;
            let seqs = len.div_ceil(stride.max(1) as u64) as usize;
            let bytes = (len as u128) * 6 + crate::budget::product(&[seqs, context, 2], 8);
            crate::budget::ensure(
                || {
                    format!(
                        "text data {} ({len} bytes, context {context}, stride {stride})",
                        p.display()
                    )
                },
                bytes,
            )?;
        }
        self.corpus()?.sequences(context, stride)
    }

    /// The tokenized text and its split, not yet cut into sequences.
    pub fn corpus(&self) -> Result<Corpus> {
        let (name, text) = self.read()?;
        self.corpus_of(&name, &text)
    }

    /// The corpus of `text` (as [`TextSpec::read`] gives it) under this spec's
    /// vocabulary and split.
    pub fn corpus_of(&self, name: &str, text: &str) -> Result<Corpus> {
        let origin = match &self.source {
            TextSource::Shakespeare => "<embedded shakespeare>".to_string(),
            TextSource::File(p) => p.display().to_string(),
        };
        Corpus::from_text_at(name, &origin, text, self.vocab, self.test_fraction)
    }

    /// The name of the data and its text.
    pub fn read(&self) -> Result<(String, String)> {
        match &self.source {
            TextSource::Shakespeare => Ok(("shakespeare".into(), shakespeare_text()?)),
            TextSource::File(p) => Ok((super::file_name(p), read_text_file(p)?)),
        }
    }
}

/// The embedded corpus as text.
pub fn shakespeare_text() -> Result<String> {
    let mut text = String::with_capacity(SHAKESPEARE_BYTES);
    flate2::read::GzDecoder::new(SHAKESPEARE_TXT_GZ)
        .take(SHAKESPEARE_BYTES as u64 + 1)
        .read_to_string(&mut text)
        .map_err(|e| Error::file("<embedded shakespeare>", e.to_string()))?;
    Ok(text)
}

/// The length of a regular file; a folder, FIFO, device or socket is refused from
/// its metadata, without opening it (opening a FIFO would wait for a writer).
pub fn regular_file_len(path: &Path) -> Result<u64> {
    let meta = std::fs::metadata(path).map_err(|e| Error::io(path, e))?;
    let ft = meta.file_type();
    if ft.is_dir() {
        return Err(Error::file(path, "is a folder, not a file"));
    }
    #[cfg(unix)]
    {
        use std::os::unix::fs::FileTypeExt;
        if ft.is_fifo() {
            return Err(Error::file(
                path,
                "is a FIFO (named pipe), not a regular file",
            ));
        }
    }
    if !ft.is_file() {
        return Err(Error::file(
            path,
            "is a device or socket, not a regular file",
        ));
    }
    Ok(meta.len())
}

/// A UTF-8 text file (a leading byte-order mark is dropped).
pub fn read_text_file(path: &Path) -> Result<String> {
    regular_file_len(path)?;
    let bytes = crate::files::read_file(path, None)?;
    decode_utf8(bytes, path)
}

/// Bytes as UTF-8 text: the first invalid byte is named with its offset. A
/// leading byte-order mark is dropped; nothing is left is "empty file".
pub fn decode_utf8(bytes: Vec<u8>, path: &Path) -> Result<String> {
    let mut text = String::from_utf8(bytes).map_err(|e| {
        let at = e.utf8_error().valid_up_to();
        let what = match e.as_bytes().get(at) {
            Some(b) if e.utf8_error().error_len().is_some() => format!("invalid byte 0x{b:02x}"),
            _ => "a character cut off at the end of the file".to_string(),
        };
        Error::file(path, format!("not UTF-8 text: {what} at byte offset {at}"))
    })?;
    if text.starts_with('\u{feff}') {
        text.drain(..3);
    }
    if text.is_empty() {
        return Err(Error::file(path, "empty file"));
    }
    Ok(text)
}

/// Whether a command-line argument names text data (`text:…`, `shakespeare[:…]`)
/// rather than a file.
pub fn is_text_spec(arg: &str) -> bool {
    arg.starts_with("text:") || arg == "shakespeare" || arg.starts_with("shakespeare:")
}

impl FromStr for TextSpec {
    type Err = Error;
    /// `shakespeare[:key=value,…]` or `text:PATH[,key=value,…]` (also `text:path=PATH`).
    fn from_str(s: &str) -> Result<TextSpec> {
        let (kind, rest) = s.split_once(':').unwrap_or((s, ""));
        let mut spec = TextSpec::shakespeare();
        let mut path: Option<PathBuf> = None;
        let keys = match kind {
            "shakespeare" => "vocab, context, stride, test_fraction",
            "text" => "path, vocab, context, stride, test_fraction",
            _ => return Err(Error::config(format!("`{s}` is not a text data spec"))),
        };
        for (i, part) in rest.split(',').map(str::trim).enumerate() {
            if part.is_empty() {
                continue;
            }
            let Some((k, v)) = part.split_once('=') else {
                if i == 0 && kind == "text" {
                    path = Some(PathBuf::from(part));
                    continue;
                }
                return Err(Error::config(format!(
                    "expected key=value in {kind} data spec, got `{part}`"
                )));
            };
            let (k, v) = (k.trim(), v.trim());
            let count = |what: &str| -> Result<usize> {
                match v.parse::<usize>() {
                    Ok(n) if n >= 1 => Ok(n),
                    _ => Err(Error::config(format!(
                        "{kind} data: {what} must be a positive integer, got `{v}`"
                    ))),
                }
            };
            match k {
                "path" if kind == "text" => path = Some(PathBuf::from(v)),
                "vocab" => {
                    spec.vocab = match v {
                        "char" => VocabKind::Char,
                        "byte" => VocabKind::Byte,
                        _ => {
                            return Err(Error::config(format!(
                                "{kind} data: vocab must be char or byte, got `{v}`"
                            )))
                        }
                    }
                }
                "context" => spec.context = Some(count("context")?),
                "stride" => spec.stride = Some(count("stride")?),
                "test_fraction" => {
                    spec.test_fraction = v.parse::<f64>().map_err(|_| {
                        Error::config(format!(
                            "{kind} data: test_fraction must be a number, got `{v}`"
                        ))
                    })?;
                    check_fraction(spec.test_fraction)?;
                }
                _ => {
                    return Err(Error::config(format!(
                        "unknown {kind} data key `{k}` (expected {keys})"
                    )))
                }
            }
        }
        if kind == "text" {
            let p = path
                .filter(|p| !p.as_os_str().is_empty())
                .ok_or_else(|| Error::config("text data: give the file (text:PATH)"))?;
            spec.source = TextSource::File(p);
        }
        Ok(spec)
    }
}

impl std::fmt::Display for TextSpec {
    /// The shortest spec that parses back to the same value.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mut keys: Vec<String> = vec![];
        if self.vocab != VocabKind::Char {
            keys.push(format!("vocab={}", self.vocab.name()));
        }
        if let Some(c) = self.context {
            keys.push(format!("context={c}"));
        }
        if let Some(s) = self.stride {
            keys.push(format!("stride={s}"));
        }
        if self.test_fraction != DEFAULT_TEST_FRACTION {
            keys.push(format!("test_fraction={}", self.test_fraction));
        }
        match &self.source {
            TextSource::Shakespeare if keys.is_empty() => write!(f, "shakespeare"),
            TextSource::Shakespeare => write!(f, "shakespeare:{}", keys.join(",")),
            TextSource::File(p) => {
                let p = p.display().to_string();
                if p.contains('=') {
                    write!(f, "text:path={p}")?;
                } else {
                    write!(f, "text:{p}")?;
                }
                keys.iter().try_for_each(|k| write!(f, ",{k}"))
            }
        }
    }
}

/// What `richness data inspect text:PATH` reports.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct TextReport {
    /// The file, or `<embedded shakespeare>`.
    pub path: String,
    pub format: String,
    pub bytes: usize,
    pub chars: usize,
    pub lines: usize,
    pub sha256: String,
    pub vocab: VocabKind,
    /// The model's vocabulary size (ids).
    pub vocab_size: usize,
    /// Distinct tokens that occur (equal to `vocab_size` for a char vocabulary).
    pub distinct: usize,
    pub tokens: usize,
    /// The most frequent tokens as [`Vocab::symbol`] shows them, with their counts.
    pub most_frequent: Vec<(String, usize)>,
    pub context: usize,
    pub stride: usize,
    pub test_fraction: f64,
    pub train_tokens: usize,
    pub test_tokens: usize,
    pub train_sequences: usize,
    pub test_sequences: usize,
}

/// How many of the most frequent tokens a report lists.
pub const FREQUENT: usize = 10;

/// Read, validate and describe text data as training would load it (with the
/// spec's context, else [`DEFAULT_CONTEXT`]): `Ok` means the data loads.
pub fn inspect(spec: &TextSpec) -> Result<TextReport> {
    let (name, text) = spec.read()?;
    let corpus = spec.corpus_of(&name, &text)?;
    let context = spec.context_for(None)?;
    let stride = spec.stride.unwrap_or(context);
    // The refusals of training (too short for a sequence in either part),
    // without building the sequences.
    corpus.check_window(context, stride)?;
    let mut counts = vec![0usize; corpus.vocab.len()];
    corpus.tokens.iter().for_each(|&t| counts[t as usize] += 1);
    let mut order: Vec<usize> = (0..counts.len()).filter(|&i| counts[i] > 0).collect();
    let distinct = order.len();
    order.sort_by(|&a, &b| counts[b].cmp(&counts[a]).then(a.cmp(&b)));
    let most_frequent = order
        .iter()
        .take(FREQUENT)
        .map(|&i| (corpus.vocab.symbol(i as u32), counts[i]))
        .collect();
    Ok(TextReport {
        path: match &spec.source {
            TextSource::Shakespeare => "<embedded shakespeare>".into(),
            TextSource::File(p) => p.display().to_string(),
        },
        format: "UTF-8 text".into(),
        bytes: text.len(),
        chars: text.chars().count(),
        lines: text.lines().count(),
        sha256: super::catalog::sha256_bytes(text.as_bytes()),
        vocab: corpus.vocab.kind(),
        vocab_size: corpus.vocab.len(),
        distinct,
        tokens: corpus.tokens.len(),
        most_frequent,
        context,
        stride,
        test_fraction: spec.test_fraction,
        train_tokens: corpus.train().len(),
        test_tokens: corpus.test().len(),
        train_sequences: sequence_count(corpus.train().len(), context, stride),
        test_sequences: sequence_count(corpus.test().len(), context, stride),
    })
}

impl std::fmt::Display for TextReport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        writeln!(f, "file     {}", self.path)?;
        writeln!(
            f,
            "format   {}: {} bytes, {} characters, {} lines",
            self.format, self.bytes, self.chars, self.lines
        )?;
        writeln!(f, "sha256   {}", self.sha256)?;
        writeln!(
            f,
            "vocab    {}: {} ids, {} occur",
            self.vocab.name(),
            self.vocab_size,
            self.distinct
        )?;
        let freq: Vec<String> = self
            .most_frequent
            .iter()
            .map(|(s, n)| format!("{s}:{n}"))
            .collect();
        writeln!(f, "frequent {}", freq.join(" "))?;
        let pct = |x: f64| format!("{}%", (x * 1000.0).round() / 10.0);
        writeln!(
            f,
            "tokens   {}: {} train (first {}), {} test (last {})",
            self.tokens,
            self.train_tokens,
            pct(1.0 - self.test_fraction),
            self.test_tokens,
            pct(self.test_fraction)
        )?;
        writeln!(
            f,
            "context  {}, stride {}: {} train sequences, {} test sequences",
            self.context, self.stride, self.train_sequences, self.test_sequences
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn char_tokens_round_trip_and_ids_are_ranks_by_code_point() {
        let text = "Zoë says: 日本\nzz";
        let c = Corpus::from_text("t", text, VocabKind::Char, 0.0).unwrap();
        let v = &c.vocab;
        let mut want: Vec<char> = text.chars().collect();
        want.sort();
        want.dedup();
        assert_eq!(v.chars(), &want[..]);
        assert_eq!(v.len(), want.len());
        assert_eq!(c.tokens.len(), text.chars().count());
        assert_eq!(v.decode(&c.tokens), text);
        // id = rank: '\n' (U+000A) is the smallest symbol, 本 (U+672C) the largest.
        assert_eq!(v.char_id('\n'), Some(0));
        assert_eq!(v.char_id('本'), Some(want.len() as u32 - 1));
        assert!(v.encode("x").unwrap_err().to_string().contains("'x'"));
    }

    #[test]
    fn byte_tokens_round_trip_and_the_vocabulary_is_all_256_bytes() {
        let text = "é\n\u{1F600}a";
        let c = Corpus::from_text("t", text, VocabKind::Byte, 0.0).unwrap();
        assert_eq!(c.vocab.len(), 256);
        assert_eq!(c.tokens, text.bytes().map(u32::from).collect::<Vec<_>>());
        assert_eq!(c.vocab.decode(&c.tokens), text);
        // A sample that cuts a character in two decodes with a replacement, no panic.
        assert_eq!(c.vocab.decode(&[0xc3, 0x61, 300]), "\u{fffd}a\u{fffd}");
        assert_eq!(
            (
                c.vocab.symbol(10),
                c.vocab.symbol(0xc3),
                c.vocab.symbol(b'a' as u32)
            ),
            ("'\\n'".to_string(), "0xc3".to_string(), "'a'".to_string())
        );
    }

    /// An independent cut: every window by its definition, one at a time.
    fn windows(tokens: &[u32], t: usize, s: usize) -> Vec<(Vec<f64>, Vec<f64>)> {
        let mut out = vec![];
        let mut start = 0;
        while start + t < tokens.len() {
            let w = |a: usize| tokens[a..a + t].iter().map(|&v| v as f64).collect();
            out.push((w(start), w(start + 1)));
            start += s;
        }
        out
    }

    #[test]
    fn targets_are_the_next_tokens_and_the_split_is_by_position() {
        let text: String = (0..1000)
            .map(|i| char::from(b'a' + (i * 7 % 26) as u8))
            .collect();
        let c = Corpus::from_text("t", &text, VocabKind::Char, 0.1).unwrap();
        assert_eq!((c.train().len(), c.test().len()), (900, 100));
        for (t, s) in [(8, 8), (8, 3), (16, 1), (5, 7)] {
            let split = c.sequences(t, s).unwrap();
            let test = split.test.as_ref().unwrap();
            for (d, part) in [(&split.train, c.train()), (test, c.test())] {
                let want = windows(part, t, s);
                assert_eq!(d.len(), want.len(), "T={t} S={s}");
                assert_eq!(d.len(), sequence_count(part.len(), t, s));
                assert_eq!((d.input_dim(), d.output_dim()), (t, t));
                for (i, (x, y)) in want.iter().enumerate() {
                    assert_eq!((d.x.row(i), d.y.row(i)), (&x[..], &y[..]), "row {i}");
                }
                // y is x shifted by one within each row.
                for i in 0..d.len() {
                    assert_eq!(d.x.row(i)[1..], d.y.row(i)[..t - 1]);
                }
                assert_eq!(d.vocab.as_deref(), Some(&*c.vocab));
                assert_eq!(d.labels, None);
            }
            // The first test input is the first token after the training part.
            assert_eq!(test.x.row(0)[0], c.tokens[900] as f64);
        }
        // The same text gives the same data: nothing here is random.
        assert_eq!(c.sequences(8, 8).unwrap(), c.sequences(8, 8).unwrap());
        assert_eq!(c.sequences(8, 8).unwrap().train.len(), 112); // ⌊(900−9)/8⌋+1
                                                                 // No test part, no test set.
        let c0 = Corpus::from_text("t", &text, VocabKind::Char, 0.0).unwrap();
        assert!(c0.sequences(8, 8).unwrap().test.is_none());
    }

    #[test]
    fn too_short_texts_and_parts_are_refused() {
        let c = Corpus::from_text("t", "abcdefghij", VocabKind::Char, 0.0).unwrap();
        assert_eq!(c.sequences(9, 1).unwrap().train.len(), 1);
        let e = c.sequences(10, 1).unwrap_err().to_string();
        assert!(
            e.contains("10 tokens, fewer than one context + 1 (11)"),
            "{e}"
        );
        let c = Corpus::from_text("t", &"ab".repeat(50), VocabKind::Char, 0.1).unwrap();
        let e = c.sequences(10, 10).unwrap_err().to_string();
        assert!(e.contains("the test part (10 tokens)"), "{e}");
        assert!(c.sequences(0, 1).is_err() && c.sequences(4, 0).is_err());
        assert!(Corpus::from_text("t", "", VocabKind::Char, 0.1).is_err());
        assert!(Corpus::from_text("t", "ab", VocabKind::Char, 0.9).is_err());
    }

    #[test]
    fn a_char_vocabulary_has_a_size_limit() {
        let wide: String = (0..MAX_CHAR_VOCAB as u32 + 1)
            .map(|i| char::from_u32(0x4e00 + i).unwrap())
            .collect();
        let e = Vocab::chars_of(&wide).unwrap_err().to_string();
        assert_eq!(e, "the text has 16385 distinct characters, more than a char vocabulary may have (16384): use vocab=byte");
        // A long text stops at the first 65,537 non-ASCII characters, with a bound.
        let e = Vocab::chars_of(&wide.repeat(5)).unwrap_err().to_string();
        assert!(e.contains("has at least 16385 distinct"), "{e}");
        assert_eq!(Vocab::chars_of(&wide[3..]).unwrap().len(), MAX_CHAR_VOCAB);
        let c = Corpus::from_text("t", &wide, VocabKind::Byte, 0.0).unwrap();
        assert_eq!(c.vocab.len(), 256);
        assert!(Vocab::from_chars(vec!['b', 'a']).is_err());
        assert!(Vocab::from_chars(vec!['a', 'a']).is_err());
    }

    #[test]
    fn vocabularies_serialise_and_refuse_bad_lists() {
        let v = Vocab::chars_of("hello\n").unwrap();
        let j = serde_json::to_string(&v).unwrap();
        assert_eq!(j, r#"{"kind":"char","chars":"\nehlo"}"#);
        assert_eq!(serde_json::from_str::<Vocab>(&j).unwrap(), v);
        assert_eq!(
            serde_json::from_str::<Vocab>(r#"{"kind":"byte"}"#).unwrap(),
            Vocab::bytes()
        );
        assert!(serde_json::from_str::<Vocab>(r#"{"kind":"char","chars":"ba"}"#).is_err());
    }

    #[test]
    fn utf8_errors_name_the_byte_offset() {
        let p = Path::new("f.txt");
        let e = decode_utf8(b"abc\xffdef".to_vec(), p)
            .unwrap_err()
            .to_string();
        assert_eq!(
            e,
            "f.txt: not UTF-8 text: invalid byte 0xff at byte offset 3"
        );
        let e = decode_utf8("ab\u{e9}".as_bytes()[..3].to_vec(), p)
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("cut off at the end of the file at byte offset 2"),
            "{e}"
        );
        assert_eq!(decode_utf8(b"\xef\xbb\xbfhi".to_vec(), p).unwrap(), "hi");
        assert!(decode_utf8(b"\xef\xbb\xbf".to_vec(), p)
            .unwrap_err()
            .to_string()
            .contains("empty file"));
        assert!(decode_utf8(vec![], p)
            .unwrap_err()
            .to_string()
            .contains("empty file"));
    }

    #[test]
    fn specs_parse_and_print_back() {
        for s in [
            "shakespeare",
            "shakespeare:vocab=byte",
            "shakespeare:context=32,stride=16,test_fraction=0.2",
            "text:corpus.txt",
            "text:/a/b.txt,vocab=byte,context=8",
            "text:path=a=b.txt",
        ] {
            let spec: TextSpec = s.parse().unwrap();
            assert_eq!(spec.to_string(), s);
        }
        let spec: TextSpec = "text:path=x.txt,test_fraction=0.1".parse().unwrap();
        assert_eq!(
            (spec.to_string(), spec.vocab),
            ("text:x.txt".into(), VocabKind::Char)
        );
        let msg = |s: &str| s.parse::<TextSpec>().unwrap_err().to_string();
        assert!(msg("text:").contains("give the file"));
        assert!(msg("text:a,vocab=word").contains("char or byte"));
        assert!(msg("text:a,context=0").contains("positive integer"));
        assert!(msg("text:a,stride=-1").contains("positive integer"));
        assert!(msg("text:a,test_fraction=nan").contains("[0, 0.5]"));
        assert!(msg("text:a,size=3").contains("unknown text data key `size`"));
        assert!(msg("shakespeare:path=a").contains("unknown shakespeare data key `path`"));
        assert!(msg("shakespeare:a").contains("expected key=value"));
    }

    #[test]
    fn the_models_context_wins_unless_the_spec_disagrees() {
        let mut spec = TextSpec::shakespeare();
        assert_eq!(spec.context_for(None).unwrap(), DEFAULT_CONTEXT);
        assert_eq!(spec.context_for(Some(16)).unwrap(), 16);
        spec.context = Some(16);
        assert_eq!(spec.context_for(Some(16)).unwrap(), 16);
        assert_eq!(spec.context_for(None).unwrap(), 16);
        assert!(spec
            .context_for(Some(32))
            .unwrap_err()
            .to_string()
            .contains("context=16"));
    }

    #[test]
    fn the_embedded_corpus_is_the_attributed_text() {
        let text = shakespeare_text().unwrap();
        assert_eq!(text.len(), SHAKESPEARE_BYTES);
        assert_eq!(
            super::super::catalog::sha256_bytes(text.as_bytes()),
            SHAKESPEARE_SHA256
        );
        assert!(text.starts_with("HAMLET, PRINCE OF DENMARK"));
        let c = TextSpec::shakespeare().corpus().unwrap();
        assert_eq!(c.vocab.len(), 73);
        assert_eq!(c.vocab.decode(&c.tokens), text);
        let split = TextSpec::shakespeare().load(Some(64)).unwrap();
        assert_eq!(split.train.len(), sequence_count(757_620, 64, 64));
        assert_eq!(split.test.unwrap().len(), sequence_count(84_180, 64, 64));
    }
}
