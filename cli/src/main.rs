//! `chaperone`: the command line of the chaperone runtime.

// A command line prints; the workspace bans print macros in libraries (clippy.toml).
#![allow(clippy::disallowed_macros)]

use std::process::ExitCode;

use clap::Parser;

mod eval;

/// chaperone: learn what a container's syscalls normally look like, and catch what deviates.
#[derive(Debug, Parser)]
#[command(name = "chaperone", version, about, long_about = None)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, clap::Subcommand)]
enum Command {
    /// Evaluate the detectors offline on recorded syscall traces.
    Eval(eval::EvalArgs),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Eval(args) => eval::run(&args),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("chaperone: error: {err:#}");
            ExitCode::FAILURE
        }
    }
}
