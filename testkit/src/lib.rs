//! strata-testkit: what Strata's randomised and crash tests share.
//!
//! * [`seed`] — every randomised test takes its seed from here: printed on
//!   stderr, and fixed by `STRATA_SEED=<n>` to replay a run exactly.
//! * [`proptest_config`] — a proptest configuration with that seed and a case
//!   count that `PROPTEST_CASES` raises on demand.
//! * [`count`] — bounded repetition counts for CI, raised by an environment
//!   variable for longer runs (`STRATA_CRASH_ROUNDS=1000`).
//! * [`CrashChild`] — runs a test function in a child process (the same test
//!   binary, re-executed) so that a test can SIGKILL it at a random moment.

use std::io::{BufRead, BufReader};
use std::process::{Child, ChildStdout, Command, Stdio};

use proptest::test_runner::{Config, RngSeed};

/// The seed of a randomised test: `STRATA_SEED` if set, else fresh. Printed
/// with the test's name so that a failure can be replayed.
pub fn seed(test: &str) -> u64 {
    let seed = match std::env::var("STRATA_SEED") {
        Ok(s) => s.parse().unwrap_or_else(|_| panic!("STRATA_SEED={s} is not a u64")),
        Err(_) => rand::random(),
    };
    eprintln!("{test}: seed {seed} (replay with STRATA_SEED={seed})");
    seed
}

/// A proptest configuration seeded by [`seed`], running `default_cases` cases
/// unless `PROPTEST_CASES` says otherwise.
pub fn proptest_config(test: &str, default_cases: u32) -> Config {
    let cases = std::env::var("PROPTEST_CASES").ok().and_then(|c| c.parse().ok()).unwrap_or(default_cases);
    Config { cases, rng_seed: RngSeed::Fixed(seed(test)), failure_persistence: None, ..Config::default() }
}

/// A repetition count: `default` unless the environment variable `var` is set.
pub fn count(var: &str, default: u64) -> u64 {
    std::env::var(var).ok().and_then(|v| v.parse().ok()).unwrap_or(default)
}

/// The environment variable that tells a re-executed test binary which child
/// role to play.
const CHILD_ENV: &str = "STRATA_CRASH_CHILD";

/// The argument passed to a child, if this process is one for `role`.
///
/// A crash test names a child entry point as a `#[test]` that starts with
/// `if let Some(arg) = child_role("name") { ... }` and does nothing otherwise.
pub fn child_role(role: &str) -> Option<String> {
    let v = std::env::var(CHILD_ENV).ok()?;
    let (r, arg) = v.split_once('=')?;
    (r == role).then(|| arg.to_string())
}

/// A child process running one test function of the current test binary.
#[derive(Debug)]
pub struct CrashChild {
    child: Child,
    lines: std::io::Lines<BufReader<ChildStdout>>,
}

impl CrashChild {
    /// Starts the test `test_name` of this binary in a child process, in the
    /// role `role` with argument `arg` (see [`child_role`]).
    pub fn spawn(test_name: &str, role: &str, arg: &str) -> CrashChild {
        let exe = std::env::current_exe().expect("the test binary's path");
        let mut child = Command::new(exe)
            .args([test_name, "--exact", "--nocapture", "--test-threads=1", "-q"])
            .env(CHILD_ENV, format!("{role}={arg}"))
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("spawning the crash child");
        let stdout = child.stdout.take().expect("piped stdout");
        CrashChild { child, lines: BufReader::new(stdout).lines() }
    }

    /// The next line the child printed, or `None` once its stdout closed.
    pub fn next_line(&mut self) -> Option<String> {
        self.lines.next().and_then(|l| l.ok())
    }

    /// SIGKILLs the child, reaps it, and returns the lines it printed that
    /// were not read yet (everything it wrote before it died).
    pub fn kill(mut self) -> Vec<String> {
        let _ = self.child.kill();
        let _ = self.child.wait();
        self.lines.by_ref().map_while(Result::ok).collect()
    }

    /// Waits for the child to exit on its own; true if it succeeded.
    pub fn wait(mut self) -> bool {
        self.child.wait().map(|s| s.success()).unwrap_or(false)
    }
}
