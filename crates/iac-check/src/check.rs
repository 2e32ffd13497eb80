//! The consistency checks between functions/*, shared/, events/, docs/ and infra/.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::path::Path;

use serde_json::Value;

use crate::iam;
use crate::source::{self, EnvRead, EnvUse, SdkCall, Unattributed};
use crate::tf::{self, Block, Infra};

/// One problem, with the function, the file to fix and what is wrong.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Finding {
    pub function: String,
    pub file: String,
    pub message: String,
}

impl fmt::Display for Finding {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {} [{}]", self.function, self.message, self.file)
    }
}

/// Variables Lambda sets itself (or the runtime reads), never in a module's environment.
pub const LAMBDA_PROVIDED: &[&str] = &[
    "AWS_REGION",
    "AWS_DEFAULT_REGION",
    "AWS_LAMBDA_FUNCTION_NAME",
    "AWS_LAMBDA_FUNCTION_VERSION",
    "AWS_LAMBDA_FUNCTION_MEMORY_SIZE",
    "AWS_LAMBDA_LOG_LEVEL",
    "AWS_LAMBDA_LOG_GROUP_NAME",
    "AWS_LAMBDA_LOG_STREAM_NAME",
    "AWS_EXECUTION_ENV",
    "AWS_LAMBDA_RUNTIME_API",
    "LAMBDA_TASK_ROOT",
    "_HANDLER",
    "_X_AMZN_TRACE_ID",
];

/// Functions in functions/*, by crate directory name.
pub fn function_names(repo: &Path) -> Vec<String> {
    let mut out: Vec<String> = std::fs::read_dir(repo.join("functions"))
        .into_iter()
        .flatten()
        .flatten()
        .filter(|e| e.path().join("Cargo.toml").exists())
        .filter_map(|e| e.file_name().to_str().map(str::to_string))
        .collect();
    out.sort();
    out
}

pub fn snake(name: &str) -> String {
    name.replace('-', "_")
}

/// What a function's code reads and calls, its own crate and the parts of shared/ it uses.
#[derive(Debug, Default)]
pub struct Code {
    pub env: Vec<EnvRead>,
    pub calls: Vec<SdkCall>,
    pub unattributed: Vec<Unattributed>,
}

fn rs_files(dir: &Path) -> Vec<std::path::PathBuf> {
    let mut out = vec![];
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).into_iter().flatten().flatten() {
            let p = e.path();
            if p.is_dir() {
                stack.push(p);
            } else if p.extension().is_some_and(|x| x == "rs") {
                out.push(p);
            }
        }
    }
    out.sort();
    out
}

fn rel(repo: &Path, p: &Path) -> String {
    p.strip_prefix(repo).unwrap_or(p).display().to_string()
}

/// shared/ modules a function's code names (`shared::store::S3Store`, `use shared::{aws, ..}`).
fn shared_modules_used(text: &str) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    let mut i = 0;
    while let Some(p) = text[i..].find("shared::") {
        let at = i + p + "shared::".len();
        i = at;
        let rest = &text[at..];
        if let Some(inner) = rest.strip_prefix('{') {
            // top-level names inside the braces
            let mut depth = 0;
            let mut name = String::new();
            for ch in inner.chars() {
                match ch {
                    '{' => depth += 1,
                    '}' if depth == 0 => break,
                    '}' => depth -= 1,
                    c if depth == 0 && (c.is_alphanumeric() || c == '_') => name.push(c),
                    _ => {
                        if !name.is_empty() {
                            out.insert(std::mem::take(&mut name));
                        }
                    }
                }
            }
            if !name.is_empty() {
                out.insert(name);
            }
        } else {
            let name: String = rest
                .chars()
                .take_while(|c| c.is_alphanumeric() || *c == '_')
                .collect();
            out.insert(name);
        }
    }
    out
}

