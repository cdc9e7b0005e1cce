//! `tokenrelay`: the command line of tokenrelay. Every REST call goes
//! through the SDK's `AdminClient` and every socket through its `Client`;
//! this crate only parses, resolves settings and prints.
//!
//! Exit codes: 0 success; 1 an error, printed as one line on stderr with
//! the server's code when it gave one; 2 a usage error; 3 `send`'s reply
//! ended other than complete (stopped, failed, interrupted).

mod admin;
mod args;
mod config;
mod output;
mod stream;

use std::process::ExitCode;

use clap::{CommandFactory, Parser};

use crate::args::{Cli, Command};
use crate::config::Settings;
use crate::stream::Outcome;

fn main() -> ExitCode {
    let cli = Cli::parse();
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let result = runtime.block_on(run(cli));
    // Do not wait for the blocking thread reading stdin (`chat`): it only
    // ends when a line comes, and the user has asked to leave.
    runtime.shutdown_background();
    match result {
        Ok(Outcome::Done) => ExitCode::SUCCESS,
        Ok(Outcome::Incomplete) => ExitCode::from(3),
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}

async fn run(cli: Cli) -> Result<Outcome, tokenrelay::Error> {
    if let Command::Completions { shell } = cli.command {
        // Needs no settings: works before any config exists.
        clap_complete::generate(
            shell,
            &mut Cli::command(),
            "tokenrelay",
            &mut std::io::stdout(),
        );
        return Ok(Outcome::Done);
    }
    let settings = Settings::resolve(&cli.global)?;
    let json = cli.global.json;
    match cli.command {
        Command::Agents(command) => admin::agents(&settings, json, command).await?,
        Command::Contexts(command) => admin::contexts(&settings, json, command).await?,
        Command::Keys(command) => admin::keys(&settings, json, command).await?,
        Command::Users(command) => admin::users(&settings, json, command).await?,
        Command::StreamToken { ttl } => admin::stream_token(&settings, json, ttl).await?,
        Command::Chat { context } => return stream::chat(&settings, json, &context).await,
        Command::Send { context, message } => {
            return stream::send(&settings, json, &context, message).await
        }
        Command::Tail { context } => return stream::tail(&settings, json, &context).await,
        Command::Completions { .. } => {} // printed above
    }
    Ok(Outcome::Done)
}
