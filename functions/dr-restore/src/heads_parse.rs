/// The revision ids in the output of `alembic heads` (`<rev> (head)` per line; `alembic heads
/// --verbose` prints `Rev: <rev> (head)`), or in a plain list of ids (one per line or
/// comma-separated). Shared by build.rs and the crate.
pub fn parse_heads(text: &str) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for line in text.lines().flat_map(|l| l.split(',')) {
        let mut words = line.split_whitespace();
        let mut first = words.next();
        if first == Some("Rev:") {
            first = words.next();
        }
        if let Some(w) = first {
            let ok = w.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
            if ok && !out.iter().any(|x| x == w) {
                out.push(w.to_string());
            }
        }
    }
    out
}
