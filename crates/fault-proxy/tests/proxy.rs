//! The proxy against small real HTTP upstreams on loopback: one that keeps connections alive
//! and one that closes after every answer (as moto's server does), driven by a real HTTP
//! client (reqwest, connection pooling on) and by raw sockets where the wire matters.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use fault_proxy::{ErrorKind, Fault, FaultProxy, ResetPoint};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

/// An upstream that echoes `METHOD target body-length` and counts requests and connections.
struct Upstream {
    addr: String,
    requests: Arc<AtomicU64>,
    connections: Arc<AtomicU64>,
}

async fn upstream(close_each: bool, chunked: bool) -> Upstream {
    let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = l.local_addr().unwrap().to_string();
    let requests = Arc::new(AtomicU64::new(0));
    let connections = Arc::new(AtomicU64::new(0));
    let (rq, cn) = (requests.clone(), connections.clone());
    tokio::spawn(async move {
        loop {
            let (sock, _) = l.accept().await.unwrap();
            cn.fetch_add(1, Ordering::SeqCst);
            let rq = rq.clone();
            tokio::spawn(async move {
                let mut r = fault_proxy::http::Reader::new(sock);
                while let Ok(Some(raw)) = r.read_head().await {
                    let h = fault_proxy::http::Head::parse(&raw).unwrap();
                    let body = r
                        .read_body(fault_proxy::http::request_framing(&h).unwrap())
                        .await
                        .unwrap();
                    rq.fetch_add(1, Ordering::SeqCst);
                    let (m, t) = h.request_line();
                    let text = format!("{m} {t} {}", body.len());
                    let resp = if chunked {
                        format!(
                            "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n{:x}\r\n{text}\r\n0\r\n\r\n",
                            text.len()
                        )
                    } else if close_each {
                        format!("HTTP/1.1 200 OK\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{text}", text.len())
                    } else {
                        format!(
                            "HTTP/1.1 200 OK\r\nContent-Length: {}\r\n\r\n{text}",
                            text.len()
                        )
                    };
                    if r.inner.write_all(resp.as_bytes()).await.is_err() || close_each {
                        return;
                    }
                }
            });
        }
    });
    Upstream {
        addr,
        requests,
        connections,
    }
}

fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .build()
        .unwrap()
}

#[tokio::test]
async fn relays_bodies_and_keeps_client_connections_alive_over_a_closing_upstream() {
    for close_each in [false, true] {
        let up = upstream(close_each, false).await;
        let p = FaultProxy::start(up.addr.clone()).await.unwrap();
        let c = client();
        for i in 0..20 {
            let body = "x".repeat(i * 100);
            let r = c
                .put(format!("{}/bucket/key-{i}?a=b", p.url()))
                .body(body)
                .send()
                .await
                .unwrap();
            assert_eq!(r.status(), 200);
            assert_eq!(
                r.text().await.unwrap(),
                format!("PUT /bucket/key-{i}?a=b {}", i * 100)
            );
        }
        let s = p.stats();
        assert_eq!(s.requests, 20);
        assert_eq!(s.forwarded, 20);
        assert_eq!(s.connections, 1, "the client kept one connection: {s:?}");
        assert_eq!(up.requests.load(Ordering::SeqCst), 20);
        let upstream_conns = up.connections.load(Ordering::SeqCst);
        if close_each {
            assert_eq!(upstream_conns, 20);
        } else {
            assert_eq!(upstream_conns, 1, "the upstream connection is reused");
        }
    }
}