/// Scans functions/<name>/src and the shared/ code it uses.
pub fn scan(repo: &Path, name: &str) -> Code {
    let mut code = Code::default();
    let mut fn_text = String::new();
    for p in rs_files(&repo.join("functions").join(name).join("src")) {
        let src = std::fs::read_to_string(&p).unwrap_or_default();
        let c = source::clean(&src);
        let file = rel(repo, &p);
        code.env.extend(source::env_reads(&file, &c));
        let clients = source::typed_clients(&c);
        let (calls, unknown) = source::sdk_calls(&file, &c, &clients);
        code.calls.extend(calls);
        code.calls.extend(source::signed_http_calls(&file, &src));
        code.unattributed.extend(unknown);
        fn_text.push_str(&c.code);
        fn_text.push('\n');
    }

    // shared/: a module counts when the function names it; its env reads count whole (they
    // sit in constructors every function calls); its SDK calls count per `fn`, when the
    // function (or a shared fn it uses) calls a fn of that name.
    let used_mods = shared_modules_used(&fn_text);
    // shared `SuiteError` etc. re-exported at the root count as `lib`.
    struct SharedFile {
        module: String,
        cleaned: source::Cleaned,
        file: String,
    }
    let shared: Vec<SharedFile> = rs_files(&repo.join("shared/src"))
        .into_iter()
        .map(|p| SharedFile {
            module: p
                .file_stem()
                .and_then(|s| s.to_str())
                .unwrap_or("")
                .to_string(),
            cleaned: source::clean(&std::fs::read_to_string(&p).unwrap_or_default()),
            file: rel(repo, &p),
        })
        .collect();
    let mut bodies: Vec<(usize, String, usize, usize)> = vec![]; // (file idx, fn, start, end)
    for (i, f) in shared.iter().enumerate() {
        if !used_mods.contains(&f.module) {
            continue;
        }
        code.env.extend(source::env_reads(&f.file, &f.cleaned));
        for (n, s, e) in source::fn_bodies(&f.cleaned) {
            bodies.push((i, n, s, e));
        }
    }
    // Fixpoint: shared fns the function calls, then the ones those call.
    let mut used: BTreeSet<(usize, String)> = BTreeSet::new();
    let mut frontier: Vec<String> = vec![fn_text];
    while let Some(text) = frontier.pop() {
        for (i, n, s, e) in &bodies {
            if used.contains(&(*i, n.clone())) {
                continue;
            }
            if source::calls_name(&text, n) {
                used.insert((*i, n.clone()));
                frontier.push(shared[*i].cleaned.code[*s..=*e].to_string());
            }
        }
    }
    for (i, f) in shared.iter().enumerate() {
        if !used_mods.contains(&f.module) {
            continue;
        }
        let clients = source::typed_clients(&f.cleaned);
        let (calls, unknown) = source::sdk_calls(&f.file, &f.cleaned, &clients);
        let in_used = |line: usize| {
            bodies.iter().any(|(fi, n, s, e)| {
                *fi == i && used.contains(&(i, n.clone())) && {
                    let l0 = f.cleaned.code[..*s].matches('\n').count() + 1;
                    let l1 = f.cleaned.code[..*e].matches('\n').count() + 1;
                    (l0..=l1).contains(&line)
                }
            })
        };
        code.calls
            .extend(calls.into_iter().filter(|c| in_used(c.line)));
        code.unattributed
            .extend(unknown.into_iter().filter(|c| in_used(c.line)));
    }
    code.env.sort();
    code
}

/// The function's module block: `source = "./modules/lambda_function"` and a function_name
/// (after resolving locals) of `<name>` or `<name>-<suffix>`.
pub fn find_module<'a>(infra: &'a Infra, name: &str) -> Option<Block<'a>> {
    infra.modules().into_iter().find(|m| {
        let src = m.body["source"].as_str().unwrap_or("");
        if src.trim_end_matches('/') != "./modules/lambda_function" {
            return false;
        }
        let fname = infra.resolve(m.body["function_name"].as_str().unwrap_or(""));
        fname == name || fname.starts_with(&format!("{name}-"))
    })
}

