use std::io::{self, Read};

use super::*;
use crate::domain::recognise_country;
use crate::domain::supplier::*;
use crate::suppliers::writer::*;
use crate::suppliers::{SupplierBatch, SupplierBatches};

fn read(s: &[u8]) -> SupplierImport {
    read_suppliers(s, ReadLimits::default()).expect("file readable")
}

fn reasons(i: &SupplierImport) -> Vec<(u64, String)> {
    i.errors
        .iter()
        .map(|e| (e.line, e.reason.to_string()))
        .collect()
}

#[test]
fn reads_all_columns_and_keeps_references() {
    let i = read(
        b"ID,Name,Aliases,Country,Address,ERP Number,notes\n\
          S1, Acme Ltd ,Acme; ACME Corp|Acme,China,\"1 Road, Town\",4711,\n",
    );
    assert!(i.errors.is_empty(), "{:?}", i.errors);
    let r = &i.records[0];
    assert_eq!(r.id(), "S1");
    assert_eq!(r.name(), "Acme Ltd");
    assert_eq!(r.aliases(), ["Acme", "ACME Corp"]);
    assert_eq!(r.country().map(|c| c.as_str()), Some("CN"));
    assert_eq!(r.address(), Some("1 Road, Town"));
    assert_eq!(r.references().len(), 1);
    assert_eq!(r.references()["ERP Number"], "4711");
}

#[test]
fn wrong_columns_are_one_clear_file_error() {
    let e = read_suppliers(&b"supplier,company\n1,Acme\n"[..], ReadLimits::default())
        .unwrap_err()
        .to_string();
    assert!(e.contains("required columns id, name"), "{e}");
    assert!(e.contains("found columns: supplier, company"), "{e}");
    let e = read_suppliers(&b"ID,company\n"[..], ReadLimits::default())
        .unwrap_err()
        .to_string();
    assert!(e.contains("required column name;"), "{e}");
    assert!(matches!(
        read_suppliers(&b""[..], ReadLimits::default()),
        Err(SupplierFileError::Empty)
    ));
    assert!(matches!(
        read_suppliers(&b"id,name,ID\n"[..], ReadLimits::default()),
        Err(SupplierFileError::DuplicateColumn(_))
    ));
}

#[test]
fn bom_and_crlf_are_tolerated() {
    let i = read(b"\xef\xbb\xbfid,name\r\n1,Acme\r\n\r\n2,Beta\r\n");
    assert!(i.errors.is_empty(), "{:?}", i.errors);
    assert_eq!(i.records.len(), 2);
}

#[test]
fn bom_survives_a_reader_that_returns_one_byte_at_a_time() {
    struct Trickle<'a>(&'a [u8]);
    impl Read for Trickle<'_> {
        fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
            if self.0.is_empty() || buf.is_empty() {
                return Ok(0);
            }
            buf[0] = self.0[0];
            self.0 = &self.0[1..];
            Ok(1)
        }
    }
    let data = b"\xef\xbb\xbfid,name\n1,\"Acme, \"\"The\"\" Co\"\n";
    let i = read_suppliers(Trickle(data), ReadLimits::default()).unwrap();
    assert!(i.errors.is_empty(), "{:?}", i.errors);
    assert_eq!(i.records[0].name(), "Acme, \"The\" Co");
}

#[test]
fn quoted_commas_and_newlines_keep_line_numbers_right() {
    let i = read(b"id,name,address\n1,\"Acme, Inc.\",\"line one\nline two\"\n2,,x\n3,Gamma,\n");
    assert_eq!(i.records.len(), 2);
    assert_eq!(i.records[0].name(), "Acme, Inc.");
    assert_eq!(i.records[0].address(), Some("line one\nline two"));
    assert_eq!(
        reasons(&i),
        [(4, "empty name (no letter or digit)".to_string())]
    );
}

