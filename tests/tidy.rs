//! The tidy test: reads every `src/**/*.rs` and fails on
//!
//! - an import against the layer order of `src/lib.rs` (`crate::x` paths, in `use` or inline),
//! - IO, a clock, threads or unseeded randomness in the sans-IO core (`src/protocol/`) and the
//!   simulator (`src/sim/`, which draws from its seeded RNG only),
//! - a file over [`FILE_LINES_MAX`] lines or a function over [`FN_LINES_MAX`] lines.
//!
//! Known exceptions are listed below, each with its reason; an entry that no longer applies
//! fails the test too, so the lists only shrink. The checker's own tests (bottom) feed it
//! small bad snippets, so each rule is seen failing.

use std::path::{Path, PathBuf};

/// Layers from the top down. A module imports only modules of lower layers (never one of
/// its own layer); the same order as `src/lib.rs` and docs/ARCHITECTURE.md.
const LAYERS: &[&[&str]] = &[
    &["main"],
    &["cli"],
    &["frontend", "loadgen", "sim"],
    &["net"],
    &["runtime"],
    &["transport"],
    &["wire"],
    &["protocol"],
    &["config"],
    &["limits"],
];

/// Lines a source file may have, at most (tests included: a test file that long is split
/// by the behaviour it tests).
const FILE_LINES_MAX: usize = 1000;
/// Lines a function may have, at most, from its `fn` line to its closing brace.
const FN_LINES_MAX: usize = 140;

/// Modules whose code must not do IO, read a clock, start threads or draw unseeded random
/// numbers.
const SANS_IO: &[&str] = &["src/protocol/", "src/sim/"];

/// What the sans-IO modules must not name (after comments and string contents are removed).
const FORBIDDEN_IN_SANS_IO: &[&str] = &[
    "std::fs",
    "std::net",
    "std::thread",
    "std::process",
    "std::env",
    "Instant",
    "SystemTime",
    "UNIX_EPOCH",
    "glommio",
    "tokio",
    "thread_rng",
    "rand::rng(",
    "rand::random",
    "from_entropy",
    "from_os_rng",
    "OsRng",
    "getrandom",
];

/// Imports against the layer order still in the tree: (file, module it imports, why).
const IMPORTS_ALLOWED: &[(&str, &str, &str)] = &[];

/// Files over `FILE_LINES_MAX` still in the tree: (file, why).
const LONG_FILES_ALLOWED: &[(&str, &str)] = &[];

/// Functions over `FN_LINES_MAX` still in the tree: (file, function, why).
const LONG_FNS_ALLOWED: &[(&str, &str, &str)] = &[];

#[test]
fn tidy() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut files = Vec::new();
    rust_files(&root.join("src"), &mut files);
    files.sort();
    assert!(files.len() > 20, "found only {} source files", files.len());
    let mut problems = Vec::new();
    let mut seen_imports = Vec::new();
    let mut seen_long = Vec::new();
    for file in &files {
        let rel = file
            .strip_prefix(root)
            .expect("under the root")
            .to_string_lossy()
            .replace('\\', "/");
        let text = std::fs::read_to_string(file).expect("readable source");
        let code = strip(&text);
        for v in check_imports(&rel, &code) {
            match IMPORTS_ALLOWED
                .iter()
                .find(|(f, m, _)| *f == rel && *m == v.imported)
            {
                Some(a) => seen_imports.push(*a),
                None => problems.push(v.to_string()),
            }
        }
        problems.extend(check_sans_io(&rel, &code));
        for v in check_lengths(&rel, &code) {
            let allowed = match &v.function {
                None => LONG_FILES_ALLOWED.iter().any(|(f, _)| *f == rel),
                Some(name) => LONG_FNS_ALLOWED
                    .iter()
                    .any(|(f, n, _)| *f == rel && n == name),
            };
            if allowed {
                seen_long.push((rel.clone(), v.function.clone()));
            } else {
                problems.push(v.to_string());
            }
        }
    }
    for (f, m, _) in IMPORTS_ALLOWED {
        if !seen_imports.iter().any(|(sf, sm, _)| sf == f && sm == m) {
            problems.push(format!(
                "{f}: no longer imports `{m}`: remove it from IMPORTS_ALLOWED"
            ));
        }
    }
    for (f, _) in LONG_FILES_ALLOWED {
        if !seen_long.iter().any(|(sf, n)| sf == f && n.is_none()) {
            problems.push(format!(
                "{f}: no longer over {FILE_LINES_MAX} lines: remove it from LONG_FILES_ALLOWED"
            ));
        }
    }
    for (f, name, _) in LONG_FNS_ALLOWED {
        if !seen_long
            .iter()
            .any(|(sf, n)| sf == f && n.as_deref() == Some(*name))
        {
            problems.push(format!(
                "{f}: `{name}` no longer over {FN_LINES_MAX} lines: remove it from LONG_FNS_ALLOWED"
            ));
        }
    }
    assert!(problems.is_empty(), "tidy:\n{}", problems.join("\n"));
}

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).expect("readable directory") {
        let path = entry.expect("directory entry").path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// The top-level module a file belongs to: `src/runtime/wal/io.rs` → `runtime`.
fn module_of(rel: &str) -> &str {
    let inner = rel.strip_prefix("src/").unwrap_or(rel);
    let first = inner.split('/').next().unwrap_or(inner);
    first.strip_suffix(".rs").unwrap_or(first)
}

fn layer_of(module: &str) -> Option<usize> {
    LAYERS.iter().position(|l| l.contains(&module))
}

#[derive(Debug)]
struct ImportViolation {
    file: String,
    line: usize,
    imported: String,
}

impl std::fmt::Display for ImportViolation {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{}:{}: `{}` imports `{}`, which is not below it in the layer order",
            self.file,
            self.line,
            module_of(&self.file),
            self.imported
        )
    }
}

