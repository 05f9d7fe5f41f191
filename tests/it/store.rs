//! The store's suppliers and list snapshot, black-box through the library API, with one test
//! body run on SQLite (a file in a temporary directory) and on PostgreSQL (a fresh database on
//! 127.0.0.1:5432): importing the 2022 Entity List and a generated 10,000-row supplier CSV with
//! malformed rows, re-importing, exporting and applying change events; the alert-delivery
//! ledger's claims (one sender at a time, leases that expire, release, delivered is final).

use crate::common;

use std::collections::BTreeMap;
use std::time::Instant;

use crate::common::{fixture, fresh_db, Db};
use entitywatch::csl::{self, SourceFilter, ENTITY_LIST_SOURCE};
use entitywatch::domain::SupplierRecord;
use entitywatch::events::{
    ChangeAction, CountryCode, EntityChange, EntityKey, EntityName, SourceDocument,
};
use entitywatch::store::{ChangeOutcome, Claim, Delivery, SnapshotCounts, Store, UpsertCounts};
use entitywatch::suppliers::{read_suppliers, write_suppliers, ReadLimits};

on_both!(
    entity_list_snapshot_import,
    supplier_csv_import_of_10000_rows,
    supplier_crud_and_paging,
    entity_changes_raise_versions,
    delivery_claims_let_one_sender_through,
    the_outbox_keeps_parked_alerts_in_order_and_hands_orphans_on,
    batched_decisions_are_stored_once_and_reused,
);

const EL_2022: &str = "csl/EL_only_from_watchman_consolidated_2022-05.csv";

async fn open(db: &common::TestDb) -> Store {
    Store::connect(&db.url)
        .await
        .expect("store opens and migrates")
}

fn el_2022() -> Vec<csl::CslEntry> {
    csl::read_csl_path(&fixture(EL_2022), &SourceFilter::default())
        .expect("fixture reads")
        .entries
}

async fn entity_list_snapshot_import(kind: Db) {
    let db = fresh_db(kind).await;
    let store = open(&db).await;
    let entries = el_2022();
    assert_eq!(entries.len(), 2001);
    let snap = csl::snapshot(&entries);
    let n = snap.entries.len() as u64;
    assert_eq!(n + snap.merged_rows as u64, 2001);

    let started = Instant::now();
    let counts = store
        .replace_entity_list_snapshot(&snap.entries)
        .await
        .unwrap();
    eprintln!(
        "{kind:?}: list snapshot of {n} entries (2,001 CSL rows) stored in {:?}",
        started.elapsed()
    );
    assert_eq!(
        counts,
        SnapshotCounts {
            inserted: n,
            ..Default::default()
        }
    );
    assert_eq!(store.listed_entry_count().await.unwrap(), n);

    let stored = store.listed_entries().await.unwrap();
    assert_eq!(stored.len() as u64, n);
    assert!(stored
        .iter()
        .all(|e| e.version == 1 && e.removed_at.is_none()));
    let hik = stored
        .iter()
        .find(|e| e.entry.entity_key.as_str() == "CN/hangzhou-hikvision-digital-technology-co-ltd")
        .expect("Hikvision is stored under its watcher key");
    assert_eq!(hik.entry.source_list, ENTITY_LIST_SOURCE);
    assert!(hik
        .entry
        .federal_register_citation
        .as_deref()
        .is_some_and(|c| c.contains("84 FR 54002")));
    // Stored values read back exactly as the snapshot gave them.
    let by_key: BTreeMap<_, _> = snap
        .entries
        .iter()
        .map(|e| (e.entity_key.clone(), e))
        .collect();
    for s in &stored {
        assert_eq!(&&s.entry, by_key.get(&s.entry.entity_key).unwrap());
    }

    // Re-importing the same file changes nothing.
    let again = store
        .replace_entity_list_snapshot(&snap.entries)
        .await
        .unwrap();
    assert_eq!(
        again,
        SnapshotCounts {
            unchanged: n,
            ..Default::default()
        }
    );

    // A later snapshot without ten entries and with one revised: removals and one update.
    let mut later = snap.entries.clone();
    let dropped: Vec<EntityKey> = later.drain(..10).map(|e| e.entity_key).collect();
    later[0].license_policy = Some("Policy of denial.".into());
    later[0].aliases.push("New alias".into());
    let c = store.replace_entity_list_snapshot(&later).await.unwrap();
    assert_eq!((c.removed, c.updated, c.inserted), (10, 1, 0));
    assert_eq!(c.unchanged, n - 11);
    assert_eq!(store.listed_entry_count().await.unwrap(), n - 10);
    let gone = store.listed_entry(&dropped[0]).await.unwrap().unwrap();
    assert!(gone.removed_at.is_some());
    assert_eq!(gone.version, 2);
    let revised = store
        .listed_entry(&later[0].entity_key)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(revised.version, 2);
    assert_eq!(revised.entry, later[0]);

    // The original again: the ten come back as revivals, at version 3.
    let c = store
        .replace_entity_list_snapshot(&snap.entries)
        .await
        .unwrap();
    assert_eq!((c.revived, c.updated, c.removed), (10, 1, 0));
    let back = store.listed_entry(&dropped[0]).await.unwrap().unwrap();
    assert_eq!((back.version, back.removed_at), (3, None));

    // Another list's snapshot never removes Entity List rows.
    let mut other = snap.entries[0].clone();
    other.source_list = "Unverified List (UVL) - Bureau of Industry and Security".into();
    other.entity_key = EntityKey::parse("AM/atlas-sanatgaran").unwrap();
    other.name = EntityName::parse("Atlas Sanatgaran").unwrap();
    let c = store.replace_entity_list_snapshot(&[other]).await.unwrap();
    assert_eq!((c.inserted, c.removed), (1, 0));
    assert_eq!(store.listed_entry_count().await.unwrap(), n + 1);
    store.close().await;
}

