//! The Terraform of infra/, parsed by python-hcl2 (tools/tf2json.py) into JSON, and the few
//! queries the checks need. Strings are as written: literals bare, expressions `${...}`.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::Value;

pub struct Infra {
    pub root: PathBuf,
    /// Path relative to the repository ("infra/x.tf") -> parsed file.
    pub files: BTreeMap<String, Value>,
}

/// A block: `resource "kind" "name"`, `data "kind" "name"`, `module "name"` (kind "module").
#[derive(Clone, Copy)]
pub struct Block<'a> {
    pub file: &'a str,
    pub kind: &'a str,
    pub name: &'a str,
    pub body: &'a Value,
}

impl Infra {
    /// Parses infra/ with the project's python-hcl2 (installed on demand by tools/iac-env.sh).
    pub fn load(repo: &Path) -> Result<Infra, String> {
        let env = Command::new("bash")
            .arg(repo.join("tools/iac-env.sh"))
            .arg("hcl2")
            .current_dir(repo)
            .output()
            .map_err(|e| format!("cannot run tools/iac-env.sh: {e}"))?;
        if !env.status.success() {
            return Err(format!(
                "tools/iac-env.sh hcl2 failed: {}",
                String::from_utf8_lossy(&env.stderr)
            ));
        }
        let bin = String::from_utf8_lossy(&env.stdout).trim().to_string();
        let out = Command::new(format!("{bin}/python"))
            .arg(repo.join("tools/tf2json.py"))
            .arg("infra")
            .current_dir(repo)
            .output()
            .map_err(|e| format!("cannot run {bin}/python tools/tf2json.py: {e}"))?;
        let parsed: Value = serde_json::from_slice(&out.stdout).map_err(|e| {
            format!(
                "tools/tf2json.py printed no JSON ({e}); stderr: {}",
                String::from_utf8_lossy(&out.stderr)
            )
        })?;
        if let Some(errors) = parsed["errors"].as_array().filter(|e| !e.is_empty()) {
            let list: Vec<String> = errors
                .iter()
                .map(|e| {
                    format!(
                        "{}: {}",
                        e["file"].as_str().unwrap_or("?"),
                        e["error"].as_str().unwrap_or("?")
                    )
                })
                .collect();
            return Err(format!(
                "Terraform files that do not parse:\n  {}",
                list.join("\n  ")
            ));
        }
        let files = parsed["files"]
            .as_object()
            .map(|m| m.iter().map(|(k, v)| (k.clone(), v.clone())).collect())
            .unwrap_or_default();
        Ok(Infra {
            root: repo.to_path_buf(),
            files,
        })
    }

    pub fn from_files(root: &Path, files: BTreeMap<String, Value>) -> Infra {
        Infra {
            root: root.to_path_buf(),
            files,
        }
    }

    /// Files of the root module (directly in infra/).
    pub fn root_files(&self) -> impl Iterator<Item = (&str, &Value)> {
        self.files
            .iter()
            .filter(|(k, _)| Path::new(k).parent() == Some(Path::new("infra")))
            .map(|(k, v)| (k.as_str(), v))
    }

    pub fn raw(&self, file: &str) -> String {
        std::fs::read_to_string(self.root.join(file)).unwrap_or_default()
    }

