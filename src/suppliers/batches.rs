//! A supplier file in bounded batches: what `suppliers import` stores and screens a batch at a
//! time, so that a million-row master costs the memory of one batch, not of the file.
//!
//! [`SupplierBatches`] wraps a [`SupplierReader`] and hands out [`SupplierBatch`]es of at most
//! `batch_rows` good records, with every problem of those rows (by line, as
//! [`super::read_suppliers`] reports them). Upsert semantics hold across batches: a later row
//! for an id replaces an earlier one, and the earlier row gets its `DuplicateId` warning in the
//! batch where the later row appears (its record was already handed out, so storing the later
//! record overwrites it, exactly as a second import of that row would). The only state that
//! grows with the file is the id → line map that makes this warning possible (tens of bytes
//! per distinct id). This module must never hold more than one batch of records, never drop a
//! good row because a neighbour was bad, and does no database or network I/O.

use std::collections::HashMap;
use std::io::Read;

use super::{ReadLimits, RowError, RowProblem, SupplierFileError, SupplierReader};
use crate::domain::SupplierRecord;

/// One batch of a supplier file.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SupplierBatch {
    /// Good records in file order (an id repeated within the batch appears once, as its last
    /// row).
    pub records: Vec<SupplierRecord>,
    /// Problems of this batch's rows, and `DuplicateId` warnings of earlier rows whose id came
    /// again here; ordered by line.
    pub errors: Vec<RowError>,
    /// Data rows read for this batch.
    pub rows: u64,
    /// Records of this batch whose id an earlier batch already handed out: storing them
    /// updates a row this same file stored (for an exact new/updated split).
    pub repeats_of_earlier_batches: u64,
}

/// A supplier file read a batch at a time.
pub struct SupplierBatches<R> {
    reader: SupplierReader<R>,
    batch_rows: usize,
    /// Every id seen, with the line of its latest row.
    seen: HashMap<Box<str>, u64>,
    done: bool,
}

impl<R: Read> SupplierBatches<R> {
    /// Reads and checks the header (see [`SupplierReader::new`]); batches hold at most
    /// `batch_rows` records (at least one).
    pub fn new(
        reader: R,
        limits: ReadLimits,
        batch_rows: usize,
    ) -> Result<Self, SupplierFileError> {
        Ok(SupplierBatches {
            reader: SupplierReader::new(reader, limits)?,
            batch_rows: batch_rows.max(1),
            seen: HashMap::new(),
            done: false,
        })
    }

    /// Bytes consumed so far, for a progress bar over the file size.
    pub fn bytes_read(&self) -> u64 {
        self.reader.bytes_read()
    }

    /// Distinct ids of good rows so far: the records the whole file stores.
    pub fn distinct_ids(&self) -> usize {
        self.seen.len()
    }

    /// The next batch, `None` after the last. An error means the file as a whole became
    /// unreadable here (an I/O error); earlier batches stand.
    pub fn next_batch(&mut self) -> Result<Option<SupplierBatch>, SupplierFileError> {
        if self.done {
            return Ok(None);
        }
        let mut batch = SupplierBatch::default();
        // Position in `batch.records` of each id of this batch, so a repeat within the batch
        // replaces its record instead of appearing twice.
        let mut in_batch: HashMap<String, usize> = HashMap::new();
        let mut first_line: Option<u64> = None;
        while batch.records.len() < self.batch_rows {
            let Some(row) = self.reader.next().transpose()? else {
                self.done = true;
                break;
            };
            batch.rows += 1;
            let line = row.line;
            let first = *first_line.get_or_insert(line);
            if let Some(reason) = row.warning {
                batch.errors.push(RowError {
                    line,
                    id: row.record.as_ref().ok().map(|r| r.id().to_string()),
                    reason,
                });
            }
            let record = match row.record {
                Ok(record) => record,
                Err(e) => {
                    batch.errors.push(e);
                    continue;
                }
            };
            let id = record.id().to_string();
            if let Some(earlier_line) = self.seen.insert(id.clone().into_boxed_str(), line) {
                batch.errors.push(RowError {
                    line: earlier_line,
                    id: Some(id.clone()),
                    reason: RowProblem::DuplicateId {
                        id: id.clone(),
                        later_line: line,
                    },
                });
                if earlier_line < first {
                    batch.repeats_of_earlier_batches += 1;
                }
            }
            match in_batch.get(&id) {
                Some(&slot) => batch.records[slot] = record,
                None => {
                    in_batch.insert(id, batch.records.len());
                    batch.records.push(record);
                }
            }
        }
        batch.errors.sort_by_key(|e| e.line);
        if batch.rows == 0 {
            return Ok(None);
        }
        Ok(Some(batch))
    }
}
