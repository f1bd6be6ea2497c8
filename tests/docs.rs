//! The docs stay true where checking them is cheap: the README's configuration block is
//! a configuration the service loads (valid TOML, no table twice, no key it does not
//! know), and the source files the architecture page names exist.

use std::path::{Path, PathBuf};

use shortener::config::Settings;

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// The first ```toml block after the README's "## Configuration".
fn readme_config_block() -> String {
    let readme = std::fs::read_to_string(root().join("README.md")).unwrap();
    let section = &readme[readme
        .find("\n## Configuration\n")
        .expect("a Configuration section")..];
    let start = section.find("```toml\n").expect("a toml block") + "```toml\n".len();
    let block = &section[start..];
    block[..block.find("\n```").unwrap()].to_owned()
}

#[test]
fn the_readmes_configuration_block_loads() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("readme.toml");
    std::fs::write(&file, readme_config_block()).unwrap();
    let settings = Settings::load(Some(&file)).unwrap_or_else(|e| panic!("{e}"));
    assert!(
        !settings.shards.is_empty(),
        "the block shows the distributed mode"
    );
}

#[test]
fn the_source_files_the_architecture_page_names_exist() {
    let doc = std::fs::read_to_string(root().join("docs/architecture.md")).unwrap();
    let mut named = 0;
    for word in doc.split(|c: char| c.is_whitespace() || "`()[],;:*".contains(c)) {
        let word = word.trim_end_matches('.');
        if word.starts_with("src/") && word.ends_with(".rs") {
            named += 1;
            assert!(
                Path::new(&root().join(word)).is_file(),
                "{word} does not exist"
            );
        }
    }
    assert!(named > 0, "the page names source files");
}