#[test]
fn invalid_utf8_rejects_only_its_row() {
    let i = read(b"id,name\n1,Acme\n2,Bad \xff\xfe name\n3,Gamma\n");
    assert_eq!(i.records.len(), 2);
    assert_eq!(i.errors.len(), 1);
    assert_eq!(i.errors[0].line, 3);
    assert_eq!(i.errors[0].id.as_deref(), Some("2"));
    assert!(i.errors[0]
        .reason
        .to_string()
        .contains("invalid UTF-8 in field name"));
    let e = read_suppliers(&b"id,n\xffame\n"[..], ReadLimits::default()).unwrap_err();
    assert!(matches!(e, SupplierFileError::HeaderNotUtf8));
}

#[test]
fn a_ten_megabyte_field_is_rejected_without_buffering_it() {
    let mut data = b"id,name,notes\n1,Acme,short\n2,Huge,\"".to_vec();
    data.extend(vec![b'x'; 10 * 1024 * 1024]);
    data.extend_from_slice(b"\"\n3,Gamma,ok\n");
    let mut csv = BoundedCsv::new(&data[..], ReadLimits::default());
    let mut rec = RawRecord::default();
    while csv.next_record(&mut rec, 3).unwrap() {
        assert!(rec.fields.iter().all(|f| f.capacity() <= 2 * 64 * 1024));
    }
    let i = read(&data);
    assert_eq!(i.records.len(), 2);
    assert_eq!(i.errors.len(), 1);
    assert_eq!(i.errors[0].line, 3);
    assert_eq!(i.errors[0].id.as_deref(), Some("2"));
    assert_eq!(
        i.errors[0].reason,
        RowProblem::FieldTooLong {
            column: "notes".into(),
            bytes: 10 * 1024 * 1024,
            limit: 64 * 1024
        }
    );
}

#[test]
fn duplicate_ids_keep_the_last_row_and_warn_about_earlier_ones() {
    let i = read(b"id,name\nA,First\nB,Other\nA,Second\nA,Third\n");
    let names: Vec<_> = i.records.iter().map(|r| (r.id(), r.name())).collect();
    assert_eq!(names, [("B", "Other"), ("A", "Third")]);
    assert_eq!(
        reasons(&i),
        [
            (
                2,
                "duplicate id \"A\" also on line 4; the later row wins and this one is ignored"
                    .to_string()
            ),
            (
                4,
                "duplicate id \"A\" also on line 5; the later row wins and this one is ignored"
                    .to_string()
            ),
        ]
    );
    assert_eq!(i.warnings(), 2);
    assert_eq!(i.rejected(), 0);
}

#[test]
fn empty_ids_names_and_field_counts_are_row_errors_and_bad_countries_warnings() {
    let i = read(
        b"id,name,country\n,Acme,CN\n2,  ,CN\n3,--,CN\n4,Delta,Atlantis\n5,Echo,QQ\n6,Fox\n\
          7,Golf,CN,extra\n8,Hotel,cn\n9,India,\n",
    );
    let got = reasons(&i);
    assert_eq!(got.len(), 7, "{got:?}");
    assert_eq!(got[0], (2, "empty id".to_string()));
    assert_eq!(got[1].0, 3);
    assert_eq!(got[2], (4, "empty name (no letter or digit)".to_string()));
    // An unknown country costs the country, not the row: a warning naming the line.
    assert_eq!(got[3].0, 5);
    assert!(
        got[3].1.starts_with("country \"Atlantis\" is not"),
        "{got:?}"
    );
    assert!(got[4].1.starts_with("country \"QQ\" is not"), "{got:?}");
    assert!(i.errors[3].reason.is_warning() && i.errors[4].reason.is_warning());
    assert_eq!(
        got[5],
        (
            7,
            "wrong number of fields: expected 3 as in the header, found 2".to_string()
        )
    );
    assert_eq!(got[6].0, 8);
    assert_eq!(i.errors[6].id.as_deref(), Some("7"));
    let ids: Vec<_> = i.records.iter().map(|r| r.id()).collect();
    assert_eq!(ids, ["4", "5", "8", "9"]);
    assert!(i.records[0].country().is_none() && i.records[1].country().is_none());
    assert_eq!(i.rejected(), 5);
    assert_eq!(i.warnings(), 2);
}

