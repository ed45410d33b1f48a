//! The layers import downwards only, read off the source tree: services and domain know no
//! transport, GraphQL knows no HTTP, REST reaches services only through GraphQL operations.

use std::path::{Path, PathBuf};

/// A rule: no file under `dir` (of `src/`) names any of `forbidden`.
struct Rule {
    dir: &'static str,
    forbidden: &'static [&'static str],
}

const RULES: &[Rule] = &[
    Rule {
        dir: "services",
        forbidden: &["axum", "async_graphql", "crate::http", "crate::graphql", "crate::rest"],
    },
    Rule {
        dir: "domain",
        forbidden: &["axum", "async_graphql", "sea_orm", "crate::http", "crate::graphql", "crate::rest"],
    },
    Rule { dir: "graphql", forbidden: &["crate::http"] },
    Rule { dir: "rest", forbidden: &["crate::services"] },
];

/// Known violations, as (file under `src/`, forbidden path), each with the reason it is still
/// there; the test fails on any other, and on an entry here that no longer occurs.
const KNOWN: &[(&str, &str)] = &[];

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display())) {
        let path = entry.expect("a directory entry").path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|x| x == "rs") {
            out.push(path);
        }
    }
}

/// The code of a source file without its comments (so a doc line may name any module).
fn code(source: &str) -> String {
    source.lines().map(|l| l.split("//").next().unwrap_or_default()).collect::<Vec<_>>().join("\n")
}

/// Whether `code` names `path`: `axum::…`, `use axum;`, `crate::http::…`, or `crate::{…, http, …}`.
fn names(code: &str, path: &str) -> bool {
    let boundary = |c: Option<char>| !c.is_some_and(|c| c.is_alphanumeric() || c == '_');
    let mut found = code.match_indices(path).any(|(i, _)| {
        boundary(code[..i].chars().next_back()) && boundary(code[i + path.len()..].chars().next())
    });
    if let Some(module) = path.strip_prefix("crate::") {
        // Grouped imports: `use crate::{context::X, http::ws};` — a top-level name of the group.
        for (i, _) in code.match_indices("crate::{") {
            let (mut depth, mut word, mut after_path) = (0, String::new(), false);
            for c in code[i + "crate::".len()..].chars() {
                if c.is_alphanumeric() || c == '_' {
                    word.push(c);
                    continue;
                }
                found |= depth == 1 && !after_path && word == module;
                match c {
                    '{' => depth += 1,
                    '}' => depth -= 1,
                    ',' => after_path = false,
                    ':' => after_path |= !word.is_empty() || after_path,
                    _ => {}
                }
                word.clear();
                if depth == 0 {
                    break;
                }
            }
        }
    }
    found
}

#[test]
fn layers_import_downwards_only() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut violations = Vec::new();
    for rule in RULES {
        let mut files = Vec::new();
        rust_files(&src.join(rule.dir), &mut files);
        assert!(!files.is_empty(), "src/{} has Rust files", rule.dir);
        for file in files {
            let text = code(&std::fs::read_to_string(&file).expect("a readable source file"));
            let rel = file.strip_prefix(&src).expect("under src/").to_string_lossy().replace('\\', "/");
            for forbidden in rule.forbidden {
                if names(&text, forbidden) {
                    violations.push((rel.clone(), *forbidden));
                }
            }
        }
    }
    let new: Vec<_> =
        violations.iter().filter(|v| !KNOWN.iter().any(|k| (k.0, k.1) == (v.0.as_str(), v.1))).collect();
    assert!(new.is_empty(), "imports against the layering (src/<file>, path): {new:?}");
    let stale: Vec<_> =
        KNOWN.iter().filter(|k| !violations.iter().any(|v| (v.0.as_str(), v.1) == (k.0, k.1))).collect();
    assert!(stale.is_empty(), "known exceptions that no longer occur, remove them: {stale:?}");
}

/// The top-level modules of `src/` (a directory or a file), each with the code of its files.
fn top_level_modules(src: &Path) -> Vec<(String, String)> {
    let mut modules = Vec::new();
    for entry in std::fs::read_dir(src).expect("src/ is readable") {
        let path = entry.expect("a directory entry").path();
        let name = path.file_stem().expect("a name").to_string_lossy().into_owned();
        if name == "main" || name == "lib" {
            continue;
        }
        let mut files = Vec::new();
        if path.is_dir() {
            rust_files(&path, &mut files);
        } else if path.extension().is_some_and(|x| x == "rs") {
            files.push(path);
        } else {
            continue;
        }
        let text = files
            .iter()
            .map(|f| code(&std::fs::read_to_string(f).expect("a readable source file")))
            .collect::<Vec<_>>()
            .join("\n");
        modules.push((name, text));
    }
    modules.sort();
    modules
}

#[test]
fn top_level_modules_import_no_circle() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let modules = top_level_modules(&src);
    let names_of: Vec<&str> = modules.iter().map(|(n, _)| n.as_str()).collect();
    let edges: Vec<Vec<usize>> = modules
        .iter()
        .map(|(name, text)| {
            (0..modules.len())
                .filter(|&j| modules[j].0 != *name && names(text, &format!("crate::{}", modules[j].0)))
                .collect()
        })
        .collect();
    // A core part imports no service.
    for core in ["config", "state", "context", "error"] {
        let i = names_of.iter().position(|n| *n == core).unwrap_or_else(|| panic!("src/{core} exists"));
        let imported: Vec<&str> = edges[i].iter().map(|&j| names_of[j]).collect();
        assert!(!imported.contains(&"services"), "{core} imports services: {imported:?}");
    }
    // Depth-first search for a back edge; the path to it is the circle.
    fn visit(v: usize, edges: &[Vec<usize>], mark: &mut [u8], path: &mut Vec<usize>) -> Option<Vec<usize>> {
        mark[v] = 1;
        path.push(v);
        for &w in &edges[v] {
            if mark[w] == 1 {
                let from = path.iter().position(|&p| p == w).expect("on the path");
                return Some(path[from..].iter().copied().chain([w]).collect());
            }
            if mark[w] == 0
                && let Some(circle) = visit(w, edges, mark, path)
            {
                return Some(circle);
            }
        }
        path.pop();
        mark[v] = 2;
        None
    }
    let mut mark = vec![0u8; modules.len()];
    for v in 0..modules.len() {
        if mark[v] == 0
            && let Some(circle) = visit(v, &edges, &mut mark, &mut Vec::new())
        {
            let circle: Vec<&str> = circle.iter().map(|&i| names_of[i]).collect();
            panic!("an import circle between top-level modules: {}", circle.join(" -> "));
        }
    }
}

#[test]
fn the_scanner_sees_every_form_of_import() {
    assert!(names("use axum::Json;", "axum"));
    assert!(names("fn f() -> axum::response::Response {}", "axum"));
    assert!(names("use crate::{context::A, http::ws};", "crate::http"));
    assert!(names("use crate::{a::{b, c}, http};", "crate::http"));
    assert!(!names("use crate::{error::http, graphql::errors};", "crate::http"));
    assert!(names("use crate::http;", "crate::http"));
    assert!(!names("use crate::httpx::A; use my_axum::B;", "crate::http"));
    assert!(!names("use axum_extra::A;", "axum"));
    assert!(!code("//! see crate::http::ws\nuse a::b; // crate::http").contains("crate::http"));
}
