//! A real Varnish for tests: `varnishd` in the foreground on free loopback
//! ports, with the project's VCL (`config/varnish/standings.vcl`) in front of
//! a backend the test names, killed when the handle drops.
//!
//! How it starts, and why:
//!
//! - `-n <own temp dir>`: each instance has its own working directory
//!   (shared memory log, compiled VCL), so tests never share state with each
//!   other or with a system Varnish.
//! - `-j none`: run every Varnish process as the user the tests run as. As
//!   root, the default `unix` jail switches to the `varnish`/`vcache` users,
//!   which then cannot read a checkout under a private home directory.
//! - `-f standings.vcl -p vcl_path=<temp>/site:<repo>/config/varnish`: the
//!   shipped VCL, unchanged; its `include "standings-site.vcl"` finds the
//!   harness's copy of the site file first, which is the shipped one with
//!   only the backend host and port replaced (the `purgers` ACL stays
//!   loopback-only, as shipped).
//! - `-a 127.0.0.1:<port>` for plain HTTP and `-a 127.0.0.1:<port>,PROXY`
//!   for the PROXY protocol, so a test can claim another client address
//!   (`192.0.2.1`, say) over a loopback connection and see the ACL refuse
//!   it: nothing leaves the machine.
//! - `-F`: the manager stays our child, so `Drop` can kill it; the cache
//!   process exits when its manager dies.
//!
//! Ports come from binding port 0 and releasing it, so a start can race
//! another process for a port; a start whose `varnishd` exits early is
//! tried again on new ports, a few times.