#[tokio::test]
async fn chunked_requests_and_responses_pass_through() {
    let up = upstream(false, true).await;
    let p = FaultProxy::start(up.addr.clone()).await.unwrap();
    let mut s = tokio::net::TcpStream::connect(p.addr()).await.unwrap();
    s.write_all(b"POST /c HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n4\r\nabcd\r\n2\r\nef\r\n0\r\n\r\n")
        .await
        .unwrap();
    s.write_all(b"GET /d HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        .await
        .unwrap();
    let mut out = String::new();
    s.read_to_string(&mut out).await.unwrap();
    // The chunk framing is relayed, and the upstream decoded 4+2 bytes plus framing.
    assert!(out.contains("POST /c 21"), "{out}");
    assert!(out.contains("GET /d 0"), "{out}");
    assert_eq!(out.matches("HTTP/1.1 200 OK").count(), 2, "{out}");
}

#[tokio::test]
async fn error_bursts_hit_the_asked_fraction_then_stop() {
    let up = upstream(false, false).await;
    let p = FaultProxy::start(up.addr.clone()).await.unwrap();
    let c = client();
    p.error_burst(1.0, Duration::from_millis(400), ErrorKind::SlowDown);
    let r = c.get(format!("{}/b/k", p.url())).send().await.unwrap();
    assert_eq!(r.status(), 503);
    let body = r.text().await.unwrap();
    assert!(body.contains("<Code>SlowDown</Code>"), "{body}");
    let h = c.head(format!("{}/b/k", p.url())).send().await.unwrap();
    assert_eq!(h.status(), 503);
    assert_eq!(
        up.requests.load(Ordering::SeqCst),
        0,
        "answered in its place"
    );
    tokio::time::sleep(Duration::from_millis(450)).await;
    assert_eq!(
        c.get(format!("{}/b/k", p.url()))
            .send()
            .await
            .unwrap()
            .status(),
        200,
        "the window is over"
    );

    p.reset_stats();
    p.error_burst(0.3, Duration::from_secs(30), ErrorKind::Mixed);
    for _ in 0..400 {
        let r = c.get(format!("{}/b/k", p.url())).send().await.unwrap();
        let status = r.status().as_u16();
        let text = r.text().await.unwrap();
        match status {
            200 => {}
            500 => assert!(text.contains("<Code>InternalError</Code>")),
            503 => assert!(text.contains("<Code>SlowDown</Code>")),
            other => panic!("unexpected {other}"),
        }
    }
    let s = p.stats();
    assert_eq!(s.requests, 400);
    let frac = s.injected_errors() as f64 / 400.0;
    assert!((0.22..0.38).contains(&frac), "{frac} {s:?}");
    assert!(s.slow_down > 20 && s.internal_error > 20, "mixed: {s:?}");
    // Counted since reset_stats: the client kept using the connection it already had.
    assert_eq!(s.connections, 0, "errors keep the connection alive: {s:?}");
    assert_eq!(s.forwarded, up.requests.load(Ordering::SeqCst) - 1);
}

#[tokio::test]
async fn resets_before_and_after_the_upstream() {
    let up = upstream(false, false).await;
    let p = FaultProxy::start(up.addr.clone()).await.unwrap();
    let c = client();
    p.connection_resets(1.0, Duration::from_secs(30), ResetPoint::BeforeUpstream);
    assert!(c.get(format!("{}/x", p.url())).send().await.is_err());
    assert_eq!(up.requests.load(Ordering::SeqCst), 0);
    p.connection_resets(1.0, Duration::from_secs(30), ResetPoint::AfterUpstream);
    assert!(c.delete(format!("{}/x", p.url())).send().await.is_err());
    assert_eq!(
        up.requests.load(Ordering::SeqCst),
        1,
        "acted on, answer lost"
    );
    let faults: Vec<Fault> = p.records().iter().map(|r| r.fault).collect();
    assert_eq!(
        faults,
        vec![Fault::ResetBeforeUpstream, Fault::ResetAfterUpstream]
    );
    // Filtered: only DELETEs are hit.
    p.only_matching(Some("DELETE "));
    assert_eq!(
        c.get(format!("{}/x", p.url()))
            .send()
            .await
            .unwrap()
            .status(),
        200
    );
    assert!(c.delete(format!("{}/x", p.url())).send().await.is_err());
    p.clear();
    assert_eq!(
        c.delete(format!("{}/x", p.url()))
            .send()
            .await
            .unwrap()
            .status(),
        200
    );
}

#[tokio::test]
async fn upstream_down_then_back_and_an_unreachable_upstream() {
    let up = upstream(false, false).await;
    let p = FaultProxy::start(up.addr.clone()).await.unwrap();
    let c = client();
    assert_eq!(
        c.get(format!("{}/a", p.url()))
            .send()
            .await
            .unwrap()
            .status(),
        200
    );
    p.set_down(true);
    // The pooled connection from before is cut too, and new ones are refused.
    for _ in 0..3 {
        assert!(c.get(format!("{}/a", p.url())).send().await.is_err());
    }
    p.set_down(false);
    assert_eq!(
        c.get(format!("{}/a", p.url()))
            .send()
            .await
            .unwrap()
            .status(),
        200
    );
    assert!(p.stats().down >= 1, "{:?}", p.stats());

    // Nothing listening upstream: the client sees a reset, never a hang.
    let dead = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().to_string()
    };
    let p2 = FaultProxy::start(dead).await.unwrap();
    assert!(client()
        .get(format!("{}/a", p2.url()))
        .send()
        .await
        .is_err());
    assert_eq!(p2.records()[0].fault, Fault::Down);
}

#[tokio::test]
async fn latency_is_added_to_every_request() {
    let up = upstream(false, false).await;
    let p = FaultProxy::start(up.addr.clone()).await.unwrap();
    let c = client();
    p.set_latency(Duration::from_millis(150));
    let t = Instant::now();
    for _ in 0..3 {
        c.get(format!("{}/a", p.url())).send().await.unwrap();
    }
    assert!(
        t.elapsed() >= Duration::from_millis(450),
        "{:?}",
        t.elapsed()
    );
    p.set_latency(Duration::ZERO);
    let t = Instant::now();
    c.get(format!("{}/a", p.url())).send().await.unwrap();
    assert!(t.elapsed() < Duration::from_millis(150));
}

#[tokio::test]
async fn the_control_api_switches_faults_at_run_time() {
    let up = upstream(false, false).await;
    let p = FaultProxy::start(up.addr.clone()).await.unwrap();
    let c = client();
    let r = c
        .post(format!(
            "{}/__fault?error_rate=1&error_kind=internal&window_ms=60000",
            p.url()
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let state: serde_json::Value = r.json().await.unwrap();
    assert_eq!(state["burst"]["kind"], "internal_error", "{state}");
    assert_eq!(
        c.get(format!("{}/a", p.url()))
            .send()
            .await
            .unwrap()
            .status(),
        500
    );
    let r = c
        .post(format!("{}/__fault?error_rate=lots", p.url()))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    assert!(r.text().await.unwrap().contains("error_rate"));
    assert!(p.apply_query("bogus=1").unwrap_err().contains("bogus"));
    c.post(format!("{}/__fault?clear=1", p.url()))
        .send()
        .await
        .unwrap();
    assert_eq!(
        c.get(format!("{}/a", p.url()))
            .send()
            .await
            .unwrap()
            .status(),
        200
    );
    let state: serde_json::Value = c
        .get(format!("{}/__fault", p.url()))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(state["stats"]["internal_error"], 1, "{state}");
    assert!(state["burst"].is_null());
}
