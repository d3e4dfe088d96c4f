//! The workspace's own binaries as child processes, for tests that run the
//! gateway and the agents the way an operator does: separate processes
//! talking to a real cluster.
//!
//! - [`workspace_bin`] finds (building it first) a binary of another
//!   package of this workspace. Cargo only gives a test the binaries of its
//!   own package (`env!("CARGO_BIN_EXE_<name>")`); a gateway test that
//!   starts `standings-agent` needs this.
//! - [`Process`] starts a command with its stdout and stderr in files and
//!   kills it when dropped, so a failing test leaves no process behind; a
//!   test that panics prints the tail of every live process's output.
//! - [`ScratchDir`] is a temporary directory for configs and logs, removed
//!   on success and kept (its path printed) when the test panics.
//! - [`free_loopback_port`] picks a port for a process that must be told
//!   its address up front.
//! - [`process_cpu_seconds`] is this process's CPU time, for benchmarks
//!   that report CPU per operation, and [`env_or`] reads a benchmark's
//!   size from the environment.

use std::collections::HashMap;
use std::fs::File;
use std::io::{Read, Seek, SeekFrom};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, OnceLock};

/// How much of each output file a panicking test prints: enough for the
/// last few hundred log lines, little enough to read.
const LOG_TAIL_BYTES: u64 = 16 * 1024;

/// The path of binary `bin` of workspace package `package`, built with the
/// same profile and target directory as the running test.
///
/// The test executable is `TARGET/PROFILE/deps/NAME-HASH`, so the binary
/// is `TARGET/PROFILE/BIN`. Under Cargo (the `CARGO` variable is set) it
/// runs `cargo build -p PACKAGE --bin BIN` with that profile and target
/// directory first, once per test process: a no-op when the binary is
/// fresh, and the guard against testing a stale binary when it exists but
/// its sources changed. Outside Cargo it uses the binary as it finds it.
///
/// Panics with the build's output when the build fails, or when the binary
/// is still not there.
pub fn workspace_bin(package: &str, bin: &str) -> PathBuf {
    static BUILT: OnceLock<Mutex<HashMap<String, PathBuf>>> = OnceLock::new();
    let built = BUILT.get_or_init(|| Mutex::new(HashMap::new()));
    // Held across the build, so concurrent tests build a binary only once.
    let mut built = built.lock().unwrap_or_else(|p| p.into_inner());
    if let Some(path) = built.get(bin) {
        return path.clone();
    }
    let profile_dir = profile_dir();
    let path = profile_dir.join(format!("{bin}{}", std::env::consts::EXE_SUFFIX));
    if let Ok(cargo) = std::env::var("CARGO") {
        cargo_build(&cargo, package, bin, &profile_dir);
    }
    assert!(
        path.is_file(),
        "{} not found after building it; is {package} a workspace member with a [[bin]] {bin}?",
        path.display()
    );
    built.insert(bin.to_string(), path.clone());
    path
}

/// `TARGET/PROFILE`, from the running test executable's path.
fn profile_dir() -> PathBuf {
    let exe = std::env::current_exe().expect("the test executable's path");
    let dir = exe.parent().expect("the test executable has a directory");
    let dir = if dir.ends_with("deps") {
        dir.parent().expect("deps has a parent")
    } else {
        dir
    };
    dir.to_path_buf()
}

/// `cargo build -p PACKAGE --bin BIN` into the profile directory the test
/// runs from: `debug` is the dev profile, `release` the release profile,
/// any other name a custom profile of that name.
fn cargo_build(cargo: &str, package: &str, bin: &str, profile_dir: &Path) {
    let profile = profile_dir
        .file_name()
        .and_then(|n| n.to_str())
        .expect("profile directory name");
    let target_dir = profile_dir.parent().expect("target directory");
    let manifest = Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("test-support sits in the workspace root")
        .join("Cargo.toml");
    let mut cmd = Command::new(cargo);
    cmd.arg("build")
        .arg("--manifest-path")
        .arg(&manifest)
        .arg("--target-dir")
        .arg(target_dir)
        .args(["-p", package, "--bin", bin]);
    match profile {
        "debug" => {}
        "release" => {
            cmd.arg("--release");
        }
        other => {
            cmd.args(["--profile", other]);
        }
    }
    let output = cmd
        .output()
        .unwrap_or_else(|e| panic!("running {cmd:?}: {e}"));
    assert!(
        output.status.success(),
        "{cmd:?} failed ({}):\n{}",
        output.status,
        String::from_utf8_lossy(&output.stderr)
    );
}