/// What the generated file should make the reader report for a row.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Planted {
    Good,
    EmptyName,
    EmptyId,
    WrongFieldCount,
    InvalidUtf8,
    UnknownCountry,
    FieldTooLong,
}

fn planted(i: usize) -> Planted {
    match i {
        _ if i % 997 == 13 => Planted::EmptyName,
        _ if i % 1499 == 7 => Planted::EmptyId,
        _ if i % 1201 == 100 => Planted::WrongFieldCount,
        _ if i % 2003 == 55 => Planted::InvalidUtf8,
        _ if i % 1709 == 3 => Planted::UnknownCountry,
        4321 => Planted::FieldTooLong,
        _ => Planted::Good,
    }
}

/// A deterministic supplier CSV of `rows` data rows: every fifth name is a real Entity List
/// name (with its country), the others plain company names; aliases, quoted commas and newlines
/// in addresses, two reference columns; some planted malformed rows and repeated ids. Returns
/// the bytes, the expected (line, problem kind) of every error, and how many records it holds.
fn generate_supplier_csv(
    rows: usize,
    listed: &[csl::CslEntry],
) -> (Vec<u8>, Vec<(u64, String)>, usize) {
    const FIRST: [&str; 12] = [
        "Northern",
        "Pacific",
        "Golden",
        "United",
        "Advanced",
        "Global",
        "Precision",
        "Blue River",
        "Alpine",
        "Harbor",
        "Silverline",
        "Meridian",
    ];
    const SECOND: [&str; 10] = [
        "Metals",
        "Logistics",
        "Components",
        "Textiles",
        "Electronics",
        "Foods",
        "Plastics",
        "Optics",
        "Machinery",
        "Chemicals",
    ];
    const FORMS: [&str; 8] = [
        "Ltd",
        "GmbH",
        "Inc.",
        "S.A.",
        "Co., Ltd.",
        "LLC",
        "AG",
        "Sp. z o.o.",
    ];
    const COUNTRIES: [&str; 8] = ["DE", "us", "China", "", "FR", "Japan", "KOREA, SOUTH", "gb"];

    let mut out: Vec<u8> = b"id,name,aliases,country,address,erp_vendor,cost_center\n".to_vec();
    let mut line: u64 = 2;
    let mut expected: Vec<(u64, String)> = Vec::new();
    // id -> line of its latest good row
    let mut good_ids: BTreeMap<String, u64> = BTreeMap::new();
    let mut good_rows = 0usize;
    let mut dup_warnings = 0usize;
    for i in 0..rows {
        let kind = planted(i);
        let mut id = format!("SUP-{i:05}");
        // Every 1000th row from 500 repeats the id of a good row 250 rows earlier.
        if i % 1000 == 500 && kind == Planted::Good && planted(i - 250) == Planted::Good {
            id = format!("SUP-{:05}", i - 250);
        }
        let (name, country) = if i % 5 == 0 {
            let e = &listed[(i * 7) % listed.len()];
            (
                e.name.as_str().to_string(),
                e.countries
                    .first()
                    .map(|c| c.as_str().to_string())
                    .unwrap_or_default(),
            )
        } else {
            (
                format!(
                    "{} {} {}",
                    FIRST[i % FIRST.len()],
                    SECOND[(i / 3) % SECOND.len()],
                    FORMS[(i / 7) % FORMS.len()]
                ),
                COUNTRIES[i % COUNTRIES.len()].to_string(),
            )
        };
        let aliases = if i % 4 == 1 {
            format!(
                "{} Group; {}",
                FIRST[i % FIRST.len()],
                SECOND[i % SECOND.len()]
            )
        } else {
            String::new()
        };
        let address = match i % 6 {
            0 => String::new(),
            1 => format!(
                "{} Industrial Park, Building {}\nFloor {}",
                i,
                i % 17,
                i % 9
            ),
            _ => format!("No. {} Main Road, District {}, City", i, i % 23),
        };
        let erp = format!("V{:07}", i * 37 % 9_999_991);
        let cost = if i % 3 == 0 {
            String::new()
        } else {
            format!("CC-{}", i % 40)
        };
        let mut fields = vec![id.clone(), name, aliases, country, address, erp, cost];
        match kind {
            Planted::Good => {}
            Planted::EmptyName => fields[1] = "  ".into(),
            Planted::EmptyId => fields[0] = String::new(),
            Planted::WrongFieldCount => {
                fields.pop();
            }
            Planted::UnknownCountry => fields[3] = "Atlantis".into(),
            Planted::FieldTooLong => fields[4] = "x".repeat(70 * 1024),
            Planted::InvalidUtf8 => {}
        }
        let mut row = Vec::new();
        {
            let mut w = csv::WriterBuilder::new().from_writer(&mut row);
            w.write_record(&fields).unwrap();
            w.flush().unwrap();
        }
        if kind == Planted::InvalidUtf8 {
            // Latin-1 bytes, as a spreadsheet saved in the wrong encoding writes them.
            let mut at = row.iter().position(|b| *b == b',').unwrap() + 1;
            if row[at] == b'"' {
                at += 1;
            }
            row.splice(at..at, b"Soci\xe9t\xe9 ".iter().copied());
        }
        let problem = match kind {
            Planted::Good => None,
            Planted::EmptyName => Some("empty name"),
            Planted::EmptyId => Some("empty id"),
            Planted::WrongFieldCount => Some("wrong number of fields: expected 7"),
            Planted::InvalidUtf8 => Some("invalid UTF-8 in field name"),
            // A warning, not a rejection: the row is stored and screened without a country.
            Planted::UnknownCountry => None,
            Planted::FieldTooLong => Some("field address is 71680 bytes"),
        };
        match problem {
            Some(p) => expected.push((line, p.to_string())),
            None => {
                if kind == Planted::UnknownCountry {
                    expected.push((
                        line,
                        "country \"Atlantis\" is not an ISO 3166 code or a country name we know"
                            .to_string(),
                    ));
                }
                good_rows += 1;
                if let Some(earlier) = good_ids.insert(id.clone(), line) {
                    dup_warnings += 1;
                    expected.push((
                        earlier,
                        format!("duplicate id \"{id}\" also on line {line}"),
                    ));
                }
            }
        }
        line += row.iter().filter(|b| **b == b'\n').count() as u64;
        out.extend_from_slice(&row);
    }
    expected.sort();
    (out, expected, good_rows - dup_warnings)
}

