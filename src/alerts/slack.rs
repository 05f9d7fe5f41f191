//! Slack incoming webhooks: an alert leaves the system as a Block Kit message in the buyer's
//! channel.
//!
//! The message is built to be acted on without opening anything else: who our supplier is,
//! which listed entry it matches and how well, what the listing means (licence requirement,
//! review policy, FR citation) and a link to the rule. The webhook URL is the only credential
//! Slack asks for, so it lives in a [`SecretUrl`] and never appears in logs, errors or `Debug`.
//! A sink makes one attempt per `send`; it never re-sends on its own (retries are
//! [`deliver`](super::deliver)'s, exactly-once is the store's).
//!
//! A batch of more than `--slack-digest-over N` alerts reaches the channel as one
//! [`digest_payload`] message instead (see [`super::digest`]), and every post to one webhook
//! URL waits its turn ([`super::pacing`]): Slack takes one message per second.
//!
//! Slack answers 200 `ok`; failures come as 4xx with a word in the body (`invalid_payload`,
//! `no_service`, `channel_is_archived`), which becomes the permanent error's reason, or as 429
//! with `Retry-After`.

use std::fmt;

use async_trait::async_trait;
use serde_json::{json, Value};

use super::delivery::{http_client, send_http};
use super::digest::{Digest, CLI_LISTING};
use super::pacing::{slack_pacer, Turn, SLACK_POST_INTERVAL};
use super::{Alert, AlertKind, AlertSink, DigestSink, SecretUrl, SinkError};

/// Slack's limits: a header's text is at most 150 characters, a field's 2000, a section's
/// 3000, and a message holds at most 50 blocks.
const HEADER_MAX: usize = 150;
const FIELD_MAX: usize = 2000;
const SECTION_MAX: usize = 3000;
const BLOCKS_MAX: usize = 50;

/// Posts alerts to one Slack incoming webhook.
#[derive(Clone)]
pub struct SlackSink {
    name: String,
    url: SecretUrl,
    client: reqwest::Client,
}

impl SlackSink {
    /// A sink named `slack` with its own HTTP client (no redirects followed).
    pub fn new(url: SecretUrl) -> Result<Self, reqwest::Error> {
        Ok(SlackSink::with_client(url, http_client()?))
    }

    /// With a caller's client (shared connection pool, proxy settings).
    pub fn with_client(url: SecretUrl, client: reqwest::Client) -> Self {
        SlackSink {
            name: "slack".to_string(),
            url,
            client,
        }
    }

    /// Renames the sink, for several Slack channels: the name keys the delivery ledger.
    pub fn named(mut self, name: impl Into<String>) -> Self {
        self.name = name.into();
        self
    }
}

impl fmt::Debug for SlackSink {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SlackSink")
            .field("name", &self.name)
            .field("url", &self.url)
            .finish_non_exhaustive()
    }
}

#[async_trait]
impl AlertSink for SlackSink {
    fn name(&self) -> &str {
        &self.name
    }

    async fn send(&self, alert: &Alert) -> Result<(), SinkError> {
        let request = self
            .client
            .post(self.url.expose().clone())
            .json(&slack_payload(alert));
        send_http(request, &self.url).await
    }

    fn digests(&self) -> Option<&dyn DigestSink> {
        Some(self)
    }

    async fn turn(&self) -> Option<Turn> {
        Some(
            slack_pacer()
                .turn(self.url.expose().as_str(), SLACK_POST_INTERVAL)
                .await,
        )
    }
}

#[async_trait]
impl DigestSink for SlackSink {
    async fn send_digest(&self, digest: &Digest) -> Result<(), SinkError> {
        let request = self
            .client
            .post(self.url.expose().clone())
            .json(&digest_payload(digest));
        send_http(request, &self.url).await
    }
}

/// The header line of each kind of alert.
pub fn headline(kind: AlertKind) -> &'static str {
    match kind {
        AlertKind::Listed => "Supplier on the Entity List",
        AlertKind::Revised => "Entity List entry revised",
        AlertKind::Cleared => "Entity List entry removed (cleared)",
        AlertKind::Affiliate => "Supplier owned 50 % or more by listed parties (Affiliates rule)",
    }
}