#[test]
fn nul_bytes_reject_their_row_only() {
    let i = read(b"id,name\n1,Ac\0me\n2,Beta\n");
    assert_eq!(i.records.len(), 1);
    assert_eq!(i.records[0].id(), "2");
    assert_eq!(i.errors.len(), 1);
    assert_eq!(i.errors[0].line, 2);
    assert!(
        i.errors[0].reason.to_string().contains("NUL"),
        "{}",
        i.errors[0]
    );
}

#[test]
fn lone_carriage_returns_end_lines_as_they_end_records() {
    // Old Mac exports end lines with CR alone; csv_core ends records there, so must we.
    let i = read(b"id,name\r1,Acme\r2,\r3,Gamma\r\n4,\n5,Echo");
    assert_eq!(i.records.len(), 3);
    assert_eq!(
        reasons(&i),
        [
            (3, "empty name (no letter or digit)".to_string()),
            (5, "empty name (no letter or digit)".to_string())
        ]
    );
    // A CR LF split across two reads is one line break.
    let mut last = 0;
    assert_eq!(count_breaks(b"a\r", &mut last), 1);
    assert_eq!(count_breaks(b"\nb\n", &mut last), 1);
}

#[test]
fn an_unclosed_quote_is_reported_with_the_lines_it_swallowed() {
    let i = read(b"id,name\n1,Acme\n2,\"Beta Ltd\n3,Gamma\n4,Delta\n");
    let ids: Vec<_> = i.records.iter().map(|r| r.id()).collect();
    assert_eq!(ids, ["1"]);
    assert_eq!(i.errors.len(), 1);
    assert_eq!(i.errors[0].line, 3);
    assert_eq!(
        i.errors[0].reason,
        RowProblem::UnclosedQuote {
            from_line: 3,
            to_line: 5
        }
    );
    assert!(i.errors[0].to_string().contains("lines 3-5"));
    // Closed quotes, escaped quotes and quotes inside unquoted fields are not flagged.
    let i = read(b"id,name,address\n1,\"A \"\"B\"\" C\",\"x\ny\"\n2,Say \"hi,z");
    assert!(i.errors.is_empty(), "{:?}", i.errors);
    assert_eq!(i.records.len(), 2);
    // One that opens on the last line, without a final line break.
    let i = read(b"id,name\n1,Acme\n2,\"Beta");
    assert_eq!(
        i.errors[0].reason,
        RowProblem::UnclosedQuote {
            from_line: 3,
            to_line: 3
        }
    );
}

#[test]
fn unnamed_columns_are_ignored_unless_they_hold_a_value() {
    let i = read(b"id,name,\n1,Acme,\n2,Beta,oops\n");
    assert_eq!(i.records.len(), 1);
    assert_eq!(i.errors[0].line, 3);
    assert!(i.errors[0].reason.to_string().contains("column 3"));
}

#[test]
fn export_reads_back_identically() {
    let records = vec![
        SupplierRecord::new("a-1", "Acme, \"Quoted\" Ltd")
            .unwrap()
            .with_aliases(["Acme", "Acme Holdings"])
            .with_country_text("CHINA, PEOPLE'S REPUBLIC OF")
            .unwrap()
            .with_address(Some("1 Road\nTown"))
            .with_reference("cost centre", "42")
            .unwrap(),
        SupplierRecord::new("b", "Беларусь Завод")
            .unwrap()
            .with_reference("erp", "x,y")
            .unwrap(),
        SupplierRecord::new("c", "C").unwrap(),
    ];
    let mut out = Vec::new();
    write_suppliers(&mut out, &records).unwrap();
    let back = read(&out);
    assert!(back.errors.is_empty(), "{:?}", back.errors);
    assert_eq!(back.records, records);
    let text = String::from_utf8(out).unwrap();
    assert!(text.starts_with("id,name,aliases,country,address,cost centre,erp\n"));
}