async fn supplier_csv_import_of_10000_rows(kind: Db) {
    let db = fresh_db(kind).await;
    let store = open(&db).await;
    let (csv_bytes, expected, expected_records) = generate_supplier_csv(10_000, &el_2022());

    let started = Instant::now();
    let import = read_suppliers(&csv_bytes[..], ReadLimits::default()).unwrap();
    let read_time = started.elapsed();
    assert_eq!(import.rows, 10_000);
    let got: Vec<(u64, String)> = import
        .errors
        .iter()
        .map(|e| (e.line, e.reason.to_string()))
        .collect();
    assert_eq!(got.len(), expected.len(), "errors: {got:#?}");
    for ((gl, gr), (el, er)) in got.iter().zip(&expected) {
        assert_eq!(gl, el, "{gr} / {er}");
        assert!(
            gr.starts_with(er.as_str()),
            "line {gl}: got {gr:?}, expected {er:?}"
        );
    }
    assert!(import.rejected() >= 20, "{}", import.rejected());
    assert!(import.warnings() >= 5, "{}", import.warnings());
    assert_eq!(import.records.len(), expected_records);
    let first_error = import.errors[0].to_string();
    assert!(
        first_error.starts_with(&format!("line {} ", import.errors[0].line)),
        "{first_error}"
    );

    let started = Instant::now();
    let mut batches = 0;
    let counts = store
        .upsert_suppliers_with_progress(&import.records, |_| batches += 1)
        .await
        .unwrap();
    let first_upsert = started.elapsed();
    assert!(batches >= 2);
    let n = import.records.len() as u64;
    assert_eq!(
        counts,
        UpsertCounts {
            inserted: n,
            updated: 0
        }
    );
    assert_eq!(store.supplier_count().await.unwrap(), n);

    let started = Instant::now();
    let again = store.upsert_suppliers(&import.records).await.unwrap();
    let second_upsert = started.elapsed();
    assert_eq!(
        again,
        UpsertCounts {
            inserted: 0,
            updated: n
        }
    );
    assert_eq!(store.supplier_count().await.unwrap(), n);
    eprintln!(
        "{kind:?}: 10,000-row supplier CSV ({} KiB): read {read_time:?}, first upsert of {n} \
         records {first_upsert:?}, re-import {second_upsert:?}",
        csv_bytes.len() / 1024
    );
    // Generous bound for an unoptimised build on a loaded machine; typical figures are printed.
    assert!(first_upsert.as_secs() < 30 && second_upsert.as_secs() < 30);

    // The last of several rows with one id is what is stored.
    let dup_line = expected
        .iter()
        .find(|(_, r)| r.starts_with("duplicate id"))
        .expect("the file repeats ids");
    let dup_id = dup_line.1.split('"').nth(1).unwrap();
    let stored = store.supplier(dup_id).await.unwrap().unwrap();
    let kept = import.records.iter().find(|r| r.id() == dup_id).unwrap();
    assert_eq!(&stored, kept);

    // Export and read back: the same records.
    let all = store.suppliers().await.unwrap();
    assert_eq!(all.len() as u64, n);
    assert!(all.windows(2).all(|w| w[0].id() < w[1].id()));
    let mut exported = Vec::new();
    write_suppliers(&mut exported, &all).unwrap();
    let back = read_suppliers(&exported[..], ReadLimits::default()).unwrap();
    assert!(
        back.errors.is_empty(),
        "{:?}",
        &back.errors[..1.min(back.errors.len())]
    );
    assert_eq!(back.records, all);
    let mut imported = import.records.clone();
    imported.sort_by(|a, b| a.id().cmp(b.id()));
    assert_eq!(all, imported);
    store.close().await;
}