/// Every `crate::m` path (also `crate::{m, n}`) whose module `m` is not on a lower layer
/// than the file's own module.
fn check_imports(rel: &str, code: &str) -> Vec<ImportViolation> {
    let own = module_of(rel);
    if own == "lib" {
        return Vec::new(); // declares the modules
    }
    let own_layer = layer_of(own);
    let mut out = Vec::new();
    for (i, line) in code.lines().enumerate() {
        for m in crate_paths(line) {
            if m == own {
                continue;
            }
            let ok = match (own_layer, layer_of(&m)) {
                (Some(a), Some(b)) => b > a,
                _ => false, // a module missing from LAYERS must be placed there first
            };
            if !ok {
                out.push(ImportViolation {
                    file: rel.to_string(),
                    line: i + 1,
                    imported: m,
                });
            }
        }
    }
    out
}

/// The top-level modules named by `crate::` paths on one line of code.
fn crate_paths(line: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut rest = line;
    while let Some(at) = rest.find("crate::") {
        let before = rest[..at].chars().next_back();
        rest = &rest[at + "crate::".len()..];
        if before.is_some_and(|c| c.is_alphanumeric() || c == '_') {
            continue; // e.g. `mycrate::`
        }
        if let Some(group) = rest.strip_prefix('{') {
            // `crate::{a, b::c, d::{e, f}}`: the first name of each top-level item.
            let mut depth = 0;
            let mut item_start = true;
            for (j, c) in group.char_indices() {
                match c {
                    '{' => depth += 1,
                    '}' if depth == 0 => break,
                    '}' => depth -= 1,
                    ',' if depth == 0 => item_start = true,
                    c if item_start && (c.is_alphanumeric() || c == '_') => {
                        out.push(ident_at(&group[j..]));
                        item_start = false;
                    }
                    _ => {}
                }
            }
        } else {
            let name = ident_at(rest);
            if !name.is_empty() {
                out.push(name);
            }
        }
    }
    out
}

fn ident_at(s: &str) -> String {
    s.chars()
        .take_while(|c| c.is_alphanumeric() || *c == '_')
        .collect()
}

/// A forbidden name in a sans-IO module.
fn check_sans_io(rel: &str, code: &str) -> Vec<String> {
    if !SANS_IO.iter().any(|p| rel.starts_with(p)) {
        return Vec::new();
    }
    let mut out = Vec::new();
    for (i, line) in code.lines().enumerate() {
        for f in FORBIDDEN_IN_SANS_IO {
            if line.contains(f) {
                out.push(format!(
                    "{rel}:{}: `{f}` in the sans-IO core or the simulator (IO, clocks, threads \
                     and unseeded randomness belong to the runtime)",
                    i + 1
                ));
            }
        }
    }
    out
}

#[derive(Debug)]
struct LengthViolation {
    file: String,
    /// None: the file itself.
    function: Option<String>,
    line: usize,
    lines: usize,
}

impl std::fmt::Display for LengthViolation {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.function {
            None => write!(
                f,
                "{}: {} lines, more than {FILE_LINES_MAX}: split it by concern",
                self.file, self.lines
            ),
            Some(name) => write!(
                f,
                "{}:{}: fn `{name}` has {} lines, more than {FN_LINES_MAX}: divide it",
                self.file, self.line, self.lines
            ),
        }
    }
}

