//! The crate's modules stand in layers (the table in `src/lib.rs`): a module imports
//! only from its own layer or below, and the modules never import each other in a
//! circle. This test reads the sources, collects every `crate::X` (and `super::X`
//! that climbs to the crate root) per top-level module, and checks both rules against
//! the table as written in the crate docs.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// Imports that break the table, each with the reason it is still there. The test
/// fails when one of them is no longer needed, so that this list only shrinks.
const KNOWN_EXCEPTIONS: &[(&str, &str, &str)] = &[];

fn src_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("src")
}

/// Rust source without comments (line, doc and block comments) and string
/// literals, so that `crate::x` in prose or messages does not count.
fn strip(src: &str) -> String {
    let b = src.as_bytes();
    let mut out = String::with_capacity(src.len());
    let mut i = 0;
    while i < b.len() {
        if b[i..].starts_with(b"//") {
            while i < b.len() && b[i] != b'\n' {
                i += 1;
            }
        } else if b[i..].starts_with(b"/*") {
            let mut depth = 0;
            while i < b.len() {
                if b[i..].starts_with(b"/*") {
                    depth += 1;
                    i += 2;
                } else if b[i..].starts_with(b"*/") {
                    depth -= 1;
                    i += 2;
                    if depth == 0 {
                        break;
                    }
                } else {
                    i += 1;
                }
            }
        } else if b[i] == b'r' && (b[i..].starts_with(b"r\"") || b[i..].starts_with(b"r#")) {
            // Raw string r"…" or r#"…"#.
            let mut j = i + 1;
            let mut hashes = 0;
            while j < b.len() && b[j] == b'#' {
                hashes += 1;
                j += 1;
            }
            if j < b.len() && b[j] == b'"' && (i == 0 || !is_ident(b[i - 1])) {
                let close: Vec<u8> = std::iter::once(b'"')
                    .chain(std::iter::repeat(b'#').take(hashes))
                    .collect();
                j += 1;
                while j < b.len() && !b[j..].starts_with(&close) {
                    j += 1;
                }
                i = j + close.len();
                out.push_str("\"\"");
            } else {
                out.push('r');
                i += 1;
            }
        } else if b[i] == b'"' {
            i += 1;
            while i < b.len() && b[i] != b'"' {
                i += if b[i] == b'\\' { 2 } else { 1 };
            }
            i += 1;
            out.push_str("\"\"");
        } else if b[i] == b'\'' {
            // A char literal ('"', '\'', 'x') or a lifetime ('a): skip only the former.
            if b.get(i + 1) == Some(&b'\\') {
                let mut j = i + 2;
                while j < b.len() && b[j] != b'\'' {
                    j += 1;
                }
                i = j + 1;
            } else if b.get(i + 2) == Some(&b'\'') {
                i += 3;
            } else {
                out.push('\'');
                i += 1;
            }
        } else {
            let ch = src[i..].chars().next().unwrap();
            out.push(ch);
            i += ch.len_utf8();
        }
    }
    out
}

fn is_ident(c: u8) -> bool {
    c.is_ascii_alphanumeric() || c == b'_'
}

/// The identifier at the start of `s`.
fn ident(s: &str) -> &str {
    let end = s.bytes().position(|c| !is_ident(c)).unwrap_or(s.len());
    &s[..end]
}

/// The first path segments named after `crate::`: `crate::a::b` gives `a`,
/// `crate::{a, b::c, d::{e}}` gives `a`, `b`, `d`.
fn crate_refs(code: &str) -> Vec<String> {
    let mut refs = Vec::new();
    for (at, _) in code.match_indices("crate::") {
        if at > 0 && is_ident(code.as_bytes()[at - 1]) {
            continue;
        }
        let rest = &code[at + "crate::".len()..];
        if let Some(group) = rest.strip_prefix('{') {
            // Top-level names of the brace group.
            let mut depth = 0;
            let mut expect_name = true;
            for (k, c) in group.char_indices() {
                match c {
                    '{' => depth += 1,
                    '}' if depth == 0 => break,
                    '}' => depth -= 1,
                    ',' if depth == 0 => expect_name = true,
                    c if expect_name && depth == 0 && !c.is_whitespace() => {
                        refs.push(ident(&group[k..]).to_string());
                        expect_name = false;
                    }
                    _ => {}
                }
            }
        } else {
            refs.push(ident(rest).to_string());
        }
    }
    refs
}

/// `super::super::x` that climbs above the top-level module of a file `depth`
/// modules below the crate root (`a.rs`, `a/mod.rs`: 1; `a/b.rs`: 2) names `x`.
fn super_refs(code: &str, depth: usize) -> Vec<String> {
    let mut refs = Vec::new();
    for (at, _) in code.match_indices("super::") {
        if at > 0 && (is_ident(code.as_bytes()[at - 1]) || code[..at].ends_with("super::")) {
            continue;
        }
        let mut rest = &code[at..];
        let mut ups = 0;
        while let Some(r) = rest.strip_prefix("super::") {
            ups += 1;
            rest = r;
        }
        if ups >= depth {
            refs.push(ident(rest).to_string());
        }
    }
    refs
}

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        if p.is_dir() {
            rust_files(&p, out);
        } else if p.extension().is_some_and(|x| x == "rs") {
            out.push(p);
        }
    }
}