async fn supplier_crud_and_paging(kind: Db) {
    let db = fresh_db(kind).await;
    let store = open(&db).await;
    let records: Vec<SupplierRecord> = (0..25)
        .map(|i| {
            SupplierRecord::new(&format!("id-{i:02}"), &format!("Company {i}"))
                .unwrap()
                .with_country(CountryCode::parse("DE"))
                .with_reference("Owner", "procurement")
                .unwrap()
        })
        .collect();
    assert_eq!(
        store.upsert_suppliers(&records).await.unwrap(),
        UpsertCounts {
            inserted: 25,
            updated: 0
        }
    );
    // Repeats within one call: the last wins and counts once.
    let renamed = SupplierRecord::new("id-03", "Company Three").unwrap();
    let new = SupplierRecord::new("id-99", "Newcomer").unwrap();
    let c = store
        .upsert_suppliers(&[records[3].clone(), new.clone(), renamed.clone()])
        .await
        .unwrap();
    assert_eq!(
        c,
        UpsertCounts {
            inserted: 1,
            updated: 1
        }
    );
    assert_eq!(store.supplier("id-03").await.unwrap(), Some(renamed));
    assert_eq!(store.supplier("nope").await.unwrap(), None);
    assert!(store.delete_supplier("id-99").await.unwrap());
    assert!(!store.delete_supplier("id-99").await.unwrap());
    assert_eq!(store.supplier_count().await.unwrap(), 25);

    let mut paged = Vec::new();
    let mut after: Option<String> = None;
    loop {
        let page = store.suppliers_page(after.as_deref(), 10).await.unwrap();
        if page.is_empty() {
            break;
        }
        after = page.last().map(|r| r.id().to_string());
        paged.extend(page);
    }
    assert_eq!(paged, store.suppliers().await.unwrap());
    store.close().await;
}

