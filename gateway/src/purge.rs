//! CDN purge: when a refresh changes a board's static JSON, tell every
//! configured CDN endpoint to drop its copies, off the request path.
//!
//! The refresher calls [`Purger::board_changed`], which only puts the
//! board's name on a bounded channel; when the channel is full the purge is
//! dropped and counted, so a slow or dead CDN never delays a refresh, let
//! alone a read. One task, [`run`], takes names off the channel and sends,
//! to every endpoint at once:
//!
//! - `PURGE /static/{b}/top20.json` (and `top100.json`, `top1000.json`),
//!   and the same under `/static/{b}/{kind or blend}/` for each period
//!   whose view changed: Varnish's `return (purge)` and Fastly's
//!   purge-by-URL answer this;
//! - with `cdn.surrogate_key = "xkey"`, one `PURGE /` carrying
//!   `xkey-purge: standings-board-{b}` (the Varnish xkey vmod's
//!   convention, see `config/varnish/standings-xkey.vcl`);
//! - with `cdn.surrogate_key = "fastly"`, one `POST /purge` carrying
//!   `Surrogate-Key: standings-board-{b}` and `Fastly-Soft-Purge: 1` (the
//!   shape of Fastly's purge-by-keys call, relative to the endpoint).
//!
//! Each request is bounded by `cdn.timeout_ms` and retried up to
//! `cdn.retries` times (at most [`MAX_RETRIES`]) with doubling backoff when
//! the transport fails or the CDN answers 5xx or 429; any other answer is
//! final. Every request's outcome is counted in
//! `standings_cdn_purges_total{result="ok"|"failed"}`, a purge dropped
//! because the queue was full in `{result="dropped"}`, and failures are
//! logged. The gauge `standings_cdn_purge_backlog` is the number of boards
//! queued or being purged: 0 means every change so far has reached the CDN
//! (or failed for good). A missed purge costs at most the file's `max-age`
//! (60 s) of staleness at the CDN.

use std::sync::Arc;
use std::time::Duration;

use http::{HeaderName, HeaderValue, Method, StatusCode};
use standings_config::CdnConfig;
use standings_runtime::{supervise, Supervised};
use tokio::sync::{mpsc, Mutex};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::view::{surrogate_key, PRERENDERED};

/// How many changed boards may wait for their purge. A refresh changes each
/// board at most once, so this only fills when the CDN is much slower than
/// the refresh interval; then newer purges are dropped (and counted).
pub const QUEUE: usize = 64;

/// Upper bound on retries whatever the config says, so one purge's time is
/// bounded by `(1 + MAX_RETRIES) * timeout` plus backoff.
pub const MAX_RETRIES: u32 = 10;

/// The gauge of boards queued or being purged.
const BACKLOG: &str = "standings_cdn_purge_backlog";

/// How long a panicked purge task waits before it is started again.
const RESTART_BACKOFF: Duration = Duration::from_secs(1);

/// First retry delay; doubles each retry up to [`BACKOFF_CAP`].
const BACKOFF_START: Duration = Duration::from_millis(100);

/// Largest delay between two tries.
const BACKOFF_CAP: Duration = Duration::from_secs(2);

/// Why one purge request did not succeed.
#[derive(Debug, thiserror::Error)]
pub enum PurgeError {
    /// The request could not be sent, or no answer came within the timeout.
    #[error("{method} {url}: {source}")]
    Transport {
        /// The method sent.
        method: Method,
        /// The full URL.
        url: String,
        /// What the client said.
        source: reqwest::Error,
    },
    /// The CDN answered, but not with a 2xx.
    #[error("{method} {url}: answered {status}")]
    Status {
        /// The method sent.
        method: Method,
        /// The full URL.
        url: String,
        /// The status it answered.
        status: StatusCode,
    },
}

impl PurgeError {
    /// Whether another try may succeed: transport failures, 5xx and 429
    /// are passing; a 403 from an ACL or a 405 will not change.
    fn is_transient(&self) -> bool {
        match self {
            PurgeError::Transport { .. } => true,
            PurgeError::Status { status, .. } => {
                status.is_server_error() || *status == StatusCode::TOO_MANY_REQUESTS
            }
        }
    }
}

/// Which surrogate-key convention to use besides path purges.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SurrogateKey {
    /// Varnish with the xkey vmod: `PURGE /` with `xkey-purge: KEY`.
    Xkey,
    /// Fastly: `POST /purge` with `Surrogate-Key: KEY` and
    /// `Fastly-Soft-Purge: 1`.
    Fastly,
}

