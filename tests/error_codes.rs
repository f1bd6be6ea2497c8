//! Every error code is documented where clients look: the README's error table and the
//! OpenAPI document list exactly the codes of `shortener::error::Code`, each with the
//! status and the field it answers with.

use std::collections::BTreeMap;

use serde_json::Value;
use shortener::error::Code;

/// The README's "### Errors" table: code → (status, field).
fn readme_table() -> BTreeMap<String, (u16, Option<String>)> {
    let readme = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/README.md"))
        .expect("README.md");
    let section = readme
        .split("\n### Errors\n")
        .nth(1)
        .expect("the README has an ### Errors section");
    let section = section.split("\n#").next().unwrap();
    let mut table = BTreeMap::new();
    for row in section.lines().filter(|l| l.starts_with("| ")) {
        let cells: Vec<&str> = row.split('|').map(str::trim).collect();
        let Ok(status) = cells[1].parse::<u16>() else {
            continue; // the header row
        };
        let code = cells[2].trim_matches('`').to_owned();
        let field = Some(cells[3].trim_matches('`'))
            .filter(|f| !f.is_empty())
            .map(str::to_owned);
        assert!(
            table.insert(code.clone(), (status, field)).is_none(),
            "{code} is in the README's table twice"
        );
    }
    table
}

fn declared() -> BTreeMap<String, (u16, Option<String>)> {
    Code::ALL
        .iter()
        .map(|c| {
            let field = c.field().map(str::to_owned);
            (c.as_str().to_owned(), (c.kind().status(), field))
        })
        .collect()
}

#[test]
fn the_readme_lists_every_code_with_its_status_and_field() {
    assert_eq!(readme_table(), declared());
}

#[test]
fn the_openapi_document_lists_every_code() {
    let spec: Value = serde_json::from_str(shortener::http::openapi::json()).unwrap();
    let codes: Vec<&str> = spec["components"]["schemas"]["ErrorDetail"]["properties"]["code"]
        ["enum"]
        .as_array()
        .expect("ErrorDetail.code is an enum")
        .iter()
        .map(|v| v.as_str().unwrap())
        .collect();
    let all: Vec<&str> = Code::ALL.iter().map(|c| c.as_str()).collect();
    assert_eq!(codes, all);
}

#[test]
fn codes_are_distinct_snake_case() {
    let mut seen = std::collections::BTreeSet::new();
    for code in Code::ALL {
        let s = code.as_str();
        assert!(seen.insert(s), "{s} twice");
        assert!(
            s.bytes().all(|b| b.is_ascii_lowercase() || b == b'_'),
            "{s}"
        );
    }
}