fn change(action: ChangeAction, name: &str, doc: &str) -> EntityChange {
    let mut c = EntityChange::new(
        action,
        EntityName::parse(name).unwrap(),
        CountryCode::parse("CN").unwrap(),
        "CHINA, PEOPLE'S REPUBLIC OF",
        SourceDocument::from_number(doc),
    );
    c.federal_register_citation = Some(format!("citation of {doc}"));
    c
}

async fn entity_changes_raise_versions(kind: Db) {
    let db = fresh_db(kind).await;
    let store = open(&db).await;
    let snap = csl::snapshot(&el_2022());
    store
        .replace_entity_list_snapshot(&snap.entries)
        .await
        .unwrap();
    let n = snap.entries.len() as u64;

    // Added: a new entry at version 1; the same event again is recognised.
    let added = change(
        ChangeAction::Added,
        "Example Photonics Co., Ltd.",
        "2024-00001",
    );
    let a = store.apply_entity_change(&added).await.unwrap();
    assert_eq!((a.version, a.outcome), (1, ChangeOutcome::Inserted));
    assert_eq!(a.entity_key.as_str(), "CN/example-photonics-co-ltd");
    let a = store.apply_entity_change(&added).await.unwrap();
    assert_eq!((a.version, a.outcome), (1, ChangeOutcome::AlreadyApplied));
    assert_eq!(store.listed_entry_count().await.unwrap(), n + 1);

    // Revised by a later rule: fields replaced, version 2.
    let mut revised = change(
        ChangeAction::Revised,
        "Example Photonics Co., Ltd.",
        "2024-00002",
    );
    revised.aliases = vec!["EPC".into()];
    revised.license_policy = Some("Presumption of denial.".into());
    let r = store.apply_entity_change(&revised).await.unwrap();
    assert_eq!((r.version, r.outcome), (2, ChangeOutcome::Updated));
    let stored = store.listed_entry(&r.entity_key).await.unwrap().unwrap();
    assert_eq!(stored.entry.aliases, ["EPC"]);
    assert_eq!(stored.last_action, "revised");
    assert_eq!(stored.last_document.as_deref(), Some("2024-00002"));

    // Removed: version 3, gone from the current list, kept as a tombstone.
    let removed = change(
        ChangeAction::Removed,
        "Example Photonics Co., Ltd.",
        "2024-00003",
    );
    let r = store.apply_entity_change(&removed).await.unwrap();
    assert_eq!((r.version, r.outcome), (3, ChangeOutcome::Removed));
    assert_eq!(store.listed_entry_count().await.unwrap(), n);
    let r = store
        .apply_entity_change(&change(
            ChangeAction::Removed,
            "Example Photonics Co., Ltd.",
            "2024-00004",
        ))
        .await
        .unwrap();
    assert_eq!((r.version, r.outcome), (3, ChangeOutcome::AlreadyRemoved));

    // Listed again: revived at version 4.
    let again = change(
        ChangeAction::Added,
        "Example Photonics Co., Ltd.",
        "2024-00005",
    );
    let r = store.apply_entity_change(&again).await.unwrap();
    assert_eq!((r.version, r.outcome), (4, ChangeOutcome::Revived));
    assert!(store
        .listed_entry(&r.entity_key)
        .await
        .unwrap()
        .unwrap()
        .removed_at
        .is_none());

    // A revision that renames: the row moves to the new key and its history continues.
    let mut rename = change(
        ChangeAction::Revised,
        "Example Photonics Group",
        "2024-00006",
    );
    rename.previous_key = Some(a.entity_key.clone());
    let r = store.apply_entity_change(&rename).await.unwrap();
    assert_eq!((r.version, r.outcome), (5, ChangeOutcome::Renamed));
    assert_eq!(r.entity_key.as_str(), "CN/example-photonics-group");
    assert!(store.listed_entry(&a.entity_key).await.unwrap().is_none());

    // Removing an entry of the imported snapshot, and one never stored.
    let hik = change(
        ChangeAction::Removed,
        "Hangzhou Hikvision Digital Technology Co., Ltd.",
        "2024-00007",
    );
    let r = store.apply_entity_change(&hik).await.unwrap();
    assert_eq!((r.version, r.outcome), (2, ChangeOutcome::Removed));
    let ghost = change(ChangeAction::Removed, "Never Listed Trading", "2024-00008");
    let r = store.apply_entity_change(&ghost).await.unwrap();
    assert_eq!((r.version, r.outcome), (1, ChangeOutcome::RemovedUnknown));
    let t = store.listed_entry(&r.entity_key).await.unwrap().unwrap();
    assert!(t.removed_at.is_some());
    assert_eq!(store.listed_entry_count().await.unwrap(), n);

    // The watcher's entries keep the Entity List as their list.
    let current = store.listed_entries().await.unwrap();
    let group = current
        .iter()
        .find(|e| e.entry.entity_key.as_str() == "CN/example-photonics-group")
        .unwrap();
    assert_eq!(group.entry.source_list, ENTITY_LIST_SOURCE);
    store.close().await;
}

