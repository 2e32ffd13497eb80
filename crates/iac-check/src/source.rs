//! What a function's Rust code reads and calls, found by scanning its source text (no
//! compiler): the environment variables it reads and the AWS SDK operations it sends.
//!
//! The heuristics, and where they stop (docs/iac.md says the same):
//! - Comments and `#[cfg(test)]` items are ignored; string and char literals cannot confuse
//!   the bracket matching.
//! - Environment variables: an UPPER_SNAKE string literal as the first argument of
//!   `<x>vars.required/or/get/parse_or/list(..)` (the `shared::config::Vars` API), of
//!   `env::var(..)`/`env::var_os(..)`, or of `EnvFilter::try_from_env(..)`. A name built at
//!   run time, or passed through a helper closure (`ms("AWS_CONNECT_TIMEOUT_MS", ..)` in
//!   shared/src/aws.rs), is not seen.
//! - SDK operations: every `.send()` is followed back through its builder chain to the first
//!   method called on the client (`self.client.put_object().bucket(..).send()` gives
//!   `put_object`); calls `<client>.<op>(` on an identifier known to hold a client count
//!   too. The service comes from the client's declared type (`x: aws_sdk_s3::Client`,
//!   `aws_sdk_rds::Client::new(..)` assigned to `x`, `Option<aws_sdk_lambda::Client>`), else
//!   from a service name in the receiver (`self.s3`, `clients.lambda()`), else from the only
//!   `aws_sdk_*` crate the file names. A builder stored in a variable and sent later is not
//!   followed; a client hidden behind a generic or a trait object is not typed.

use std::collections::BTreeSet;

/// Source with comments blanked (strings kept), and a skeleton where string and char
/// literal contents are blanked too. Both keep every byte offset.
pub struct Cleaned {
    pub code: String,
    pub skeleton: String,
}

pub fn clean(src: &str) -> Cleaned {
    let b = src.as_bytes();
    let mut code = b.to_vec();
    let mut skel = b.to_vec();
    let mut i = 0;
    let blank = |v: &mut Vec<u8>, from: usize, to: usize| {
        for c in &mut v[from..to] {
            if *c != b'\n' {
                *c = b' ';
            }
        }
    };
    while i < b.len() {
        match b[i] {
            b'/' if b.get(i + 1) == Some(&b'/') => {
                let end = b[i..]
                    .iter()
                    .position(|&c| c == b'\n')
                    .map_or(b.len(), |p| i + p);
                blank(&mut code, i, end);
                blank(&mut skel, i, end);
                i = end;
            }
            b'/' if b.get(i + 1) == Some(&b'*') => {
                let mut depth = 0usize;
                let mut j = i;
                while j < b.len() {
                    if b[j] == b'/' && b.get(j + 1) == Some(&b'*') {
                        depth += 1;
                        j += 2;
                    } else if b[j] == b'*' && b.get(j + 1) == Some(&b'/') {
                        depth -= 1;
                        j += 2;
                        if depth == 0 {
                            break;
                        }
                    } else {
                        j += 1;
                    }
                }
                blank(&mut code, i, j);
                blank(&mut skel, i, j);
                i = j;
            }
            b'r' if matches!(b.get(i + 1), Some(b'"') | Some(b'#'))
                && (i == 0 || !(b[i - 1].is_ascii_alphanumeric() || b[i - 1] == b'_')) =>
            {
                // Raw string r"..." / r#"..."#.
                let mut j = i + 1;
                let mut hashes = 0;
                while b.get(j) == Some(&b'#') {
                    hashes += 1;
                    j += 1;
                }
                if b.get(j) != Some(&b'"') {
                    i += 1;
                    continue;
                }
                let start = j + 1;
                let mut k = start;
                let end = loop {
                    if k >= b.len() {
                        break b.len();
                    }
                    if b[k] == b'"'
                        && b[k + 1..]
                            .iter()
                            .take(hashes)
                            .filter(|&&c| c == b'#')
                            .count()
                            == hashes
                    {
                        break k;
                    }
                    k += 1;
                };
                blank(&mut skel, start, end);
                i = (end + 1 + hashes).min(b.len());
            }
            b'"' => {
                let start = i + 1;
                let mut k = start;
                while k < b.len() && b[k] != b'"' {
                    if b[k] == b'\\' {
                        k += 1;
                    }
                    k += 1;
                }
                let end = k.min(b.len());
                blank(&mut skel, start, end);
                i = end + 1;
            }
            b'\'' => {
                // A char literal ('x', '\n', '\u{..}'); a lifetime has no closing quote.
                let close = if b.get(i + 1) == Some(&b'\\') {
                    b[i + 2..]
                        .iter()
                        .take(10)
                        .position(|&c| c == b'\'')
                        .map(|p| i + 2 + p)
                } else if b.get(i + 2) == Some(&b'\'') {
                    Some(i + 2)
                } else {
                    None
                };
                match close {
                    Some(c) => {
                        blank(&mut skel, i + 1, c);
                        i = c + 1;
                    }
                    None => i += 1,
                }
            }
            _ => i += 1,
        }
    }
    let code = String::from_utf8_lossy(&code).into_owned();
    let skeleton = String::from_utf8_lossy(&skel).into_owned();
    let mut c = Cleaned { code, skeleton };
    strip_cfg_test(&mut c);
    c
}

