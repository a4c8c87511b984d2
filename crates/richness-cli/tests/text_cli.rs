//! `richness data inspect text:PATH` and `data list` on text data: the numbers the
//! report gives are recomputed here from the file, independently of the library.

use std::collections::HashMap;
use std::process::Command;

fn richness(dir: &std::path::Path, args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_richness"))
        .args(["--quiet", "--threads", "1"])
        .args(args)
        .current_dir(dir)
        .output()
        .unwrap()
}

/// ⌊(P − T − 1)/S⌋ + 1 windows, counted one by one.
fn windows(p: usize, t: usize, s: usize) -> usize {
    (0..)
        .map(|i| i * s)
        .take_while(|&start| start + t < p)
        .count()
}

#[test]
fn inspect_reports_size_vocabulary_frequencies_and_sequences() {
    let dir = std::env::temp_dir().join(format!("richness-text-cli-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let text = "Ma vie, ô ma vie!\nZoë dit: ça va.\n".repeat(30) + "fin\n";
    std::fs::write(dir.join("poème.txt"), &text).unwrap();
    let chars: Vec<char> = text.chars().collect();
    let mut counts: HashMap<char, usize> = HashMap::new();
    chars
        .iter()
        .for_each(|&c| *counts.entry(c).or_default() += 1);
    let (n, t, s) = (chars.len(), 16, 5);
    let test = n / 10; // ⌊0.1·n⌋

    let o = richness(
        &dir,
        &[
            "data",
            "inspect",
            "text:poème.txt,context=16,stride=5",
            "--json",
        ],
    );
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    let r = &v[0];
    let num = |k: &str| r[k].as_u64().unwrap_or_else(|| panic!("{k}: {r}")) as usize;
    assert_eq!(num("bytes"), text.len());
    assert_eq!(num("chars"), n);
    assert_eq!(num("lines"), 61);
    assert_eq!(r["vocab"], "char");
    assert_eq!(num("vocab_size"), counts.len());
    assert_eq!(num("tokens"), n);
    assert_eq!((num("train_tokens"), num("test_tokens")), (n - test, test));
    assert_eq!(num("train_sequences"), windows(n - test, t, s));
    assert_eq!(num("test_sequences"), windows(test, t, s));
    // The most frequent: ' ' then 'a' (counted here), with their counts.
    let mut freq: Vec<(char, usize)> = counts.iter().map(|(&c, &k)| (c, k)).collect();
    freq.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));
    let top = r["most_frequent"].as_array().unwrap();
    assert_eq!(top.len(), 10);
    for (i, (c, k)) in freq.iter().take(10).enumerate() {
        assert_eq!(top[i][0], format!("'{}'", c.escape_debug()), "rank {i}");
        assert_eq!(top[i][1].as_u64().unwrap() as usize, *k, "rank {i}");
    }

    // Bytes: 256 ids whatever occurs; the UTF-8 bytes are the tokens.
    let o = richness(
        &dir,
        &["data", "inspect", "text:poème.txt,vocab=byte,context=16"],
    );
    let out = String::from_utf8_lossy(&o.stdout);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let mut bytes: Vec<u8> = text.bytes().collect();
    bytes.sort_unstable();
    bytes.dedup();
    assert!(
        out.contains(&format!("vocab    byte: 256 ids, {} occur", bytes.len())),
        "{out}"
    );
    let (nb, tb) = (text.len(), text.len() / 10);
    assert!(
        out.contains(&format!(
            "context  16, stride 16: {} train sequences, {} test sequences",
            windows(nb - tb, 16, 16),
            windows(tb, 16, 16)
        )),
        "{out}"
    );

    // The embedded corpus is listed and inspects as the attribution says.
    let o = richness(&dir, &["data", "list", "--dir", dir.to_str().unwrap()]);
    let out = String::from_utf8_lossy(&o.stdout);
    assert!(
        out.lines()
            .any(|l| l.starts_with("shakespeare    embedded:")),
        "{out}"
    );
    let o = richness(&dir, &["data", "inspect", "shakespeare"]);
    let out = String::from_utf8_lossy(&o.stdout);
    assert!(
        out.contains("ccc8da6e1d7a58664439507d66477a06af9765208d8d216bd77e49931235d8fe"),
        "{out}"
    );
    assert!(out.contains("vocab    char: 73 ids"), "{out}");
    let _ = std::fs::remove_dir_all(&dir);
}
