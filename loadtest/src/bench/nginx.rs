//! The top20 baseline: Debian's nginx serving the gateway's own TOP20 body
//! as a static file, on its own loopback port with its own prefix and
//! config (no system nginx is touched).
//!
//! The file sits at `html/v1/boards/global/top`, so wrk requests the same
//! path and query on both sides. The config is nginx tuned the way one
//! would for a static JSON origin: 2 workers (one per core here),
//! `access_log off`, `sendfile`, `open_file_cache`, and keep-alive without
//! a request cap (nginx's default closes a connection every 1000 requests,
//! which the gateway does not).

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::Context;

use super::procs::Proc;

/// Worker processes: one per core of the 2-core machine the figures are
/// taken on.
pub const WORKERS: usize = 2;

/// A prepared nginx prefix directory.
pub struct Nginx {
    /// Holds `nginx.conf`, `html/`, logs and temp dirs.
    pub prefix: PathBuf,
    /// Where it listens on 127.0.0.1.
    pub port: u16,
}

impl Nginx {
    /// Writes the config and `body` as the file behind `url_path`.
    pub fn prepare(prefix: &Path, port: u16, url_path: &str, body: &[u8]) -> anyhow::Result<Self> {
        let file = prefix.join("html").join(url_path.trim_start_matches('/'));
        std::fs::create_dir_all(file.parent().context("file has a directory")?)?;
        std::fs::create_dir_all(prefix.join("tmp"))?;
        std::fs::write(&file, body).with_context(|| format!("writing {}", file.display()))?;
        std::fs::write(prefix.join("nginx.conf"), config(prefix, port, WORKERS))?;
        Ok(Self {
            prefix: prefix.to_path_buf(),
            port,
        })
    }

    /// The command line that starts it in the foreground.
    pub fn argv(&self) -> Vec<String> {
        let p = self.prefix.display();
        vec![
            "nginx".into(),
            "-p".into(),
            format!("{p}/"),
            "-c".into(),
            format!("{p}/nginx.conf"),
            "-e".into(),
            format!("{p}/error.log"),
        ]
    }

    /// Starts it; the guard stops it (SIGTERM reaches the master, which
    /// stops its workers).
    pub fn start(&self) -> anyhow::Result<Proc> {
        let argv = self.argv();
        let mut cmd = Command::new(which_nginx());
        cmd.args(&argv[1..]);
        Proc::start("nginx", cmd, &self.prefix.join("stdout.log"))
    }
}

/// `nginx` from the PATH, or Debian's `/usr/sbin/nginx` when `/usr/sbin`
/// is not on it.
fn which_nginx() -> String {
    let sbin = Path::new("/usr/sbin/nginx");
    let on_path = std::env::var_os("PATH")
        .is_some_and(|p| std::env::split_paths(&p).any(|d| d.join("nginx").is_file()));
    if !on_path && sbin.is_file() {
        sbin.display().to_string()
    } else {
        "nginx".into()
    }
}

/// The whole `nginx.conf`: foreground, everything under `prefix`.
pub fn config(prefix: &Path, port: u16, workers: usize) -> String {
    let p = prefix.display();
    format!(
        "# Written by standings-loadtest bench: the top20 baseline.
daemon off;
master_process on;
worker_processes {workers};
pid {p}/nginx.pid;
error_log {p}/error.log warn;
events {{
    worker_connections 4096;
}}
http {{
    access_log off;
    types {{ }}
    default_type application/json;
    sendfile on;
    tcp_nopush on;
    tcp_nodelay on;
    keepalive_timeout 75s;
    keepalive_requests 100000000;
    open_file_cache max=64 inactive=60s;
    client_body_temp_path {p}/tmp/body;
    proxy_temp_path {p}/tmp/proxy;
    fastcgi_temp_path {p}/tmp/fastcgi;
    uwsgi_temp_path {p}/tmp/uwsgi;
    scgi_temp_path {p}/tmp/scgi;
    server {{
        listen 127.0.0.1:{port};
        root {p}/html;
        location / {{ }}
    }}
}}
"
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn config_is_self_contained() {
        let c = config(Path::new("/x/ng"), 8123, 2);
        assert!(c.contains("listen 127.0.0.1:8123;"));
        assert!(c.contains("worker_processes 2;"));
        assert!(c.contains("access_log off;"));
        assert!(c.contains("root /x/ng/html;"));
        assert!(c.contains("pid /x/ng/nginx.pid;"));
        assert_eq!(c.matches('{').count(), c.matches('}').count());
    }
}
