//! Exit codes from `sysexits.h`, so scripts and supervisors can tell a bad
//! config from an unreachable store from a bug.

use std::process::ExitCode;

/// Bad flags or config (EX_USAGE).
pub const EX_USAGE: u8 = 64;
/// Input data is not what it should be, e.g. a foreign database file
/// (EX_DATAERR).
pub const EX_DATAERR: u8 = 65;
/// A needed service (the store) is unavailable (EX_UNAVAILABLE).
pub const EX_UNAVAILABLE: u8 = 69;
/// An internal error: a background task died (EX_SOFTWARE).
pub const EX_SOFTWARE: u8 = 70;
/// The OS refused something, e.g. binding the listen address (EX_OSERR).
pub const EX_OSERR: u8 = 71;
/// An output file or directory cannot be created (EX_CANTCREAT).
pub const EX_CANTCREAT: u8 = 73;
/// A temporary failure, e.g. the data directory is in use (EX_TEMPFAIL).
pub const EX_TEMPFAIL: u8 = 75;

/// Prints `program: error` and returns `code`.
pub fn fail(program: &str, error: &dyn std::fmt::Display, code: u8) -> ExitCode {
    eprintln!("{program}: {error}");
    ExitCode::from(code)
}