use std::io::{Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

/// How long a start waits for `varnishd` to compile the VCL and launch its
/// cache process (it runs the C compiler: about a second here).
const START_TIMEOUT: Duration = Duration::from_secs(60);

/// Starts tried before giving up (each on fresh ports).
const START_TRIES: usize = 3;

/// Bound on one raw request made by [`Varnish::raw_request`].
const IO_TIMEOUT: Duration = Duration::from_secs(10);

/// The line `varnishd -F` prints once its cache process is serving.
const READY_LINE: &str = "Child launched OK";

/// Where Debian installs `varnishd` (`/usr/sbin`, often not on a normal
/// user's PATH).
const DEBIAN_VARNISHD: &str = "/usr/sbin/varnishd";

/// The folder of the shipped VCL, `config/varnish` in this workspace:
/// `STANDINGS_VCL_DIR` when set, else found by walking up from the package
/// under test (`cargo test` sets `CARGO_MANIFEST_DIR` at run time), the
/// current directory, and this crate's own folder at compile time. The
/// compile-time path alone is not enough: checkouts that share a target
/// dir share this crate's build, and with it whichever path it was first
/// compiled at.
pub fn vcl_dir() -> PathBuf {
    if let Some(dir) = std::env::var_os("STANDINGS_VCL_DIR") {
        return PathBuf::from(dir);
    }
    let starts = [
        std::env::var_os("CARGO_MANIFEST_DIR").map(PathBuf::from),
        std::env::current_dir().ok(),
        Some(PathBuf::from(env!("CARGO_MANIFEST_DIR"))),
    ];
    for start in starts.iter().flatten() {
        for dir in start.ancestors() {
            let candidate = dir.join("config").join("varnish");
            if candidate.join("standings.vcl").is_file() {
                return candidate;
            }
        }
    }
    panic!(
        "config/varnish/standings.vcl was not found above {starts:?}; run the tests from \
         the workspace, or set STANDINGS_VCL_DIR"
    );
}

/// The `varnishd` binary: the PATH's, else Debian's `/usr/sbin/varnishd`.
/// Panics with the command to run when there is none, so a missing install
/// fails the test loudly instead of skipping it.
pub fn require_varnishd() -> PathBuf {
    let on_path = Command::new("varnishd")
        .arg("-V")
        .output()
        .is_ok_and(|o| o.status.success());
    if on_path {
        return PathBuf::from("varnishd");
    }
    let debian = PathBuf::from(DEBIAN_VARNISHD);
    let found = Command::new(&debian)
        .arg("-V")
        .output()
        .is_ok_and(|o| o.status.success());
    assert!(
        found,
        "`varnishd` was not found (neither on the PATH nor at {DEBIAN_VARNISHD}), and the \
         CDN tests need a real Varnish: run the tests with the README's test command, \
         `scripts/test.sh`, which installs Debian's varnish when it is missing (or \
         `apt-get install -y varnish` yourself)."
    );
    debian
}

/// A running Varnish in front of one backend. Killed on drop.
pub struct Varnish {
    /// The `varnishd -F` manager; killing it stops its cache process too.
    child: Child,
    /// Plain HTTP listen address.
    addr: SocketAddr,
    /// PROXY-protocol listen address (for claiming another client IP).
    proxy_addr: SocketAddr,
    /// The `-n` working dir, the site VCL and the log; removed on drop.
    workdir: PathBuf,
}

impl Varnish {
    /// Starts Varnish with the shipped VCL in front of `backend` (the
    /// gateway's address), and returns once it serves.
    ///
    /// Panics when `varnishd` is missing, when the VCL does not compile, or
    /// when it does not start within a minute; the message carries its log.
    pub fn start(backend: SocketAddr) -> Self {
        let varnishd = require_varnishd();
        let site = site_vcl(backend);
        let mut last_log = String::new();
        for _ in 0..START_TRIES {
            match Self::try_start(&varnishd, &site) {
                Ok(v) => return v,
                Err(log) => last_log = log,
            }
        }
        panic!("varnishd did not start after {START_TRIES} tries; its last log:\n{last_log}");
    }

    /// One start on fresh ports; `Err(log)` when `varnishd` exits first.
    fn try_start(varnishd: &Path, site: &str) -> Result<Self, String> {
        static STARTS: AtomicUsize = AtomicUsize::new(0);
        let n = STARTS.fetch_add(1, Ordering::SeqCst);
        let workdir =
            std::env::temp_dir().join(format!("standings-varnish-{}-{n}", std::process::id()));
        let _ = std::fs::remove_dir_all(&workdir);
        let site_dir = workdir.join("site");
        std::fs::create_dir_all(&site_dir).expect("create the Varnish work dir");
        std::fs::write(site_dir.join("standings-site.vcl"), site).expect("write the site VCL");
        let log_path = workdir.join("varnishd.log");
        let log = std::fs::File::create(&log_path).expect("create the varnishd log");
        let addr = free_port();
        let proxy_addr = free_port();
        let vcl_dir = vcl_dir();
        let child = Command::new(varnishd)
            .arg("-F")
            .args(["-j", "none"])
            .arg("-n")
            .arg(workdir.join("n"))
            .args(["-a", &addr.to_string()])
            .args(["-a", &format!("{proxy_addr},PROXY")])
            .arg("-f")
            .arg(vcl_dir.join("standings.vcl"))
            .arg("-p")
            .arg(format!(
                "vcl_path={}:{}",
                site_dir.display(),
                vcl_dir.display()
            ))
            .args(["-s", "malloc,64m"])
            .args(["-T", "none"])
            // Fewer idle threads than the default 2 x 100: a test needs few.
            .args(["-p", "thread_pools=1", "-p", "thread_pool_min=10"])
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("clone the log handle"))
            .stderr(log)
            .spawn()
            .expect("spawn varnishd");
        let mut varnish = Self {
            child,
            addr,
            proxy_addr,
            workdir,
        };
        let deadline = Instant::now() + START_TIMEOUT;
        loop {
            let text = std::fs::read_to_string(&log_path).unwrap_or_default();
            if text.contains(READY_LINE) && TcpStream::connect(addr).is_ok() {
                return Ok(varnish);
            }
            if let Ok(Some(status)) = varnish.child.try_wait() {
                return Err(format!("varnishd exited with {status}:\n{text}"));
            }
            assert!(
                Instant::now() < deadline,
                "varnishd did not start within {START_TIMEOUT:?}; its log:\n{text}"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// The plain HTTP address, `127.0.0.1:<port>`.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `http://127.0.0.1:<port>`: a purge URL for the gateway, a base URL for
    /// clients and load tests.
    pub fn base_url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// `base_url` joined with `path`.
    pub fn url(&self, path: &str) -> String {
        format!("{}{}", self.base_url(), path)
    }

    /// Sends one raw HTTP/1.1 request (`request` is the request line and
    /// headers without the final blank line) to the PROXY-protocol listener,
    /// claiming to come from `from`, and returns the whole response as text.
    /// The connection is loopback; only Varnish's idea of the client changes.
    pub fn request_as(&self, from: Ipv4Addr, request: &str) -> String {
        let mut stream = TcpStream::connect(self.proxy_addr).expect("connect to Varnish");
        stream.set_read_timeout(Some(IO_TIMEOUT)).ok();
        stream.set_write_timeout(Some(IO_TIMEOUT)).ok();
        let header = format!(
            "PROXY TCP4 {from} {} 40000 {}\r\n",
            self.proxy_addr.ip(),
            self.proxy_addr.port()
        );
        let message = format!("{header}{request}\r\nConnection: close\r\n\r\n");
        stream
            .write_all(message.as_bytes())
            .expect("send to Varnish");
        let mut response = String::new();
        let _ = stream.read_to_string(&mut response);
        response
    }

    /// What `varnishd` printed so far, for failure messages.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.workdir.join("varnishd.log")).unwrap_or_default()
    }
}

impl Drop for Varnish {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        // The cache process exits when its manager dies; give it a moment
        // to let go of the working dir.
        for _ in 0..20 {
            if std::fs::remove_dir_all(&self.workdir).is_ok() || !self.workdir.exists() {
                break;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

/// The shipped `standings-site.vcl` with the backend pointed at `backend`.
fn site_vcl(backend: SocketAddr) -> String {
    let path = vcl_dir().join("standings-site.vcl");
    let shipped = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("reading {}: {e}", path.display()));
    let host = ".host = \"127.0.0.1\";";
    let port = ".port = \"8080\";";
    assert!(
        shipped.contains(host) && shipped.contains(port),
        "{} no longer has the lines the harness replaces ({host} and {port})",
        path.display()
    );
    shipped
        .replacen(host, &format!(".host = \"{}\";", backend.ip()), 1)
        .replacen(port, &format!(".port = \"{}\";", backend.port()), 1)
}

/// A loopback address whose port was free a moment ago.
fn free_port() -> SocketAddr {
    let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).expect("bind a free port");
    listener.local_addr().expect("local address")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn site_vcl_points_at_the_backend_and_keeps_the_acl() {
        let site = site_vcl("127.0.0.1:4321".parse().unwrap());
        assert!(site.contains(".port = \"4321\";"), "{site}");
        assert!(!site.contains("\"8080\""), "{site}");
        assert!(site.contains("acl purgers"), "{site}");
    }
}
