//! The accept loop: bounded connections in all and per client address,
//! `TCP_NODELAY`, HTTP/1.1 with keep-alive, a header-read timeout, an idle
//! timeout for kept-alive connections, and a graceful drain bounded by a
//! grace period.
//!
//! Why each bound exists: without a timer hyper has no header-read timeout,
//! and kept-alive connections that send nothing stay open forever. 10,000
//! connections that each sent one byte then left a normal request
//! unanswered for 10 s and cost about 18 KB each. Now a connection must
//! finish its headers within `header_read_timeout` (hyper starts that timer
//! at accept and at the first byte of each later request), must start its
//! next request within `keep_alive_idle` of the last answer, and one client
//! address holds at most `max_connections_per_client` of the
//! `max_connections` slots; stalled connections therefore cost memory only
//! up to those caps, and only for seconds.

use std::collections::HashMap;
use std::convert::Infallible;
use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use hyper::service::service_fn;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::io::AsyncWriteExt;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use crate::service::handle;
use crate::state::AppState;

/// The server's bounds; from `[gateway]` in the config.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// Most connections served at once; more wait in the accept queue.
    pub max_connections: usize,
    /// Most connections one client address may hold; more are answered 503
    /// and closed.
    pub max_connections_per_client: usize,
    /// Bound on receiving a request's headers.
    pub header_read_timeout: Duration,
    /// How long a kept-alive connection may wait for its next request.
    pub keep_alive_idle: Duration,
    /// How long shutdown waits for in-flight requests.
    pub grace: Duration,
}