/// A free TCP port on 127.0.0.1, found by binding port 0 and releasing it.
/// Another process can take it before the caller binds it, so a caller
/// that starts a server on it should retry with a new port when the bind
/// fails.
pub fn free_loopback_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("bind 127.0.0.1:0")
}

/// A temporary directory for one test's configs and logs: removed when
/// dropped, unless the test is panicking, when it is kept for inspection
/// and its path is printed.
pub struct ScratchDir {
    /// The directory, unique per process and call.
    path: PathBuf,
}

impl ScratchDir {
    /// Creates `$TMPDIR/standings-LABEL-PID-N`.
    pub fn new(label: &str) -> Self {
        static NEXT: AtomicU64 = AtomicU64::new(0);
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        let path =
            std::env::temp_dir().join(format!("standings-{label}-{}-{n}", std::process::id()));
        let _ = std::fs::remove_dir_all(&path);
        std::fs::create_dir_all(&path)
            .unwrap_or_else(|e| panic!("creating {}: {e}", path.display()));
        Self { path }
    }

    /// The directory.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

impl Drop for ScratchDir {
    fn drop(&mut self) {
        if std::thread::panicking() {
            eprintln!("test failed: its files are kept in {}", self.path.display());
        } else {
            let _ = std::fs::remove_dir_all(&self.path);
        }
    }
}

/// A child process whose output goes to `NAME.stdout` and `NAME.stderr` in
/// a log directory. Killed (SIGKILL) and reaped when dropped; if the test
/// is panicking then, the tail of both files is printed first, so a failure
/// shows what every process said.
pub struct Process {
    /// Names the process in messages and its log files.
    name: String,
    /// The running child; reaped in `Drop`.
    child: Child,
    /// Where its stdout goes.
    stdout: PathBuf,
    /// Where its stderr goes.
    stderr: PathBuf,
}

impl Process {
    /// Starts `cmd` with stdin closed and stdout/stderr written to
    /// `logs/NAME.stdout` and `logs/NAME.stderr` (appended to, so a
    /// restarted process keeps the earlier output). Panics when the
    /// program cannot be started.
    pub fn spawn(name: &str, mut cmd: Command, logs: &Path) -> Self {
        let stdout = logs.join(format!("{name}.stdout"));
        let stderr = logs.join(format!("{name}.stderr"));
        let open = |path: &Path| {
            File::options()
                .create(true)
                .append(true)
                .open(path)
                .unwrap_or_else(|e| panic!("opening {}: {e}", path.display()))
        };
        cmd.stdin(Stdio::null())
            .stdout(open(&stdout))
            .stderr(open(&stderr));
        let child = cmd
            .spawn()
            .unwrap_or_else(|e| panic!("starting {name} ({cmd:?}): {e}"));
        Self {
            name: name.to_string(),
            child,
            stdout,
            stderr,
        }
    }

    /// The name it was started with.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Its process id.
    pub fn id(&self) -> u32 {
        self.child.id()
    }

    /// Its exit status if it has exited, without waiting.
    pub fn exited(&mut self) -> Option<ExitStatus> {
        self.child
            .try_wait()
            .unwrap_or_else(|e| panic!("waiting on {}: {e}", self.name))
    }

    /// Panics when it has exited: for checks that a process the test
    /// depends on is still running. (Its output is printed when the
    /// panicking test drops it.)
    pub fn assert_running(&mut self) {
        if let Some(status) = self.exited() {
            panic!(
                "{} exited ({status}) while the test needed it; its output follows",
                self.name
            );
        }
    }