/// Strings by which infra refers to the function: module outputs and the locals holding its
/// name or ARN.
pub fn aliases(infra: &Infra, module: &Block, name: &str) -> Vec<String> {
    let mut out = vec![
        format!("module.{}.function_arn", module.name),
        format!("module.{}.function_name", module.name),
    ];
    let locals = infra.locals();
    let mut changed = true;
    while changed {
        changed = false;
        for (l, (_, v)) in &locals {
            let a = format!("local.{l}");
            if out.contains(&a) {
                continue;
            }
            let s = v.as_str().unwrap_or("");
            let names_fn = s.contains(&format!("{name}-${{")) || s == name;
            let refers = out
                .iter()
                .any(|x| x.starts_with("local.") && s.contains(&format!("${{{x}}}")));
            if names_fn || refers {
                out.push(a);
                changed = true;
            }
        }
    }
    out
}

const TRIGGERS: &[&str] = &[
    "aws_scheduler_schedule",
    "aws_cloudwatch_event_target",
    "aws_s3_bucket_notification",
    "aws_sns_topic_subscription",
    "aws_lambda_event_source_mapping",
];

fn principal_for(kind: &str) -> Option<&'static str> {
    match kind {
        "aws_cloudwatch_event_target" => Some("events.amazonaws.com"),
        "aws_s3_bucket_notification" => Some("s3.amazonaws.com"),
        "aws_sns_topic_subscription" => Some("sns.amazonaws.com"),
        _ => None,
    }
}

/// The function's module, trigger, event samples.
pub fn check_wiring(repo: &Path, infra: &Infra, name: &str) -> Vec<Finding> {
    let mut out = vec![];
    let expected_tf = format!("infra/{}.tf", snake(name));
    let f = |file: &str, message: String| Finding {
        function: name.into(),
        file: file.into(),
        message,
    };

    // events/<fn>/*.json, each valid JSON.
    let dir = repo.join("events").join(name);
    let samples: Vec<_> = std::fs::read_dir(&dir)
        .into_iter()
        .flatten()
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|x| x == "json"))
        .collect();
    if samples.is_empty() {
        out.push(f(
            &format!("events/{name}/"),
            "no sample event (events/<fn>/*.json)".into(),
        ));
    }
    for p in &samples {
        let text = std::fs::read_to_string(p).unwrap_or_default();
        if let Err(e) = serde_json::from_str::<Value>(&text) {
            out.push(f(&rel(repo, p), format!("sample event is not JSON: {e}")));
        }
    }

    let Some(module) = find_module(infra, name) else {
        out.push(f(
            &expected_tf,
            format!("no module block with source \"./modules/lambda_function\" and function_name \"{name}-${{var.environment}}\""),
        ));
        return out;
    };
    let al = aliases(infra, &module, name);
    let refers = |v: &Value| al.iter().any(|a| tf::mentions(v, a));
    let resources = infra.resources();
    let triggers: Vec<&Block> = resources
        .iter()
        .filter(|r| TRIGGERS.contains(&r.kind) && refers(r.body))
        .collect();
    // Invoked by another function: someone else's policy allows lambda:InvokeFunction on it.
    let own_policy = module.body["policy_json"]
        .as_str()
        .unwrap_or("")
        .to_string();
    let invoked_by: Vec<String> = infra
        .data()
        .iter()
        .filter(|d| d.kind == "aws_iam_policy_document")
        .filter(|d| !own_policy.contains(&format!("data.aws_iam_policy_document.{}.", d.name)))
        .filter(|d| {
            tf::statements(d.body).iter().any(|s| {
                tf::action_list(&s["actions"])
                    .iter()
                    .any(|a| iam::norm(a) == "lambda:invokefunction")
                    && refers(&s["resources"])
            })
        })
        .map(|d| d.name.to_string())
        .collect();
    let invoked_by: Vec<String> = invoked_by
        .into_iter()
        // a scheduler role's policy is the schedule's, counted above
        .filter(|n| {
            !triggers.iter().any(|t| {
                t.kind == "aws_scheduler_schedule"
                    && tf::mentions(t.body, &format!("aws_iam_role.{n}"))
            })
        })
        .collect();
    if triggers.is_empty() && invoked_by.is_empty() {
        out.push(f(
            module.file,
            format!(
                "module \"{}\" has no trigger: no {} refers to {}, and no other function's policy may invoke it",
                module.name,
                TRIGGERS.join(" / "),
                al.join(" or ")
            ),
        ));
    }
    for t in &triggers {
        if let Some(principal) = principal_for(t.kind) {
            let ok = resources.iter().any(|p| {
                p.kind == "aws_lambda_permission"
                    && refers(&p.body["function_name"])
                    && p.body["principal"].as_str() == Some(principal)
            });
            if !ok {
                out.push(f(
                    t.file,
                    format!(
                        "{}.{} invokes module \"{}\" but no aws_lambda_permission for principal {principal} exists",
                        t.kind, t.name, module.name
                    ),
                ));
            }
        }
    }

    // Memory and timeout are chosen, with the reason beside them.
    let raw = infra.raw(module.file);
    for attr in ["memory_mb", "timeout_s"] {
        if module.body.get(attr).is_none() {
            out.push(f(
                module.file,
                format!(
                    "module \"{}\" does not set {attr}: choose it and say why in a comment",
                    module.name
                ),
            ));
            continue;
        }
        let via_var = module.body[attr]
            .as_str()
            .and_then(|v| {
                v.strip_prefix("${var.")?
                    .strip_suffix('}')
                    .map(str::to_string)
            })
            .is_some_and(|var| variable_described(infra, &var));
        if !via_var && !commented(&raw, module.name, attr) {
            out.push(f(module.file, format!("module \"{}\": {attr} has no comment saying why (a # line within the 3 lines above it, or a variable with a description)", module.name)));
        }
    }
    out
}

