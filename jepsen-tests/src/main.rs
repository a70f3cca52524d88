//! Jepsen-style fault-injection tests against real `ilion` processes.
//!
//! Status: not built yet (issue 7). The command exists so that its shape is
//! fixed; every test it is asked to run answers `not yet supported`.

use clap::Parser;

/// Runs a named fault-injection test against a local cluster.
#[derive(Parser)]
#[command(
    name = "jepsen-tests",
    about = "Fault-injection tests against real ilion processes (not yet built)"
)]
struct Args {
    /// What to do (`test`).
    command: String,
}

fn main() -> std::process::ExitCode {
    let args = Args::parse();
    eprintln!(
        "not yet supported: jepsen-tests {} (the harness is issue 7)",
        args.command
    );
    std::process::ExitCode::from(2)
}