/// Blanks every `#[cfg(test)]` item (a test module, a test-only fn).
fn strip_cfg_test(c: &mut Cleaned) {
    loop {
        let Some(at) = c.skeleton.find("#[cfg(test)]") else {
            return;
        };
        let sk = c.skeleton.as_bytes();
        // The item ends at its matching '}' or, for `use`/items without a body, at ';'.
        let mut j = at + "#[cfg(test)]".len();
        let mut end = sk.len();
        while j < sk.len() {
            if sk[j] == b';' {
                end = j + 1;
                break;
            }
            if sk[j] == b'{' {
                end = match_forward(sk, j).map_or(sk.len(), |e| e + 1);
                break;
            }
            j += 1;
        }
        blank_range(&mut c.code, at, end);
        blank_range(&mut c.skeleton, at, end);
    }
}

fn blank_range(s: &mut String, from: usize, to: usize) {
    let mut v = std::mem::take(s).into_bytes();
    for ch in &mut v[from..to] {
        if *ch != b'\n' {
            *ch = b' ';
        }
    }
    *s = String::from_utf8_lossy(&v).into_owned();
}

fn match_forward(b: &[u8], open: usize) -> Option<usize> {
    let (o, c) = (b[open], closing(b[open]));
    let mut depth = 0i32;
    for (k, &ch) in b.iter().enumerate().skip(open) {
        if ch == o {
            depth += 1;
        } else if ch == c {
            depth -= 1;
            if depth == 0 {
                return Some(k);
            }
        }
    }
    None
}

fn closing(c: u8) -> u8 {
    match c {
        b'(' => b')',
        b'[' => b']',
        b'{' => b'}',
        _ => c,
    }
}

fn match_backward(b: &[u8], close: usize) -> Option<usize> {
    let c = b[close];
    let o = match c {
        b')' => b'(',
        b']' => b'[',
        b'}' => b'{',
        _ => return None,
    };
    let mut depth = 0i32;
    let mut k = close as isize;
    while k >= 0 {
        let ch = b[k as usize];
        if ch == c {
            depth += 1;
        } else if ch == o {
            depth -= 1;
            if depth == 0 {
                return Some(k as usize);
            }
        }
        k -= 1;
    }
    None
}

fn is_ident(c: u8) -> bool {
    c.is_ascii_alphanumeric() || c == b'_'
}

fn is_env_name(s: &str) -> bool {
    let b = s.as_bytes();
    !b.is_empty()
        && (b[0].is_ascii_uppercase() || b[0] == b'_')
        && b.iter()
            .all(|&c| c.is_ascii_uppercase() || c.is_ascii_digit() || c == b'_')
}

fn line_of(text: &str, at: usize) -> usize {
    text[..at].bytes().filter(|&c| c == b'\n').count() + 1
}

/// How a variable is read.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum EnvUse {
    /// `vars.required(..)`: the function refuses to start without it.
    Required,
    /// `or`, `parse_or`, `get`, `list`, `env::var`: optional, the code has a default.
    Optional,
}

#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct EnvRead {
    pub name: String,
    pub how: EnvUse,
    pub file: String,
    pub line: usize,
}

