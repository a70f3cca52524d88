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
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("ilion: cannot start the async runtime: {error}");
            return ExitCode::FAILURE;
        }
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
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("ilion stress: cannot start the async runtime: {error}");
            return ExitCode::FAILURE;
        }
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
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("ilion shell: cannot start the async runtime: {error}");
            return ExitCode::FAILURE;
        }
    };
    let code = runtime.block_on(ilion::shell::run(args));
    ExitCode::from(u8::try_from(code).unwrap_or(1))
}

fn run_nodetool(args: ilion::nodetool::NodetoolArgs) -> ExitCode {
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("nodetool: cannot start the async runtime: {error}");
            return ExitCode::FAILURE;
        }
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