/// The delivery ledger's claims: two workers race for one (alert, sink); one holds it, the
/// other is told who holds it and until when; a renewed claim holds, an expired one is taken
/// over, a released one is free at once, a delivered one is final and listed.
async fn delivery_claims_let_one_sender_through(kind: Db) {
    use std::time::Duration;
    let db = fresh_db(kind).await;
    let store = open(&db).await;
    let delivery = |alert: &str| Delivery {
        alert_id: alert.to_string(),
        sink: "slack".to_string(),
        supplier_id: "S-1".to_string(),
        entity_key: "CN:hikvision".to_string(),
        entry_version: 1,
        kind: "listed".to_string(),
        payload: "{}".to_string(),
    };
    let long = Duration::from_secs(60);
    let a = delivery("alert-a");

    // Both workers claim at once: exactly one holds it.
    let (one, two) = tokio::join!(
        store.claim_delivery(&a, "w1", long),
        store.claim_delivery(&a, "w2", long)
    );
    let (one, two) = (one.unwrap(), two.unwrap());
    let (holder, other) = match (&one, &two) {
        (Claim::Held, Claim::HeldElsewhere { .. }) => ("w1", "w2"),
        (Claim::HeldElsewhere { .. }, Claim::Held) => ("w2", "w1"),
        _ => panic!("one claim must win: {one:?}, {two:?}"),
    };
    match store.claim_delivery(&a, other, long).await.unwrap() {
        Claim::HeldElsewhere { by, until_ms } => {
            assert_eq!(by, holder);
            assert!(until_ms > chrono::Utc::now().timestamp_millis() + 50_000);
        }
        c => panic!("{c:?}"),
    }
    // The holder's own claim again (a redelivered event in the same worker) is still its own.
    assert_eq!(
        store.claim_delivery(&a, holder, long).await.unwrap(),
        Claim::Held
    );
    assert!(store
        .renew_claim("alert-a", "slack", holder, long)
        .await
        .unwrap());
    assert!(!store
        .renew_claim("alert-a", "slack", other, long)
        .await
        .unwrap());
    // Nothing is listed as delivered while it is only claimed.
    assert!(store.deliveries().await.unwrap().is_empty());
    assert!(store
        .suppliers_alerted_on("CN:hikvision")
        .await
        .unwrap()
        .is_empty());

    assert!(store
        .mark_delivered("alert-a", "slack", holder)
        .await
        .unwrap());
    assert_eq!(
        store.claim_delivery(&a, other, long).await.unwrap(),
        Claim::Delivered
    );
    assert_eq!(
        store.claim_delivery(&a, holder, long).await.unwrap(),
        Claim::Delivered
    );
    // A second mark (a sender whose claim had been taken over) reports it was not the first.
    assert!(!store
        .mark_delivered("alert-a", "slack", other)
        .await
        .unwrap());
    // Releasing a delivered alert does not undo it.
    store
        .release_claim("alert-a", "slack", holder)
        .await
        .unwrap();
    let delivered = store.deliveries().await.unwrap();
    assert_eq!(delivered.len(), 1);
    assert_eq!(delivered[0].alert_id, "alert-a");
    assert_eq!(
        store.suppliers_alerted_on("CN:hikvision").await.unwrap(),
        vec!["S-1".to_string()]
    );

    // A claim whose holder died runs out and is taken over; the dead holder cannot renew.
    let b = delivery("alert-b");
    assert_eq!(
        store
            .claim_delivery(&b, "dead", Duration::from_millis(200))
            .await
            .unwrap(),
        Claim::Held
    );
    assert!(matches!(
        store.claim_delivery(&b, "w2", long).await.unwrap(),
        Claim::HeldElsewhere { .. }
    ));
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(
        store.claim_delivery(&b, "w2", long).await.unwrap(),
        Claim::TakenOver {
            from: "dead".to_string()
        }
    );
    assert!(!store
        .renew_claim("alert-b", "slack", "dead", long)
        .await
        .unwrap());

    // A released claim (dead-lettered, interrupted) is free at once; another's release of it
    // does nothing.
    store
        .release_claim("alert-b", "slack", "dead")
        .await
        .unwrap();
    assert!(matches!(
        store.claim_delivery(&b, "w3", long).await.unwrap(),
        Claim::HeldElsewhere { .. }
    ));
    store.release_claim("alert-b", "slack", "w2").await.unwrap();
    assert_eq!(
        store.claim_delivery(&b, "w3", long).await.unwrap(),
        Claim::Held
    );
    store.close().await;
}