/// A root variable with a non-empty description (the reason for a value set through it).
fn variable_described(infra: &Infra, var: &str) -> bool {
    infra.root_files().any(|(_, v)| {
        v["variable"].as_array().into_iter().flatten().any(|e| {
            e.get(var)
                .and_then(|b| b["description"].as_str())
                .is_some_and(|d| !d.trim().is_empty())
        })
    })
}

/// Whether `attr = ...` inside `module "name" {` has a comment line within 3 lines above.
fn commented(raw: &str, module: &str, attr: &str) -> bool {
    let lines: Vec<&str> = raw.lines().collect();
    let Some(start) = lines
        .iter()
        .position(|l| l.trim_start().starts_with(&format!("module \"{module}\"")))
    else {
        return false;
    };
    for (i, l) in lines.iter().enumerate().skip(start) {
        if i > start && l.starts_with('}') {
            break;
        }
        let t = l.trim_start();
        if t.starts_with(attr) && t[attr.len()..].trim_start().starts_with('=') {
            return (i.saturating_sub(3)..i).any(|k| lines[k].trim_start().starts_with('#'))
                || l.contains('#');
        }
    }
    false
}

/// Variables: what the code reads against what the module sets.
pub fn check_env(repo: &Path, infra: &Infra, name: &str, code: &Code) -> Vec<Finding> {
    let mut out = vec![];
    let Some(module) = find_module(infra, name) else {
        return out;
    };
    let f = |file: &str, message: String| Finding {
        function: name.into(),
        file: file.into(),
        message,
    };
    let set: BTreeSet<String> = match &module.body["environment"] {
        Value::Object(m) => m.keys().cloned().collect(),
        Value::String(s) => env_keys_in_expr(s),
        _ => BTreeSet::new(),
    };
    let docs: String = [
        format!("docs/{name}.md"),
        "docs/deploy.md".into(),
        "docs/observability.md".into(),
        "docs/local-development.md".into(),
    ]
    .iter()
    .map(|p| std::fs::read_to_string(repo.join(p)).unwrap_or_default())
    .collect::<Vec<_>>()
    .join("\n");
    let mut reads: BTreeMap<String, &EnvRead> = BTreeMap::new();
    for r in &code.env {
        // Required wins over optional when both are seen.
        let e = reads.entry(r.name.clone()).or_insert(r);
        if r.how == EnvUse::Required {
            *e = r;
        }
    }
    for (var, r) in &reads {
        if set.contains(var) || LAMBDA_PROVIDED.contains(&var.as_str()) {
            continue;
        }
        match r.how {
            EnvUse::Required => out.push(f(
                module.file,
                format!(
                    "reads required variable {var} ({}:{}) but module \"{}\" does not set it in environment",
                    r.file, r.line, module.name
                ),
            )),
            EnvUse::Optional if !docs.contains(&format!("`{var}`")) => out.push(f(
                module.file,
                format!(
                    "reads optional variable {var} ({}:{}): set it in module \"{}\"'s environment, or document it and its default in docs/{name}.md",
                    r.file, r.line, module.name
                ),
            )),
            EnvUse::Optional => {}
        }
    }
    for var in &set {
        if !reads.contains_key(var) {
            out.push(f(
                module.file,
                format!("module \"{}\" sets environment variable {var}, which the code never reads (a typo, or a leftover)", module.name),
            ));
        }
    }
    out
}