/// Top-level module → the modules it names, each with a file that names it.
fn module_graph() -> BTreeMap<String, BTreeMap<String, String>> {
    let src = src_dir();
    let lib = std::fs::read_to_string(src.join("lib.rs")).unwrap();
    let modules: BTreeSet<String> = lib
        .lines()
        .filter_map(|l| l.trim().strip_prefix("pub mod "))
        .filter_map(|l| l.strip_suffix(';'))
        .map(str::to_string)
        .collect();
    let mut files = Vec::new();
    rust_files(&src, &mut files);
    let mut graph: BTreeMap<String, BTreeMap<String, String>> = modules
        .iter()
        .map(|m| (m.clone(), BTreeMap::new()))
        .collect();
    for f in files {
        let rel = f.strip_prefix(&src).unwrap();
        let parts: Vec<String> = rel
            .iter()
            .map(|c| c.to_string_lossy().into_owned())
            .collect();
        let top = parts[0].trim_end_matches(".rs").to_string();
        if top == "lib" {
            continue;
        }
        assert!(
            modules.contains(&top),
            "{} is not a module of lib.rs",
            rel.display()
        );
        let depth = parts.len() - usize::from(parts.last().unwrap() == "mod.rs");
        let code = strip(&std::fs::read_to_string(&f).unwrap());
        for name in crate_refs(&code)
            .into_iter()
            .chain(super_refs(&code, depth))
        {
            if name != top && modules.contains(&name) {
                graph
                    .get_mut(&top)
                    .unwrap()
                    .entry(name)
                    .or_insert_with(|| rel.display().to_string());
            }
        }
    }
    graph
}

/// The layer table of the crate docs: module → layer.
fn layer_table() -> BTreeMap<String, usize> {
    let lib = std::fs::read_to_string(src_dir().join("lib.rs")).unwrap();
    let mut layers = BTreeMap::new();
    for line in lib.lines() {
        let Some(row) = line.strip_prefix("//! |") else {
            continue;
        };
        let cells: Vec<&str> = row.split('|').map(str::trim).collect();
        let Ok(layer) = cells[0].parse::<usize>() else {
            continue;
        };
        for m in cells[1].split(',').map(str::trim) {
            let before = layers.insert(m.to_string(), layer);
            assert!(before.is_none(), "`{m}` is in the layer table twice");
        }
    }
    assert!(
        !layers.is_empty(),
        "no layer table (`//! | N | modules | … |`) in lib.rs"
    );
    layers
}

fn is_exception(from: &str, to: &str) -> bool {
    KNOWN_EXCEPTIONS
        .iter()
        .any(|(f, t, _)| *f == from && *t == to)
}

#[test]
fn every_module_is_in_the_layer_table() {
    let graph = module_graph();
    let table = layer_table();
    let modules: BTreeSet<&String> = graph.keys().collect();
    let listed: BTreeSet<&String> = table.keys().collect();
    assert_eq!(
        modules, listed,
        "the layer table in lib.rs must list every top-level module exactly once"
    );
}

#[test]
fn modules_import_only_from_their_layer_or_below() {
    let graph = module_graph();
    let table = layer_table();
    let mut bad = Vec::new();
    for (from, deps) in &graph {
        for (to, file) in deps {
            let (lf, lt) = (table[from], table[to]);
            if lt > lf && !is_exception(from, to) {
                bad.push(format!(
                    "{from} (layer {lf}) imports {to} (layer {lt}), in {file}"
                ));
            }
        }
    }
    assert!(
        bad.is_empty(),
        "imports from a higher layer (see the table in lib.rs):\n  {}",
        bad.join("\n  ")
    );
}

#[test]
fn known_exceptions_are_still_needed() {
    let graph = module_graph();
    for (from, to, why) in KNOWN_EXCEPTIONS {
        assert!(
            graph[*from].contains_key(*to),
            "{from} no longer imports {to} ({why}): remove the exception"
        );
    }
}

#[test]
fn the_module_graph_has_no_cycle() {
    let graph = module_graph();
    // Depth-first search; a back edge closes a cycle.
    fn visit<'a>(
        m: &'a str,
        graph: &'a BTreeMap<String, BTreeMap<String, String>>,
        state: &mut BTreeMap<&'a str, u8>,
        path: &mut Vec<&'a str>,
    ) -> Option<Vec<String>> {
        state.insert(m, 1);
        path.push(m);
        for to in graph[m].keys() {
            if is_exception(m, to) {
                continue;
            }
            match state.get(to.as_str()) {
                Some(1) => {
                    let start = path.iter().position(|p| p == to).unwrap();
                    let mut cycle: Vec<String> =
                        path[start..].iter().map(|s| s.to_string()).collect();
                    cycle.push(to.clone());
                    return Some(cycle);
                }
                Some(_) => {}
                None => {
                    if let Some(c) = visit(to, graph, state, path) {
                        return Some(c);
                    }
                }
            }
        }
        path.pop();
        state.insert(m, 2);
        None
    }
    let mut state = BTreeMap::new();
    for m in graph.keys() {
        if !state.contains_key(m.as_str()) {
            if let Some(cycle) = visit(m, &graph, &mut state, &mut Vec::new()) {
                let files: Vec<String> = cycle
                    .windows(2)
                    .map(|w| format!("{} → {} ({})", w[0], w[1], graph[&w[0]][&w[1]]))
                    .collect();
                panic!(
                    "modules import each other in a circle: {}\n  {}",
                    cycle.join(" → "),
                    files.join("\n  ")
                );
            }
        }
    }
}

#[test]
fn the_reader_sees_imports_and_not_prose() {
    let code = strip(
        "use crate::{a, b::{c, d}, e::f};\n// crate::g\n/* crate::h */\nlet s = \"crate::i\";\nlet c = '\"'; crate::j::k();\nsuper::super::l::m();",
    );
    assert_eq!(crate_refs(&code), ["a", "b", "e", "j"]);
    assert_eq!(super_refs(&code, 2), ["l"]);
    assert!(super_refs(&code, 3).is_empty());
}
