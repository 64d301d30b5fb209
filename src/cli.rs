//! The admin command line, in the same binary as the server: `auth-service --help`.
//!
//! Every command ignites the service as `serve` would (settings from Rocket.toml and
//! `ROCKET_*`, migrations applied) without listening, then calls the same [`Auth`] layer as the
//! routes, so an account made here is made exactly as `POST /users` makes it. Passwords are read
//! from the first line of standard input, never from the command line, where `ps` would show them.

use std::io::BufRead;

use clap::{Parser, Subcommand};

use crate::auth::{Auth, Password};
use crate::error::Error;
use crate::user::{Email, User};

/// auth-service: the server, and the commands that administer its accounts.
#[derive(Debug, Parser)]
#[command(name = "auth-service", version)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Option<Command>,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Serve HTTP (the default when no command is given).
    Serve,
    /// Apply pending database migrations, then exit.
    Migrate,
    /// Create, show, delete an account, or set its password.
    #[command(subcommand)]
    User(UserCommand),
    /// List or end the sessions of an account.
    #[command(subcommand)]
    Sessions(SessionsCommand),
    /// Delete expired sessions and clear expired reset tokens.
    PurgeExpired,
}

#[derive(Debug, Subcommand)]
pub enum UserCommand {
    /// Create an account; the password is the first line of standard input.
    Create { email: String },
    /// Show an account and how many live sessions it has.
    Show { email: String },
    /// Delete an account, its sessions with it.
    Delete { email: String },
    /// Set a new password (the first line of standard input) and end every session.
    SetPassword { email: String },
}

#[derive(Debug, Subcommand)]
pub enum SessionsCommand {
    /// List the live sessions of an account.
    List {
        #[arg(long, value_name = "EMAIL")]
        user: String,
    },
    /// End every session of an account.
    Revoke {
        #[arg(long, value_name = "EMAIL")]
        user: String,
    },
}

/// Runs an admin command and returns what to print; the error says what went wrong.
pub async fn run(command: Command) -> Result<String, String> {
    let figment = rocket::Config::figment().merge(("log_level", "critical"));
    let rocket = crate::build(figment).ignite().await.map_err(|error| format!("cannot start: {error}"))?;
    let auth = Auth::from_rocket(&rocket).ok_or("the service's stages did not start")?;
    let said = |error: Error| error.public_message().into_owned();
    match command {
        Command::Serve => Err("serve is not an admin command".into()),
        Command::Migrate => Ok("the database is migrated".into()),
        Command::User(UserCommand::Create { email }) => {
            let email = parse_email(&email)?;
            let user = auth.register_user(&email, &read_password()?).await.map_err(said)?;
            Ok(format!("created user {} <{}>", user.id, user.email))
        }
        Command::User(UserCommand::Show { email }) => {
            let user = existing(&auth, &email).await?;
            let sessions = auth.list_sessions(user.id).await.map_err(said)?;
            Ok(format!(
                "id: {}\nemail: {}\ncreated: {} UTC\nlive sessions: {}",
                user.id,
                user.email,
                user.created_at.format("%Y-%m-%d %H:%M:%S"),
                sessions.len()
            ))
        }
        Command::User(UserCommand::Delete { email }) => {
            let user = existing(&auth, &email).await?;
            auth.delete_user(user.id).await.map_err(said)?;
            Ok(format!("deleted user {} <{}>", user.id, user.email))
        }
        Command::User(UserCommand::SetPassword { email }) => {
            let user = existing(&auth, &email).await?;
            let ended = auth.set_password(&user, &read_password()?).await.map_err(said)?;
            Ok(format!("password of <{}> set; {ended} session(s) ended", user.email))
        }
        Command::Sessions(SessionsCommand::List { user }) => {
            let user = existing(&auth, &user).await?;
            let sessions = auth.list_sessions(user.id).await.map_err(said)?;
            let lines: Vec<String> = sessions
                .iter()
                .map(|s| {
                    format!(
                        "{}\tlast seen {}\tsince {}\t{}\t{}",
                        s.id,
                        s.last_seen_at.format("%Y-%m-%d %H:%M:%S"),
                        s.created_at.format("%Y-%m-%d %H:%M:%S"),
                        s.ip.as_deref().unwrap_or("-"),
                        s.user_agent.as_deref().unwrap_or("-")
                    )
                })
                .collect();
            Ok(format!("{} live session(s) of <{}>\n{}", sessions.len(), user.email, lines.join("\n")))
        }
        Command::Sessions(SessionsCommand::Revoke { user }) => {
            let user = existing(&auth, &user).await?;
            let ended = auth.end_sessions(user.id, crate::db::SessionScope::All).await.map_err(said)?;
            Ok(format!("{ended} session(s) of <{}> ended", user.email))
        }
        Command::PurgeExpired => {
            let (sessions, tokens) = auth.purge_expired().await.map_err(said)?;
            Ok(format!("purged {sessions} expired session(s) and {tokens} expired reset token(s)"))
        }
    }
}

fn parse_email(raw: &str) -> Result<Email, String> {
    Email::parse(raw).map_err(|why| format!("email {why}"))
}

async fn existing(auth: &Auth<'_>, raw: &str) -> Result<User, String> {
    let email = parse_email(raw)?;
    match auth.user_by_email(&email).await {
        Ok(Some(user)) => Ok(user),
        Ok(None) => Err(format!("no account has the email {raw}")),
        Err(error) => Err(error.public_message().into_owned()),
    }
}

fn read_password() -> Result<Password, String> {
    let mut line = String::new();
    std::io::stdin().lock().read_line(&mut line).map_err(|e| format!("cannot read the password: {e}"))?;
    let password = line.trim_end_matches(['\n', '\r']);
    Password::parse(password).map_err(|why| format!("password {why} (give it on standard input)"))
}