/// Environment variables read in one cleaned file.
pub fn env_reads(file: &str, c: &Cleaned) -> Vec<EnvRead> {
    let mut out = vec![];
    let code = c.code.as_bytes();
    let sk = c.skeleton.as_bytes();
    const VARS_METHODS: &[(&str, EnvUse)] = &[
        ("required", EnvUse::Required),
        ("req", EnvUse::Required),
        ("or", EnvUse::Optional),
        ("parse_or", EnvUse::Optional),
        ("get", EnvUse::Optional),
        ("list", EnvUse::Optional),
    ];
    // `<something ending in vars>.<method>(` (newlines and turbofish allowed).
    let mut i = 0;
    while let Some(p) = c.skeleton[i..].find('.') {
        let dot = i + p;
        i = dot + 1;
        // Receiver: the identifier before the dot (skipping whitespace).
        let mut r = dot;
        while r > 0 && sk[r - 1].is_ascii_whitespace() {
            r -= 1;
        }
        let rend = r;
        while r > 0 && is_ident(sk[r - 1]) {
            r -= 1;
        }
        let receiver = &c.skeleton[r..rend];
        if !receiver.to_ascii_lowercase().ends_with("vars") {
            continue;
        }
        let (method, after) = ident_after(sk, dot + 1);
        let Some(how) = VARS_METHODS
            .iter()
            .find(|(m, _)| *m == method)
            .map(|(_, h)| *h)
        else {
            continue;
        };
        if let Some(name) = first_string_arg(code, sk, after) {
            if is_env_name(&name) {
                out.push(EnvRead {
                    name,
                    how,
                    file: file.into(),
                    line: line_of(&c.code, dot),
                });
            }
        }
    }
    // Helpers that pass a name through: `fn flag(vars: &Vars, name: &str) { vars.get(name) }`
    // or `let ms = |name: &str, d| vars.parse_or(name, d, ..)`, called as
    // `flag(vars, "CHAOS_DRY_RUN")` / `ms("AWS_CONNECT_TIMEOUT_MS", 3_000)`.
    for (helper, how) in name_helpers(c) {
        let mut i = 0;
        while let Some(p) = c.skeleton[i..].find(helper.as_str()) {
            let at = i + p;
            i = at + helper.len();
            if at > 0 && (is_ident(sk[at - 1]) || sk[at - 1] == b'.')
                || sk.get(i).is_some_and(|&ch| is_ident(ch))
            {
                continue;
            }
            let mut j = i;
            while j < sk.len() && sk[j].is_ascii_whitespace() {
                j += 1;
            }
            if sk.get(j) != Some(&b'(') {
                continue;
            }
            let Some(close) = match_forward(sk, j) else {
                continue;
            };
            for name in top_level_literals(code, sk, j + 1, close) {
                if is_env_name(&name) {
                    out.push(EnvRead {
                        name,
                        how,
                        file: file.into(),
                        line: line_of(&c.code, at),
                    });
                }
            }
        }
    }
    for call in ["env::var", "env::var_os", "try_from_env", "std::env::var"] {
        let mut i = 0;
        while let Some(p) = c.skeleton[i..].find(call) {
            let at = i + p;
            i = at + call.len();
            if at > 0 && is_ident(sk[at - 1]) || sk.get(i).is_some_and(|&ch| is_ident(ch)) {
                continue;
            }
            if let Some(name) = first_string_arg(code, sk, i) {
                if is_env_name(&name) {
                    out.push(EnvRead {
                        name,
                        how: EnvUse::Optional,
                        file: file.into(),
                        line: line_of(&c.code, at),
                    });
                }
            }
        }
    }
    out.sort();
    out.dedup();
    out
}

/// Functions and closures that read a variable whose name is their parameter.
fn name_helpers(c: &Cleaned) -> Vec<(String, EnvUse)> {
    let s = &c.skeleton;
    let sk = s.as_bytes();
    let mut out = vec![];
    let reads_param = |body: &str| -> Option<EnvUse> {
        let mut found = None;
        for (m, how) in [
            ("required", EnvUse::Required),
            ("get", EnvUse::Optional),
            ("or", EnvUse::Optional),
            ("parse_or", EnvUse::Optional),
            ("list", EnvUse::Optional),
        ] {
            let pat = format!("vars.{m}(");
            let mut i = 0;
            while let Some(p) = body[i..].find(&pat) {
                let a = i + p + pat.len();
                i = a;
                let first = body[a..].trim_start();
                let param = first.starts_with(|ch: char| ch.is_ascii_lowercase() || ch == '_');
                if param && (found.is_none() || how == EnvUse::Required) {
                    found = Some(how);
                }
            }
        }
        found
    };
    for (name, st, en) in fn_bodies(c) {
        if let Some(how) = reads_param(&s[st..=en]) {
            out.push((name, how));
        }
    }
    // let NAME = |..| <expr or block>;
    let mut i = 0;
    while let Some(p) = s[i..].find("let ") {
        let at = i + p + 4;
        i = at;
        let (name, after) = ident_after(sk, at);
        let rest = s[after..].trim_start();
        let Some(rest) = rest.strip_prefix('=') else {
            continue;
        };
        if !rest.trim_start().starts_with('|') {
            continue;
        }
        let end = s[after..].find(';').map_or(s.len(), |e| after + e);
        // A block body may contain ';': take up to the matching '}' when it opens one.
        let seg_end = match s[after..end].find('{') {
            Some(b) => match_forward(sk, after + b).unwrap_or(end),
            None => end,
        };
        if let Some(how) = reads_param(&s[after..seg_end.min(s.len())]) {
            out.push((name.to_string(), how));
        }
    }
    out
}