impl SurrogateKey {
    /// Reads `cdn.surrogate_key` (already validated to be `xkey`, `fastly`
    /// or absent).
    pub fn from_config(cdn: &CdnConfig) -> Option<Self> {
        match cdn.surrogate_key.as_deref() {
            Some("xkey") => Some(SurrogateKey::Xkey),
            Some("fastly") => Some(SurrogateKey::Fastly),
            _ => None,
        }
    }
}

/// One HTTP request of a purge.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PurgeRequest {
    /// `PURGE` or `POST`.
    pub method: Method,
    /// The endpoint joined with the path.
    pub url: String,
    /// Extra headers (surrogate keys).
    pub headers: Vec<(HeaderName, HeaderValue)>,
}

/// What changed: a board and the directories of its static files (`""`
/// for the board's own, else a kind or a blend).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Changed {
    /// The board.
    pub board: String,
    /// Its changed directories.
    pub dirs: Vec<String>,
}

/// Every request that purges `dirs` of `board` at `endpoint`: one `PURGE`
/// per static file, plus one surrogate-key purge when `key` is set.
pub fn requests(
    endpoint: &str,
    board: &str,
    dirs: &[String],
    key: Option<SurrogateKey>,
) -> Vec<PurgeRequest> {
    let base = endpoint.trim_end_matches('/');
    let purge = Method::from_bytes(b"PURGE").expect("PURGE is a valid method token");
    let mut out: Vec<PurgeRequest> = dirs
        .iter()
        .flat_map(|dir| {
            let prefix = if dir.is_empty() {
                format!("{base}/static/{board}")
            } else {
                format!("{base}/static/{board}/{dir}")
            };
            PRERENDERED
                .iter()
                .map(move |limit| format!("{prefix}/top{limit}.json"))
        })
        .map(|url| PurgeRequest {
            method: purge.clone(),
            url,
            headers: Vec::new(),
        })
        .collect();
    // Board names are [a-z0-9_-], always a valid header value.
    let Ok(value) = HeaderValue::from_str(&surrogate_key(board)) else {
        return out;
    };
    match key {
        Some(SurrogateKey::Xkey) => out.push(PurgeRequest {
            method: purge,
            url: format!("{base}/"),
            headers: vec![(HeaderName::from_static("xkey-purge"), value)],
        }),
        Some(SurrogateKey::Fastly) => out.push(PurgeRequest {
            method: Method::POST,
            url: format!("{base}/purge"),
            headers: vec![
                (HeaderName::from_static("surrogate-key"), value),
                (
                    HeaderName::from_static("fastly-soft-purge"),
                    HeaderValue::from_static("1"),
                ),
            ],
        }),
        None => {}
    }
    out
}

/// The refresher's side of the purge queue. Cloning is cheap.
#[derive(Debug, Clone)]
pub struct Purger {
    /// Boards whose static JSON changed; bounded by [`QUEUE`].
    tx: mpsc::Sender<Changed>,
}

impl Purger {
    /// A purger and the receiving end that [`run`] drains.
    pub fn channel(capacity: usize) -> (Self, mpsc::Receiver<Changed>) {
        let (tx, rx) = mpsc::channel(capacity.max(1));
        (Self { tx }, rx)
    }

    /// Starts the purge task, supervised (a panic restarts it on the same
    /// queue, counted in `standings_task_restarts_total{task="purger"}`),
    /// when `cdn` names at least one endpoint; `None` otherwise (nothing to
    /// purge, no task). The task stops on `shutdown` or once every `Purger`
    /// is dropped.
    pub fn spawn(cdn: &CdnConfig, shutdown: CancellationToken) -> Option<(Self, JoinHandle<()>)> {
        if cdn.purge_urls.is_empty() {
            return None;
        }
        let (purger, rx) = Self::channel(QUEUE);
        let queue = Arc::new(Mutex::new(rx));
        let cdn = cdn.clone();
        let health = Supervised::new("purger");
        let task = tokio::spawn(supervise(
            health,
            RESTART_BACKOFF,
            shutdown.clone(),
            move || run(queue.clone(), cdn.clone(), shutdown.clone()),
        ));
        Some((purger, task))
    }

    /// Queues a purge of the static files in `dirs` of `board` (see
    /// [`Changed`]). Never waits: when the queue is full the purge is
    /// dropped, counted and logged.
    pub fn board_changed(&self, board: &str, dirs: Vec<String>) {
        // Counted before it is queued, so the gauge never reads 0 while a
        // purge waits.
        metrics::gauge!(BACKLOG).increment(1.0);
        let changed = Changed {
            board: board.to_string(),
            dirs,
        };
        if self.tx.try_send(changed).is_err() {
            metrics::gauge!(BACKLOG).decrement(1.0);
            metrics::counter!("standings_cdn_purges_total", "result" => "dropped").increment(1);
            tracing::warn!(board, "CDN purge queue full or closed; purge dropped");
        }
    }
}

