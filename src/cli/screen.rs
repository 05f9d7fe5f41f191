//! `entitywatch screen NAME`: one name against the stored list snapshot.

use anyhow::{bail, Context, Result};
use clap::Args;

use crate::app::open_existing_store;
use crate::config::Settings;
use crate::domain::recognise_country;
use crate::screening::{ListedEntry, Screener};

#[derive(Debug, Args)]
pub struct ScreenArgs {
    /// The name to screen.
    pub name: String,
    /// The supplier's country (ISO-2 or name), supporting evidence only.
    #[arg(long)]
    pub country: Option<String>,
    /// Print JSON instead of a table.
    #[arg(long)]
    pub json: bool,
    /// How many entries to show at most (1 or more).
    #[arg(long, default_value_t = 10, value_parser = at_least_one)]
    pub limit: usize,
}

fn at_least_one(raw: &str) -> Result<usize, String> {
    match raw.trim().parse::<usize>() {
        Ok(0) => Err("0 would show nothing; give 1 or more".to_string()),
        Ok(n) => Ok(n),
        Err(_) => Err(format!("{raw:?} is not a whole number")),
    }
}

pub async fn run(args: ScreenArgs, settings: &Settings) -> Result<()> {
    if args.name.trim().is_empty() {
        bail!("the name to screen is empty");
    }
    let country = match &args.country {
        Some(c) => Some(
            recognise_country(c)
                .with_context(|| format!("--country {c:?} is not a country we know"))?,
        ),
        None => None,
    };
    let store = open_existing_store(settings).await?;
    // With their kinds: a name of unknown kind is then scored by a person entry's rules.
    let entries: Vec<(ListedEntry, _)> = store
        .listed_entries()
        .await?
        .into_iter()
        .map(|l| {
            let entry = ListedEntry {
                key: l.entry.entity_key,
                name: l.entry.name.to_string(),
                aliases: l.entry.aliases,
                countries: l.entry.countries,
            };
            (entry, l.entry.schema)
        })
        .collect();
    store.close().await;
    if entries.is_empty() {
        bail!("the Entity List snapshot is empty: run `entitywatch list import FILE` first");
    }
    let screener = Screener::new_typed(entries);
    let mut matches = screener.screen(&args.name, &[], country.as_ref());
    matches.truncate(args.limit);
    if args.json {
        println!("{}", serde_json::to_string_pretty(&matches)?);
        return Ok(());
    }
    if matches.is_empty() {
        println!(
            "no listed entry scores above {:.2} for {:?}",
            screener.floor(),
            args.name
        );
        return Ok(());
    }
    for (rank, m) in matches.iter().enumerate() {
        println!(
            "{:>2}. {:.3} {} {} [{}]\n    {}",
            rank + 1,
            m.score,
            if m.is_match { "MATCH" } else { "near " },
            m.listed_name,
            m.key,
            m.explanation
        );
    }
    Ok(())
}
