//! The layering rules of ARCHITECTURE.md, checked on the source tree.

use std::path::{Path, PathBuf};

fn rust_files(dir: &Path) -> Vec<PathBuf> {
    let mut files = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            files.extend(rust_files(&path));
        } else if path.extension().is_some_and(|ext| ext == "rs") {
            files.push(path);
        }
    }
    files.sort();
    files
}

fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .to_path_buf()
}

fn src() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("src")
}

/// Source lines that are code, not comments.
fn code_lines(text: &str) -> impl Iterator<Item = &str> {
    text.lines()
        .map(str::trim_start)
        .filter(|line| !line.starts_with("//"))
}

#[test]
fn only_the_lsp_module_imports_tower_lsp_server() {
    let lsp = src().join("lsp");
    let offenders: Vec<String> = rust_files(&src())
        .into_iter()
        .filter(|path| !path.starts_with(&lsp))
        .filter(|path| {
            let text = std::fs::read_to_string(path).unwrap();
            code_lines(&text).any(|line| line.contains("tower_lsp_server"))
        })
        .map(|path| path.display().to_string())
        .collect();
    assert!(
        offenders.is_empty(),
        "LSP types outside src/lsp: {offenders:?}"
    );
}

#[test]
fn text_and_config_are_leaves() {
    let mut leaves = rust_files(&src().join("text"));
    leaves.push(src().join("config.rs"));
    for path in leaves {
        let text = std::fs::read_to_string(&path).unwrap();
        for line in code_lines(&text) {
            let imports_crate = line.contains("crate::") && !line.contains("crate::text");
            assert!(
                !imports_crate,
                "{} imports from the crate: {line}",
                path.display()
            );
        }
    }
}

#[test]
fn every_rust_file_says_what_it_is_for() {
    let root = workspace_root();
    let mut files = rust_files(&root.join("server"));
    files.extend(rust_files(&root.join("tests")));
    let missing: Vec<String> = files
        .into_iter()
        .filter(|path| {
            let text = std::fs::read_to_string(path).unwrap();
            !text.starts_with("//!")
        })
        .map(|path| path.display().to_string())
        .collect();
    assert!(missing.is_empty(), "files without a //! line: {missing:?}");
}
