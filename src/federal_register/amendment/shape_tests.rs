//! Unit tests of the rule shapes of issue 13: count-only instructions, counts checked, keys kept
//! distinct, footnote markers recorded. The fixtures rebuilt from real rules are in
//! `tests/parse_shapes.rs`.

use super::instructions::parse_instructions;
use super::tests::{country_row, names, parse, row, rule, CN};

#[test]
fn a_count_that_disagrees_with_the_table_is_a_warning_naming_the_country_and_both_counts() {
    let xml = rule(
        &["Supplement No. 4 to part 744 is amended by adding under CHINA, PEOPLE'S REPUBLIC OF, in alphabetical order, three entities, and under RUSSIA, one entity:"],
        &(country_row(CN)
            + &row("", "Academy of Military Medical Sciences, Institute of Basic Medicine, 27 Taiping Road, Haidian District, Beijing, 100850, China.", "")
            + &row("", "Academy of Military Medical Sciences, Institute of Medical Equipment, 106 Wandong Road, Hedong District, Tianjin, 300162, China.", "")
            + &country_row("RUSSIA")
            + &row("", "Almaz, JSC, 16 Tupoleva Street, Rostov-na-Donu, Rostovskaya Oblast, 344093, Russia.", "")),
    );
    let p = parse(&xml);
    assert_eq!(p.warnings.len(), 1, "{:#?}", p.warnings);
    let w = &p.warnings[0];
    assert!(
        w.contains("announces 3 entries under CHINA, PEOPLE'S REPUBLIC OF")
            && w.contains("has 2 rows"),
        "{w}"
    );
    assert_eq!(
        names(&p).into_iter().map(|(_, n, _)| n).collect::<Vec<_>>(),
        vec![
            "Academy of Military Medical Sciences, Institute of Basic Medicine",
            "Academy of Military Medical Sciences, Institute of Medical Equipment",
            "Almaz, JSC",
        ]
    );
}

#[test]
fn counts_are_read_in_the_ways_rules_write_them() {
    for (text, want) in [
        ("by adding under CHINA, PEOPLE'S REPUBLIC OF, in alphabetical order, thirty-three entities", vec![Some(33)]),
        ("by adding under BELARUS, twenty-five entities, and under RUSSIA, ninety-six entities", vec![Some(25), Some(96)]),
        ("by adding 12 entities under IRAN", vec![Some(12)]),
        ("by adding under PAKISTAN, in alphabetical order, two new entities", vec![Some(2)]),
        ("a. Under RUSSIA, by adding one entity", vec![Some(1)]),
        ("by adding under RUSSIA, in alphabetical order, one hundred and seven entities", vec![Some(107)]),
        ("by adding under RUSSIA, in alphabetical order, two hundred entities", vec![Some(200)]),
        ("by adding under TURKEY, in alphabetical order, entities", vec![None]),
    ] {
        let (i, w) = parse_instructions(text, 0);
        assert!(w.is_empty(), "{text}: {w:?}");
        assert_eq!(i.iter().map(|i| i.count).collect::<Vec<_>>(), want, "{text}");
    }
}

#[test]
fn two_entries_of_one_rule_never_share_a_key() {
    // Two rows whose names fold to the same key (the second CSL spelling of one entry).
    let xml = rule(
        &["Supplement No. 4 to part 744 is amended by adding under CHINA, PEOPLE'S REPUBLIC OF, in alphabetical order, two entities:"],
        &(country_row(CN)
            + &row("", "Suzhou Keda Technology Co., Ltd., No. 131, Jinshan Road, High-tech Zone, Suzhou City, Jiangsu Province, China.", "")
            + &row("", "Suzhou Keda Technology Co. Ltd., 4 Keling Road, Suzhou, China.", "")),
    );
    let p = parse(&xml);
    let keys: Vec<&str> = p.changes.iter().map(|c| c.entity_key.as_str()).collect();
    assert_eq!(
        keys,
        vec![
            "CN/suzhou-keda-technology-co-ltd",
            "CN/suzhou-keda-technology-co-ltd--2"
        ]
    );
    assert_eq!(p.warnings.len(), 1, "{:#?}", p.warnings);
    let w = &p.warnings[0];
    assert!(
        w.contains("“Suzhou Keda Technology Co., Ltd.” (table 1, row 3; No. 131")
            && w.contains("“Suzhou Keda Technology Co. Ltd.” (table 1, row 4; 4 Keling Road")
            && w.contains("CN/suzhou-keda-technology-co-ltd--2"),
        "{w}"
    );
}

