//! The engine's modules form layers: a module imports only modules of lower
//! layers. The layers are the list in ARCHITECTURE.md ("Engine layers"); this
//! test reads that list and every source file of the engine, and fails with
//! the file, line and path of each import that runs sideways or back up, and
//! with any module the list does not place.
//!
//! An import is any `crate::NAME` path (in code or in a doc link) where NAME
//! is a top-level module, including the names inside `crate::{...}`. Unit
//! tests (`tests.rs` files and the `#[cfg(test)] mod tests` at a file's end)
//! may reach anywhere and are not read.

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::path::{Path, PathBuf};

const BEGIN: &str = "<!-- layers:begin -->";
const END: &str = "<!-- layers:end -->";

/// Layer number of each module, from the numbered list in ARCHITECTURE.md.
fn layers(doc: &str) -> BTreeMap<String, usize> {
    let start = doc
        .find(BEGIN)
        .unwrap_or_else(|| panic!("ARCHITECTURE.md: no `{BEGIN}` marker"));
    let end = doc
        .find(END)
        .unwrap_or_else(|| panic!("ARCHITECTURE.md: no `{END}` marker"));
    let mut out = BTreeMap::new();
    for line in doc[start + BEGIN.len()..end].lines() {
        let line = line.trim();
        let Some((num, rest)) = line.split_once(". ") else {
            continue;
        };
        let Ok(layer) = num.parse::<usize>() else {
            continue;
        };
        // Module names are the backticked words before the first dash.
        let names = rest.split(" — ").next().unwrap_or("");
        for name in names.split('`').skip(1).step_by(2) {
            if let Some(prev) = out.insert(name.to_string(), layer) {
                panic!("ARCHITECTURE.md: module `{name}` is in layers {prev} and {layer}");
            }
        }
    }
    assert!(!out.is_empty(), "ARCHITECTURE.md: the layer list is empty");
    out
}

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// The top-level module a file belongs to (`None` for the crate root).
fn module_of(src: &Path, file: &Path) -> Option<String> {
    let rel = file.strip_prefix(src).unwrap();
    let first = rel.components().next()?.as_os_str().to_str()?.to_string();
    match first.strip_suffix(".rs") {
        Some("lib") => None,
        Some(name) => Some(name.to_string()),
        None => Some(first),
    }
}

/// Identifiers at the top level of a `{...}` group starting at `s[0] == '{'`.
fn group_names(s: &str) -> Vec<String> {
    let mut names = Vec::new();
    let mut depth = 0usize;
    let mut word = String::new();
    let mut at_item_start = false;
    for c in s.chars() {
        match c {
            '{' => {
                depth += 1;
                if depth == 1 {
                    at_item_start = true;
                }
            }
            '}' => {
                depth -= 1;
                if depth == 0 {
                    if !word.is_empty() {
                        names.push(std::mem::take(&mut word));
                    }
                    break;
                }
            }
            ',' if depth == 1 => {
                if !word.is_empty() {
                    names.push(std::mem::take(&mut word));
                }
                at_item_start = true;
            }
            c if depth == 1 && at_item_start && (c.is_alphanumeric() || c == '_') => word.push(c),
            c if depth == 1 && c.is_whitespace() && word.is_empty() => {}
            _ if depth == 1 => {
                if !word.is_empty() {
                    names.push(std::mem::take(&mut word));
                }
                at_item_start = false;
            }
            _ => {}
        }
    }
    names
}

/// `(line, module)` for every `crate::` path in `text`.
fn imports(text: &str) -> Vec<(usize, String)> {
    let mut out = Vec::new();
    for (i, _) in text.match_indices("crate::") {
        if text[..i].ends_with('$') {
            continue; // `$crate::` inside a macro names the crate root's items
        }
        let line = text[..i].matches('\n').count() + 1;
        let rest = &text[i + "crate::".len()..];
        if rest.starts_with('{') {
            for name in group_names(rest) {
                out.push((line, name));
            }
        } else {
            let name: String = rest
                .chars()
                .take_while(|c| c.is_alphanumeric() || *c == '_')
                .collect();
            out.push((line, name));
        }
    }
    out
}

/// The part of a file that is not its unit tests.
fn without_tests(text: &str) -> &str {
    match text.find("#[cfg(test)]\nmod tests") {
        Some(i) => &text[..i],
        None => text,
    }
}

#[test]
fn engine_modules_import_only_lower_layers() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let doc = fs::read_to_string(root.join("../ARCHITECTURE.md")).unwrap();
    let layer = layers(&doc);
    let src = root.join("src");

    // Every top-level module of the crate is placed, and nothing else is.
    let lib = fs::read_to_string(src.join("lib.rs")).unwrap();
    let declared: BTreeSet<String> = lib
        .lines()
        .filter_map(|l| {
            let l = l.trim();
            let l = l.strip_prefix("pub ").unwrap_or(l);
            l.strip_prefix("mod ")?
                .strip_suffix(';')
                .map(str::to_string)
        })
        .collect();
    let listed: BTreeSet<String> = layer.keys().cloned().collect();
    assert_eq!(
        declared, listed,
        "the modules declared in engine/src/lib.rs and the layers of ARCHITECTURE.md differ"
    );

    let mut files = Vec::new();
    rust_files(&src, &mut files);
    files.sort();
    let mut bad = Vec::new();
    for file in &files {
        if file.file_name().is_some_and(|n| n == "tests.rs") {
            continue;
        }
        let Some(module) = module_of(&src, file) else {
            continue;
        };
        let own = layer[&module];
        let text = fs::read_to_string(file).unwrap();
        for (line, name) in imports(without_tests(&text)) {
            let Some(&theirs) = layer.get(&name) else {
                continue; // an item re-exported at the root, or a macro
            };
            if name != module && theirs >= own {
                bad.push(format!(
                    "{}:{line}: `{module}` (layer {own}) imports `crate::{name}` (layer {theirs})",
                    file.strip_prefix(root.parent().unwrap()).unwrap().display()
                ));
            }
        }
    }
    assert!(
        bad.is_empty(),
        "imports that run sideways or up the layers of ARCHITECTURE.md:\n{}",
        bad.join("\n")
    );
}

#[test]
fn the_scanner_reads_grouped_and_plain_paths() {
    let text = "use crate::a::X;\nuse crate::{b::Y, c, d::{E, F}};\n// [`crate::g`]\n$crate::Row";
    let found: Vec<(usize, String)> = imports(text);
    let names: Vec<&str> = found.iter().map(|(_, n)| n.as_str()).collect();
    assert_eq!(names, ["a", "b", "c", "d", "g"]);
    assert_eq!(found[4].0, 3);
}
