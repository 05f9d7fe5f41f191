//! `GET /v1/audit`: every screening decision and every review, in time order, as JSON lines
//! or CSV — streamed, so millions of decisions leave in flat memory: a task reads the store's
//! stream and hands the body chunks through a small bounded channel, so a slow client slows
//! the read instead of filling memory.
//!
//! Each record carries a `cursor`: passed back as `?cursor=`, the export resumes after that
//! record (for a download that broke off). CSV cells that could start a spreadsheet formula
//! are neutralised, as `audit export` does.

use axum::body::Body;
use axum::extract::State;
use axum::http::header;
use axum::response::{IntoResponse, Response};
use chrono::{DateTime, FixedOffset};
use futures::{SinkExt, TryStreamExt};
use serde::{Deserialize, Serialize};

use super::{since, ApiQuery, ApiState, Cursor};
use crate::http::problem::Problem;
use crate::store::AuditRecord;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
enum Format {
    Jsonl,
    Csv,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AuditParams {
    since: Option<String>,
    format: Option<Format>,
    cursor: Option<String>,
}

/// The last record sent: its instant (as written) and how many records at that same instant
/// had been sent, so records sharing a timestamp are neither repeated nor skipped.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct Position {
    #[serde(rename = "t")]
    at: String,
    #[serde(rename = "n")]
    seen_at_instant: u64,
}

/// Bytes gathered before a chunk is handed to the body.
const CHUNK: usize = 64 * 1024;
/// Chunks in flight between the reading task and the client.
const CHANNEL: usize = 8;

#[derive(Serialize)]
struct Line<'a> {
    #[serde(flatten)]
    record: &'a AuditRecord,
    cursor: String,
}

pub async fn stream(
    State(api): State<ApiState>,
    ApiQuery(params): ApiQuery<AuditParams>,
) -> Result<Response, Problem> {
    let format = params.format.unwrap_or(Format::Jsonl);
    let since = since(params.since.as_deref(), "since")?;
    let described = format!("audit?since={}", since.as_deref().unwrap_or(""));
    let resume: Option<Position> = Cursor::decode_opt(params.cursor.as_deref(), &described)?;
    let resume_at = match &resume {
        Some(p) => Some(
            DateTime::parse_from_rfc3339(&p.at)
                .map_err(|_| Problem::bad_request("the cursor is damaged").at("cursor"))?,
        ),
        None => None,
    };
    // The store compares `since` as text, and decisions and reviews write instants with
    // different precision: a second earlier, then skip by instant, never misses one.
    let read_from = match resume_at {
        Some(t) => Some((t - chrono::Duration::seconds(1)).to_rfc3339()),
        None => since.clone(),
    };
    let (mut tx, rx) = futures::channel::mpsc::channel::<Result<Vec<u8>, std::io::Error>>(CHANNEL);
    let store = api.store.clone();
    tokio::spawn(async move {
        let failed = |e: &dyn std::fmt::Display| {
            tracing::warn!(error = %e, "the audit stream stopped early");
            std::io::Error::other("the audit stream stopped early")
        };
        let records = match store.audit_trail(read_from.as_deref()).await {
            Ok(r) => r,
            Err(e) => {
                let _ = tx.send(Err(failed(&e))).await;
                return;
            }
        };
        futures::pin_mut!(records);
        let mut buf = Vec::with_capacity(CHUNK);
        // CSV rows are written into `buf` by a writer that is taken apart at every chunk.
        let csv_writer = |buf: Vec<u8>| {
            csv::WriterBuilder::new()
                .has_headers(false)
                .from_writer(buf)
        };
        let mut csv = csv_writer(Vec::with_capacity(CHUNK));
        if format == Format::Csv {
            // The export's columns (as `audit export` writes them), then where to resume.
            let header = AuditRecord::CSV_HEADER.iter().copied().chain(["cursor"]);
            let _ = csv.write_record(header);
        }
        let mut rows_in_csv = 0usize;
        let mut last: Option<(DateTime<FixedOffset>, u64)> = None;
        let mut skip_at = resume.as_ref().map(|p| p.seen_at_instant).unwrap_or(0);
        loop {
            let record = match records.try_next().await {
                Ok(Some(r)) => r,
                Ok(None) => break,
                Err(e) => {
                    let _ = tx.send(Err(failed(&e))).await;
                    return;
                }
            };
            let Ok(instant) = DateTime::parse_from_rfc3339(&record.at) else {
                continue;
            };
            if let Some(from) = resume_at {
                if instant < from {
                    continue;
                }
                if instant == from && skip_at > 0 {
                    skip_at -= 1;
                    continue;
                }
            }
            let seen = match &last {
                Some((t, n)) if *t == instant => n + 1,
                _ if resume_at == Some(instant) => {
                    resume.as_ref().map_or(0, |p| p.seen_at_instant) + 1
                }
                _ => 1,
            };
            last = Some((instant, seen));
            let cursor = Cursor::new(
                &described,
                Position {
                    at: record.at.clone(),
                    seen_at_instant: seen,
                },
            )
            .encode();
            match format {
                Format::Jsonl => {
                    let line = Line {
                        record: &record,
                        cursor,
                    };
                    if serde_json::to_writer(&mut buf, &line).is_err() {
                        continue;
                    }
                    buf.push(b'\n');
                }
                Format::Csv => {
                    let _ = csv.write_record(record.csv_row().into_iter().chain([cursor]));
                    rows_in_csv += 1;
                    // Checked every 256 rows: a flush per row would cost more than the row.
                    if rows_in_csv % 256 == 0 {
                        let full = std::mem::replace(&mut csv, csv_writer(Vec::new()));
                        match full.into_inner() {
                            Ok(bytes) => buf = bytes,
                            Err(e) => {
                                let _ = tx.send(Err(failed(&e))).await;
                                return;
                            }
                        }
                        if buf.len() < CHUNK {
                            csv = csv_writer(std::mem::take(&mut buf));
                        } else {
                            csv = csv_writer(Vec::with_capacity(CHUNK));
                        }
                    }
                }
            }
            if buf.len() >= CHUNK {
                let chunk = std::mem::replace(&mut buf, Vec::with_capacity(CHUNK));
                if tx.send(Ok(chunk)).await.is_err() {
                    return; // the client went away
                }
            }
        }
        if format == Format::Csv {
            match csv.into_inner() {
                Ok(mut bytes) => buf.append(&mut bytes),
                Err(e) => {
                    let _ = tx.send(Err(failed(&e))).await;
                    return;
                }
            }
        }
        if !buf.is_empty() {
            let _ = tx.send(Ok(buf)).await;
        }
    });
    let content_type = match format {
        Format::Jsonl => "application/x-ndjson",
        Format::Csv => "text/csv; charset=utf-8",
    };
    Ok((
        [(header::CONTENT_TYPE, content_type)],
        Body::from_stream(rx),
    )
        .into_response())
}