fn env_keys_in_expr(s: &str) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    let b = s.as_bytes();
    let mut i = 0;
    while i < b.len() {
        if b[i].is_ascii_uppercase()
            && (i == 0 || !(b[i - 1].is_ascii_alphanumeric() || b[i - 1] == b'_'))
        {
            let st = i;
            while i < b.len()
                && (b[i].is_ascii_uppercase() || b[i].is_ascii_digit() || b[i] == b'_')
            {
                i += 1;
            }
            let rest = s[i..].trim_start();
            if rest.starts_with('=') && !rest.starts_with("==") {
                out.insert(s[st..i].to_string());
            }
        } else {
            i += 1;
        }
    }
    out
}

/// The role's allowed actions, and where each came from.
pub fn policy_actions(infra: &Infra, module: &Block) -> (Vec<(String, String)>, Vec<Finding>) {
    let mut acts = vec![];
    let mut problems = vec![];
    let data = infra.data();
    let mut exprs: Vec<(String, String)> = vec![(
        module.body["policy_json"]
            .as_str()
            .unwrap_or("")
            .to_string(),
        module.file.to_string(),
    )];
    // Extra inline policies or attachments on the module's role.
    let role_refs = [
        format!("module.{}.role_name", module.name),
        format!("module.{}.role_arn", module.name),
    ];
    for r in infra.resources() {
        let on_role = role_refs.iter().any(|x| tf::mentions(&r.body["role"], x));
        if !on_role {
            continue;
        }
        match r.kind {
            "aws_iam_role_policy" => exprs.push((r.body["policy"].as_str().unwrap_or("").to_string(), r.file.to_string())),
            "aws_iam_role_policy_attachment" => problems.push(Finding {
                function: String::new(),
                file: r.file.to_string(),
                message: format!(
                    "aws_iam_role_policy_attachment.{} attaches a managed policy to module \"{}\"'s role: its actions cannot be checked against the code; use an inline policy",
                    r.name, module.name
                ),
            }),
            _ => {}
        }
    }
    let mut seen_docs = BTreeSet::new();
    while let Some((expr, file)) = exprs.pop() {
        let mut found_doc = false;
        for d in data.iter().filter(|d| d.kind == "aws_iam_policy_document") {
            if !expr.contains(&format!("data.aws_iam_policy_document.{}.json", d.name)) {
                continue;
            }
            found_doc = true;
            if !seen_docs.insert(d.name.to_string()) {
                continue;
            }
            for st in tf::statements(d.body) {
                if st["effect"]
                    .as_str()
                    .is_some_and(|e| e.eq_ignore_ascii_case("deny"))
                {
                    continue;
                }
                if st.get("not_actions").is_some() {
                    problems.push(Finding {
                        function: String::new(),
                        file: d.file.to_string(),
                        message: format!("data.aws_iam_policy_document.{} uses not_actions: allows everything else", d.name),
                    });
                }
                for a in tf::action_list(&st["actions"]) {
                    acts.push((
                        a,
                        format!("{} (data.aws_iam_policy_document.{})", d.file, d.name),
                    ));
                }
            }
            for key in ["source_policy_documents", "override_policy_documents"] {
                for s in tf::strings(&d.body[key]) {
                    exprs.push((s.to_string(), d.file.to_string()));
                }
            }
        }
        if !found_doc {
            for a in tf::quoted_actions(&expr) {
                acts.push((a, file.clone()));
            }
        }
    }
    (acts, problems)
}