/// Drains the queue, purging each board at every endpoint of `cdn`, until
/// `shutdown` or until every [`Purger`] is dropped. The queue sits behind a
/// lock held for the task's life, so a restarted task drains the same one.
pub async fn run(
    queue: Arc<Mutex<mpsc::Receiver<Changed>>>,
    cdn: CdnConfig,
    shutdown: CancellationToken,
) {
    let mut rx = queue.lock().await;
    let client = match reqwest::Client::builder()
        .timeout(Duration::from_millis(cdn.timeout_ms))
        // Purges go to the configured endpoint itself, never through a
        // proxy named in the environment.
        .no_proxy()
        .build()
    {
        Ok(c) => c,
        Err(e) => {
            tracing::error!(error = %e, "cannot build the CDN purge client; purging is off");
            return;
        }
    };
    let key = SurrogateKey::from_config(&cdn);
    let retries = cdn.retries.min(MAX_RETRIES);
    loop {
        let changed = tokio::select! {
            _ = shutdown.cancelled() => break,
            next = rx.recv() => match next {
                Some(changed) => changed,
                None => break,
            },
        };
        let all: Vec<PurgeRequest> = cdn
            .purge_urls
            .iter()
            .flat_map(|endpoint| requests(endpoint, &changed.board, &changed.dirs, key))
            .collect();
        let sends = send_all(&client, &all, retries);
        tokio::select! {
            _ = shutdown.cancelled() => break,
            _ = sends => {}
        }
        metrics::gauge!(BACKLOG).decrement(1.0);
    }
}

/// Sends every request concurrently, each with its own retries.
async fn send_all(client: &reqwest::Client, all: &[PurgeRequest], retries: u32) {
    let mut set = tokio::task::JoinSet::new();
    for request in all {
        let client = client.clone();
        let request = request.clone();
        set.spawn(async move { send_with_retries(&client, &request, retries).await });
    }
    while set.join_next().await.is_some() {}
}

/// Sends `request`, retrying transient failures up to `retries` times with
/// doubling backoff; counts and logs the outcome.
pub async fn send_with_retries(
    client: &reqwest::Client,
    request: &PurgeRequest,
    retries: u32,
) -> Result<(), PurgeError> {
    let mut delay = BACKOFF_START;
    let mut attempt = 0;
    let outcome = loop {
        match send(client, request).await {
            Ok(()) => break Ok(()),
            Err(e) if e.is_transient() && attempt < retries => {
                metrics::counter!("standings_cdn_purge_retries_total").increment(1);
                tracing::debug!(error = %e, attempt, "CDN purge failed; retrying");
                tokio::time::sleep(delay).await;
                delay = (delay * 2).min(BACKOFF_CAP);
                attempt += 1;
            }
            Err(e) => break Err(e),
        }
    };
    match &outcome {
        Ok(()) => {
            metrics::counter!("standings_cdn_purges_total", "result" => "ok").increment(1);
            tracing::debug!(method = %request.method, url = %request.url, "CDN purged");
        }
        Err(e) => {
            metrics::counter!("standings_cdn_purges_total", "result" => "failed").increment(1);
            tracing::warn!(error = %e, tries = attempt + 1, "CDN purge failed");
        }
    }
    outcome
}

