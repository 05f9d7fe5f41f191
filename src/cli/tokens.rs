//! `entitywatch tokens create|list|revoke`: who may use the HTTP API and the review console.
//! The secret is printed once, on stdout, and never again; the store keeps only its digest.

use std::fmt::Write as _;

use anyhow::Result;
use clap::{Args, Subcommand};

use crate::app::{open_existing_store, open_store};
use crate::config::Settings;
use crate::domain::Scope;

#[derive(Debug, Subcommand)]
pub enum TokensCommand {
    /// Make a token and print its secret once (keep it: it cannot be shown again).
    ///
    /// Scopes: `read` (suppliers, alerts, entries, changes, audit, screening), `review` (also
    /// review alerts and write suppliers), `admin` (also delete suppliers). The name is who the
    /// audit trail records as the reviewer of a decision made with the token.
    Create(TokensCreateArgs),
    /// Every token: id, name, scope, when made, and when revoked (never the secret).
    List(TokensListArgs),
    /// Revoke a live token by id (tok_...) or name; it stops working at once.
    Revoke(TokensRevokeArgs),
}

#[derive(Debug, Args)]
pub struct TokensCreateArgs {
    /// Who or what uses the token (e.g. "ana.lyst" or "erp-sync"); unique among live tokens.
    #[arg(long)]
    pub name: String,
    /// What it may do: read, review or admin.
    #[arg(long)]
    pub scope: Scope,
}

#[derive(Debug, Args)]
pub struct TokensListArgs {
    /// One JSON object per token.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct TokensRevokeArgs {
    /// The token's id (tok_...) or name.
    pub token: String,
}

pub async fn run(command: TokensCommand, settings: &Settings) -> Result<()> {
    match command {
        TokensCommand::Create(args) => {
            let store = open_store(settings).await?;
            let (token, secret) = store.create_token(&args.name, args.scope).await?;
            store.close().await;
            note!(
                "made token {} ({}, scope {}); the secret below is shown only now",
                token.token_id,
                token.name,
                token.scope
            );
            super::print_out(&format!("{}\n", secret.expose()))
        }
        TokensCommand::List(args) => {
            let store = open_existing_store(settings).await?;
            let tokens = store.tokens().await?;
            store.close().await;
            let mut buf = String::new();
            if args.json {
                for t in &tokens {
                    writeln!(buf, "{}", serde_json::to_string(t)?)?;
                }
                return super::print_out(&buf);
            }
            if tokens.is_empty() {
                note!(
                    "no tokens: make one with `entitywatch tokens create --name NAME --scope read`"
                );
                return Ok(());
            }
            writeln!(
                buf,
                "{:<12}  {:<6}  {:<20}  {:<20}  name",
                "id", "scope", "created", "revoked"
            )?;
            for t in &tokens {
                writeln!(
                    buf,
                    "{:<12}  {:<6}  {:<20}  {:<20}  {}",
                    t.token_id,
                    t.scope.as_str(),
                    t.created_at,
                    t.revoked_at.as_deref().unwrap_or("-"),
                    t.name
                )?;
            }
            super::print_out(&buf)
        }
        TokensCommand::Revoke(args) => {
            let store = open_existing_store(settings).await?;
            let token = store.revoke_token(&args.token).await?;
            store.close().await;
            note!(
                "revoked token {} ({}, scope {})",
                token.token_id,
                token.name,
                token.scope
            );
            Ok(())
        }
    }
}