/// IAM: every action the code needs is allowed; nothing else is.
pub fn check_iam(infra: &Infra, name: &str, code: &Code) -> Vec<Finding> {
    let mut out = vec![];
    let Some(module) = find_module(infra, name) else {
        return out;
    };
    let f = |file: &str, message: String| Finding {
        function: name.into(),
        file: file.into(),
        message,
    };
    let (allowed, problems) = policy_actions(infra, &module);
    out.extend(problems.into_iter().map(|p| Finding {
        function: name.into(),
        ..p
    }));
    let allowed_norm: BTreeSet<String> = allowed.iter().map(|(a, _)| iam::norm(a)).collect();
    let mut needed: BTreeMap<String, &SdkCall> = BTreeMap::new();
    let mut tolerated: BTreeSet<String> = BTreeSet::new();
    for c in &code.calls {
        for a in iam::needed(&c.service, &c.method) {
            needed.entry(iam::norm(&a)).or_insert(c);
        }
        tolerated.extend(
            iam::tolerated(&c.service, &c.method)
                .iter()
                .map(|a| iam::norm(a)),
        );
    }
    let policy_file = allowed
        .first()
        .map(|(_, f)| f.clone())
        .unwrap_or_else(|| module.file.to_string());
    for (a, c) in &needed {
        let display = iam::needed(&c.service, &c.method)
            .into_iter()
            .find(|x| iam::norm(x) == *a)
            .unwrap_or_else(|| a.clone());
        if !allowed_norm.contains(a) {
            out.push(f(
                &policy_file,
                format!(
                    "missing action {display}: the code calls {}::{} ({}:{}) but module \"{}\"'s role policy does not allow it",
                    c.service,
                    source::pascal(&c.method),
                    c.file,
                    c.line,
                    module.name
                ),
            ));
        }
    }
    let mut reported = BTreeSet::new();
    for (a, file) in &allowed {
        let n = iam::norm(a);
        if !reported.insert(n.clone()) {
            continue;
        }
        if a.contains('*') {
            out.push(f(file, format!("extra action {a}: a wildcard grants more than the code calls; list the exact actions")));
        } else if !needed.contains_key(&n) && !tolerated.contains(&n) {
            out.push(f(file, format!("extra action {a}: no SDK call in functions/{name}/src (or the shared code it uses) needs it")));
        }
    }
    for u in &code.unattributed {
        out.push(f(
            &u.file,
            format!(
                "cannot tell which AWS service `{}.{}()` ({}:{}) calls: type the client (`x: aws_sdk_<svc>::Client`) or name it after its service",
                u.receiver, u.method, u.file, u.line
            ),
        ));
    }
    out
}