/// String literals that are whole top-level arguments between `from` and `to`.
fn top_level_literals(code: &[u8], sk: &[u8], from: usize, to: usize) -> Vec<String> {
    let mut out = vec![];
    let mut depth = 0i32;
    let mut k = from;
    while k < to {
        match sk[k] {
            b'(' | b'[' | b'{' => depth += 1,
            b')' | b']' | b'}' => depth -= 1,
            b'"' if depth == 0 => {
                let start = k + 1;
                let end = start + sk[start..to].iter().position(|&c| c == b'"').unwrap_or(0);
                if end > start {
                    out.push(String::from_utf8_lossy(&code[start..end]).into_owned());
                }
                k = end;
            }
            _ => {}
        }
        k += 1;
    }
    out
}

/// The identifier starting at `at` (after whitespace), and the offset after it.
fn ident_after(b: &[u8], mut at: usize) -> (&str, usize) {
    while at < b.len() && b[at].is_ascii_whitespace() {
        at += 1;
    }
    let s = at;
    while at < b.len() && is_ident(b[at]) {
        at += 1;
    }
    (std::str::from_utf8(&b[s..at]).unwrap_or(""), at)
}

/// The string literal that is the first argument of the call whose name ends at `at`.
fn first_string_arg(code: &[u8], sk: &[u8], mut at: usize) -> Option<String> {
    while at < sk.len() && sk[at].is_ascii_whitespace() {
        at += 1;
    }
    // Turbofish.
    if sk[at..].starts_with(b"::<") {
        let mut depth = 0;
        while at < sk.len() {
            match sk[at] {
                b'<' => depth += 1,
                b'>' => {
                    depth -= 1;
                    if depth == 0 {
                        at += 1;
                        break;
                    }
                }
                _ => {}
            }
            at += 1;
        }
        while at < sk.len() && sk[at].is_ascii_whitespace() {
            at += 1;
        }
    }
    if sk.get(at) != Some(&b'(') {
        return None;
    }
    at += 1;
    while at < sk.len() && sk[at].is_ascii_whitespace() {
        at += 1;
    }
    if sk.get(at) == Some(&b'&') {
        at += 1;
    }
    if sk.get(at) != Some(&b'"') {
        return None;
    }
    let start = at + 1;
    let end = start + sk[start..].iter().position(|&c| c == b'"')?;
    Some(String::from_utf8_lossy(&code[start..end]).into_owned())
}

/// An SDK operation the code sends.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct SdkCall {
    /// The crate's service, as in `aws_sdk_<service>` (`s3`, `lambda`, `costexplorer`).
    pub service: String,
    /// The fluent method, e.g. `put_object`.
    pub method: String,
    pub file: String,
    pub line: usize,
}

/// A `.send()` whose client could not be told.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Unattributed {
    pub method: String,
    pub receiver: String,
    pub file: String,
    pub line: usize,
}

/// Identifiers (fields, bindings) declared or built as an `aws_sdk_<svc>::Client`, with
/// where each declaration is: one file may have several structs with a `client` field.
#[derive(Debug, Clone)]
pub struct Clients(Vec<(String, String, usize)>, String);

