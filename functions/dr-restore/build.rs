//! Bakes the expected Alembic heads into the binary when `DR_ALEMBIC_HEADS_FILE` names a file
//! at build time (the output of `alembic heads` in the application's migration directory, see
//! docs/dr-restore.md). `DR_EXPECTED_HEADS` at run time overrides it.

#[path = "src/heads_parse.rs"]
mod heads_parse;

fn main() {
    println!("cargo:rerun-if-env-changed=DR_ALEMBIC_HEADS_FILE");
    println!("cargo:rerun-if-changed=src/heads_parse.rs");
    let heads = match std::env::var("DR_ALEMBIC_HEADS_FILE") {
        Ok(path) if !path.trim().is_empty() => {
            println!("cargo:rerun-if-changed={path}");
            let text = std::fs::read_to_string(&path)
                .unwrap_or_else(|e| panic!("DR_ALEMBIC_HEADS_FILE={path}: {e}"));
            let heads = heads_parse::parse_heads(&text);
            if heads.is_empty() {
                panic!("DR_ALEMBIC_HEADS_FILE={path}: no revision ids in it (expected `alembic heads` output)");
            }
            heads.join(",")
        }
        _ => String::new(),
    };
    println!("cargo:rustc-env=DR_BUILD_ALEMBIC_HEADS={heads}");
}
