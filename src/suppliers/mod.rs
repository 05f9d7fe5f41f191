//! Supplier records: the customer's side of screening. `entitywatch suppliers import FILE.csv`
//! reads a supplier master through [`read_suppliers`] (CSV → [`SupplierRecord`]s plus one
//! [`RowError`] per bad row), the store upserts the records by id, and
//! `entitywatch suppliers export` writes them back with [`write_suppliers`].
//!
//! Parse, don't validate: a [`SupplierRecord`] that exists has a trimmed non-empty id, a name
//! with a letter or digit and a recognised country (or none), so code holding one never
//! re-checks it. This module must never drop a good row because a neighbour was bad, never
//! stop a whole file for one bad row, and never hold more than a bounded amount of one row in
//! memory, whatever the file contains. It does no database or network I/O.
//!
//! Layout: `reader` (CSV → records and row errors), `batches` (the reader in bounded batches,
//! for a streaming import), `writer` (records → CSV). The record itself lives in
//! `crate::domain::supplier`.

mod batches;
mod reader;
mod writer;

pub use batches::*;
pub use reader::*;
pub use writer::*;