    /// The tail of its stdout and stderr, labelled, for failure messages.
    pub fn logs(&self) -> String {
        format!(
            "---- {name} stdout ({out}) ----\n{}\n---- {name} stderr ({err}) ----\n{}",
            tail(&self.stdout),
            tail(&self.stderr),
            name = self.name,
            out = self.stdout.display(),
            err = self.stderr.display(),
        )
    }

    /// Kills it (SIGKILL) and waits for it to exit. Harmless when it has
    /// already exited.
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Process {
    fn drop(&mut self) {
        if std::thread::panicking() {
            eprintln!("{}", self.logs());
        }
        self.kill();
    }
}

/// The last [`LOG_TAIL_BYTES`] of a file, lossily as text.
fn tail(path: &Path) -> String {
    let Ok(mut file) = File::open(path) else {
        return format!("(cannot open {})", path.display());
    };
    let len = file.metadata().map(|m| m.len()).unwrap_or(0);
    let start = len.saturating_sub(LOG_TAIL_BYTES);
    let mut bytes = Vec::new();
    if file.seek(SeekFrom::Start(start)).is_err() || file.read_to_end(&mut bytes).is_err() {
        return format!("(cannot read {})", path.display());
    }
    let text = String::from_utf8_lossy(&bytes);
    if start > 0 {
        format!("[... {start} earlier bytes ...]\n{text}")
    } else {
        text.into_owned()
    }
}

/// The environment variable `name` parsed as a `T`, or `default` when it
/// is unset or does not parse: how the benchmarks take their sizes
/// (`BENCH_WRITES`, `BENCH_COMMITS`, ...).
pub fn env_or<T: std::str::FromStr>(name: &str, default: T) -> T {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// This process's CPU time (user + system), from `/proc/self/stat`.
pub fn process_cpu_seconds() -> f64 {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    // Fields after the command name, which is in parentheses.
    let rest = stat.rsplit_once(')').map_or("", |(_, r)| r);
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let ticks = |i: usize| {
        fields
            .get(i)
            .and_then(|v| v.parse::<f64>().ok())
            .unwrap_or(0.0)
    };
    // utime and stime are fields 14 and 15 of the line, 12 and 13 here.
    (ticks(11) + ticks(12)) / 100.0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_process_logs_to_files_and_dies_with_its_handle() {
        let dir = ScratchDir::new("process-test");
        let mut cmd = Command::new("sh");
        cmd.args(["-c", "echo hello; echo oops >&2; exec sleep 600"]);
        let mut p = Process::spawn("sleeper", cmd, dir.path());
        let pid = p.id();
        crate::eventually(
            std::time::Duration::from_secs(10),
            "the output in the log files",
            || p.logs().contains("hello") && p.logs().contains("oops"),
        );
        p.assert_running();
        drop(p);
        let proc_dir = PathBuf::from(format!("/proc/{pid}"));
        assert!(!proc_dir.exists(), "the child was killed and reaped");
    }

    #[test]
    fn scratch_dirs_are_removed() {
        let dir = ScratchDir::new("scratch-test");
        let path = dir.path().to_path_buf();
        std::fs::write(path.join("f"), b"x").unwrap();
        drop(dir);
        assert!(!path.exists());
    }

    #[test]
    fn tails_are_bounded() {
        let dir = ScratchDir::new("tail-test");
        let path = dir.path().join("big");
        std::fs::write(&path, vec![b'a'; (LOG_TAIL_BYTES * 2) as usize]).unwrap();
        let t = tail(&path);
        assert!(t.starts_with(&format!("[... {LOG_TAIL_BYTES} earlier bytes ...]")));
        assert!(t.len() < (LOG_TAIL_BYTES as usize) + 100);
    }

    #[test]
    fn the_profile_dir_is_above_deps() {
        let dir = profile_dir();
        assert!(dir.join("deps").is_dir(), "{}", dir.display());
    }
}
