//! A supplier record: the customer's side of screening, as the supplier file, the suppliers
//! topic and the store all carry it.
//!
//! Parse, don't validate: a [`SupplierRecord`] that exists has a trimmed non-empty id, a name
//! with a letter or digit and a recognised country (or none), so code holding one never
//! re-checks it. Domain only: no I/O here.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::country::recognise_country;
use crate::events::CountryCode;
use crate::screening::Schema;

/// The columns with a meaning of their own; every other column is a free-form reference field.
pub const ID_COLUMN: &str = "id";
pub const NAME_COLUMN: &str = "name";
pub const ALIASES_COLUMN: &str = "aliases";
pub const COUNTRY_COLUMN: &str = "country";
pub const ADDRESS_COLUMN: &str = "address";
/// Optional: what kind of party the supplier is (`Person`, `Company`, `Organization`, ...).
/// Not in [`KNOWN_COLUMNS`], so an export without kinds keeps its old columns; still never a
/// reference field.
pub const SCHEMA_COLUMN: &str = "schema";
pub const KNOWN_COLUMNS: [&str; 5] = [
    ID_COLUMN,
    NAME_COLUMN,
    ALIASES_COLUMN,
    COUNTRY_COLUMN,
    ADDRESS_COLUMN,
];

/// Why a supplier record could not be built from the values given.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SupplierError {
    #[error("empty id")]
    EmptyId,
    #[error("empty name (no letter or digit)")]
    EmptyName,
    #[error("unrecognised country {0:?}: expected an ISO 3166-1 alpha-2 code such as CN or a country name such as China")]
    UnknownCountry(String),
    #[error("reference field name {0:?} is empty, a reserved column name or a duplicate")]
    BadReferenceName(String),
    #[error("unknown schema {0:?}: expected Person, Company, Organization, Vessel or empty")]
    UnknownSchema(String),
}

/// One supplier as the customer keeps it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "SupplierRecordData")]
pub struct SupplierRecord {
    id: String,
    name: String,
    aliases: Vec<String>,
    country: Option<CountryCode>,
    address: Option<String>,
    references: BTreeMap<String, String>,
    /// The kind of party, when the record says; `None`: an organisation
    /// ([`Schema::SUPPLIER_DEFAULT`]), as suppliers are unless their record says otherwise.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    schema: Option<Schema>,
}

/// The unchecked shape a record is deserialised from, so serde goes through the constructor.
#[derive(Deserialize)]
struct SupplierRecordData {
    id: String,
    name: String,
    #[serde(default)]
    aliases: Vec<String>,
    #[serde(default)]
    country: Option<String>,
    #[serde(default)]
    address: Option<String>,
    #[serde(default)]
    references: BTreeMap<String, String>,
    #[serde(default)]
    schema: Option<String>,
}

impl TryFrom<SupplierRecordData> for SupplierRecord {
    type Error = SupplierError;
    fn try_from(d: SupplierRecordData) -> Result<Self, Self::Error> {
        let mut r = SupplierRecord::new(&d.id, &d.name)?
            .with_aliases(d.aliases)
            .with_country_text(d.country.as_deref().unwrap_or(""))?
            .with_address(d.address.as_deref())
            .with_schema_text(d.schema.as_deref().unwrap_or(""))?;
        for (k, v) in d.references {
            r = r.with_reference(&k, &v)?;
        }
        Ok(r)
    }
}

impl SupplierRecord {
    /// A record with its two required values. Both are trimmed; inner spacing is the customer's
    /// and is kept, so the export shows the name as it was imported.
    pub fn new(id: &str, name: &str) -> Result<Self, SupplierError> {
        let id = id.trim();
        if id.is_empty() {
            return Err(SupplierError::EmptyId);
        }
        let name = name.trim();
        if !name.chars().any(char::is_alphanumeric) {
            return Err(SupplierError::EmptyName);
        }
        Ok(SupplierRecord {
            id: id.to_string(),
            name: name.to_string(),
            aliases: Vec::new(),
            country: None,
            address: None,
            references: BTreeMap::new(),
            schema: None,
        })
    }