/// The file if it is over `FILE_LINES_MAX` lines, and every function (with a body) over
/// `FN_LINES_MAX` lines. `code` has its comments and string contents blanked (`strip`),
/// which keeps line numbers.
fn check_lengths(rel: &str, code: &str) -> Vec<LengthViolation> {
    let mut out = Vec::new();
    let lines = code.lines().count();
    if lines > FILE_LINES_MAX {
        out.push(LengthViolation {
            file: rel.to_string(),
            function: None,
            line: 1,
            lines,
        });
    }
    let chars: Vec<char> = code.chars().collect();
    let mut newlines_before = Vec::with_capacity(chars.len());
    let mut n = 0;
    for c in &chars {
        newlines_before.push(n);
        n += usize::from(*c == '\n');
    }
    let line_at = |pos: usize| newlines_before[pos] + 1;
    let mut i = 0;
    while i + 2 < chars.len() {
        let is_fn = chars[i] == 'f'
            && chars[i + 1] == 'n'
            && chars[i + 2].is_whitespace()
            && (i == 0 || !(chars[i - 1].is_alphanumeric() || chars[i - 1] == '_'));
        if !is_fn {
            i += 1;
            continue;
        }
        let mut j = i + 2;
        while j < chars.len() && chars[j].is_whitespace() {
            j += 1;
        }
        let name: String = chars[j..]
            .iter()
            .take_while(|c| c.is_alphanumeric() || **c == '_')
            .collect();
        // The body starts at the first `{` outside parentheses and brackets; a `;` first
        // means a declaration without a body.
        let mut depth = 0i32;
        let mut body = None;
        while j < chars.len() {
            match chars[j] {
                '(' | '[' => depth += 1,
                ')' | ']' => depth -= 1,
                ';' if depth == 0 => break,
                '{' if depth == 0 => {
                    body = Some(j);
                    break;
                }
                _ => {}
            }
            j += 1;
        }
        if let (Some(open), false) = (body, name.is_empty()) {
            let mut depth = 0i32;
            let mut end = open;
            for (k, c) in chars.iter().enumerate().skip(open) {
                match c {
                    '{' => depth += 1,
                    '}' => {
                        depth -= 1;
                        if depth == 0 {
                            end = k;
                            break;
                        }
                    }
                    _ => {}
                }
            }
            let (first, last) = (line_at(i), line_at(end));
            let n = last - first + 1;
            if n > FN_LINES_MAX {
                out.push(LengthViolation {
                    file: rel.to_string(),
                    function: Some(name),
                    line: first,
                    lines: n,
                });
            }
        }
        i += 2;
    }
    out
}

/// `text` with comments removed and the contents of string and char literals blanked,
/// keeping every newline (so line numbers hold) and the quotes.
fn strip(text: &str) -> String {
    let c: Vec<char> = text.chars().collect();
    let mut out = String::with_capacity(text.len());
    let blank = |out: &mut String, ch: char| out.push(if ch == '\n' { '\n' } else { ' ' });
    let mut i = 0;
    while i < c.len() {
        let next = c.get(i + 1).copied();
        if c[i] == '/' && next == Some('/') {
            while i < c.len() && c[i] != '\n' {
                i += 1;
            }
        } else if c[i] == '/' && next == Some('*') {
            let mut depth = 0;
            while i < c.len() {
                if c[i] == '/' && c.get(i + 1) == Some(&'*') {
                    depth += 1;
                    i += 2;
                } else if c[i] == '*' && c.get(i + 1) == Some(&'/') {
                    depth -= 1;
                    i += 2;
                    if depth == 0 {
                        break;
                    }
                } else {
                    blank(&mut out, c[i]);
                    i += 1;
                }
            }
        } else if c[i] == 'r'
            && (next == Some('"') || next == Some('#'))
            && (i == 0 || !(c[i - 1].is_alphanumeric() || c[i - 1] == '_'))
        {
            // Raw string r"…" or r#"…"#.
            let mut j = i + 1;
            let mut hashes = 0;
            while c.get(j) == Some(&'#') {
                hashes += 1;
                j += 1;
            }
            if c.get(j) != Some(&'"') {
                out.push(c[i]);
                i += 1;
                continue;
            }
            out.push('"');
            j += 1;
            while j < c.len() {
                if c[j] == '"' && (1..=hashes).all(|h| c.get(j + h) == Some(&'#')) {
                    j += 1 + hashes;
                    break;
                }
                blank(&mut out, c[j]);
                j += 1;
            }
            out.push('"');
            i = j;
        } else if c[i] == '"' {
            out.push('"');
            i += 1;
            while i < c.len() && c[i] != '"' {
                if c[i] == '\\' {
                    blank(&mut out, c[i]);
                    i += 1;
                }
                if i < c.len() {
                    blank(&mut out, c[i]);
                    i += 1;
                }
            }
            out.push('"');
            i += 1;
        } else if c[i] == '\'' && next == Some('\\') {
            // An escaped char literal: '\n', '\'', '\u{..}'.
            out.push_str("' '");
            i += 2;
            while i < c.len() && c[i] != '\'' {
                i += 1;
            }
            i += 1;
        } else if c[i] == '\'' && c.get(i + 2) == Some(&'\'') {
            out.push_str("' '"); // 'x' (not a lifetime)
            i += 3;
        } else {
            out.push(c[i]);
            i += 1;
        }
    }
    out
}