#[test]
fn footnote_markers_are_recorded_with_their_column_and_note() {
    let xml = rule(
        &["Supplement No. 4 to part 744 is amended by adding under RUSSIA, in alphabetical order, an entry for “Almaz, JSC”:"],
        &(country_row("RUSSIA")
            + r#"<ROW><ENT I="01"/><ENT>Almaz, JSC,<SU>4</SU> 16 Tupoleva Street, Rostov-na-Donu, 344093, Russia.</ENT><ENT>For all items subject to the EAR. (See §§ 734.9(g),<SU>3</SU> 746.8(a)(3), and 744.21(b) of the EAR.)</ENT><ENT>Policy of denial.</ENT><ENT>87 FR 20299, 4/7/22.</ENT></ROW>"#
            + r#"<TNOTE><SU>3</SU> See § 746.8(a)(3) for the foreign direct product rule.</TNOTE>"#),
    );
    let p = parse(&xml);
    assert_eq!(p.warnings, Vec::<String>::new());
    let c = &p.changes[0];
    assert_eq!(c.name.as_str(), "Almaz, JSC");
    assert_eq!(
        c.addresses,
        vec!["16 Tupoleva Street, Rostov-na-Donu, 344093, Russia"]
    );
    assert_eq!(
        c.license_requirement.as_deref(),
        Some("For all items subject to the EAR. (See §§ 734.9(g), 746.8(a)(3), and 744.21(b) of the EAR.)")
    );
    let marks: Vec<(&str, &str, Option<&str>)> = p
        .footnotes
        .iter()
        .map(|f| (f.column.as_str(), f.marker.as_str(), f.note.as_deref()))
        .collect();
    assert_eq!(
        marks,
        vec![
            ("entity", "4", None),
            (
                "license_requirement",
                "3",
                Some("See § 746.8(a)(3) for the foreign direct product rule.")
            ),
        ]
    );
    assert!(p.footnotes.iter().all(|f| f.entity_key == c.entity_key));
}

#[test]
fn counts_are_not_checked_where_an_instruction_for_the_country_gives_none() {
    let xml = rule(
        &[
            "Supplement No. 4 to part 744 is amended by adding under RUSSIA, in alphabetical order, one entity; and by revising under RUSSIA the entries:",
        ],
        &(country_row("RUSSIA")
            + &row("", "Almaz, JSC, 16 Tupoleva Street, Rostov-na-Donu, Rostovskaya Oblast, 344093, Russia.", "")
            + &row("", "Optron, JSC, 53 Sherbakovskaya St., Office 37, 105187, Russia.", "")),
    );
    let p = parse(&xml);
    assert!(
        p.warnings.iter().all(|w| !w.contains("announces")),
        "{:#?}",
        p.warnings
    );
}

#[test]
fn rows_under_no_heading_count_for_the_one_counted_instruction() {
    let rows = row(
        "",
        "Almaz, JSC, 16 Tupoleva Street, Rostov-na-Donu, 344093, Russia.",
        "",
    ) + &row(
        "",
        "Optron, JSC, 53 Sherbakovskaya St., Office 37, 105187, Russia.",
        "",
    );
    let agree = rule(
        &["Supplement No. 4 to part 744 is amended by adding under RUSSIA, in alphabetical order, two entities:"],
        &rows,
    );
    assert!(parse(&agree)
        .warnings
        .iter()
        .all(|w| !w.contains("announces")));
    let disagree = rule(
        &["Supplement No. 4 to part 744 is amended by adding under RUSSIA, in alphabetical order, three entities:"],
        &rows,
    );
    let p = parse(&disagree);
    assert!(
        p.warnings
            .iter()
            .any(|w| w.contains("announces 3 entries under RUSSIA") && w.contains("has 2 rows")),
        "{:#?}",
        p.warnings
    );
}
