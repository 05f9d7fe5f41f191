use super::*;
use crate::domain::list_entry::join_distinct;
use crate::events::EntityChange;

const DATA: &str = "/work/shared/data/csl";

fn shared(name: &str) -> Option<std::path::PathBuf> {
    let p = Path::new(DATA).join(name);
    // The shared data directory exists on development machines; the fixture copy below is
    // what CI always has.
    p.exists().then_some(p)
}

fn fixture(name: &str) -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/csl")
        .join(name)
}

fn read_str(s: &str, filter: &SourceFilter) -> Result<CslImport, CslError> {
    read_csl(s.as_bytes(), filter, CslLimits::default())
}

#[test]
fn source_filter_matches_abbreviations_and_names() {
    let el = ENTITY_LIST_SOURCE;
    let sdn = "Specially Designated Nationals (SDN) - Treasury Department";
    let plc = "Palestinian Legislative Council List (PLC) - Treasury Department";
    let ssi = "Sectoral Sanctions Identifications List (SSI) - Treasury Department";
    let nsmbs = "Non-SDN Menu-Based Sanctions List (NS-MBS List) - Treasury Department";
    let f = SourceFilter::default();
    assert!(f.matches(el));
    assert!(!f.matches(sdn) && !f.matches(plc));
    let f = SourceFilter::parse("el");
    assert!(f.matches(el) && !f.matches(plc) && !f.matches(ssi));
    let f = SourceFilter::parse("EL, SDN");
    assert!(f.matches(el) && f.matches(sdn) && !f.matches(ssi));
    assert!(!f.matches(nsmbs), "SDN must not match Non-SDN by substring");
    assert!(SourceFilter::parse("NS-MBS").matches(nsmbs));
    assert!(SourceFilter::parse("treasury").matches(sdn));
    assert_eq!(SourceFilter::parse("all"), SourceFilter::All);
    assert!(SourceFilter::All.matches(""));
}

#[test]
fn splits_lists_and_finds_countries() {
    assert_eq!(
        split_list("A; B;  C; and D"),
        ["A", "B", "C", "D"].map(String::from)
    );
    assert_eq!(split_list("Andover Ltd"), ["Andover Ltd"].map(String::from));
    let c = |a: &str| address_country(a).map(|c| c.as_str().to_string());
    assert_eq!(
        c("54 Gagarina St., Borisov, 222511, BY").as_deref(),
        Some("BY")
    );
    assert_eq!(c("Siwei Mansion, Chengdu, China").as_deref(), Some("CN"));
    assert_eq!(c("3037 S. 69TH DRIVE, PHONEIX, AZ, 85043"), None);
    assert_eq!(c("Hay Riad, Rabat"), None);
}

#[test]
fn reads_the_2022_layout_entity_list_fixture() {
    let i = read_csl_path(
        &fixture("EL_only_from_watchman_consolidated_2022-05.csv"),
        &SourceFilter::default(),
    )
    .unwrap();
    assert_eq!(i.layout, CslLayout::Csv2022);
    assert_eq!((i.rows, i.entries.len(), i.other_sources), (2001, 2001, 0));
    assert!(i.warnings.is_empty(), "{:?}", i.warnings);
    let e = &i.entries[0];
    assert_eq!(e.name.as_str(), "140 Repair Plant JSC");
    assert_eq!(
        e.alt_names,
        [
            "Open Joint Stock Company 140 Repair Plant",
            "JSC 140 Repair Plant"
        ]
    );
    assert_eq!(e.countries, [CountryCode::parse("BY").unwrap()]);
    assert_eq!(e.federal_register_notice.as_deref(), Some("87 FR 20299"));
    assert_eq!(e.license_policy.as_deref(), Some("Policy of denial."));
    assert_eq!(e.start_date, NaiveDate::from_ymd_opt(2022, 4, 7));
    assert_eq!(
        e.id.as_deref(),
        Some("4398d33e9e93c7477af39f1e0bfffc13ddd47bcc")
    );
    assert_eq!(e.entity_key().as_str(), "BY/140-repair-plant-jsc");
    let with_country = i.entries.iter().filter(|e| !e.countries.is_empty()).count();
    assert!(with_country > 1990, "{with_country}");
    let hik = i
        .entries
        .iter()
        .find(|e| e.name.as_str().starts_with("Hangzhou Hikvision"))
        .expect("Hikvision is on the 2022 list");
    assert_eq!(hik.countries[0].as_str(), "CN");
    let s = snapshot(&i.entries);
    assert_eq!(s.entries.len() + s.merged_rows, 2001);
    assert!(s.merged_rows > 0);
    let dart = s
        .entries
        .iter()
        .find(|e| e.entity_key.as_str() == "FR/dart-aviation")
        .unwrap();
    assert!(dart.countries.iter().any(|c| c.as_str() == "IR"));
    assert!(dart.aliases.contains(&"SARL IEAS".to_string()));
    assert!(!dart.aliases.contains(&"Dart Aviation".to_string()));
}

