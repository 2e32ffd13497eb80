//! Just enough HTTP/1.1 to proxy one message at a time: the head (start line + headers), and
//! the body framed by Content-Length, chunked transfer coding, or the end of the connection.
//! Bodies are buffered whole: this proxy exists for tests, where objects are small, and the
//! whole body must be consumed before the proxy can answer in the upstream's place.

use std::io;

use tokio::io::{AsyncRead, AsyncReadExt};

/// Largest head accepted (S3 request heads are a few kB).
pub const MAX_HEAD: usize = 64 * 1024;

/// A message head: the start line and the headers in order, names as sent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Head {
    pub start: String,
    pub headers: Vec<(String, String)>,
}

impl Head {
    pub fn parse(raw: &[u8]) -> io::Result<Head> {
        let text = std::str::from_utf8(raw).map_err(|_| bad("head is not UTF-8"))?;
        let mut lines = text.split("\r\n");
        let start = lines.next().unwrap_or_default().to_string();
        if start.split(' ').count() < 2 {
            return Err(bad(format!("malformed start line {start:?}")));
        }
        let mut headers = vec![];
        for line in lines.filter(|l| !l.is_empty()) {
            let (name, value) = line
                .split_once(':')
                .ok_or_else(|| bad(format!("malformed header line {line:?}")))?;
            headers.push((name.trim().to_string(), value.trim().to_string()));
        }
        Ok(Head { start, headers })
    }

    pub fn get(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    fn has_token(&self, name: &str, token: &str) -> bool {
        self.headers
            .iter()
            .filter(|(n, _)| n.eq_ignore_ascii_case(name))
            .flat_map(|(_, v)| v.split(','))
            .any(|t| t.trim().eq_ignore_ascii_case(token))
    }

    pub fn is_chunked(&self) -> bool {
        self.has_token("transfer-encoding", "chunked")
    }

    pub fn content_length(&self) -> io::Result<Option<u64>> {
        match self.get("content-length") {
            None => Ok(None),
            Some(v) => v
                .parse()
                .map(Some)
                .map_err(|_| bad(format!("bad Content-Length {v:?}"))),
        }
    }

    /// Request method and target (`GET`, `/bucket/key?x`).
    pub fn request_line(&self) -> (&str, &str) {
        let mut it = self.start.split(' ');
        (it.next().unwrap_or_default(), it.next().unwrap_or_default())
    }

    pub fn version(&self, is_request: bool) -> &str {
        if is_request {
            self.start.rsplit(' ').next().unwrap_or_default()
        } else {
            self.start.split(' ').next().unwrap_or_default()
        }
    }

    /// Response status code.
    pub fn status(&self) -> u16 {
        self.start
            .split(' ')
            .nth(1)
            .and_then(|s| s.parse().ok())
            .unwrap_or(0)
    }

    /// Whether the sender of this message wants the connection closed after it.
    pub fn wants_close(&self, is_request: bool) -> bool {
        if self.has_token("connection", "close") {
            return true;
        }
        self.version(is_request) == "HTTP/1.0" && !self.has_token("connection", "keep-alive")
    }

    /// The head as bytes, without the hop-by-hop connection headers (each hop manages its own
    /// connection), plus `extra` headers.
    pub fn to_bytes(&self, extra: &[(&str, &str)]) -> Vec<u8> {
        let mut out = String::with_capacity(256);
        out.push_str(&self.start);
        out.push_str("\r\n");
        for (n, v) in &self.headers {
            if ["connection", "keep-alive", "proxy-connection"]
                .iter()
                .any(|h| n.eq_ignore_ascii_case(h))
            {
                continue;
            }
            out.push_str(&format!("{n}: {v}\r\n"));
        }
        for (n, v) in extra {
            out.push_str(&format!("{n}: {v}\r\n"));
        }
        out.push_str("\r\n");
        out.into_bytes()
    }
}

pub fn bad(msg: impl Into<String>) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, msg.into())
}

/// How a message body is delimited.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Framing {
    None,
    Length(u64),
    Chunked,
    /// Until the sender closes (responses only).
    UntilClose,
}

pub fn request_framing(h: &Head) -> io::Result<Framing> {
    if h.is_chunked() {
        return Ok(Framing::Chunked);
    }
    Ok(match h.content_length()? {
        Some(0) | None => Framing::None,
        Some(n) => Framing::Length(n),
    })
}