/// The Block Kit message for `alert`: header, a fields section (supplier vs listed name, score
/// and why, country, licence requirement and policy, FR citation), what changed for a
/// revision, and a link to the rule; `text` is the notification fallback.
pub fn slack_payload(alert: &Alert) -> Value {
    let e = &alert.entry;
    let s = &alert.supplier;
    let or_dash = |v: &Option<String>| {
        v.as_deref()
            .map(str::trim)
            .filter(|t| !t.is_empty())
            .map(escape)
            .unwrap_or_else(|| "—".to_string())
    };
    let listed = if e.matched_name.trim().is_empty() || e.matched_name == e.name {
        escape(&e.name)
    } else {
        format!("{} (matched: {})", escape(&e.name), escape(&e.matched_name))
    };
    let score = match alert.kind {
        // A cleared notice is not a match; a score of 0.00 there would read as a verdict.
        AlertKind::Cleared => "—".to_string(),
        // An affiliate is not a name match: its "why" is the ownership, in the explanation.
        AlertKind::Affiliate => "— (ownership)".to_string(),
        _ => format!("{:.2}", alert.score),
    };
    let country = if e.country_name.trim().is_empty() {
        escape(&e.country)
    } else {
        format!("{} ({})", escape(e.country_name.trim()), escape(&e.country))
    };
    let fields = [
        (
            "Supplier",
            format!("{} (`{}`)", escape(&s.name), escape(&s.id)),
        ),
        ("Listed as", listed),
        ("Score", score),
        ("Why", escape(&alert.explanation)),
        ("Country", country),
        ("Licence requirement", or_dash(&e.license_requirement)),
        ("Licence review policy", or_dash(&e.license_policy)),
        ("FR citation", or_dash(&e.federal_register_citation)),
    ]
    .into_iter()
    .map(|(label, value)| {
        json!({
            "type": "mrkdwn",
            "text": truncate(&format!("*{label}*\n{value}"), FIELD_MAX),
        })
    })
    .collect::<Vec<_>>();

    let mut blocks = vec![
        json!({
            "type": "header",
            "text": {
                "type": "plain_text",
                "text": truncate(headline(alert.kind), HEADER_MAX),
                "emoji": false,
            },
        }),
        json!({ "type": "section", "fields": fields }),
    ];
    if alert.kind == AlertKind::Revised && !alert.changes.is_empty() {
        let lines = alert
            .changes
            .iter()
            .map(|c| format!("• {}", escape(c)))
            .collect::<Vec<_>>()
            .join("\n");
        blocks.push(json!({
            "type": "section",
            "text": {
                "type": "mrkdwn",
                "text": truncate(&format!("*What changed*\n{lines}"), SECTION_MAX),
            },
        }));
    }
    let rule = e.rule_url();
    blocks.push(json!({
        "type": "context",
        "elements": [{
            "type": "mrkdwn",
            "text": format!(
                "<{}|Rule {} on federalregister.gov> · entry `{}` v{} · alert `{}`",
                link_target(&rule),
                escape(&e.document_number),
                escape(e.entity_key.as_str()),
                e.version,
                &alert.alert_id[..alert.alert_id.len().min(12)],
            ),
        }],
    }));

    let fallback = match alert.kind {
        AlertKind::Cleared => format!(
            "{}: {} ({}) was alerted on {}, which has been removed",
            headline(alert.kind),
            s.name,
            s.id,
            e.name
        ),
        _ => format!(
            "{}: {} ({}) matches {} ({}), score {:.2}",
            headline(alert.kind),
            s.name,
            s.id,
            e.name,
            e.country,
            alert.score
        ),
    };
    json!({
        "text": escape(&fallback),
        "blocks": blocks,
    })
}

