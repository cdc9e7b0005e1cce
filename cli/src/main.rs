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
mod progress;
mod stream;

use std::process::ExitCode;

use clap::{CommandFactory, Parser};

use crate::args::{Cli, Command};
use crate::config::Settings;
use crate::progress::Progress;
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
            progress::erase();
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
    // A REST command prints once its answer is in: until then (a slow
    // server, retries after 429 or 5xx) the progress line says it waits.
    let mut progress = Progress::for_stderr(json);
    let server = "waiting for the server";
    match cli.command {
        Command::Agents(command) => {
            progress
                .during(server, admin::agents(&settings, json, command))
                .await?
        }
        Command::Contexts(command) => {
            progress
                .during(server, admin::contexts(&settings, json, command))
                .await?
        }
        Command::Keys(command) => {
            progress
                .during(server, admin::keys(&settings, json, command))
                .await?
        }
        Command::Users(command) => {
            progress
                .during(server, admin::users(&settings, json, command))
                .await?
        }
        Command::StreamToken { ttl } => {
            progress
                .during(server, admin::stream_token(&settings, json, ttl))
                .await?
        }
        Command::Chat { context } => {
            return stream::chat(&settings, json, &mut progress, &context).await
        }
        Command::Send { context, message } => {
            return stream::send(&settings, json, &mut progress, &context, message).await
        }
        Command::Tail { context } => {
            return stream::tail(&settings, json, &mut progress, &context).await
        }
        Command::Completions { .. } => {} // printed above
    }
    Ok(Outcome::Done)
}