#[test]
fn reads_the_2019_layout_and_filters_sources() {
    let Some(p) = shared("watchman_test_csl_2019.csv") else {
        return;
    };
    let i = read_csl_path(&p, &SourceFilter::default()).unwrap();
    assert_eq!(i.layout, CslLayout::Csv2019);
    assert_eq!((i.rows, i.entries.len()), (115, 22));
    assert!(i
        .entries
        .iter()
        .all(|e| e.source == ENTITY_LIST_SOURCE && e.id.is_none()));
    let all = read_csl_path(&p, &SourceFilter::All).unwrap();
    assert_eq!(all.entries.len(), 115);
    let dpl = read_csl_path(&p, &SourceFilter::parse("DPL")).unwrap();
    assert_eq!(dpl.entries.len(), 8);
    assert_eq!(dpl.entries[0].name.as_str(), "ADRIAN MANUEL HERNANDEZ");
    assert!(
        dpl.entries[0].countries.is_empty(),
        "AZ there is Arizona's postcode line"
    );
}

#[test]
fn reads_the_2025_layout() {
    let Some(p) = shared("watchman_cslustest_consolidated_2025.csv") else {
        return;
    };
    let i = read_csl_path(&p, &SourceFilter::default()).unwrap();
    assert_eq!(i.layout, CslLayout::Csv2022);
    assert_eq!((i.rows, i.entries.len()), (13, 1));
    let e = &i.entries[0];
    assert!(e.name.as_str().contains("(CETC 13)"));
    assert_eq!(e.alt_names.len(), 6);
    assert_eq!(e.alt_names[5], "CETC Research Institute 13");
    assert_eq!(e.addresses.len(), 3);
    assert_eq!(
        e.addresses[1],
        "21 Changsheng Street, Shijiazhuang, Hebei, China"
    );
    assert_eq!(e.countries[0].as_str(), "CN");
    let meu = read_csl_path(&p, &SourceFilter::parse("MEU,UVL")).unwrap();
    assert_eq!(meu.entries.len(), 2);
}

#[test]
fn reads_the_gzip_full_file() {
    let Some(p) = shared("watchman_consolidated_2022-05.csv.gz") else {
        return;
    };
    let i = read_csl_path(&p, &SourceFilter::default()).unwrap();
    assert_eq!((i.rows, i.entries.len()), (14160, 2001));
    let sdn = read_csl_path(&p, &SourceFilter::parse("SDN")).unwrap();
    assert_eq!(sdn.entries.len(), 10026);
}

#[test]
fn refuses_the_malformed_file_with_its_line() {
    let Some(p) = shared("watchman_invalid_csl.csv") else {
        return;
    };
    let e = read_csl_path(&p, &SourceFilter::default()).unwrap_err();
    match &e {
        CslError::Malformed { line, .. } => assert_eq!(*line, 2),
        other => panic!("{other:?}"),
    }
    let msg = e.to_string();
    assert!(msg.contains("line 2") && msg.contains("found 2"), "{msg}");
}

#[test]
fn malformed_and_foreign_csv_errors_are_clear() {
    let e = read_str("a,b\n1,2\n", &SourceFilter::default()).unwrap_err();
    assert!(e.to_string().contains("lacks source, name"), "{e}");
    let e = read_str(
        "source,name\nEntity List (EL) - x,Acme\n\"Entity List (EL)\",\"B\nC\",extra\n",
        &SourceFilter::default(),
    )
    .unwrap_err();
    assert!(matches!(e, CslError::Malformed { line: 3, .. }), "{e:?}");
    assert!(
        e.to_string()
            .contains("expected 2 fields as in the header, found 3"),
        "{e}"
    );
    assert!(matches!(
        read_str("  \n", &SourceFilter::default()),
        Err(CslError::Empty)
    ));
    let i = read_str(
        "source,name,start_date\nEntity List (EL),,\nEntity List (EL),Acme,July\n",
        &SourceFilter::default(),
    )
    .unwrap();
    assert_eq!(i.entries.len(), 1);
    assert_eq!(i.warnings.len(), 2);
    assert_eq!(i.warnings[0].location, "line 2");
    assert_eq!(i.warnings[1].location, "line 3");
}