impl Clients {
    /// The service of `name` used at `at`. When one name is declared with several services
    /// (enum variants or structs each with a `client`), the service named last in the 400
    /// bytes before the call (`AwsTarget::Ecs { client, .. } =>`); else the nearest
    /// declaration before the call, else the first.
    pub fn service(&self, name: &str, at: usize) -> Option<String> {
        let decls: Vec<&(String, String, usize)> =
            self.0.iter().filter(|(n, _, _)| n == name).collect();
        let services: BTreeSet<&String> = decls.iter().map(|(_, s, _)| s).collect();
        if services.len() > 1 && at <= self.1.len() {
            let window = &self.1[at.saturating_sub(400)..at];
            let best = services
                .iter()
                .filter_map(|svc| {
                    let short = match svc.as_str() {
                        "autoscaling" => "asg",
                        "costexplorer" => "ce",
                        "secretsmanager" => "secret",
                        other => other,
                    };
                    [svc.as_str(), short]
                        .iter()
                        .filter_map(|n| window.rfind(n))
                        .max()
                        .map(|p| (p, *svc))
                })
                .max_by_key(|(p, _)| *p);
            if let Some((_, svc)) = best {
                return Some(svc.clone());
            }
        }
        decls
            .iter()
            .filter(|(_, _, p)| *p <= at)
            .max_by_key(|(_, _, p)| *p)
            .or_else(|| decls.first())
            .map(|(_, s, _)| s.clone())
    }

    pub fn get(&self, name: &str) -> Option<String> {
        self.service(name, usize::MAX)
    }

    pub fn contains_key(&self, name: &str) -> bool {
        self.0.iter().any(|(n, _, _)| n == name)
    }

    pub fn names(&self) -> BTreeSet<String> {
        self.0.iter().map(|(n, _, _)| n.clone()).collect()
    }

    pub fn services(&self) -> impl Iterator<Item = String> + '_ {
        self.0.iter().map(|(_, s, _)| s.clone())
    }
}

pub fn typed_clients(c: &Cleaned) -> Clients {
    let mut m = Clients(vec![], c.skeleton.to_ascii_lowercase());
    let s = &c.skeleton;
    let sk = s.as_bytes();
    let mut i = 0;
    while let Some(p) = s[i..].find("aws_sdk_") {
        let at = i + p;
        i = at + 8;
        let (svc, after) = ident_after(sk, at + 8);
        let svc = svc.to_string();
        if !s[after..].starts_with("::Client") {
            continue;
        }
        let tail = after + "::Client".len();
        if sk.get(tail).is_some_and(|&ch| is_ident(ch)) {
            continue;
        }
        // `name: [&][Option<]aws_sdk_x::Client` -> walk back over `Option<`, `&`, `Arc<`.
        let mut k = at;
        loop {
            while k > 0 && sk[k - 1].is_ascii_whitespace() {
                k -= 1;
            }
            if k > 0 && (sk[k - 1] == b'&' || sk[k - 1] == b'<') {
                k -= 1;
                while k > 0 && is_ident(sk[k - 1]) {
                    k -= 1;
                }
                continue;
            }
            break;
        }
        if k > 0 && sk[k - 1] == b':' && (k < 2 || sk[k - 2] != b':') {
            let mut e = k - 1;
            while e > 0 && sk[e - 1].is_ascii_whitespace() {
                e -= 1;
            }
            let mut b0 = e;
            while b0 > 0 && is_ident(sk[b0 - 1]) {
                b0 -= 1;
            }
            if b0 < e {
                m.0.push((s[b0..e].to_string(), svc.clone(), at));
            }
        }
        // `let name = aws_sdk_x::Client::new(..)` / `from_conf`.
        let mut k = at;
        while k > 0 && sk[k - 1].is_ascii_whitespace() {
            k -= 1;
        }
        if k > 0 && sk[k - 1] == b'=' && (k < 2 || !matches!(sk[k - 2], b'=' | b'!' | b'<' | b'>'))
        {
            let mut e = k - 1;
            while e > 0 && sk[e - 1].is_ascii_whitespace() {
                e -= 1;
            }
            // skip a type annotation `: T`
            let mut b0 = e;
            while b0 > 0 && is_ident(sk[b0 - 1]) {
                b0 -= 1;
            }
            if b0 < e {
                m.0.push((s[b0..e].to_string(), svc.clone(), at));
            }
        }
    }
    m
}

/// `aws_sdk_*` crates the file names.
pub fn sdk_crates(c: &Cleaned) -> BTreeSet<String> {
    let s = &c.skeleton;
    let sk = s.as_bytes();
    let mut out = BTreeSet::new();
    let mut i = 0;
    while let Some(p) = s[i..].find("aws_sdk_") {
        let at = i + p;
        i = at + 8;
        if at > 0 && is_ident(sk[at - 1]) {
            continue;
        }
        let (svc, _) = ident_after(sk, at + 8);
        if !svc.is_empty() {
            out.insert(svc.to_string());
        }
    }
    out
}

const HTTP_VERBS: &[&str] = &[
    "get", "post", "put", "patch", "delete", "head", "request", "execute", "send",
];