/// The outbox half of the ledger: a claim parked as `queued` is its parker's to send, in
/// `queue_seq` order, and nobody else's while its lease lives; a re-handled event finds it
/// queued and does not send; a renewal keeps all of a worker's parked rows; once the parker's
/// lease ran out (it died, parked or mid-send) another worker adopts it, and of two racing
/// adopters one wins; a requeued row is parked again; delivered rows leave the outbox.
async fn the_outbox_keeps_parked_alerts_in_order_and_hands_orphans_on(kind: Db) {
    use std::time::Duration;
    let db = fresh_db(kind).await;
    let store = open(&db).await;
    let delivery = |alert: &str| Delivery {
        alert_id: alert.to_string(),
        sink: "webhook".to_string(),
        supplier_id: "S-1".to_string(),
        entity_key: "CN:hikvision".to_string(),
        entry_version: 1,
        kind: "listed".to_string(),
        payload: format!("{{\"alert\":\"{alert}\"}}"),
    };
    let short = Duration::from_millis(400);
    let long = Duration::from_secs(60);
    // Parked out of alphabetical order: the sequence decides.
    for (alert, seq) in [("alert-z", 10), ("alert-a", 20)] {
        assert_eq!(
            store
                .claim_delivery(&delivery(alert), "w1", short)
                .await
                .unwrap(),
            Claim::Held
        );
        assert!(store.park_claim(alert, "webhook", "w1", seq).await.unwrap());
    }
    assert!(!store
        .park_claim("alert-z", "webhook", "w2", 11)
        .await
        .unwrap());
    assert_eq!(
        store.queued_deliveries().await.unwrap(),
        vec![("webhook".to_string(), 2)]
    );
    assert_eq!(
        store
            .claim_delivery(&delivery("alert-z"), "w2", long)
            .await
            .unwrap(),
        Claim::Queued,
        "a re-handled event leaves a parked alert to the outbox"
    );
    let next = store.next_queued("webhook", "w1").await.unwrap().unwrap();
    assert_eq!(next.delivery.alert_id, "alert-z");
    assert_eq!(next.delivery.payload, "{\"alert\":\"alert-z\"}");
    assert_eq!(next.parked_by, "w1");
    assert!(
        store.next_queued("webhook", "w2").await.unwrap().is_none(),
        "not another worker's while the parker's lease lives"
    );
    assert!(store.next_queued("slack", "w1").await.unwrap().is_none());
    assert_eq!(store.renew_queued("w1", short).await.unwrap(), 2);

    // w1 takes the first to send it, then dies with both rows in hand.
    let taken = store.next_queued("webhook", "w1").await.unwrap().unwrap();
    assert!(store.take_queued(&taken, "w1", short).await.unwrap());
    assert!(
        !store.take_queued(&taken, "w2", short).await.unwrap(),
        "what w1 took is not another's to take while its lease lives"
    );
    tokio::time::sleep(short + Duration::from_millis(100)).await;

    // Its orphans, the one it was sending first: two adopters race, one wins.
    let orphan = store.next_queued("webhook", "w2").await.unwrap().unwrap();
    assert_eq!(orphan.delivery.alert_id, "alert-z");
    let (a, b) = tokio::join!(
        store.take_queued(&orphan, "w2", long),
        store.take_queued(&orphan, "w3", long)
    );
    assert!(a.unwrap() ^ b.unwrap(), "exactly one adopter");
    let winner = if store
        .renew_claim("alert-z", "webhook", "w2", long)
        .await
        .unwrap()
    {
        "w2"
    } else {
        "w3"
    };
    // Interrupted: back in the outbox, still first, the winner's.
    store
        .requeue_claim("alert-z", "webhook", winner)
        .await
        .unwrap();
    let again = store.next_queued("webhook", winner).await.unwrap().unwrap();
    assert_eq!(again.delivery.alert_id, "alert-z");
    assert!(store.take_queued(&again, winner, long).await.unwrap());
    assert!(store
        .mark_delivered("alert-z", "webhook", winner)
        .await
        .unwrap());
    let next = store.next_queued("webhook", "w4").await.unwrap().unwrap();
    assert_eq!(next.delivery.alert_id, "alert-a", "w1's other orphan");
    assert_eq!(
        store.queued_deliveries().await.unwrap(),
        vec![("webhook".to_string(), 1)]
    );
    assert_eq!(store.deliveries().await.unwrap().len(), 1);
    store.close().await;
}