// The checker's own tests: each rule seen failing on a small bad snippet, and passing on
// the good one beside it.

#[test]
fn an_import_up_the_layers_is_caught() {
    let bad = "use crate::frontend::serve;\nfn f() { crate::cli::run(); }\n";
    let v = check_imports("src/runtime/node.rs", &strip(bad));
    let found: Vec<_> = v.iter().map(|v| (v.line, v.imported.as_str())).collect();
    assert_eq!(found, [(1, "frontend"), (2, "cli")]);
    let good = "use crate::transport::Transport;\nuse crate::runtime::wal::Wal;\n";
    assert!(check_imports("src/runtime/node.rs", &strip(good)).is_empty());
}

#[test]
fn an_import_within_one_layer_and_grouped_imports_are_caught() {
    let bad = "use crate::{config::Cfg, sim::{run, Sim}};\n";
    let v = check_imports("src/loadgen/cli.rs", &strip(bad));
    assert_eq!(v.len(), 1, "{v:?}");
    assert_eq!(v[0].imported, "sim");
    // A module missing from the order is refused until it is placed.
    assert_eq!(
        check_imports("src/newthing.rs", "use crate::limits::X;\n").len(),
        1
    );
}

#[test]
fn imports_named_in_comments_and_strings_do_not_count() {
    let text = "// use crate::cli::X;\n/* crate::frontend */ fn f() { let s = \"crate::cli\"; }\n";
    assert!(check_imports("src/protocol/kv.rs", &strip(text)).is_empty());
}

#[test]
fn io_and_clocks_in_the_core_are_caught() {
    for bad in [
        "use std::time::Instant;\n",
        "fn f() { let t = std::time::SystemTime::now(); }\n",
        "fn f() { std::thread::sleep(d); }\n",
        "fn f() { let x: u8 = rand::rng().random(); }\n",
        "fn f() { let f = std::fs::File::open(p); }\n",
        "async fn f() { glommio::timer::sleep(d).await; }\n",
    ] {
        assert_eq!(
            check_sans_io("src/protocol/paxos/mod.rs", &strip(bad)).len(),
            1,
            "{bad}"
        );
        assert_eq!(
            check_sans_io("src/sim/mod.rs", &strip(bad)).len(),
            1,
            "{bad}"
        );
        assert!(check_sans_io("src/runtime/shard.rs", &strip(bad)).is_empty());
    }
    let good = "// no Instant here\nfn f(rng: &mut StdRng) { let s = \"std::fs\"; }\n";
    assert!(check_sans_io("src/protocol/kv.rs", &strip(good)).is_empty());
}

#[test]
fn a_long_function_and_a_long_file_are_caught() {
    let body = "    x += 1;\n".repeat(FN_LINES_MAX - 2);
    let at_limit = format!("fn ok() {{\n{body}}}\n");
    assert!(check_lengths("src/a.rs", &at_limit).is_empty());
    let over = format!(
        "trait T {{ fn decl(&self); }}\nfn long<F: Fn() -> u8>(f: F) -> Result<(), [u8; 2]>\nwhere F: Copy {{\n{body}  {{ }}\n}}\n"
    );
    let v = check_lengths("src/a.rs", &over);
    assert_eq!(v.len(), 1, "{v:?}");
    assert_eq!(v[0].function.as_deref(), Some("long"));
    assert_eq!((v[0].line, v[0].lines), (2, FN_LINES_MAX + 2));
    let file = "const A: u8 = 0;\n".repeat(FILE_LINES_MAX + 1);
    let v = check_lengths("src/a.rs", &file);
    assert_eq!(v.len(), 1);
    assert!(v[0].function.is_none());
}

#[test]
fn braces_in_strings_and_chars_do_not_end_a_function() {
    let body =
        "    let s = \"}\"; let c = '}'; let l: &'static str = r#\"}\"#;\n".repeat(FN_LINES_MAX);
    let text = format!("fn long() {{\n{body}}}\n");
    let v = check_lengths("src/a.rs", &strip(&text));
    assert_eq!(v.len(), 1, "{v:?}");
    assert_eq!(v[0].lines, FN_LINES_MAX + 2);
}