#[test]
fn gzip_bombs_stop_at_the_limit() {
    use std::io::Write;
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    gz.write_all(&vec![b' '; 1 << 20]).unwrap();
    let bytes = gz.finish().unwrap();
    let r = read_csl(
        &bytes[..],
        &SourceFilter::All,
        CslLimits { max_bytes: 1000 },
    );
    assert!(matches!(r, Err(CslError::TooLarge { limit: 1000 })));
}

#[test]
fn reads_the_api_json_shape() {
    let j = r#"{"total": 3, "results": [
      {"id": "a1", "source": "Entity List (EL) - Bureau of Industry and Security",
       "name": "Hangzhou Hikvision Digital Technology Co., Ltd.",
       "alt_names": ["Hikvision"],
       "addresses": [{"address": "No. 555 Qianmo Road", "city": "Hangzhou", "state": null,
                      "postal_code": "", "country": "CN"}],
       "federal_register_notice": "84 FR 54002", "start_date": "2019-10-09",
       "license_requirement": "For all items subject to the EAR.", "license_policy": "Presumption of denial."},
      {"source": "Specially Designated Nationals (SDN) - Treasury Department", "name": "X"},
      {"source": "Entity List (EL) - Bureau of Industry and Security", "name": "Beta",
       "alt_names": "B1; and B2", "addresses": "1 Road, Minsk, BY"}
    ]}"#;
    let i = read_str(j, &SourceFilter::default()).unwrap();
    assert_eq!(i.layout, CslLayout::JsonResults);
    assert_eq!((i.rows, i.entries.len(), i.other_sources), (3, 2, 1));
    let h = &i.entries[0];
    assert_eq!(
        h.entity_key().as_str(),
        "CN/hangzhou-hikvision-digital-technology-co-ltd"
    );
    assert_eq!(h.addresses, ["No. 555 Qianmo Road, Hangzhou, CN"]);
    assert_eq!(h.start_date, NaiveDate::from_ymd_opt(2019, 10, 9));
    assert_eq!(i.entries[1].alt_names, ["B1", "B2"]);
    assert_eq!(i.entries[1].countries[0].as_str(), "BY");
}

#[test]
fn reads_the_entries_json_with_null_list_and_string_alt_names() {
    let j = r#"{"count": 3, "entries": [
      {"name": "Abdul Satar Ghoura", "alt_names": null, "address_countries": ["AF", "PK"],
       "federal_register_notice": "76 FR 71867",
       "source_list_url": "https://www.bis.gov/regulations/ear/744#supplement-4-744"},
      {"name": "Iqra Computer Products", "alt_names": ["Iqra IT solutions"], "address_countries": null,
       "source_list_url": "https://www.bis.gov/regulations/ear/744#supplement-4-744"},
      {"name": "Joined", "alt_names": "One; Two", "address_countries": ["ru"],
       "source_list_url": "https://www.bis.gov/regulations/ear/744#supplement-4-744"}
    ]}"#;
    let i = read_str(j, &SourceFilter::default()).unwrap();
    assert_eq!(i.layout, CslLayout::JsonEntries);
    assert_eq!(i.entries.len(), 3);
    assert_eq!(i.entries[0].source, ENTITY_LIST_SOURCE);
    assert!(i.entries[0].alt_names.is_empty());
    assert_eq!(i.entries[0].entity_key().as_str(), "AF/abdul-satar-ghoura");
    assert_eq!(
        i.entries[1].entity_key().as_str(),
        "XX/iqra-computer-products"
    );
    assert_eq!(i.entries[2].alt_names, ["One", "Two"]);
    assert_eq!(i.entries[2].countries[0].as_str(), "RU");
}

#[test]
fn reads_the_2026_entity_list_json() {
    let Some(p) = shared("EL_only_from_screening-list_2026-07-31.json") else {
        return;
    };
    let i = read_csl_path(&p, &SourceFilter::default()).unwrap();
    assert_eq!((i.rows, i.entries.len()), (3420, 3420));
    assert!(
        i.warnings.is_empty(),
        "{:?}",
        &i.warnings[..3.min(i.warnings.len())]
    );
}

#[test]
fn reads_the_compact_all_sources_json() {
    let Some(p) = shared("screening-list_all-sources_2026-07-31.json") else {
        return;
    };
    let el = read_csl_path(&p, &SourceFilter::default()).unwrap();
    assert_eq!(el.layout, CslLayout::JsonCompact);
    assert_eq!(el.rows, 25921);
    assert!(el.entries.len() > 3000, "{}", el.entries.len());
    assert!(el.entries.iter().all(|e| e.source == ENTITY_LIST_SOURCE));
    assert!(el.entries.iter().any(|e| e.license_policy.is_some()));
}

