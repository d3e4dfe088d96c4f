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

/// CPU time (user + system) a process has used so far, from
/// `/proc/PID/stat`; `None` once it is gone.
pub fn cpu_time(pid: u32, ticks_per_sec: u64) -> Option<Duration> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let ticks = parse_stat_ticks(&text)?;
    Some(Duration::from_secs_f64(
        ticks as f64 / ticks_per_sec.max(1) as f64,
    ))
}

/// utime + stime, in clock ticks, from a `/proc/PID/stat` line. The
/// command name (field 2) is in parentheses and may hold spaces, so fields
/// are counted after the last `)`: utime and stime are fields 14 and 15.
pub fn parse_stat_ticks(stat: &str) -> Option<u64> {
    let rest = &stat[stat.rfind(')')? + 1..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let utime: u64 = fields.get(11)?.parse().ok()?;
    let stime: u64 = fields.get(12)?.parse().ok()?;
    Some(utime + stime)
}

/// Clock ticks per second for `/proc` times (`getconf CLK_TCK`; 100 on
/// Linux when getconf is missing).
pub fn ticks_per_sec() -> u64 {
    Command::new("getconf")
        .arg("CLK_TCK")
        .output()
        .ok()
        .and_then(|o| String::from_utf8_lossy(&o.stdout).trim().parse().ok())
        .unwrap_or(100)
}

/// The processes whose parent is `pid` (nginx's workers), from `/proc`.
pub fn children_of(pid: u32) -> Vec<u32> {
    let Ok(dir) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    dir.filter_map(|e| e.ok()?.file_name().to_str()?.parse::<u32>().ok())
        .filter(|&child| {
            std::fs::read_to_string(format!("/proc/{child}/stat"))
                .ok()
                .and_then(|s| {
                    let rest = &s[s.rfind(')')? + 1..];
                    rest.split_whitespace().nth(1)?.parse::<u32>().ok()
                })
                == Some(pid)
        })
        .collect()
}

/// CPU time a set of processes spends during a measurement.
pub struct CpuMeter {
    /// The processes measured.
    pids: Vec<u32>,
    /// Their CPU time when the meter started.
    before: Vec<Duration>,
    /// `/proc` clock ticks per second.
    ticks: u64,
}

impl CpuMeter {
    /// Starts measuring `pids`.
    pub fn start(pids: &[u32], ticks: u64) -> Self {
        Self {
            pids: pids.to_vec(),
            before: pids
                .iter()
                .map(|&p| cpu_time(p, ticks).unwrap_or_default())
                .collect(),
            ticks,
        }
    }

    /// CPU time used by all of them since [`start`](Self::start).
    pub fn used(&self) -> Duration {
        self.pids
            .iter()
            .zip(&self.before)
            .map(|(&p, &b)| cpu_time(p, self.ticks).unwrap_or(b).saturating_sub(b))
            .sum()
    }
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
    fn reads_cpu_ticks_from_proc_stat() {
        let stat = "4242 (tokio rt) worker) S 1 4242 4242 0 -1 4194560 500 0 0 0 \
                    1234 567 0 0 20 0 3 0 100 300000 5000 18446744073709551615";
        assert_eq!(parse_stat_ticks(stat), Some(1234 + 567));
        assert_eq!(parse_stat_ticks("garbage"), None);
        assert!(cpu_time(std::process::id(), ticks_per_sec()).is_some());
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