pub fn response_framing(h: &Head, request_method: &str) -> io::Result<Framing> {
    let status = h.status();
    if request_method.eq_ignore_ascii_case("HEAD")
        || (100..200).contains(&status)
        || status == 204
        || status == 304
    {
        return Ok(Framing::None);
    }
    if h.is_chunked() {
        return Ok(Framing::Chunked);
    }
    Ok(match h.content_length()? {
        Some(0) => Framing::None,
        Some(n) => Framing::Length(n),
        None => Framing::UntilClose,
    })
}

/// A connection with a read buffer (bytes read past the current message are kept for the
/// next one, so pipelined or quickly-following requests are not lost).
pub struct Reader<R> {
    pub inner: R,
    buf: Vec<u8>,
}

impl<R: AsyncRead + Unpin> Reader<R> {
    pub fn new(inner: R) -> Self {
        Reader { inner, buf: vec![] }
    }

    async fn fill(&mut self) -> io::Result<usize> {
        let mut chunk = [0u8; 16 * 1024];
        let n = self.inner.read(&mut chunk).await?;
        self.buf.extend_from_slice(&chunk[..n]);
        Ok(n)
    }

    /// The next head, or `None` at a clean end of stream before any byte of it.
    pub async fn read_head(&mut self) -> io::Result<Option<Vec<u8>>> {
        loop {
            if let Some(pos) = find(&self.buf, b"\r\n\r\n") {
                let head: Vec<u8> = self.buf.drain(..pos + 4).collect();
                return Ok(Some(head));
            }
            if self.buf.len() > MAX_HEAD {
                return Err(bad("head too large"));
            }
            if self.fill().await? == 0 {
                if self.buf.is_empty() {
                    return Ok(None);
                }
                return Err(io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    "connection closed inside a head",
                ));
            }
        }
    }

    async fn take(&mut self, n: usize) -> io::Result<Vec<u8>> {
        while self.buf.len() < n {
            if self.fill().await? == 0 {
                return Err(io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    "connection closed inside a body",
                ));
            }
        }
        Ok(self.buf.drain(..n).collect())
    }

    async fn line(&mut self) -> io::Result<Vec<u8>> {
        loop {
            if let Some(pos) = find(&self.buf, b"\r\n") {
                return Ok(self.buf.drain(..pos + 2).collect());
            }
            if self.buf.len() > MAX_HEAD {
                return Err(bad("chunk line too long"));
            }
            if self.fill().await? == 0 {
                return Err(io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    "connection closed inside a chunk line",
                ));
            }
        }
    }

    /// The body bytes exactly as sent (chunk framing kept, so it can be relayed verbatim).
    pub async fn read_body(&mut self, framing: Framing) -> io::Result<Vec<u8>> {
        match framing {
            Framing::None => Ok(vec![]),
            Framing::Length(n) => {
                let n = usize::try_from(n).map_err(|_| bad("body too large"))?;
                self.take(n).await
            }
            Framing::Chunked => {
                let mut out = vec![];
                loop {
                    let line = self.line().await?;
                    let text = std::str::from_utf8(&line).map_err(|_| bad("chunk size"))?;
                    let size_hex = text.trim_end().split(';').next().unwrap_or_default().trim();
                    let size = usize::from_str_radix(size_hex, 16)
                        .map_err(|_| bad(format!("bad chunk size {size_hex:?}")))?;
                    out.extend_from_slice(&line);
                    if size == 0 {
                        // Trailers, then the empty line.
                        loop {
                            let t = self.line().await?;
                            out.extend_from_slice(&t);
                            if t == b"\r\n" {
                                return Ok(out);
                            }
                        }
                    }
                    let data = self.take(size + 2).await?;
                    out.extend_from_slice(&data);
                }
            }
            Framing::UntilClose => {
                while self.fill().await? > 0 {}
                Ok(std::mem::take(&mut self.buf))
            }
        }
    }
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

