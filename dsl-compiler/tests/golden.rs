//! Golden tests for diagnostics: every `tests/golden/*.codeai` is an invalid program and
//! `*.codeai.stderr` beside it is the exact rendering of its diagnostics.
//!
//! Run with `BLESS=1` to write the expected files from the current output (then read the diff).

use std::path::Path;

#[test]
fn golden_diagnostics() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/golden");
    let bless = std::env::var_os("BLESS").is_some();
    let mut cases: Vec<_> = std::fs::read_dir(&dir)
        .expect("tests/golden exists")
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "codeai"))
        .collect();
    cases.sort();
    assert!(
        cases.len() >= 25,
        "expected at least 25 golden cases, found {}",
        cases.len()
    );

    let mut failures = Vec::new();
    for case in &cases {
        let name = case.file_name().unwrap().to_string_lossy().into_owned();
        let source = std::fs::read_to_string(case).unwrap();
        let diagnostics = codeai_dsl::check_source(&source);
        let actual = codeai_dsl::diagnostic::render_all(&name, &source, &diagnostics);
        if !diagnostics.iter().any(|d| d.is_error()) {
            failures.push(format!("{name}: expected at least one error, got none"));
            continue;
        }
        let expected_path = case.with_extension("codeai.stderr");
        if bless {
            std::fs::write(&expected_path, &actual).unwrap();
            continue;
        }
        match std::fs::read_to_string(&expected_path) {
            Ok(expected) if expected == actual => {}
            Ok(expected) => failures.push(format!(
                "{name}: diagnostics differ\n--- expected\n{expected}\n--- actual\n{actual}"
            )),
            Err(_) => failures.push(format!(
                "{name}: no {} (run with BLESS=1)\n--- actual\n{actual}",
                expected_path.display()
            )),
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
}