    pub fn resources(&self) -> Vec<Block<'_>> {
        two_label("resource", self.root_files().collect())
    }

    pub fn data(&self) -> Vec<Block<'_>> {
        two_label("data", self.root_files().collect())
    }

    /// Resources of any file, modules included.
    pub fn all_resources(&self) -> Vec<Block<'_>> {
        two_label(
            "resource",
            self.files.iter().map(|(k, v)| (k.as_str(), v)).collect(),
        )
    }

    pub fn modules(&self) -> Vec<Block<'_>> {
        let mut out = vec![];
        for (file, v) in self.root_files() {
            for entry in v["module"].as_array().into_iter().flatten() {
                for (name, body) in entry.as_object().into_iter().flatten() {
                    out.push(Block {
                        file,
                        kind: "module",
                        name,
                        body,
                    });
                }
            }
        }
        out
    }

    /// Every root-module local: name -> (file, value).
    pub fn locals(&self) -> BTreeMap<String, (String, Value)> {
        let mut out = BTreeMap::new();
        for (file, v) in self.root_files() {
            for entry in v["locals"].as_array().into_iter().flatten() {
                for (name, val) in entry.as_object().into_iter().flatten() {
                    out.insert(name.clone(), (file.to_string(), val.clone()));
                }
            }
        }
        out
    }

    /// A string attribute with `${local.x}` references replaced by the locals' values (a
    /// few rounds), so `function_name = local.md_name` reads `manifest-diff-${var.environment}`.
    pub fn resolve(&self, s: &str) -> String {
        let locals = self.locals();
        let mut cur = s.to_string();
        for _ in 0..4 {
            let mut next = cur.clone();
            for (name, (_, v)) in &locals {
                if let Some(val) = v.as_str() {
                    next = next.replace(&format!("${{local.{name}}}"), val);
                }
            }
            if next == cur {
                break;
            }
            cur = next;
        }
        cur
    }
}

fn two_label<'a>(key: &str, files: Vec<(&'a str, &'a Value)>) -> Vec<Block<'a>> {
    let mut out = vec![];
    for (file, v) in files {
        for entry in v[key].as_array().into_iter().flatten() {
            for (kind, named) in entry.as_object().into_iter().flatten() {
                for (name, body) in named.as_object().into_iter().flatten() {
                    out.push(Block {
                        file,
                        kind,
                        name,
                        body,
                    });
                }
            }
        }
    }
    out
}

/// Every string anywhere inside a value (for "does this resource refer to X").
pub fn strings(v: &Value) -> Vec<&str> {
    let mut out = vec![];
    fn walk<'a>(v: &'a Value, out: &mut Vec<&'a str>) {
        match v {
            Value::String(s) => out.push(s),
            Value::Array(a) => a.iter().for_each(|x| walk(x, out)),
            Value::Object(o) => o.iter().for_each(|(k, x)| {
                out.push(k);
                walk(x, out)
            }),
            _ => {}
        }
    }
    walk(v, &mut out);
    out
}

pub fn mentions(v: &Value, needle: &str) -> bool {
    strings(v).iter().any(|s| s.contains(needle))
}

/// Nested blocks come as arrays of objects; a single block may also come as an object.
pub fn blocks<'a>(v: &'a Value, key: &str) -> Vec<&'a Value> {
    match &v[key] {
        Value::Array(a) => a.iter().collect(),
        o @ Value::Object(_) => vec![o],
        _ => vec![],
    }
}

/// The statements of an aws_iam_policy_document body, `dynamic "statement"` contents included.
pub fn statements(doc: &Value) -> Vec<&Value> {
    let mut out = blocks(doc, "statement");
    for d in blocks(doc, "dynamic") {
        if let Some(st) = d.get("statement") {
            out.extend(blocks(st, "content"));
        }
    }
    out
}

/// Action strings in a list attribute or an expression.
pub fn action_list(v: &Value) -> Vec<String> {
    match v {
        Value::Array(a) => a
            .iter()
            .filter_map(|x| x.as_str())
            .map(str::to_string)
            .collect(),
        Value::String(s) => quoted_actions(s),
        _ => vec![],
    }
}

/// `"service:Action"` tokens in an expression (jsonencode policies, concat(...)).
pub fn quoted_actions(s: &str) -> Vec<String> {
    let mut out = vec![];
    for part in s.split('"') {
        let p = part.trim();
        if let Some((svc, act)) = p.split_once(':') {
            let svc_ok = !svc.is_empty()
                && svc
                    .bytes()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == b'-');
            let act_ok =
                !act.is_empty() && act.bytes().all(|c| c.is_ascii_alphanumeric() || c == b'*');
            if svc_ok && act_ok && svc != "arn" {
                out.push(p.to_string());
            }
        }
    }
    out
}
