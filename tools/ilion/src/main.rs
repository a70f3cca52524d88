//! Entry point of the `ilion` program: parses the command line and hands over
//! to the subcommand.

use std::process::ExitCode;

use clap::Parser;

/// Requests allocate many small, short-lived buffers; mimalloc serves them
/// faster than the system allocator (a profile showed malloc at ~18%).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;
use ilion::cli::{Cli, Command};

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Command::Server(args) => run_server(&args),
        Command::Shell(args) => run_shell(args),
        Command::Nodetool(args) => run_nodetool(args),
        Command::Stress(args) => run_stress(args),
        Command::Cluster(args) => match ilion::cluster::run(args) {
            Ok(output) => {
                print!("{output}");
                ExitCode::SUCCESS
            }
            Err(error) => {
                eprintln!("ilion cluster: {error:#}");
                ExitCode::FAILURE
            }
        },
    }
}

fn run_server(args: &ilion::cli::ServerArgs) -> ExitCode {
    let config = match ilion::server::load_config(args, std::env::vars()) {
        Ok(config) => config,
        Err(error) => {
            eprintln!("ilion: configuration error: {error}");
            return ExitCode::from(2);
        }
    };
    ilion::logging::init(config.log_format);
    let Some(runtime) = runtime("ilion", Threads::Many) else {
        return ExitCode::FAILURE;
    };
    match runtime.block_on(ilion::server::run(config)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            tracing::error!("{error:#}");
            eprintln!("ilion: {error:#}");
            ExitCode::from(2)
        }
    }
}

fn run_stress(args: ilion::stress::StressArgs) -> ExitCode {
    let Some(runtime) = runtime("ilion stress", Threads::Many) else {
        return ExitCode::FAILURE;
    };
    match runtime.block_on(ilion::stress::run(args)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("ilion stress: {error:#}");
            ExitCode::from(1)
        }
    }
}

fn run_shell(args: ilion::shell::ShellArgs) -> ExitCode {
    let Some(runtime) = runtime("ilion shell", Threads::Two) else {
        return ExitCode::FAILURE;
    };
    let code = runtime.block_on(ilion::shell::run(args));
    ExitCode::from(u8::try_from(code).unwrap_or(1))
}

fn run_nodetool(args: ilion::nodetool::NodetoolArgs) -> ExitCode {
    let Some(runtime) = runtime("nodetool", Threads::One) else {
        return ExitCode::FAILURE;
    };
    match runtime.block_on(ilion::nodetool::run(args)) {
        Ok(output) => {
            print!("{output}");
            ExitCode::SUCCESS
        }
        Err(failure) => {
            eprintln!("nodetool: {}", failure.message);
            ExitCode::FAILURE
        }
    }
}

/// How many worker threads a tool's async runtime gets.
enum Threads {
    /// One per core (the server, the load generator).
    Many,
    /// Two: the shell's own work and the driver's.
    Two,
    /// The calling thread only (one request and out).
    One,
}

/// The async runtime of a tool; None (after saying why) if it cannot start.
fn runtime(tool: &str, threads: Threads) -> Option<tokio::runtime::Runtime> {
    let mut builder = match threads {
        Threads::Many => {
            let mut builder = tokio::runtime::Builder::new_multi_thread();
            // Threads that wait on the network for work ask for a short
            // slice, so they run as soon as work comes (see set_scheduling).
            builder.on_thread_start(|| {
                storage_lsm::background::set_scheduling(
                    0,
                    Some(storage_lsm::background::REQUEST_SLICE),
                )
            });
            builder
        }
        Threads::Two => {
            let mut builder = tokio::runtime::Builder::new_multi_thread();
            builder.worker_threads(2);
            builder
        }
        Threads::One => tokio::runtime::Builder::new_current_thread(),
    };
    match builder.enable_all().build() {
        Ok(runtime) => Some(runtime),
        Err(error) => {
            eprintln!("{tool}: cannot start the async runtime: {error}");
            None
        }
    }
}
