//! The offline demo's bundled material: six Entity List rules rebuilt from real Consolidated
//! Screening List rows (the fixtures of `tests/fixtures/federal_register`, compiled into the
//! binary) and a sample supplier master, so `entitywatch demo` runs with no network and no
//! services. Nothing here is used outside the demo.

use crate::federal_register::replay::ReplayDocument;

macro_rules! rule {
    ($number:literal) => {
        (
            include_str!(concat!(
                "../tests/fixtures/federal_register/",
                $number,
                ".meta.json"
            )),
            include_bytes!(concat!(
                "../tests/fixtures/federal_register/",
                $number,
                ".xml"
            ))
            .as_slice(),
        )
    };
}

const RULES: &[(&str, &[u8])] = &[
    rule!("2019-13245"),
    rule!("2019-22210"),
    rule!("2020-15827"),
    rule!("2021-04505"),
    rule!("2025-00480"),
    rule!("2025-00704"),
];

/// A supplier master as an ERP writes it: listed companies in ERP spelling and unlisted
/// look-alikes that share words with them.
pub const SUPPLIERS_CSV: &str = include_str!("../demo/suppliers.csv");

/// An invented supplier 60 % owned by a company one bundled rule lists: one affiliate alert.
pub const OWNERSHIP_CSV: &str = include_str!("../demo/ownership.csv");

/// The bundled rules, oldest first.
pub fn rules() -> Vec<ReplayDocument> {
    RULES
        .iter()
        .map(|(meta, xml)| ReplayDocument {
            metadata: serde_json::from_str(meta).expect("bundled metadata is valid JSON"),
            xml: xml.to_vec(),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    #[test]
    fn bundled_material_loads() {
        let rules = super::rules();
        assert_eq!(rules.len(), 6);
        let import = crate::suppliers::read_suppliers(
            super::SUPPLIERS_CSV.as_bytes(),
            crate::suppliers::ReadLimits::default(),
        )
        .unwrap();
        assert!(import.errors.is_empty(), "{:?}", import.errors);
        assert_eq!(import.records.len(), 21);
        let ownership =
            crate::ownership::reader::read_ownership(super::OWNERSHIP_CSV.as_bytes()).unwrap();
        assert!(ownership.rejected.is_empty(), "{:?}", ownership.rejected);
        assert_eq!(ownership.records.len(), 1);
    }
}
