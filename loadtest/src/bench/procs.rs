//! The processes a bench run starts, and the small facts it reads about
//! them.
//!
//! Every long-running process (the gateway, the agents, nginx, the
//! standalone Redis) is a [`Proc`]: a guard that stops the process when it
//! drops, so an error, a panic or Ctrl-C (which drops the whole run, see
//! [`super::run`]) leaves nothing behind. Stopping is SIGTERM first, because
//! nginx's workers outlive a SIGKILLed master and the gateway drains on
//! SIGTERM, then SIGKILL after a short grace.

use std::fs::File;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context};

/// How long a stopped process gets between SIGTERM and SIGKILL.
const STOP_GRACE: Duration = Duration::from_secs(3);

/// A child process, stopped when dropped; its stdout and stderr go to a log
/// file whose tail is quoted when it dies early.
pub struct Proc {
    /// What the run calls it, in messages.
    name: String,
    /// The process itself.
    child: Child,
    /// Where its output goes.
    log: PathBuf,
}

impl Proc {
    /// Starts `cmd` with its output in `log`.
    pub fn start(name: &str, mut cmd: Command, log: &Path) -> anyhow::Result<Self> {
        let out = File::create(log).with_context(|| format!("creating {}", log.display()))?;
        let err = out.try_clone()?;
        let child = cmd
            .stdin(Stdio::null())
            .stdout(out)
            .stderr(err)
            .spawn()
            .with_context(|| format!("starting {name}: {cmd:?}"))?;
        Ok(Self {
            name: name.to_string(),
            child,
            log: log.to_path_buf(),
        })
    }

    /// Its process id, for `/proc/PID/status`.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Fails, quoting the end of its log, when the process has exited.
    pub fn ensure_running(&mut self) -> anyhow::Result<()> {
        if let Some(status) = self.child.try_wait()? {
            bail!(
                "{} exited ({status}); the end of {}:\n{}",
                self.name,
                self.log.display(),
                log_tail(&self.log)
            );
        }
        Ok(())
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        if matches!(self.child.try_wait(), Ok(Some(_))) {
            return;
        }
        // No unsafe `kill(2)` here: the `kill` utility sends the SIGTERM.
        let termed = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success());
        let deadline = Instant::now() + if termed { STOP_GRACE } else { Duration::ZERO };
        while Instant::now() < deadline {
            if matches!(self.child.try_wait(), Ok(Some(_))) {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The last 2 KiB of a log file, for error messages.
fn log_tail(path: &Path) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let start = text.len().saturating_sub(2048);
    let start = (start..text.len())
        .find(|&i| text.is_char_boundary(i))
        .unwrap_or(text.len());
    text[start..].to_string()
}

/// A free TCP port on 127.0.0.1 (bind port 0, read it, release it). Another
/// process could take it in between; the start that follows then fails
/// loudly rather than measuring the wrong server.
pub fn free_port() -> anyhow::Result<u16> {
    let listener = TcpListener::bind("127.0.0.1:0").context("binding 127.0.0.1:0")?;
    Ok(listener.local_addr()?.port())
}

/// Waits until something accepts TCP connections on 127.0.0.1:`port`.
pub async fn wait_for_port(port: u16, timeout: Duration) -> anyhow::Result<()> {
    let deadline = Instant::now() + timeout;
    loop {
        if tokio::net::TcpStream::connect(("127.0.0.1", port))
            .await
            .is_ok()
        {
            return Ok(());
        }
        if Instant::now() > deadline {
            bail!("nothing listens on 127.0.0.1:{port} after {timeout:?}");
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// A binary built beside the running executable (`target/release/` when
/// the bench runs from there), as `scripts/bench.sh` builds them.
pub fn sibling_binary(name: &str) -> anyhow::Result<PathBuf> {
    let exe = std::env::current_exe().context("the running executable's path")?;
    let dir = exe.parent().context("the executable's directory")?;
    let path = dir.join(name);
    if !path.is_file() {
        bail!(
            "{} is missing: build the binaries first with `cargo build --release --bins` \
             (scripts/bench.sh does)",
            path.display()
        );
    }
    Ok(path)
}

/// The target directory the running executable was built into
/// (`target/release/NAME` -> `target`): where `bench/` output goes.
pub fn target_dir() -> anyhow::Result<PathBuf> {
    let exe = std::env::current_exe().context("the running executable's path")?;
    exe.parent()
        .and_then(Path::parent)
        .map(Path::to_path_buf)
        .context("the executable sits two levels below a target directory")
}

/// Resident and peak resident memory of a process, in bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rss {
    /// `VmRSS`: resident now.
    pub now: u64,
    /// `VmHWM`: the most it was resident.
    pub peak: u64,
}

/// Reads `/proc/PID/status`.
pub fn rss_of(pid: u32) -> anyhow::Result<Rss> {
    let path = format!("/proc/{pid}/status");
    let text = std::fs::read_to_string(&path).with_context(|| format!("reading {path}"))?;
    parse_status(&text).with_context(|| format!("{path} lacks VmRSS or VmHWM"))
}

/// `VmRSS` and `VmHWM` from a `/proc/PID/status` text (values in kB).
pub fn parse_status(text: &str) -> Option<Rss> {
    let field = |name: &str| {
        text.lines()
            .find_map(|l| l.strip_prefix(name)?.strip_prefix(':'))
            .and_then(|v| v.trim().strip_suffix("kB"))
            .and_then(|v| v.trim().parse::<u64>().ok())
            .map(|kb| kb * 1024)
    };
    Some(Rss {
        now: field("VmRSS")?,
        peak: field("VmHWM")?,
    })
}

/// The machine's load averages, as `/proc/loadavg` says (for the notes).
pub fn load_average() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|s| s.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_rss_from_proc_status() {
        let status = "Name:\tstandings-gatew\nVmPeak:\t  300000 kB\nVmHWM:\t   40960 kB\n\
                      VmRSS:\t   20480 kB\nThreads:\t3\n";
        assert_eq!(
            parse_status(status),
            Some(Rss {
                now: 20 * 1024 * 1024,
                peak: 40 * 1024 * 1024
            })
        );
        assert_eq!(parse_status("Name:\tx\n"), None);
    }

    #[test]
    fn this_process_has_an_rss() {
        let rss = rss_of(std::process::id()).unwrap();
        assert!(rss.now > 0 && rss.peak >= rss.now);
    }

    #[test]
    fn a_dropped_proc_is_stopped() {
        let log = std::env::temp_dir().join(format!("standings-proc-{}.log", std::process::id()));
        let mut cmd = Command::new("sleep");
        cmd.arg("30");
        let mut proc = Proc::start("sleep", cmd, &log).unwrap();
        proc.ensure_running().unwrap();
        let pid = proc.pid();
        drop(proc);
        assert!(
            !Path::new(&format!("/proc/{pid}")).exists(),
            "stopped and reaped"
        );
        let _ = std::fs::remove_file(log);
    }
}