/// The Block Kit message of a digest: a header naming how many alerts and from what, the
/// counts by kind, the top alerts by score (one line each, in sections of at most 3000
/// characters), and where to see them all (the console's filtered queue, or the command that
/// lists them). Stays within Slack's limits however many alerts and however long the names.
pub fn digest_payload(digest: &Digest) -> Value {
    let from = digest.source.describe();
    let cited = digest
        .citation
        .as_deref()
        .map(|c| c.trim().trim_end_matches('.'))
        .and_then(|c| c.split(',').next())
        .filter(|c| !c.trim().is_empty());
    let title = match cited {
        Some(c) => format!("{} Entity List alerts from {c}", digest.total()),
        None => format!("{} Entity List alerts from {from}", digest.total()),
    };
    let mut blocks = vec![json!({
        "type": "header",
        "text": { "type": "plain_text", "text": truncate(&title, HEADER_MAX), "emoji": false },
    })];
    let source = match &digest.rule_url {
        Some(url) => format!("<{}|{}>", link_target(url), escape(&from)),
        None => escape(&from),
    };
    blocks.push(json!({
        "type": "section",
        "text": {
            "type": "mrkdwn",
            "text": truncate(
                &format!(
                    "*{} alerts* from {source}: {}. One message for all of them (the alert topic \
                     carries each).",
                    digest.total(),
                    digest.counts_line(),
                ),
                SECTION_MAX,
            ),
        },
    }));
    // Header, counts, the top title, the footer: what the top lines leave room for.
    let room = BLOCKS_MAX - 4;
    let lines: Vec<String> = digest.top.iter().map(digest_line).collect();
    let mut sections: Vec<String> = Vec::new();
    let mut shown = 0;
    for line in &lines {
        let line = truncate(line, SECTION_MAX);
        let fits = sections
            .last()
            .is_some_and(|s| s.chars().count() + 1 + line.chars().count() <= SECTION_MAX);
        if fits {
            if let Some(s) = sections.last_mut() {
                s.push('\n');
                s.push_str(&line);
            }
        } else if sections.len() < room {
            sections.push(line);
        } else {
            break;
        }
        shown += 1;
    }
    if !sections.is_empty() {
        blocks.push(json!({
            "type": "section",
            "text": {
                "type": "mrkdwn",
                "text": format!("*Top {shown} by score*"),
            },
        }));
        for s in sections {
            blocks.push(json!({ "type": "section", "text": { "type": "mrkdwn", "text": s } }));
        }
    }
    let rest = digest.total() - shown;
    let more = if rest > 0 {
        format!("{rest} more. ")
    } else {
        String::new()
    };
    let footer = match &digest.queue_url {
        Some(url) => format!(
            "{more}<{}|Review all {} in the console>",
            link_target(url),
            digest.total()
        ),
        None => format!("{more}List them with `{CLI_LISTING}`"),
    };
    blocks.push(json!({
        "type": "context",
        "elements": [{
            "type": "mrkdwn",
            "text": truncate(
                &format!(
                    "{footer} · digest `{}`",
                    &digest.digest_id[..digest.digest_id.len().min(12)]
                ),
                SECTION_MAX,
            ),
        }],
    }));
    json!({
        "text": escape(&format!("{title}: {}", digest.counts_line())),
        "blocks": blocks,
    })
}

/// One alert in a digest: supplier, what it matched, how well, and the short id that
/// `entitywatch alerts show` takes.
fn digest_line(a: &Alert) -> String {
    let score = match a.kind {
        AlertKind::Cleared => "cleared".to_string(),
        AlertKind::Affiliate => "owned by listed parties".to_string(),
        _ => format!("{:.2}", a.score),
    };
    format!(
        "• *{}* (`{}`) ~ {} ({}) — {} {} · `{}`",
        escape(&a.supplier.name),
        escape(&a.supplier.id),
        escape(&a.entry.matched_name),
        escape(&a.entry.country),
        a.kind,
        score,
        &a.alert_id[..a.alert_id.len().min(12)],
    )
}

/// Slack's mrkdwn control characters. Names like `A<B> & Co` would otherwise become a broken
/// link or an entity.
pub fn escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

/// A URL safe inside `<url|label>`: `|` and `>` would end it early.
fn link_target(url: &str) -> String {
    url.replace('&', "&amp;")
        .replace('|', "%7C")
        .replace('<', "%3C")
        .replace('>', "%3E")
}

