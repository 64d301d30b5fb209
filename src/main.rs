//! Starts the service, or runs an admin command (`auth-service --help`); everything else lives
//! in the library.

use std::process::ExitCode;

use auth_service::cli::{self, Cli, Command};
use clap::Parser;

#[rocket::main]
async fn main() -> ExitCode {
    match Cli::parse().command.unwrap_or(Command::Serve) {
        Command::Serve => {
            // The log format comes from the same settings the service reads, before it is built.
            if let Err(message) = auth_service::logging::init(&rocket::Config::figment()) {
                eprintln!("auth-service: {message}");
                return ExitCode::FAILURE;
            }
            match auth_service::rocket().launch().await {
                Ok(_) => ExitCode::SUCCESS,
                Err(error) => {
                    // Rocket has logged why; reading the kind marks the error as handled.
                    let _ = error.kind();
                    ExitCode::FAILURE
                }
            }
        }
        command => match cli::run(command).await {
            Ok(output) => {
                println!("{output}");
                ExitCode::SUCCESS
            }
            Err(message) => {
                eprintln!("auth-service: {message}");
                ExitCode::FAILURE
            }
        },
    }
}