/// An S3-style XML error response (what S3 sends for throttling and internal errors).
pub fn s3_error(
    status: u16,
    reason: &str,
    code: &str,
    message: &str,
    request_id: &str,
    head_only: bool,
) -> Vec<u8> {
    let body = format!(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<Error><Code>{code}</Code><Message>{message}</Message><RequestId>{request_id}</RequestId><HostId>fault-proxy</HostId></Error>"
    );
    let mut out = format!(
        "HTTP/1.1 {status} {reason}\r\nContent-Type: application/xml\r\nContent-Length: {}\r\nx-amz-request-id: {request_id}\r\nx-fault-proxy: injected\r\n\r\n",
        body.len()
    )
    .into_bytes();
    if !head_only {
        out.extend_from_slice(body.as_bytes());
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn heads_parse_and_frame() {
        let h = Head::parse(b"PUT /b/k?x=1 HTTP/1.1\r\nHost: a\r\ncontent-length: 5\r\nConnection: keep-alive\r\n\r\n").unwrap();
        assert_eq!(h.request_line(), ("PUT", "/b/k?x=1"));
        assert_eq!(request_framing(&h).unwrap(), Framing::Length(5));
        assert!(!h.wants_close(true));
        let bytes = String::from_utf8(h.to_bytes(&[("X-A", "1")])).unwrap();
        assert!(
            !bytes.to_ascii_lowercase().contains("connection"),
            "{bytes}"
        );
        assert!(bytes.ends_with("X-A: 1\r\n\r\n"));

        let r = Head::parse(b"HTTP/1.0 200 OK\r\nContent-Type: x\r\n\r\n").unwrap();
        assert_eq!(r.status(), 200);
        assert!(r.wants_close(false));
        assert_eq!(response_framing(&r, "GET").unwrap(), Framing::UntilClose);
        assert_eq!(response_framing(&r, "HEAD").unwrap(), Framing::None);
        let c =
            Head::parse(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip, chunked\r\n\r\n").unwrap();
        assert_eq!(response_framing(&c, "GET").unwrap(), Framing::Chunked);
        assert!(Head::parse(b"nonsense\r\n\r\n").is_err());
        assert!(Head::parse(b"GET / HTTP/1.1\r\nno-colon\r\n\r\n").is_err());
        let bad_len = Head::parse(b"GET / HTTP/1.1\r\nContent-Length: -1\r\n\r\n").unwrap();
        assert!(request_framing(&bad_len).is_err());
    }

    #[tokio::test]
    async fn reader_keeps_pipelined_bytes_and_relays_chunks_verbatim() {
        let wire: &[u8] = b"POST /a HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n3;ext=1\r\nabc\r\n0\r\nX-T: 1\r\n\r\nGET /b HTTP/1.1\r\nContent-Length: 2\r\n\r\nhi";
        let mut r = Reader::new(wire);
        let h = Head::parse(&r.read_head().await.unwrap().unwrap()).unwrap();
        let body = r.read_body(request_framing(&h).unwrap()).await.unwrap();
        assert_eq!(body, b"3;ext=1\r\nabc\r\n0\r\nX-T: 1\r\n\r\n");
        let h2 = Head::parse(&r.read_head().await.unwrap().unwrap()).unwrap();
        assert_eq!(h2.request_line(), ("GET", "/b"));
        assert_eq!(
            r.read_body(request_framing(&h2).unwrap()).await.unwrap(),
            b"hi"
        );
        assert!(r.read_head().await.unwrap().is_none(), "clean end");
    }

    #[tokio::test]
    async fn truncated_messages_are_errors() {
        let mut r = Reader::new(&b"GET / HTTP/1.1\r\nHost"[..]);
        assert!(r.read_head().await.is_err());
        let mut r = Reader::new(&b"abc"[..]);
        assert!(r.read_body(Framing::Length(10)).await.is_err());
        let mut r = Reader::new(&b"zz\r\n"[..]);
        assert!(r.read_body(Framing::Chunked).await.is_err());
        let mut r = Reader::new(&b"until close"[..]);
        assert_eq!(
            r.read_body(Framing::UntilClose).await.unwrap(),
            b"until close"
        );
    }

    #[test]
    fn s3_errors_look_like_s3() {
        let r = String::from_utf8(s3_error(
            503,
            "Slow Down",
            "SlowDown",
            "Please reduce your request rate.",
            "r1",
            false,
        ))
        .unwrap();
        assert!(r.starts_with("HTTP/1.1 503 Slow Down\r\n"));
        assert!(r.contains("<Code>SlowDown</Code>"));
        let (head, body) = r.split_once("\r\n\r\n").unwrap();
        assert!(head.contains(&format!("Content-Length: {}", body.len())));
        let h = String::from_utf8(s3_error(
            500,
            "Internal Server Error",
            "InternalError",
            "x",
            "r",
            true,
        ))
        .unwrap();
        assert!(h.ends_with("\r\n\r\n"));
    }
}