/// Serves `listener` until `shutdown` is cancelled, then waits up to
/// `limits.grace` for in-flight requests.
pub async fn serve(
    listener: TcpListener,
    state: Arc<AppState>,
    limits: Limits,
    shutdown: CancellationToken,
) {
    // A permit is taken before accepting: at the limit, new connections
    // wait in the kernel's accept queue instead of piling up here. Every
    // connection task holds its permit, so holding all of them again means
    // every connection has finished: that is the drain.
    let permits = Arc::new(Semaphore::new(limits.max_connections));
    let per_client = Arc::new(PerClient::new(limits.max_connections_per_client));
    loop {
        let permit = tokio::select! {
            _ = shutdown.cancelled() => break,
            permit = permits.clone().acquire_owned() => match permit {
                Ok(p) => p,
                Err(_) => break,
            },
        };
        let (stream, peer) = tokio::select! {
            _ = shutdown.cancelled() => break,
            accepted = listener.accept() => match accepted {
                Ok(a) => a,
                Err(e) => {
                    // EMFILE and the like: back off instead of spinning.
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
        };
        // Small JSON answers on a kept-alive connection would otherwise wait
        // on Nagle's algorithm (40 ms a request).
        let _ = stream.set_nodelay(true);
        let Some(slot) = per_client.take(peer.ip()) else {
            metrics::counter!("standings_connections_refused_total", "reason" => "per_client")
                .increment(1);
            tokio::spawn(refuse(stream, permit));
            continue;
        };
        let conn = connection(stream, peer, state.clone(), limits, shutdown.clone());
        tokio::spawn(async move {
            conn.await;
            drop(slot);
            drop(permit);
        });
    }
    drop(listener);
    tracing::info!("draining connections");
    let all = u32::try_from(limits.max_connections).unwrap_or(u32::MAX);
    if tokio::time::timeout(limits.grace, permits.acquire_many(all))
        .await
        .is_err()
    {
        tracing::warn!(
            grace = ?limits.grace,
            "grace period ran out; dropping remaining connections"
        );
    }
}

/// The answer to a connection over its address's cap: a 503 with the JSON
/// error body, then close. Bounded in time, so a client that does not read
/// cannot hold the slot.
const REFUSAL: &[u8] = b"HTTP/1.1 503 Service Unavailable\r\ncontent-type: application/json\r\n\
retry-after: 1\r\nconnection: close\r\ncontent-length: 102\r\n\r\n\
{\"error\":{\"code\":\"overloaded\",\"message\":\"too many connections from this client address; retry later\"}}";

async fn refuse(mut stream: TcpStream, permit: OwnedSemaphorePermit) {
    let _ = tokio::time::timeout(Duration::from_secs(1), async {
        let _ = stream.write_all(REFUSAL).await;
        let _ = stream.shutdown().await;
    })
    .await;
    drop(permit);
}

/// Serves one connection until it ends, is idle past its timeout, or the
/// server shuts down (then it finishes the request in flight and closes).
async fn connection(
    stream: TcpStream,
    peer: SocketAddr,
    state: Arc<AppState>,
    limits: Limits,
    shutdown: CancellationToken,
) {
    let activity = Arc::new(Activity::new());
    let seen = activity.clone();
    let service = service_fn(move |req| {
        let state = state.clone();
        let busy = seen.begin();
        async move {
            let response = handle(state, peer.ip(), req).await;
            drop(busy);
            Ok::<_, Infallible>(response)
        }
    });
    let mut builder = hyper::server::conn::http1::Builder::new();
    builder
        .timer(TokioTimer::new())
        .header_read_timeout(limits.header_read_timeout);
    let conn = builder.serve_connection(TokioIo::new(stream), service);
    tokio::pin!(conn);
    let mut closing = false;
    loop {
        let idle_deadline = activity.idle_deadline(limits.keep_alive_idle);
        tokio::select! {
            ended = conn.as_mut() => {
                if let Err(e) = ended {
                    tracing::debug!(error = %e, "connection ended with an error");
                }
                return;
            }
            _ = shutdown.cancelled(), if !closing => {
                conn.as_mut().graceful_shutdown();
                closing = true;
            }
            _ = tokio::time::sleep_until(idle_deadline), if !closing => {
                if activity.is_idle_for(limits.keep_alive_idle) {
                    metrics::counter!("standings_connections_idle_closed_total").increment(1);
                    conn.as_mut().graceful_shutdown();
                    closing = true;
                }
            }
        }
    }
}

/// When a connection last finished a request, and whether one is running:
/// what the idle timeout looks at.
struct Activity {
    base: Instant,
    /// Requests being handled now.
    in_flight: AtomicU32,
    /// When the last request finished (or the connection opened), as
    /// nanoseconds since `base`.
    last_done_ns: AtomicU64,
}

impl Activity {
    fn new() -> Self {
        Self {
            base: Instant::now(),
            in_flight: AtomicU32::new(0),
            last_done_ns: AtomicU64::new(0),
        }
    }

    fn begin(self: &Arc<Self>) -> Busy {
        self.in_flight.fetch_add(1, Ordering::Relaxed);
        Busy(self.clone())
    }

    fn last_done(&self) -> Instant {
        self.base + Duration::from_nanos(self.last_done_ns.load(Ordering::Relaxed))
    }

    /// When the connection will have been idle for `idle`, if nothing
    /// happens meanwhile (re-checked then).
    fn idle_deadline(&self, idle: Duration) -> Instant {
        if self.in_flight.load(Ordering::Relaxed) > 0 {
            Instant::now() + idle
        } else {
            self.last_done() + idle
        }
    }

    fn is_idle_for(&self, idle: Duration) -> bool {
        self.in_flight.load(Ordering::Relaxed) == 0 && self.last_done().elapsed() >= idle
    }
}

/// Marks a request in flight until dropped.
struct Busy(Arc<Activity>);

impl Drop for Busy {
    fn drop(&mut self) {
        let at = self.0.base.elapsed().as_nanos() as u64;
        self.0.last_done_ns.store(at, Ordering::Relaxed);
        self.0.in_flight.fetch_sub(1, Ordering::Relaxed);
    }
}

/// Connections per client address. Touched once per accept and once per
/// close (never per request), so one lock is enough; an address's entry
/// goes when its last connection does, so the map holds at most
/// `max_connections` entries.
struct PerClient {
    cap: usize,
    open: Mutex<HashMap<IpAddr, usize>>,
}

/// One connection's place in [`PerClient`], given back on drop.
struct Slot {
    owner: Arc<PerClient>,
    addr: IpAddr,
}

impl PerClient {
    fn new(cap: usize) -> Self {
        Self {
            cap,
            open: Mutex::new(HashMap::new()),
        }
    }

    /// A slot for `addr`, or `None` when it holds its cap already.
    fn take(self: &Arc<Self>, addr: IpAddr) -> Option<Slot> {
        let mut open = self.open.lock().unwrap_or_else(|p| p.into_inner());
        let count = open.entry(addr).or_insert(0);
        if *count >= self.cap {
            return None;
        }
        *count += 1;
        Some(Slot {
            owner: self.clone(),
            addr,
        })
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        let mut open = self.owner.open.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(count) = open.get_mut(&self.addr) {
            *count -= 1;
            if *count == 0 {
                open.remove(&self.addr);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_refusal_is_a_well_formed_response() {
        let text = std::str::from_utf8(REFUSAL).unwrap();
        let (head, body) = text.split_once("\r\n\r\n").unwrap();
        let length: usize = head
            .lines()
            .find_map(|l| l.strip_prefix("content-length: "))
            .unwrap()
            .parse()
            .unwrap();
        assert_eq!(length, body.len());
        let json: serde_json::Value = serde_json::from_str(body).unwrap();
        assert_eq!(json["error"]["code"], "overloaded");
    }

    #[test]
    fn per_client_slots_are_capped_and_given_back() {
        let per = Arc::new(PerClient::new(2));
        let a: IpAddr = "127.0.0.1".parse().unwrap();
        let b: IpAddr = "127.0.0.2".parse().unwrap();
        let one = per.take(a).unwrap();
        let _two = per.take(a).unwrap();
        assert!(per.take(a).is_none(), "a third from one address");
        assert!(per.take(b).is_some(), "addresses are apart");
        drop(one);
        assert!(per.take(a).is_some(), "a closed connection frees its slot");
    }
}
