//! The architecture as the code states it: the layers listed in docs/architecture.md
//! (between the `layers` markers), and every module named in lib.rs's `# Layout`.
//! A module may import its own top-level module and modules of lower layers, never a
//! higher layer or a peer of its own layer.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// Top-level module → layer number, from the block in docs/architecture.md.
fn layers() -> BTreeMap<String, usize> {
    let doc = std::fs::read_to_string(root().join("docs/architecture.md")).unwrap();
    let start = doc
        .find("<!-- layers -->")
        .expect("docs/architecture.md marks its layer list with <!-- layers -->");
    let block = &doc[start..];
    let block = &block[..block.find("<!-- /layers -->").expect("and closes it")];
    let mut out = BTreeMap::new();
    for line in block.lines() {
        let mut words = line.split_whitespace();
        let Some(Ok(layer)) = words.next().map(str::parse::<usize>) else {
            continue;
        };
        for module in words.take_while(|w| !w.starts_with('(')) {
            assert!(
                out.insert(module.to_owned(), layer).is_none(),
                "{module} is listed twice"
            );
        }
    }
    out
}

/// Every library source file (not the binary's main.rs), with its module path.
fn sources() -> Vec<(String, PathBuf)> {
    fn walk(dir: &Path, out: &mut Vec<PathBuf>) {
        for entry in std::fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                walk(&path, out);
            } else if path.extension().is_some_and(|e| e == "rs") {
                out.push(path);
            }
        }
    }
    let src = root().join("src");
    let mut files = Vec::new();
    walk(&src, &mut files);
    files.sort();
    files
        .into_iter()
        .filter_map(|path| {
            let rel = path.strip_prefix(&src).unwrap().with_extension("");
            let mut parts: Vec<String> = rel
                .iter()
                .map(|p| p.to_string_lossy().into_owned())
                .collect();
            if parts.last().is_some_and(|p| p == "mod") {
                parts.pop();
            }
            match parts.as_slice() {
                [only] if only == "lib" || only == "main" => None,
                // Unit tests may use anything; they are not part of the layering.
                [.., last] if last == "tests" => None,
                _ => Some((parts.join("::"), path)),
            }
        })
        .collect()
}

/// The top-level modules a file names through `crate::` outside comments and tests.
fn imports(text: &str) -> BTreeSet<String> {
    let code: String = text
        .split("#[cfg(test)]")
        .next()
        .unwrap_or_default()
        .lines()
        .filter(|l| !l.trim_start().starts_with("//"))
        .collect::<Vec<_>>()
        .join("\n");
    let ident = |s: &str| -> String {
        s.chars()
            .take_while(|c| c.is_alphanumeric() || *c == '_')
            .collect()
    };
    let mut out = BTreeSet::new();
    let mut rest = code.as_str();
    while let Some(at) = rest.find("crate::") {
        rest = &rest[at + "crate::".len()..];
        let Some(group) = rest.strip_prefix('{') else {
            out.insert(ident(rest));
            continue;
        };
        // `crate::{a, b::{c, d}, e}`: the names right inside the outer braces.
        let mut depth = 1;
        let mut item_start = true;
        for (i, c) in group.char_indices() {
            match c {
                '{' => depth += 1,
                '}' => depth -= 1,
                ',' if depth == 1 => item_start = true,
                c if depth == 1 && item_start && !c.is_whitespace() => {
                    out.insert(ident(&group[i..]));
                    item_start = false;
                }
                _ => {}
            }
            if depth == 0 {
                break;
            }
        }
    }
    out.remove("");
    out
}

#[test]
fn no_module_imports_a_higher_layer_or_a_peer() {
    let layers = layers();
    let mut wrong = Vec::new();
    for (module, path) in sources() {
        let top = module.split("::").next().unwrap().to_owned();
        let Some(&own) = layers.get(&top) else {
            wrong.push(format!("{top} is in no layer of docs/architecture.md"));
            continue;
        };
        let text = std::fs::read_to_string(&path).unwrap();
        for target in imports(&text) {
            if target == top {
                continue;
            }
            match layers.get(&target) {
                Some(&layer) if layer < own => {}
                Some(&layer) => wrong.push(format!(
                    "{module} (layer {own}) imports {target} (layer {layer})"
                )),
                None => wrong.push(format!("{module} imports {target}, which is in no layer")),
            }
        }
    }
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));
}

#[test]
fn the_import_reader_sees_single_and_grouped_imports() {
    let text = "use crate::a::b;\nuse crate::{c, d::{e, f}, g::h};\nfn x() { crate::k::y(); }\n\
                // crate::comment\n#[cfg(test)]\nmod tests { use crate::z; }\n";
    let found: Vec<String> = imports(text).into_iter().collect();
    assert_eq!(found, ["a", "c", "d", "g", "k"]);
}

#[test]
fn the_crate_layout_names_every_module() {
    let lib = std::fs::read_to_string(root().join("src/lib.rs")).unwrap();
    let layout = &lib[lib.find("# Layout").expect("lib.rs has a # Layout section")..];
    let missing: Vec<String> = sources()
        .into_iter()
        .map(|(module, _)| module)
        .filter(|m| !layout.contains(&format!("[`{m}`]")))
        .collect();
    assert!(
        missing.is_empty(),
        "lib.rs's # Layout does not name: {missing:?}"
    );
}
