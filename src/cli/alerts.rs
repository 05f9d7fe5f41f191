//! `entitywatch alerts list|show|review`: the alerts the store holds, where each stands, and an
//! analyst's decision on one — the same operations the review console and the HTTP API offer.

use std::fmt::Write as _;

use anyhow::{bail, Context, Result};
use clap::{Args, Subcommand};

use crate::alerts::Alert;
use crate::app::open_existing_store;
use crate::config::Settings;
use crate::domain::{AlertStatus, ReviewDecision};
use crate::store::{AlertQuery, StoredAlert};

#[derive(Debug, Subcommand)]
pub enum AlertsCommand {
    /// The alerts raised so far, newest first, with where each stands (open, confirmed,
    /// dismissed, escalated, cleared).
    List(AlertsListArgs),
    /// One alert whole: supplier, listed entry, score and why, the rule, every review, and
    /// its delivery to each sink. ID is the alert id or a unique prefix of 8+ characters.
    Show(AlertsShowArgs),
    /// Record a decision on an alert, with the reason (kept in the audit trail). Dismissing
    /// also keeps screening quiet about the pair until the entry is revised.
    Review(AlertsReviewArgs),
}

#[derive(Debug, Args)]
pub struct AlertsListArgs {
    /// Only alerts in this state: open, confirmed, dismissed, escalated or cleared.
    #[arg(long)]
    pub status: Option<AlertStatus>,
    /// Only this supplier's alerts.
    #[arg(long)]
    pub supplier_id: Option<String>,
    /// Only alerts on this entry (e.g. CN/dahua-technology).
    #[arg(long)]
    pub entity_key: Option<String>,
    /// Only alerts raised on or after this date (YYYY-MM-DD) or instant (RFC 3339).
    #[arg(long, value_parser = parse_since)]
    pub since: Option<String>,
    /// At most this many.
    #[arg(long, default_value_t = 100)]
    pub limit: usize,
    /// One JSON object per alert (the alert as sent, plus `status` and `raised_at`).
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct AlertsShowArgs {
    pub id: String,
    /// The alert, its reviews and deliveries as one JSON object.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
#[command(group(clap::ArgGroup::new("decision").required(true).args(["confirm", "dismiss", "escalate"])))]
pub struct AlertsReviewArgs {
    pub id: String,
    /// A true match: the supplier is the listed party.
    #[arg(long)]
    pub confirm: bool,
    /// A false positive: no alert for the pair until the entry is revised.
    #[arg(long)]
    pub dismiss: bool,
    /// Needs someone with more authority or information.
    #[arg(long)]
    pub escalate: bool,
    /// Why (required; kept with the decision in the audit trail).
    #[arg(long)]
    pub reason: String,
    /// Who decides (default: $USER).
    #[arg(long, env = "ENTITYWATCH_REVIEWER")]
    pub reviewer: Option<String>,
}

/// `--since`: a date is the start of that day, UTC; an instant is normalised to UTC.
pub fn parse_since(s: &str) -> Result<String, String> {
    let s = s.trim();
    if let Ok(d) = chrono::NaiveDate::parse_from_str(s, "%Y-%m-%d") {
        let t = d.and_hms_opt(0, 0, 0).expect("midnight exists").and_utc();
        return Ok(t.to_rfc3339());
    }
    chrono::DateTime::parse_from_rfc3339(s)
        .map(|t| t.with_timezone(&chrono::Utc).to_rfc3339())
        .map_err(|_| format!("{s:?} is neither a date (YYYY-MM-DD) nor an RFC 3339 instant"))
}

pub async fn run(command: AlertsCommand, settings: &Settings) -> Result<()> {
    match command {
        AlertsCommand::List(args) => list(args, settings).await,
        AlertsCommand::Show(args) => show(args, settings).await,
        AlertsCommand::Review(args) => review(args, settings).await,
    }
}

fn parsed(a: &StoredAlert) -> Result<Alert> {
    serde_json::from_str(&a.payload)
        .with_context(|| format!("alert {} is stored unreadable", a.alert_id))
}

async fn list(args: AlertsListArgs, settings: &Settings) -> Result<()> {
    let store = open_existing_store(settings).await?;
    let alerts = store
        .alerts(&AlertQuery {
            status: args.status,
            supplier_id: args.supplier_id,
            entity_key: args.entity_key,
            since: args.since,
            limit: Some(args.limit),
        })
        .await?;
    store.close().await;
    let mut buf = String::new();
    if args.json {
        for a in &alerts {
            let mut v = serde_json::to_value(parsed(a)?)?;
            v["status"] = a.status.as_str().into();
            v["raised_at"] = a.raised_at.as_str().into();
            writeln!(buf, "{v}")?;
        }
        return super::print_out(&buf);
    }
    if alerts.is_empty() {
        note!("no alerts match");
        return Ok(());
    }
    writeln!(
        buf,
        "{:<12}  {:<9}  {:<7}  {:>5}  {:<25}  {:<40}  supplier",
        "alert", "status", "kind", "score", "raised", "entry"
    )?;
    for a in &alerts {
        let alert = parsed(a)?;
        writeln!(
            buf,
            "{:<12}  {:<9}  {:<7}  {:>5.2}  {:<25}  {:<40}  {} ({})",
            &a.alert_id[..a.alert_id.len().min(12)],
            a.status.as_str(),
            a.kind,
            alert.score,
            a.raised_at.chars().take(25).collect::<String>(),
            format!("{} v{}", a.entity_key, a.entry_version),
            alert.supplier.name,
            a.supplier_id
        )?;
    }
    super::print_out(&buf)
}

async fn show(args: AlertsShowArgs, settings: &Settings) -> Result<()> {
    let store = open_existing_store(settings).await?;
    let Some(a) = store.alert(&args.id).await? else {
        store.close().await;
        bail!(
            "no alert with id {:?} (or the prefix is not unique)",
            args.id
        );
    };
    let reviews = store.alert_reviews(&a.alert_id).await?;
    let deliveries = store.alert_deliveries(&a.alert_id).await?;
    store.close().await;
    let alert = parsed(&a)?;
    let mut buf = String::new();
    if args.json {
        let v = serde_json::json!({
            "alert": alert,
            "status": a.status.as_str(),
            "raised_at": a.raised_at,
            "reviews": reviews.iter().map(|r| serde_json::json!({
                "decision": r.decision.as_str(), "reason": r.reason,
                "reviewer": r.reviewer, "reviewed_at": r.reviewed_at,
            })).collect::<Vec<_>>(),
            "deliveries": deliveries.iter().map(|(sink, state, at)| serde_json::json!({
                "sink": sink, "state": state, "at": at,
            })).collect::<Vec<_>>(),
        });
        writeln!(buf, "{}", serde_json::to_string_pretty(&v)?)?;
        return super::print_out(&buf);
    }
    writeln!(buf, "alert     {} ({}, {})", a.alert_id, a.kind, a.status)?;
    writeln!(buf, "raised    {}", a.raised_at)?;
    writeln!(
        buf,
        "supplier  {} ({}{})",
        alert.supplier.name,
        alert.supplier.id,
        alert
            .supplier
            .country
            .as_deref()
            .map(|c| format!(", {c}"))
            .unwrap_or_default()
    )?;
    writeln!(
        buf,
        "entry     {} [{} v{}], {}",
        alert.entry.name, alert.entry.entity_key, alert.entry.version, alert.entry.country_name
    )?;
    writeln!(
        buf,
        "matched   {:?} score {:.2}: {}",
        alert.entry.matched_name, alert.score, alert.explanation
    )?;
    if let Some(req) = &alert.entry.license_requirement {
        writeln!(buf, "licence   {req}")?;
    }
    if let Some(policy) = &alert.entry.license_policy {
        writeln!(buf, "policy    {policy}")?;
    }
    writeln!(
        buf,
        "rule      {} {}",
        alert
            .entry
            .federal_register_citation
            .as_deref()
            .unwrap_or(""),
        alert.entry.rule_url()
    )?;
    for (sink, state, at) in &deliveries {
        writeln!(buf, "delivery  {sink}: {state} {at}")?;
    }
    if reviews.is_empty() {
        writeln!(buf, "reviews   none")?;
    }
    for r in &reviews {
        writeln!(
            buf,
            "review    {} by {} at {}: {}",
            r.decision, r.reviewer, r.reviewed_at, r.reason
        )?;
    }
    super::print_out(&buf)
}

async fn review(args: AlertsReviewArgs, settings: &Settings) -> Result<()> {
    let decision = match (args.confirm, args.dismiss, args.escalate) {
        (true, false, false) => ReviewDecision::Confirm,
        (false, true, false) => ReviewDecision::Dismiss,
        (false, false, true) => ReviewDecision::Escalate,
        _ => bail!("give exactly one of --confirm, --dismiss, --escalate"),
    };
    let reason = args.reason.trim();
    if reason.is_empty() {
        bail!("--reason must say why");
    }
    let reviewer = args
        .reviewer
        .or_else(|| std::env::var("USER").ok())
        .filter(|r| !r.trim().is_empty())
        .unwrap_or_else(|| "cli".to_string());
    let store = open_existing_store(settings).await?;
    let done = store
        .review_alert(&args.id, decision, reason, &reviewer)
        .await;
    store.close().await;
    let review = done?;
    let mut buf = String::new();
    writeln!(
        buf,
        "{} {} ~ {} v{} (alert {}): now {}{}",
        match decision {
            ReviewDecision::Confirm => "confirmed",
            ReviewDecision::Dismiss => "dismissed",
            ReviewDecision::Escalate => "escalated",
        },
        review.supplier_id,
        review.entity_key,
        review.entry_version,
        &review.alert_id[..12.min(review.alert_id.len())],
        decision.status(),
        if decision == ReviewDecision::Dismiss {
            "; no alert for the pair until the entry is revised"
        } else {
            ""
        }
    )?;
    super::print_out(&buf)
}