    /// Adds aliases. Each value is split at `;` and `|` as in the CSV column, trimmed, and
    /// blanks and repeats are dropped: an alias can then never contain a separator, which is
    /// what makes the CSV form lossless.
    pub fn with_aliases<I, S>(mut self, aliases: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: AsRef<str>,
    {
        for raw in aliases {
            for a in split_aliases(raw.as_ref()) {
                if !self.aliases.contains(&a) {
                    self.aliases.push(a);
                }
            }
        }
        self
    }

    pub fn with_country(mut self, country: Option<CountryCode>) -> Self {
        self.country = country.filter(|c| !c.is_unknown());
        self
    }

    /// Sets the country from what a person writes: "CN", "cn", "China", "CHINA, PEOPLE'S
    /// REPUBLIC OF". Blank (or `XX`, the list's "unknown") means no country.
    pub fn with_country_text(self, raw: &str) -> Result<Self, SupplierError> {
        let t = raw.trim();
        if t.is_empty() || t.eq_ignore_ascii_case(CountryCode::UNKNOWN) {
            return Ok(self.with_country(None));
        }
        match recognise_country(t) {
            Some(c) => Ok(self.with_country(Some(c))),
            None => Err(SupplierError::UnknownCountry(t.to_string())),
        }
    }

    pub fn with_schema(mut self, schema: Option<Schema>) -> Self {
        self.schema = schema;
        self
    }

    /// Sets the kind from the `schema` column ("Person", "company", "LegalEntity"); blank
    /// means the record does not say.
    pub fn with_schema_text(self, raw: &str) -> Result<Self, SupplierError> {
        let t = raw.trim();
        if t.is_empty() {
            return Ok(self.with_schema(None));
        }
        t.parse::<Schema>()
            .map(|s| self.with_schema(Some(s)))
            .map_err(|_| SupplierError::UnknownSchema(t.to_string()))
    }

    /// Sets the address; blank means none.
    pub fn with_address(mut self, address: Option<&str>) -> Self {
        self.address = address
            .map(str::trim)
            .filter(|a| !a.is_empty())
            .map(str::to_string);
        self
    }

    /// Adds a free-form reference field (cost centre, ERP vendor number, ...). A blank value is
    /// the same as no value: the CSV cannot tell them apart, so the record does not either.
    pub fn with_reference(mut self, key: &str, value: &str) -> Result<Self, SupplierError> {
        let key = key.trim();
        let folded = key.to_lowercase();
        let reserved = KNOWN_COLUMNS.contains(&folded.as_str()) || folded == SCHEMA_COLUMN;
        // Two names equal but for case would be one column on the way back in.
        let duplicate = self
            .references
            .keys()
            .any(|k| k != key && k.to_lowercase() == folded);
        if key.is_empty() || reserved || duplicate {
            return Err(SupplierError::BadReferenceName(key.to_string()));
        }
        self.set_reference(key, value);
        Ok(self)
    }

    /// For names already checked (a header classified by the reader).
    pub(crate) fn set_reference(&mut self, key: &str, value: &str) {
        let value = value.trim();
        if value.is_empty() {
            self.references.remove(key);
        } else {
            self.references.insert(key.to_string(), value.to_string());
        }
    }

    pub fn id(&self) -> &str {
        &self.id
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    pub fn aliases(&self) -> &[String] {
        &self.aliases
    }

    pub fn country(&self) -> Option<&CountryCode> {
        self.country.as_ref()
    }

    pub fn address(&self) -> Option<&str> {
        self.address.as_deref()
    }

    pub fn references(&self) -> &BTreeMap<String, String> {
        &self.references
    }

    /// The kind the record states, if any.
    pub fn schema(&self) -> Option<Schema> {
        self.schema
    }

    /// The kind screening scores the supplier as: the stated one, else an organisation.
    pub fn screening_schema(&self) -> Schema {
        self.schema.unwrap_or(Schema::SUPPLIER_DEFAULT)
    }

    /// A digest of what screening reads of the record (name, aliases, country): a record whose
    /// digest is unchanged needs no new decision.
    pub fn screened_fields_digest(&self) -> String {
        let mut h = Sha256::new();
        h.update(self.name.as_bytes());
        for alias in &self.aliases {
            h.update([0u8]);
            h.update(alias.as_bytes());
        }
        h.update([1u8]);
        h.update(self.country.as_ref().map_or("", |c| c.as_str()).as_bytes());
        // Only a stated kind enters the digest, so records that state none keep the digest
        // (and the decisions) they had before kinds existed.
        if let Some(s) = self.schema {
            h.update([2u8]);
            h.update(s.as_str().as_bytes());
        }
        hex::encode(&h.finalize()[..8])
    }
}

fn split_aliases(raw: &str) -> impl Iterator<Item = String> + '_ {
    raw.split([';', '|'])
        .map(str::trim)
        .filter(|a| !a.is_empty())
        .map(str::to_string)
}
