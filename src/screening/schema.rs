//! What kind of party a name names: a person, a company, another organisation, a vessel. The
//! kind decides which rules score a pair (a person's middle name may be missing, a company's
//! distinctive word may not) and that a person never matches a company.
//!
//! Domain types only: parsing a kind from the words sources use for it ("Individual",
//! "Entity", "LegalEntity"), never reading a file.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// The kind of party a name names.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub enum Schema {
    Person,
    Company,
    /// Any organisation that is not known to be a company (institutes, universities,
    /// ministries, armed forces), and the kind of a supplier whose record says nothing.
    Organization,
    Vessel,
}

impl Schema {
    /// Suppliers are organisations unless their record says otherwise.
    pub const SUPPLIER_DEFAULT: Schema = Schema::Organization;

    pub fn as_str(self) -> &'static str {
        match self {
            Schema::Person => "Person",
            Schema::Company => "Company",
            Schema::Organization => "Organization",
            Schema::Vessel => "Vessel",
        }
    }

    /// Whether names of these two kinds may name the same party at all. Companies and other
    /// organisations mix (registers disagree on which an institute is); a person is only ever
    /// a person, a vessel only a vessel.
    pub fn compatible(self, other: Schema) -> bool {
        match (self, other) {
            (Schema::Person, Schema::Person) | (Schema::Vessel, Schema::Vessel) => true,
            (Schema::Person, _) | (_, Schema::Person) => false,
            (Schema::Vessel, _) | (_, Schema::Vessel) => false,
            _ => true,
        }
    }

    /// The kind a Consolidated Screening List `type` value names ("Individual", "Entity",
    /// "Vessel", "Aircraft"), `None` when the source gives none.
    pub fn from_source_type(value: &str) -> Option<Schema> {
        match value.trim().to_ascii_lowercase().as_str() {
            "individual" | "person" => Some(Schema::Person),
            "entity" | "organization" | "organisation" => Some(Schema::Organization),
            "company" => Some(Schema::Company),
            "vessel" => Some(Schema::Vessel),
            _ => None,
        }
    }
}

impl fmt::Display for Schema {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "unknown schema {0:?} (expected Person, Company, Organization, LegalEntity, Vessel or empty)"
)]
pub struct UnknownSchema(pub String);

impl FromStr for Schema {
    type Err = UnknownSchema;

    /// The names FollowTheMoney-style pair files use, case-insensitively; `LegalEntity` (a
    /// company or organisation, not said which) is an organisation.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.trim().to_ascii_lowercase().as_str() {
            "person" | "individual" => Ok(Schema::Person),
            "company" => Ok(Schema::Company),
            "organization" | "organisation" | "legalentity" | "legal_entity" | "entity" => {
                Ok(Schema::Organization)
            }
            "vessel" => Ok(Schema::Vessel),
            _ => Err(UnknownSchema(s.to_string())),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_usual_names_and_rejects_others() {
        assert_eq!("Person".parse::<Schema>(), Ok(Schema::Person));
        assert_eq!("company".parse::<Schema>(), Ok(Schema::Company));
        assert_eq!("LegalEntity".parse::<Schema>(), Ok(Schema::Organization));
        assert_eq!("Organisation".parse::<Schema>(), Ok(Schema::Organization));
        assert!("Persn".parse::<Schema>().is_err());
        assert_eq!(Schema::from_source_type("Individual"), Some(Schema::Person));
        assert_eq!(Schema::from_source_type(""), None);
    }

    #[test]
    fn a_person_is_never_an_organisation() {
        assert!(!Schema::Person.compatible(Schema::Company));
        assert!(!Schema::Person.compatible(Schema::Organization));
        assert!(Schema::Company.compatible(Schema::Organization));
        assert!(Schema::Person.compatible(Schema::Person));
        assert!(!Schema::Vessel.compatible(Schema::Company));
    }
}