fn truncate(text: &str, max: usize) -> String {
    if text.chars().count() <= max {
        text.to_string()
    } else {
        let mut t: String = text.chars().take(max - 1).collect();
        t.push('…');
        t
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::alerts::delivery::test_receiver::Receiver;
    use crate::alerts::tests::sample_alert;

    fn field_texts(payload: &Value) -> Vec<String> {
        payload["blocks"][1]["fields"]
            .as_array()
            .unwrap()
            .iter()
            .map(|f| f["text"].as_str().unwrap().to_string())
            .collect()
    }

    #[tokio::test]
    async fn the_receiver_gets_header_fields_and_rule_link() {
        let r = Receiver::start(vec![]).await;
        let sink =
            SlackSink::new(SecretUrl::parse(&format!("{}/services/T000/B000/X", r.base)).unwrap())
                .unwrap();
        let alert = sample_alert(AlertKind::Listed);
        sink.send(&alert).await.unwrap();

        let reqs = r.requests();
        assert_eq!(reqs.len(), 1);
        assert_eq!(reqs[0].path, "/services/T000/B000/X");
        assert_eq!(
            reqs[0].headers["content-type"].to_str().unwrap(),
            "application/json"
        );
        let got: Value = serde_json::from_slice(&reqs[0].body).unwrap();

        assert_eq!(got["blocks"][0]["type"], "header");
        assert_eq!(got["blocks"][0]["text"]["type"], "plain_text");
        assert_eq!(
            got["blocks"][0]["text"]["text"],
            "Supplier on the Entity List"
        );

        assert_eq!(got["blocks"][1]["type"], "section");
        let fields = field_texts(&got);
        assert!(fields.len() <= 10);
        let find = |label: &str| {
            fields
                .iter()
                .find(|f| f.starts_with(&format!("*{label}*\n")))
                .unwrap_or_else(|| panic!("no {label} field in {fields:?}"))
                .clone()
        };
        // Escaped: the supplier name holds `<`, `>` and `&`.
        assert_eq!(
            find("Supplier"),
            "*Supplier*\nHangzhou Hikvision Digital Tech &lt;HK&gt; &amp; Co (`SUP-0042`)"
        );
        assert!(find("Listed as").contains("Hangzhou Hikvision Digital Technology Co., Ltd."));
        assert_eq!(find("Score"), "*Score*\n0.97");
        assert!(find("Why").contains("matched hangzhou, hikvision"));
        assert_eq!(
            find("Country"),
            "*Country*\nCHINA, PEOPLE'S REPUBLIC OF (CN)"
        );
        assert!(find("Licence requirement").contains("For all items subject to the EAR."));
        assert!(find("Licence review policy").contains("Presumption of denial."));
        assert!(find("FR citation").contains("84 FR 54002"));

        let last = got["blocks"].as_array().unwrap().last().unwrap().clone();
        assert_eq!(last["type"], "context");
        let link = last["elements"][0]["text"].as_str().unwrap();
        assert!(
            link.starts_with("<https://www.federalregister.gov/d/2019-22210|"),
            "{link}"
        );

        let text = got["text"].as_str().unwrap();
        assert!(text.starts_with("Supplier on the Entity List: "));
        assert!(text.contains("&lt;HK&gt; &amp; Co"));
        assert!(!text.contains("<HK>"));
    }

    #[test]
    fn a_revision_lists_what_changed() {
        let mut alert = sample_alert(AlertKind::Revised);
        alert.entry.html_url =
            Some("https://www.federalregister.gov/documents/2019/10/09/2019-22210/addition".into());
        let p = slack_payload(&alert);
        assert_eq!(p["blocks"][0]["text"]["text"], "Entity List entry revised");
        let changes = p["blocks"][2]["text"]["text"].as_str().unwrap();
        assert!(changes.starts_with("*What changed*\n• license_policy: "));
        assert!(changes.contains("→ 'Case-by-case review.'"));
        let link = p["blocks"][3]["elements"][0]["text"].as_str().unwrap();
        assert!(link.starts_with(
            "<https://www.federalregister.gov/documents/2019/10/09/2019-22210/addition|"
        ));
    }

    #[test]
    fn a_cleared_notice_has_its_own_header_and_no_score() {
        let p = slack_payload(&sample_alert(AlertKind::Cleared));
        assert_eq!(
            p["blocks"][0]["text"]["text"],
            "Entity List entry removed (cleared)"
        );
        assert!(field_texts(&p).contains(&"*Score*\n—".to_string()));
        assert_eq!(p["blocks"].as_array().unwrap().len(), 3);
    }

    #[test]
    fn missing_values_show_a_dash_and_links_cannot_be_broken() {
        let mut alert = sample_alert(AlertKind::Listed);
        alert.entry.license_policy = None;
        alert.entry.html_url = Some("https://example.org/a|b>c?x=1&y=2".into());
        let p = slack_payload(&alert);
        assert!(field_texts(&p).contains(&"*Licence review policy*\n—".to_string()));
        let link = p["blocks"][2]["elements"][0]["text"].as_str().unwrap();
        assert!(link.starts_with("<https://example.org/a%7Cb%3Ec?x=1&amp;y=2|"));
    }

    fn many_alerts(n: usize, name_len: usize) -> Vec<Alert> {
        (0..n)
            .map(|i| {
                let mut a = sample_alert(AlertKind::Listed);
                a.supplier.id = format!("S-{i:04}");
                a.supplier.name = format!("Supplier <{i}> & {}", "Ω".repeat(name_len));
                a.entry.matched_name = "M".repeat(name_len);
                a.score = 0.8 + (i % 100) as f64 / 1000.0;
                a.alert_id = format!("{i:04x}{}", "a".repeat(60));
                a
            })
            .collect()
    }

    fn text_of(block: &Value) -> String {
        block["text"]["text"]
            .as_str()
            .or_else(|| block["elements"][0]["text"].as_str())
            .unwrap_or_default()
            .to_string()
    }

    /// Slack's limits hold for every block of `p`.
    fn assert_within_limits(p: &Value) {
        let blocks = p["blocks"].as_array().unwrap();
        assert!(blocks.len() <= 50, "{} blocks", blocks.len());
        assert_eq!(blocks[0]["type"], "header");
        assert!(text_of(&blocks[0]).chars().count() <= 150);
        for b in blocks {
            assert!(text_of(b).chars().count() <= 3000, "{b}");
        }
    }

    #[test]
    fn a_digest_has_counts_the_top_alerts_and_the_cli_hint() {
        let mut alerts = many_alerts(30, 3);
        alerts[0].kind = AlertKind::Revised;
        let d = Digest::new(
            "slack",
            crate::alerts::DigestSource::document("2019-22210"),
            &alerts,
            5,
            None,
        );
        let p = digest_payload(&d);
        assert_within_limits(&p);
        let blocks = p["blocks"].as_array().unwrap();
        assert_eq!(
            text_of(&blocks[0]),
            "30 Entity List alerts from 84 FR 54002"
        );
        assert!(text_of(&blocks[1]).starts_with("*30 alerts* from <https://www.federalregister.gov/d/2019-22210|rule 2019-22210>: 29 listed, 1 revised."));
        assert_eq!(text_of(&blocks[2]), "*Top 5 by score*");
        let top = text_of(&blocks[3]);
        assert_eq!(top.lines().count(), 5);
        // Best first, escaped, with the short id `alerts show` takes.
        assert!(
            top.lines()
                .next()
                .unwrap()
                .starts_with("• *Supplier &lt;29&gt; &amp; ΩΩΩ* (`S-0029`) ~ MMM (CN) — listed 0.83 · `001daaaaaaaa`"),
            "{top}"
        );
        assert!(!top.contains('<'));
        let footer = text_of(blocks.last().unwrap());
        assert!(
            footer.starts_with("25 more. List them with `entitywatch alerts list --status open`"),
            "{footer}"
        );
        assert!(p["text"].as_str().unwrap().contains("29 listed, 1 revised"));
    }

    #[test]
    fn a_digest_links_the_console_queue() {
        let alerts = many_alerts(8, 3);
        let console = url::Url::parse("https://ew.example/console").unwrap();
        let d = Digest::new(
            "slack",
            crate::alerts::DigestSource::document("ecfr-2026-11-30"),
            &alerts,
            5,
            Some(&console),
        );
        let p = digest_payload(&d);
        let blocks = p["blocks"].as_array().unwrap();
        assert_eq!(
            text_of(&blocks[0]),
            "8 Entity List alerts from the eCFR list sync ecfr-2026-11-30"
        );
        let footer = text_of(blocks.last().unwrap());
        assert!(
            footer.starts_with("3 more. <https://ew.example/console/alerts?status=open&amp;document=ecfr-2026-11-30&amp;entity_key=CN%2Fhangzhou-hikvision-digital-technology-co-ltd|Review all 8 in the console>"),
            "{footer}"
        );
    }

    #[test]
    fn a_huge_digest_stays_within_slacks_limits() {
        // 500 alerts, the top 400 asked for, names long enough that few lines fit a section.
        let alerts = many_alerts(500, 400);
        let d = Digest::new(
            "slack",
            crate::alerts::DigestSource::supplier_import(),
            &alerts,
            400,
            None,
        );
        let p = digest_payload(&d);
        assert_within_limits(&p);
        let blocks = p["blocks"].as_array().unwrap();
        assert_eq!(blocks.len(), 50);
        let shown: usize = blocks[3..blocks.len() - 1]
            .iter()
            .map(|b| text_of(b).lines().count())
            .sum();
        let said = text_of(&blocks[2]);
        assert_eq!(said, format!("*Top {shown} by score*"));
        let footer = text_of(blocks.last().unwrap());
        assert!(
            footer.starts_with(&format!("{} more. ", 500 - shown)),
            "{footer}"
        );
        // A header that would be too long is cut.
        let mut long = d.clone();
        long.citation = Some("X".repeat(400));
        let p = digest_payload(&long);
        assert_eq!(text_of(&p["blocks"][0]).chars().count(), 150);
    }

    #[test]
    fn escaping_covers_the_three_control_characters() {
        assert_eq!(escape("a & <b> c"), "a &amp; &lt;b&gt; c");
    }
}
