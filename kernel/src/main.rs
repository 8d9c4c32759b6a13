//! The `trellis` command.

use clap::Parser;

#[tokio::main]
async fn main() -> std::process::ExitCode {
    let cli = trellis::cli::Cli::parse();
    match trellis::cli::run(cli).await {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}