/// Methods that hand out a client rather than being an operation.
const ACCESSORS: &[&str] = &["clone", "as_ref", "client", "borrow", "deref"];

fn service_in_name(name: &str, known: &BTreeSet<String>) -> Option<String> {
    let n = name.to_ascii_lowercase();
    let aliases: &[(&str, &str)] = &[
        ("costexplorer", "costexplorer"),
        ("cost_explorer", "costexplorer"),
        ("ce", "costexplorer"),
        ("secretsmanager", "secretsmanager"),
        ("secrets", "secretsmanager"),
        ("cloudwatch", "cloudwatch"),
        ("cw", "cloudwatch"),
        ("autoscaling", "autoscaling"),
        ("asg", "autoscaling"),
        ("budgets", "budgets"),
        ("lambda", "lambda"),
        ("s3", "s3"),
        ("rds", "rds"),
        ("ssm", "ssm"),
        ("sns", "sns"),
        ("sqs", "sqs"),
        ("fis", "fis"),
        ("ecs", "ecs"),
    ];
    for part in std::iter::once(n.as_str()).chain(n.split('_')) {
        if let Some((_, s)) = aliases.iter().find(|(a, _)| *a == part) {
            return Some(s.to_string());
        }
        if known.contains(part) {
            return Some(part.to_string());
        }
    }
    None
}

/// The SDK operations one cleaned file sends.
pub fn sdk_calls(file: &str, c: &Cleaned, clients: &Clients) -> (Vec<SdkCall>, Vec<Unattributed>) {
    let s = &c.skeleton;
    let sk = s.as_bytes();
    let crates = sdk_crates(c);
    let known: BTreeSet<String> = clients.services().chain(crates.iter().cloned()).collect();
    let mut calls = vec![];
    let mut unknown = vec![];
    let mut seen_at = BTreeSet::new();
    let mut i = 0;
    while let Some(p) = s[i..].find(".send()") {
        let at = i + p;
        i = at + 7;
        // Walk back the chain: `.m(args)` links.
        let mut chain: Vec<(String, usize)> = vec![];
        let mut k = at;
        let receiver_end;
        loop {
            let mut e = k;
            while e > 0 && sk[e - 1].is_ascii_whitespace() {
                e -= 1;
            }
            if e > 0 && sk[e - 1] == b'?' {
                e -= 1;
            }
            if e == 0 || sk[e - 1] != b')' {
                receiver_end = e;
                break;
            }
            let Some(open) = match_backward(sk, e - 1) else {
                receiver_end = e;
                break;
            };
            let mut n = open;
            // turbofish `::<..>` before '('
            if n > 0 && sk[n - 1] == b'>' {
                if let Some(lt) = s[..n].rfind("::<") {
                    n = lt;
                }
            }
            let ne = n;
            while n > 0 && is_ident(sk[n - 1]) {
                n -= 1;
            }
            if n >= 2 && &s[n - 2..n] == "r#" {
                n -= 2;
            }
            let name = s[n..ne].to_string();
            let mut d = n;
            while d > 0 && sk[d - 1].is_ascii_whitespace() {
                d -= 1;
            }
            if name.is_empty() || d == 0 || sk[d - 1] != b'.' {
                // A free function or path call, e.g. `Client::new(..)`: the chain starts here.
                receiver_end = ne;
                break;
            }
            chain.push((name, n));
            k = d - 1;
        }
        // chain is innermost-last: the op is the earliest link not an accessor.
        let mut links: Vec<(String, usize)> = chain.into_iter().rev().collect();
        let mut receiver = receiver_tail(s, receiver_end);
        while let Some((m, _)) = links.first() {
            let svc_accessor =
                service_in_name(m, &known).is_some() && !m.contains("_object") && links.len() > 1;
            if ACCESSORS.contains(&m.as_str()) || svc_accessor {
                receiver = m.clone();
                links.remove(0);
            } else {
                break;
            }
        }
        let Some((op, op_at)) = links.first().cloned() else {
            continue;
        };
        // HTTP clients (reqwest, hyper) and channels also `.send()`; SDK operations are never
        // a bare verb.
        if HTTP_VERBS.contains(&op.as_str()) && !clients.contains_key(&receiver) {
            continue;
        }
        seen_at.insert(op_at);
        let service = clients
            .service(&receiver, op_at)
            .or_else(|| service_in_name(&receiver, &known))
            .or_else(|| {
                (crates.len() == 1)
                    .then(|| crates.iter().next().cloned())
                    .flatten()
            });
        let line = line_of(s, op_at);
        match service {
            Some(service) => calls.push(SdkCall {
                service,
                method: op,
                file: file.into(),
                line,
            }),
            None => unknown.push(Unattributed {
                method: op,
                receiver,
                file: file.into(),
                line,
            }),
        }
    }
    // `<typed client>.<op>(` not followed to a send() above.
    for name in clients.names() {
        let mut i = 0;
        while let Some(p) = s[i..].find(name.as_str()) {
            let at = i + p;
            i = at + name.len();
            if at > 0 && is_ident(sk[at - 1]) || sk.get(i).is_some_and(|&ch| is_ident(ch)) {
                continue;
            }
            // `name . op (` with any whitespace (a builder kept in a variable and sent later).
            let mut j = i;
            while j < sk.len() && sk[j].is_ascii_whitespace() {
                j += 1;
            }
            if sk.get(j) != Some(&b'.') {
                continue;
            }
            let (m, after) = ident_after(sk, j + 1);
            let op_at = after - m.len();
            if m.is_empty() || ACCESSORS.contains(&m) || seen_at.contains(&op_at) {
                continue;
            }
            if s[after..].starts_with("()") {
                let Some(svc) = clients.service(&name, at) else {
                    continue;
                };
                calls.push(SdkCall {
                    service: svc,
                    method: m.to_string(),
                    file: file.into(),
                    line: line_of(s, op_at),
                });
            }
        }
    }
    calls.sort();
    // Each call site stays (only exact repeats go): the function scan keeps a shared call only
    // when its line lies in a fn the function uses, so collapsing a file's calls of one
    // operation to its first line lost PutObject of `put_conditional` behind `put_bytes`'s.
    calls.dedup();
    (calls, unknown)
}