/// A batch of decisions and supplier upserts in one transaction: a decision on a basis is stored
/// once; a later batch holding it again (a redone import) gets the stored one back, whatever
/// it scored this time, while its new decisions are stored.
async fn batched_decisions_are_stored_once_and_reused(kind: Db) {
    use entitywatch::outcome::DecisionKind;
    use entitywatch::store::Decision;
    let db = fresh_db(kind).await;
    let store = open(&db).await;
    let decision = |supplier: &str, score: f64, kind: DecisionKind| Decision {
        supplier_id: supplier.to_string(),
        entity_key: "CN/acme".to_string(),
        entry_version: 1,
        basis: "m/1".to_string(),
        score,
        decision: kind,
        explanation: format!("scored {score}"),
        document_number: Some("2026-1".to_string()),
    };
    // More than one statement's worth, so chunks are exercised too.
    let suppliers: Vec<SupplierRecord> = (0..1200)
        .map(|i| SupplierRecord::new(&format!("s{i}"), "Acme Ltd").unwrap())
        .collect();
    let first: Vec<Decision> = (0..1200)
        .map(|i| decision(&format!("s{i}"), 0.9, DecisionKind::Match))
        .collect();
    let (counts, stored) = store
        .store_screened_batch(&suppliers, &first)
        .await
        .unwrap();
    assert_eq!(counts.inserted, 1200);
    assert_eq!(stored, first);

    // Redone: s0..s1199 again, rescored lower, plus a new supplier's decision.
    let mut again: Vec<Decision> = (0..1200)
        .map(|i| decision(&format!("s{i}"), 0.5, DecisionKind::NearMiss))
        .collect();
    again.push(decision("s-new", 0.7, DecisionKind::NearMiss));
    let stored = store.record_decisions(&again).await.unwrap();
    assert_eq!(stored.len(), again.len());
    assert_eq!(&stored[..1200], &first[..], "the first decisions stand");
    assert_eq!(stored[1200], again[1200], "a new decision is stored");
    assert_eq!(store.decisions().await.unwrap().len(), 1201);
    store.close().await;
}
