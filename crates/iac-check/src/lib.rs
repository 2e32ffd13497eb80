//! Checks that infra/ matches the functions' code (docs/iac.md): every crate in functions/
//! has its Terraform module, a trigger and a sample event; every environment variable the
//! code reads is set by its module (or documented as optional); every AWS SDK operation the
//! code calls is allowed by its role, and the role allows nothing else. The Terraform is
//! parsed with python-hcl2 (tools/tf2json.py); the code is scanned as text (src/source.rs
//! says how, and where that stops).

pub mod check;
pub mod grafana;
pub mod iam;
pub mod signals;
pub mod source;
pub mod tf;

use std::path::PathBuf;

/// The repository root (this crate lives in crates/iac-check).
pub fn repo_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../..")
        .canonicalize()
        .unwrap_or_else(|_| PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../..")))
}