/// The last identifier of the receiver expression ending at `end` (`self.client` -> `client`).
fn receiver_tail(s: &str, end: usize) -> String {
    let b = s.as_bytes();
    let mut e = end;
    while e > 0 && b[e - 1].is_ascii_whitespace() {
        e -= 1;
    }
    let mut st = e;
    while st > 0 && is_ident(b[st - 1]) {
        st -= 1;
    }
    s[st..e].to_string()
}

/// `put_object` -> `PutObject`, `list_objects_v2` -> `ListObjectsV2`.
/// Calls the scan cannot see as SDK calls (an HTTP request signed with SigV4 by hand, such
/// as a remote write to Amazon Managed Service for Prometheus): a comment
/// `// iam-action: <prefix>:<Action>` where the request is signed names the action it needs,
/// and the IAM check holds the role policy to it like any SDK call.
pub fn signed_http_calls(file: &str, src: &str) -> Vec<SdkCall> {
    src.lines()
        .enumerate()
        .filter_map(|(i, l)| {
            let rest = l.split("// iam-action:").nth(1)?;
            let (service, action) = rest.split_whitespace().next()?.split_once(':')?;
            Some(SdkCall {
                service: service.to_string(),
                method: action.to_string(),
                file: file.to_string(),
                line: i + 1,
            })
        })
        .collect()
}

pub fn pascal(snake: &str) -> String {
    snake
        .split('_')
        .filter(|p| !p.is_empty())
        .map(|p| {
            let mut c = p.chars();
            match c.next() {
                Some(f) => f.to_ascii_uppercase().to_string() + c.as_str(),
                None => String::new(),
            }
        })
        .collect()
}

/// Names of the `fn`s defined in a cleaned file, with the byte range of each body.
pub fn fn_bodies(c: &Cleaned) -> Vec<(String, usize, usize)> {
    let s = &c.skeleton;
    let sk = s.as_bytes();
    let mut out = vec![];
    let mut i = 0;
    while let Some(p) = s[i..].find("fn ") {
        let at = i + p;
        i = at + 3;
        if at > 0 && is_ident(sk[at - 1]) {
            continue;
        }
        let (name, after) = ident_after(sk, at + 3);
        if name.is_empty() {
            continue;
        }
        // The body: the first '{' before any ';' (a trait method without body has ';').
        let mut j = after;
        let mut depth = 0i32;
        while j < sk.len() {
            match sk[j] {
                b'(' | b'<' | b'[' => depth += 1,
                b')' | b']' => depth -= 1,
                b'>' if j > 0 && sk[j - 1] != b'-' && sk[j - 1] != b'=' => depth -= 1,
                b';' if depth <= 0 => break,
                b'{' if depth <= 0 => {
                    if let Some(e) = match_forward(sk, j) {
                        out.push((name.to_string(), j, e));
                    }
                    break;
                }
                _ => {}
            }
            j += 1;
        }
    }
    out
}