#[test]
fn serde_goes_through_the_constructor() {
    let r = SupplierRecord::new("1", "Acme")
        .unwrap()
        .with_country_text("DE")
        .unwrap();
    let j = serde_json::to_string(&r).unwrap();
    assert_eq!(serde_json::from_str::<SupplierRecord>(&j).unwrap(), r);
    assert!(serde_json::from_str::<SupplierRecord>(r#"{"id":" ","name":"x"}"#).is_err());
    assert!(serde_json::from_str::<SupplierRecord>(
        r#"{"id":"1","name":"x","country":"Atlantis"}"#
    )
    .is_err());
}

#[test]
fn countries_are_codes_or_names() {
    for (raw, code) in [
        ("cn", "CN"),
        ("China", "CN"),
        ("KOREA, NORTH", "KP"),
        ("xk", "XK"),
    ] {
        assert_eq!(recognise_country(raw).unwrap().as_str(), code, "{raw}");
    }
    for raw in ["QQ", "Atlantis", "TX", ""] {
        assert!(recognise_country(raw).is_none(), "{raw}");
    }
}

#[test]
fn formulas_are_neutralised_in_exports_and_read_back_unchanged() {
    let records = vec![
        SupplierRecord::new("=1+1", "=HYPERLINK(\"http://x\",\"y\")")
            .unwrap()
            .with_aliases(["@SUM(1)"])
            .with_address(Some("-2+3"))
            .with_reference("note", "+cmd|' /C calc'!A0")
            .unwrap(),
        SupplierRecord::new("2", "'quoted' Ltd").unwrap(),
    ];
    let mut out = Vec::new();
    write_suppliers(&mut out, &records).unwrap();
    let text = String::from_utf8(out.clone()).unwrap();
    let mut cells = csv::Reader::from_reader(text.as_bytes());
    for row in cells.records() {
        for cell in row.unwrap().iter() {
            assert!(!cell.starts_with(FORMULA_TRIGGERS), "{cell:?} in\n{text}");
        }
    }
    assert!(text.contains("'=HYPERLINK"), "{text}");
    assert!(text.contains("'@SUM(1)"), "{text}");
    let back = read(&out);
    assert!(back.errors.is_empty(), "{:?}", back.errors);
    assert_eq!(back.records, records);
}

#[test]
fn an_endless_header_is_refused_not_read_forever() {
    let endless = std::io::repeat(0).take(u64::MAX);
    let limits = ReadLimits {
        max_field_bytes: 1024,
        max_columns: 4,
    };
    let e = read_suppliers(endless, limits).unwrap_err();
    assert!(
        matches!(e, SupplierFileError::HeaderFieldTooLong { limit: 1024 }),
        "{e}"
    );
}

#[test]
fn the_optional_schema_column_gives_the_kind_and_round_trips() {
    let i = read(
        b"id,name,schema\n\
          P1,Evren Kayakiran,Person\n\
          C1,Evren Kayakiran,company\n\
          N1,Acme,\n\
          X1,Acme,Persn\n",
    );
    let kinds: Vec<Option<crate::screening::Schema>> =
        i.records.iter().map(|r| r.schema()).collect();
    use crate::screening::Schema;
    assert_eq!(kinds, [Some(Schema::Person), Some(Schema::Company), None]);
    assert_eq!(i.records[2].screening_schema(), Schema::Organization);
    let r = reasons(&i);
    assert_eq!(r.len(), 1, "{r:?}");
    assert_eq!(r[0].0, 5);
    assert!(r[0].1.contains("Persn"), "{r:?}");
    // A stated kind changes the screened digest; no kind keeps the digest it had before.
    let plain = SupplierRecord::new("N1", "Acme").unwrap();
    assert_eq!(
        i.records[2].screened_fields_digest(),
        plain.screened_fields_digest()
    );
    assert_ne!(
        i.records[0].screened_fields_digest(),
        i.records[0]
            .clone()
            .with_schema(None)
            .screened_fields_digest()
    );
    let mut out = Vec::new();
    write_suppliers(&mut out, &i.records).unwrap();
    assert!(String::from_utf8_lossy(&out).starts_with("id,name,aliases,country,address,schema\n"));
    assert_eq!(read(&out).records, i.records);
    let j = serde_json::to_string(&i.records[0]).unwrap();
    assert!(j.contains("\"schema\":\"Person\""), "{j}");
    assert_eq!(
        serde_json::from_str::<SupplierRecord>(&j).unwrap(),
        i.records[0]
    );
}

/// Every batch of `data` at `batch_rows`, and the distinct ids seen.
fn batches(data: &[u8], batch_rows: usize) -> (Vec<SupplierBatch>, usize) {
    let mut b = SupplierBatches::new(data, ReadLimits::default(), batch_rows).unwrap();
    let mut out = Vec::new();
    while let Some(batch) = b.next_batch().unwrap() {
        assert!(batch.records.len() <= batch_rows);
        out.push(batch);
    }
    (out, b.distinct_ids())
}

#[test]
fn batches_report_what_the_whole_file_read_reports() {
    // Duplicates within and across batches, a bad row, an unknown country.
    let data = b"id,name,country\n\
        1,Acme,CN\n2,Beta,\n,No Id,\n3,Gamma,Atlantis\n1,Acme Two,CN\n\
        4,Delta,\n5,Eps,\n2,Beta Two,\n6,Zeta,\n1,Acme Three,\n";
    let whole = read(data);
    for size in [1, 2, 3, 4, 100] {
        let (batches, distinct) = batches(data, size);
        let mut errors: Vec<RowError> = batches.iter().flat_map(|b| b.errors.clone()).collect();
        errors.sort_by_key(|e| e.line);
        assert_eq!(errors, whole.errors, "batch size {size}");
        assert_eq!(batches.iter().map(|b| b.rows).sum::<u64>(), whole.rows);
        assert_eq!(distinct, whole.records.len());
        // Applying the batches in order as upserts leaves what the whole read stores.
        let mut stored: std::collections::BTreeMap<String, SupplierRecord> = Default::default();
        let mut repeats = 0;
        for b in &batches {
            repeats += b.repeats_of_earlier_batches;
            for r in &b.records {
                stored.insert(r.id().to_string(), r.clone());
            }
        }
        let mut expected: Vec<SupplierRecord> = whole.records.clone();
        expected.sort_by(|a, b| a.id().cmp(b.id()));
        assert_eq!(
            stored.into_values().collect::<Vec<_>>(),
            expected,
            "batch size {size}"
        );
        let handed_out: usize = batches.iter().map(|b| b.records.len()).sum();
        assert_eq!(
            handed_out as u64 - repeats,
            whole.records.len() as u64,
            "batch size {size}: every record beyond the first of its id is a repeat"
        );
    }
    // One batch holds each id once, as its last row.
    let (one, _) = batches(data, 100);
    assert_eq!(one.len(), 1);
    let acme: Vec<&str> = one[0]
        .records
        .iter()
        .filter(|r| r.id() == "1")
        .map(|r| r.name())
        .collect();
    assert_eq!(acme, ["Acme Three"]);
}

#[test]
fn batches_of_a_file_with_only_a_header_are_none() {
    let (b, distinct) = batches(b"id,name\n", 10);
    assert!(b.is_empty());
    assert_eq!(distinct, 0);
}