#[test]
fn unknown_json_is_refused_by_name() {
    let e = read_str(r#"{"data": []}"#, &SourceFilter::default()).unwrap_err();
    assert!(e.to_string().contains("found keys: data"), "{e}");
    assert!(matches!(
        read_str("{", &SourceFilter::default()),
        Err(CslError::Json(_))
    ));
}

#[test]
fn the_type_column_gives_the_kind_and_a_blank_one_none() {
    // CSV (2025 layout, FSE and EL rows as trade.gov writes them) and API JSON.
    let csv = "_id,source,entity_number,type,name,addresses\n\
        1,Foreign Sanctions Evaders (FSE) - Treasury Department,1,Individual,Evren KAYAKIRAN,TR\n\
        2,Entity List (EL) - Bureau of Industry and Security,,,Abdul Satar Ghoura,\"Kabul, AF\"\n\
        3,Entity List (EL) - Bureau of Industry and Security,,Entity,Beta Co.,\"Minsk, BY\"\n\
        4,Entity List (EL) - Bureau of Industry and Security,,Aircraft,EP-ABC,\"Tehran, IR\"\n";
    let i = read_str(csv, &SourceFilter::All).unwrap();
    let kinds: Vec<Option<Schema>> = i.entries.iter().map(|e| e.schema).collect();
    assert_eq!(
        kinds,
        [Some(Schema::Person), None, Some(Schema::Organization), None]
    );
    assert_eq!(i.entries[0].to_list_entry().schema, Some(Schema::Person));
    let json = r#"{"results": [{"source": "Entity List (EL) - Bureau of Industry and Security",
        "name": "Abdul Satar Ghoura", "type": "Individual"}]}"#;
    let i = read_str(json, &SourceFilter::default()).unwrap();
    assert_eq!(i.entries[0].schema, Some(Schema::Person));
}

#[test]
fn rows_of_one_key_that_disagree_on_the_kind_leave_it_unknown() {
    let row = |kind: &str| {
        format!("_id,source,type,name,addresses\n1,Entity List (EL) - Bureau of Industry and Security,{kind},Alpha,\"Minsk, BY\"\n")
    };
    let one = |kind: &str| {
        read_str(&row(kind), &SourceFilter::default())
            .unwrap()
            .entries
    };
    let mut both = one("Individual");
    both.extend(one("Individual"));
    assert_eq!(snapshot(&both).entries[0].schema, Some(Schema::Person));
    both.extend(one(""));
    assert_eq!(snapshot(&both).entries[0].schema, Some(Schema::Person));
    both.extend(one("Entity"));
    assert_eq!(snapshot(&both).entries[0].schema, None);
}

#[test]
fn list_entries_from_changes_keep_the_key() {
    use crate::events::{ChangeAction, SourceDocument};
    let mut c = EntityChange::new(
        ChangeAction::Added,
        EntityName::parse("iFlytek").unwrap(),
        CountryCode::parse("CN").unwrap(),
        "CHINA, PEOPLE'S REPUBLIC OF",
        SourceDocument::from_number("2019-22210"),
    );
    c.aliases = vec!["IFLYTEK CO., LTD.".into()];
    let e = ListEntry::from_change(&c);
    assert_eq!(e.entity_key, c.entity_key);
    assert_eq!(e.countries[0].as_str(), "CN");
    assert_eq!(e.source_list, ENTITY_LIST_SOURCE);
}

#[test]
fn folding_keeps_every_citation_once() {
    let mut a = Some("84 FR 1".to_string());
    join_distinct(&mut a, Some("85 FR 2".into()), "; ");
    join_distinct(&mut a, Some("84 FR 1".into()), "; ");
    assert_eq!(a.as_deref(), Some("84 FR 1; 85 FR 2"));
}

#[test]
fn a_nul_byte_costs_its_row_only() {
    let csv = "source,name\nEntity List (EL) - Bureau of Industry and Security,Good Ltd\n\
               Entity List (EL) - Bureau of Industry and Security,Ba\0d Ltd\n";
    let r = read_csl(
        csv.as_bytes(),
        &SourceFilter::default(),
        CslLimits::default(),
    )
    .unwrap();
    assert_eq!(r.entries.len(), 1);
    assert_eq!(r.warnings.len(), 1);
    assert!(
        r.warnings[0].to_string().contains("line 3"),
        "{}",
        r.warnings[0]
    );
}
