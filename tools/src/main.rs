//! `strata`: the command-line tool. Its commands (server, shell, log and
//! snapshot inspection, amplification, load) arrive with the issues that build
//! what they drive; until then it says so.

fn main() {
    eprintln!(
        "strata {}: no commands yet. Until the server lands, the main job is the WAL benchmark:\n  cargo bench -p strata-benches --bench wal",
        env!("CARGO_PKG_VERSION")
    );
    std::process::exit(2);
}