/// One try of one request.
async fn send(client: &reqwest::Client, request: &PurgeRequest) -> Result<(), PurgeError> {
    let mut builder = client.request(request.method.clone(), &request.url);
    for (name, value) in &request.headers {
        builder = builder.header(name, value);
    }
    let response = builder
        .send()
        .await
        .map_err(|source| PurgeError::Transport {
            method: request.method.clone(),
            url: request.url.clone(),
            source,
        })?;
    let status = response.status();
    if status.is_success() {
        Ok(())
    } else {
        Err(PurgeError::Status {
            method: request.method.clone(),
            url: request.url.clone(),
            status,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::Arc;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::net::TcpListener;

    #[test]
    fn path_purges_name_every_static_file() {
        let r = requests("http://127.0.0.1:6081/", "global", &[String::new()], None);
        let urls: Vec<&str> = r.iter().map(|r| r.url.as_str()).collect();
        assert_eq!(
            urls,
            [
                "http://127.0.0.1:6081/static/global/top20.json",
                "http://127.0.0.1:6081/static/global/top100.json",
                "http://127.0.0.1:6081/static/global/top1000.json",
            ]
        );
        assert!(r.iter().all(|r| r.method.as_str() == "PURGE"));
    }

    #[test]
    fn surrogate_key_purges_follow_the_configured_convention() {
        let x = requests(
            "http://127.0.0.1:6081",
            "weekly",
            &[String::new()],
            Some(SurrogateKey::Xkey),
        );
        assert_eq!(x.len(), 4);
        assert_eq!(x[3].url, "http://127.0.0.1:6081/");
        assert_eq!(x[3].headers[0].0.as_str(), "xkey-purge");
        assert_eq!(x[3].headers[0].1, "standings-board-weekly");

        let f = requests(
            "http://127.0.0.1:9000",
            "weekly",
            &[String::new()],
            Some(SurrogateKey::Fastly),
        );
        assert_eq!(f.len(), 4);
        assert_eq!(f[3].method, Method::POST);
        assert_eq!(f[3].url, "http://127.0.0.1:9000/purge");
        let names: Vec<&str> = f[3].headers.iter().map(|(n, _)| n.as_str()).collect();
        assert_eq!(names, ["surrogate-key", "fastly-soft-purge"]);
    }

    /// A loopback server that answers each connection with the next status
    /// of `statuses` (the last one repeats) and counts requests.
    async fn answering(statuses: Vec<u16>) -> (String, Arc<AtomicUsize>) {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let count = Arc::new(AtomicUsize::new(0));
        let seen = count.clone();
        tokio::spawn(async move {
            for i in 0..100 {
                let Ok((mut socket, _)) = listener.accept().await else {
                    return;
                };
                let mut buf = vec![0u8; 4096];
                let _ = socket.read(&mut buf).await;
                seen.fetch_add(1, Ordering::SeqCst);
                let status = statuses[i.min(statuses.len() - 1)];
                let reply = format!(
                    "HTTP/1.1 {status} X\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
                );
                let _ = socket.write_all(reply.as_bytes()).await;
            }
        });
        (url, count)
    }

    fn client() -> reqwest::Client {
        reqwest::Client::builder()
            .timeout(Duration::from_secs(2))
            .no_proxy()
            .build()
            .unwrap()
    }

    fn one(url: &str) -> PurgeRequest {
        requests(url, "global", &[String::new()], None).remove(0)
    }

    #[tokio::test]
    async fn transient_failures_are_retried_then_succeed() {
        let (url, count) = answering(vec![503, 502, 200]).await;
        send_with_retries(&client(), &one(&url), 3).await.unwrap();
        assert_eq!(count.load(Ordering::SeqCst), 3);
    }

    #[tokio::test]
    async fn retries_are_bounded() {
        let (url, count) = answering(vec![503]).await;
        let err = send_with_retries(&client(), &one(&url), 2)
            .await
            .unwrap_err();
        assert!(err.to_string().contains("503"), "{err}");
        assert_eq!(count.load(Ordering::SeqCst), 3, "one try and two retries");
    }

    #[tokio::test]
    async fn a_refusal_is_not_retried() {
        let (url, count) = answering(vec![403]).await;
        assert!(send_with_retries(&client(), &one(&url), 5).await.is_err());
        assert_eq!(count.load(Ordering::SeqCst), 1);
    }

    #[tokio::test]
    async fn a_full_queue_drops_instead_of_waiting() {
        let (purger, mut rx) = Purger::channel(1);
        purger.board_changed("a", vec![String::new()]);
        purger.board_changed("b", vec![String::new()]); // full: dropped, returns at once
        assert_eq!(rx.recv().await.map(|c| c.board).as_deref(), Some("a"));
        assert!(rx.try_recv().is_err());
    }

    #[tokio::test]
    async fn the_task_purges_each_queued_board_at_every_endpoint() {
        let (one_url, one_count) = answering(vec![200]).await;
        let (two_url, two_count) = answering(vec![200]).await;
        let cdn = CdnConfig {
            purge_urls: vec![one_url, two_url],
            surrogate_key: Some("xkey".into()),
            ..CdnConfig::default()
        };
        let shutdown = CancellationToken::new();
        let (purger, task) = Purger::spawn(&cdn, shutdown.clone()).unwrap();
        purger.board_changed("global", vec![String::new()]);
        drop(purger); // the task drains the queue, then stops
        task.await.unwrap();
        assert_eq!(one_count.load(Ordering::SeqCst), 4);
        assert_eq!(two_count.load(Ordering::SeqCst), 4);
    }
}
