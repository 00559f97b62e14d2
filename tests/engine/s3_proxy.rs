//! A fault-injecting HTTP proxy between an `S3Storage` and the S3 server, for the object-store
//! tests: it passes requests through, or fails them before they reach the server, or lets them
//! take effect and then reports a failure (the ambiguous answer object stores do give).
//!
//! Each connection carries one request (the proxy answers with `Connection: close`), so a plain
//! thread per connection is enough.

// Test infrastructure: real sockets and threads.
#![allow(clippy::disallowed_methods, clippy::disallowed_types)]

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

/// What the proxy does with one request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fault {
    /// Forward it and return the server's answer.
    Pass,
    /// Answer with this status without forwarding (nothing took effect).
    Refuse(u16),
    /// Forward it (it takes effect), then answer with this status instead of the server's.
    ApplyThenFail(u16),
}

/// A request as the fault plan sees it.
#[derive(Debug)]
pub struct Request {
    /// Whether it is a conditional create (`If-None-Match: *`).
    pub conditional: bool,
    /// How many requests the proxy saw before this one.
    pub index: u64,
}

type Plan = dyn Fn(&Request) -> Fault + Send + Sync;

/// A running proxy; it serves until the test process ends.
pub struct Proxy {
    /// `http://127.0.0.1:PORT`.
    pub endpoint: String,
    plan: Arc<Mutex<Arc<Plan>>>,
    /// Requests answered with a fault.
    pub faults: Arc<AtomicU64>,
}

impl Proxy {
    /// A proxy in front of the server at `upstream` (`http://host:port`), passing everything.
    pub fn start(upstream: &str) -> Proxy {
        let upstream = upstream
            .trim_start_matches("http://")
            .trim_end_matches('/')
            .to_owned();
        let listener = TcpListener::bind("127.0.0.1:0").expect("a loopback port");
        let endpoint = format!("http://{}", listener.local_addr().expect("an address"));
        let plan: Arc<Mutex<Arc<Plan>>> = Arc::new(Mutex::new(Arc::new(|_: &Request| Fault::Pass)));
        let seen = Arc::new(AtomicU64::new(0));
        let faults = Arc::new(AtomicU64::new(0));
        let (shared_plan, shared_faults) = (plan.clone(), faults.clone());
        std::thread::spawn(move || {
            for client in listener.incoming().flatten() {
                let plan = shared_plan.lock().expect("the plan").clone();
                let (upstream, seen, faults) =
                    (upstream.clone(), seen.clone(), shared_faults.clone());
                std::thread::spawn(move || {
                    let _ = serve(client, &upstream, &*plan, &seen, &faults);
                });
            }
        });
        Proxy {
            endpoint,
            plan,
            faults,
        }
    }

    /// From now on, `plan` decides what happens to each request.
    pub fn set_plan(&self, plan: impl Fn(&Request) -> Fault + Send + Sync + 'static) {
        *self.plan.lock().expect("the plan") = Arc::new(plan);
    }

    /// Requests answered with a fault so far.
    pub fn faults(&self) -> u64 {
        self.faults.load(Ordering::SeqCst)
    }
}

fn serve(
    client: TcpStream,
    upstream: &str,
    plan: &Plan,
    seen: &AtomicU64,
    faults: &AtomicU64,
) -> std::io::Result<()> {
    let mut reader = BufReader::new(client.try_clone()?);
    let mut head = Vec::new();
    let mut content_length = 0usize;
    let mut conditional = false;
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line)? == 0 {
            return Ok(());
        }
        let lower = line.to_ascii_lowercase();
        if let Some(value) = lower.strip_prefix("content-length:") {
            content_length = value.trim().parse().unwrap_or(0);
        }
        if lower.starts_with("if-none-match:") {
            conditional = true;
        }
        if lower.starts_with("connection:") {
            continue;
        }
        if line == "\r\n" {
            head.extend_from_slice(b"Connection: close\r\n\r\n");
            break;
        }
        head.extend_from_slice(line.as_bytes());
    }
    let mut body = vec![0; content_length];
    reader.read_exact(&mut body)?;
    let index = seen.fetch_add(1, Ordering::SeqCst);
    let fault = plan(&Request { conditional, index });
    let mut client = client;
    if let Fault::Refuse(status) = fault {
        faults.fetch_add(1, Ordering::SeqCst);
        return client.write_all(status_only(status).as_bytes());
    }
    let mut server = TcpStream::connect(upstream)?;
    server.write_all(&head)?;
    server.write_all(&body)?;
    let mut answer = Vec::new();
    server.read_to_end(&mut answer)?;
    if let Fault::ApplyThenFail(status) = fault {
        faults.fetch_add(1, Ordering::SeqCst);
        return client.write_all(status_only(status).as_bytes());
    }
    client.write_all(&answer)
}

fn status_only(status: u16) -> String {
    format!("HTTP/1.1 {status} Injected\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
}