/// Everything about one function.
pub fn check_function(repo: &Path, infra: &Infra, name: &str) -> Vec<Finding> {
    let code = scan(repo, name);
    let mut out = check_wiring(repo, infra, name);
    out.extend(check_env(repo, infra, name, &code));
    out.extend(check_iam(infra, name, &code));
    out.sort();
    out.dedup();
    out
}

/// Checked strictly (findings fail the test): the functions that have landed with their
/// Terraform reviewed. The others' findings are printed, not failed, until they are added
/// here; `IAC_CHECK_ALL=1` fails on them too.
pub const LANDED: &[&str] = &[
    "manifest-diff",
    "lifecycle-enforcer",
    "export-compressor",
    "chaos-runner",
    "loadtest-shard",
    "loadtest-coordinator",
    "cost-anomaly",
    "dr-restore",
    "worker-scaler",
    "uptime-probe",
    "alert-router",
];

pub fn is_strict(_repo: &Path, name: &str) -> bool {
    LANDED.contains(&name) || std::env::var("IAC_CHECK_ALL").is_ok_and(|v| v == "1")
}

/// Schedules: UTC, a role, an input, a retry policy and a dead-letter queue each.
pub fn check_schedules(infra: &Infra) -> Vec<Finding> {
    let mut out = vec![];
    for r in infra
        .resources()
        .into_iter()
        .filter(|r| r.kind == "aws_scheduler_schedule")
    {
        let who = format!("aws_scheduler_schedule.{}", r.name);
        let f = |m: String| Finding {
            function: who.clone(),
            file: r.file.to_string(),
            message: m,
        };
        if r.body["schedule_expression_timezone"].as_str() != Some("UTC") {
            out.push(f("schedule_expression_timezone is not \"UTC\"".into()));
        }
        let Some(target) = tf::blocks(r.body, "target").into_iter().next() else {
            out.push(f("has no target".into()));
            continue;
        };
        for (key, why) in [
            ("role_arn", "the execution role"),
            ("input", "the JSON input the function receives"),
        ] {
            if target.get(key).is_none() {
                out.push(f(format!("target has no {key} ({why})")));
            }
        }
        for (key, why) in [
            ("retry_policy", "how long and how often Scheduler retries"),
            ("dead_letter_config", "where undeliverable invocations go"),
        ] {
            if tf::blocks(target, key).is_empty() {
                out.push(f(format!("target has no {key} block ({why})")));
            }
        }
    }
    out
}

/// One aws_s3_bucket_notification per bucket (each replaces the bucket's whole configuration),
/// each depending on its Lambda permission.
pub fn check_notifications(infra: &Infra) -> Vec<Finding> {
    let mut out = vec![];
    let mut by_bucket: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for r in infra
        .resources()
        .into_iter()
        .filter(|r| r.kind == "aws_s3_bucket_notification")
    {
        let bucket = r.body["bucket"].as_str().unwrap_or("").to_string();
        by_bucket
            .entry(bucket)
            .or_default()
            .push(format!("{}.{} ({})", r.kind, r.name, r.file));
        let deps = tf::strings(&r.body["depends_on"]).join(" ");
        let notifies = r.body.get("lambda_function").is_some() || r.body.get("dynamic").is_some();
        if notifies && !deps.contains("aws_lambda_permission.") {
            out.push(Finding {
                function: format!("aws_s3_bucket_notification.{}", r.name),
                file: r.file.to_string(),
                message: "notifies a function but has no depends_on on its aws_lambda_permission (S3 tests the destination when the configuration is saved)".into(),
            });
        }
    }
    for (bucket, list) in by_bucket {
        if list.len() > 1 {
            out.push(Finding {
                function: "aws_s3_bucket_notification".into(),
                file: "infra/".into(),
                message: format!(
                    "bucket {bucket} has {} notification resources, which overwrite each other: {}",
                    list.len(),
                    list.join(", ")
                ),
            });
        }
    }
    out
}
