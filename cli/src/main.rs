//! `chaperone`: the command line of the chaperone runtime.

// A command line prints; the workspace bans print macros in libraries (clippy.toml).
#![allow(clippy::disallowed_macros)]

use std::process::ExitCode;

use clap::Parser;

mod diff;
mod eval;
mod export;
mod out;
mod resume;
mod store;

/// chaperone: learn what a container's syscalls normally look like, and catch what deviates.
#[derive(Debug, Parser)]
#[command(name = "chaperone", version, about, long_about = None)]
#[command(
    after_help = "Exit status: 0 ok; 1 error; 2 bad usage; 3 policy failure (diff --fail-on); 141 standard\noutput closed before the command was done (as under `| head`)."
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, clap::Subcommand)]
enum Command {
    /// Evaluate the detectors offline on recorded syscall traces.
    Eval(eval::EvalArgs),
    /// Learned profiles in the store: list, show, set the mode, reset, export.
    Profile(export::ProfileArgs),
    /// Read the alert log; mark an alert benign.
    Alerts(store::AlertsArgs),
    /// Build or extend a learned profile from recorded traces.
    Learn(export::LearnArgs),
    /// Compare two learned profiles (exit 3 when a change matches --fail-on).
    Diff(diff::DiffArgs),
    /// Thaw a container the pause action froze.
    Resume(resume::ResumeArgs),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Eval(args) => eval::run(&args).map(|()| ExitCode::SUCCESS),
        Command::Profile(args) => export::run_profile(&args).map(|()| ExitCode::SUCCESS),
        Command::Learn(args) => export::run_learn(&args).map(|()| ExitCode::SUCCESS),
        Command::Diff(args) => diff::run(&args),
        Command::Alerts(args) => store::run_alerts(&args).map(|()| ExitCode::SUCCESS),
        Command::Resume(args) => resume::run(&args).map(|()| ExitCode::SUCCESS),
    };
    match result {
        Ok(code) => code,
        // The reader has what it wanted: nothing to report.
        Err(err) if out::is_closed_output(&err) => ExitCode::from(out::CLOSED_OUTPUT),
        Err(err) if err.downcast_ref::<out::Usage>().is_some() => {
            eprintln!("chaperone: error: {err:#}\n\nFor more information, try '--help'.");
            ExitCode::from(2)
        }
        Err(err) => {
            eprintln!("chaperone: error: {err:#}");
            ExitCode::FAILURE
        }
    }
}
