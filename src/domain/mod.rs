//! The domain types every stage shares: a supplier record, an entry of the list snapshot, a
//! country as people write it. Each has one home here, whatever reads or stores it.
//!
//! Domain only: nothing here does I/O or imports an I/O crate; types parse, they do not
//! validate (a value that exists is well formed).

pub mod country;
mod country_table;
pub mod list_entry;
pub mod review;
pub mod supplier;
pub mod token;

pub use country::recognise_country;
pub use list_entry::{ListEntry, ENTITY_LIST_SOURCE};
pub use review::{AlertStatus, ReviewDecision};
pub use supplier::{SupplierError, SupplierRecord};
pub use token::{Scope, TokenSecret};