/// Whether the cleaned text calls a method or function named `name` (`.name(` or `name(`).
pub fn calls_name(text: &str, name: &str) -> bool {
    let b = text.as_bytes();
    let mut i = 0;
    while let Some(p) = text[i..].find(name) {
        let at = i + p;
        i = at + name.len();
        if at > 0 && is_ident(b[at - 1]) {
            continue;
        }
        if at >= 3 && &text[at - 3..at] == "fn " {
            continue;
        }
        let mut j = at + name.len();
        if b.get(j).is_some_and(|&c| is_ident(c)) {
            continue;
        }
        while j < b.len() && b[j].is_ascii_whitespace() {
            j += 1;
        }
        if b.get(j) == Some(&b'(') || text[j..].starts_with("::<") {
            return true;
        }
    }
    false
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn env_reads_follow_the_vars_api_and_skip_tests_and_comments() {
        let src = r#"
            fn f(vars: &Vars) {
                let a = vars.required("PRIMARY_BUCKET", "x")?;
                let b = vars.or("REPORT_PREFIX", "reports/");
                let c = vars
                    .parse_or::<u32>(
                        "GZIP_LEVEL", 6, "level")?;
                let d = self.vars.list("PREFIXES");
                // vars.required("IN_COMMENT", "x")
                let e = other.get("NOT_VARS");
                let f = std::env::var("RUST_LOG");
                let g = "vars.or(\"IN_STRING\", \"x\")";
                let h = flag(vars, "CHAOS_DRY_RUN")?;
                let ms = |name: &str, d: u64| vars.parse_or(name, d, "ms");
                let t = ms("AWS_CONNECT_TIMEOUT_MS", 3_000)?;
            }
            fn flag(vars: &Vars, name: &str) -> bool { vars.get(name).is_some() }
            #[cfg(test)]
            mod tests { fn t() { vars.required("TEST_ONLY", "x"); } }
        "#;
        let c = clean(src);
        let got: Vec<(String, EnvUse)> = env_reads("f.rs", &c)
            .into_iter()
            .map(|r| (r.name, r.how))
            .collect();
        assert_eq!(
            got,
            vec![
                ("AWS_CONNECT_TIMEOUT_MS".into(), EnvUse::Optional),
                ("CHAOS_DRY_RUN".into(), EnvUse::Optional),
                ("GZIP_LEVEL".into(), EnvUse::Optional),
                ("PREFIXES".into(), EnvUse::Optional),
                ("PRIMARY_BUCKET".into(), EnvUse::Required),
                ("REPORT_PREFIX".into(), EnvUse::Optional),
                ("RUST_LOG".into(), EnvUse::Optional),
            ]
        );
    }

    #[test]
    fn sdk_calls_follow_builder_chains_to_the_client() {
        let src = r#"
            use aws_sdk_s3::types::Tag;
            struct P { client: aws_sdk_s3::Client, lambda: Option<aws_sdk_lambda::Client> }
            async fn a(p: &P) {
                p.client
                    .put_object()
                    .bucket("b(")
                    .key(format!("{}", x(')')))
                    .send()
                    .await?;
                if let Some(lambda) = &p.lambda {
                    lambda.invoke().function_name("f").send().await?;
                }
                let rds = aws_sdk_rds::Client::new(&cfg);
                rds.describe_db_instances().into_paginator().send();
                clients.s3().get_object().send().await;
            }
        "#;
        let c = clean(src);
        let clients = typed_clients(&c);
        assert_eq!(clients.get("client").as_deref(), Some("s3"));
        assert_eq!(clients.get("rds").as_deref(), Some("rds"));
        let (calls, unknown) = sdk_calls("f.rs", &c, &clients);
        let got: Vec<(String, String)> = calls.into_iter().map(|c| (c.service, c.method)).collect();
        assert!(unknown.is_empty(), "{unknown:?}");
        assert_eq!(
            got,
            vec![
                ("lambda".into(), "invoke".into()),
                ("rds".into(), "describe_db_instances".into()),
                ("s3".into(), "get_object".into()),
                ("s3".into(), "put_object".into()),
            ]
        );
    }

    #[test]
    fn pascal_case() {
        assert_eq!(pascal("list_objects_v2"), "ListObjectsV2");
        assert_eq!(
            pascal("restore_db_instance_to_point_in_time"),
            "RestoreDbInstanceToPointInTime"
        );
    }
}
