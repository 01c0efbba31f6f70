//! Proving a column inside its declared domain from the Parquet
//! dictionaries alone, without reading a data page.
//!
//! Enumerated columns (stages, statuses, types) are written
//! dictionary-encoded: each column chunk holds a dictionary page listing
//! values, and its data pages hold only indexes into that list. When every
//! data page of a chunk is dictionary-encoded (the footer's page encoding
//! statistics say so), every value of the chunk is one of its dictionary's
//! entries; so if every entry is accepted, every value is, and the chunk
//! needs no scan. This is pruning, as row-group statistics prune a date
//! filter: it reads the footer and one small page per chunk, where the scan
//! it replaces decodes and tests every row (at scale 200, the domain checks
//! of a bookings query cost a fifth of its instructions).
//!
//! The proof only ever says "inside". A dictionary may list values no row
//! uses (a writer given an Arrow dictionary may write its unused entries),
//! so an entry outside the domain proves nothing: the caller then scans, and
//! the scan counts the rows. So does a chunk with a plain-encoded page (a
//! writer falls back to plain when the dictionary grows too large), without
//! page encoding statistics, or of a type other than a string.

use std::collections::HashSet;
use std::fs::File;
use std::path::Path;

use datafusion::parquet::basic::{Encoding, Type as PhysicalType};
use datafusion::parquet::column::page::{Page, PageReader};
use datafusion::parquet::file::metadata::ColumnChunkMetaData;
use datafusion::parquet::file::reader::{FileReader, SerializedFileReader};

/// Whether the dictionaries of `path` prove every value of each of
/// `domains`' columns (top-level string columns) to be one of its accepted
/// values. `false` means "not proven", never "outside": scan to know.
pub fn prove(path: &Path, domains: &[(&str, &[String])]) -> bool {
    let Ok(file) = File::open(path) else {
        return false;
    };
    let Ok(reader) = SerializedFileReader::new(file) else {
        return false;
    };
    let schema = reader.metadata().file_metadata().schema_descr_ptr();
    let mut wanted = Vec::new();
    for (column, accepted) in domains {
        let Some(index) = (0..schema.num_columns()).find(|i| {
            let c = schema.column(*i);
            c.path().parts().len() == 1 && c.name() == *column
        }) else {
            return false;
        };
        let accepted: HashSet<&[u8]> = accepted.iter().map(|v| v.as_bytes()).collect();
        wanted.push((index, accepted));
    }
    for g in 0..reader.num_row_groups() {
        let Ok(group) = reader.get_row_group(g) else {
            return false;
        };
        for (index, accepted) in &wanted {
            let chunk = group.metadata().column(*index);
            if !all_dictionary_encoded(chunk) {
                return false;
            }
            let Ok(mut pages) = group.get_column_page_reader(*index) else {
                return false;
            };
            if !dictionary_inside(pages.as_mut(), accepted) {
                return false;
            }
        }
    }
    true
}

/// A string chunk whose data pages are all dictionary-encoded, as its page
/// encoding statistics say (no statistics: not known).
fn all_dictionary_encoded(chunk: &ColumnChunkMetaData) -> bool {
    chunk.column_type() == PhysicalType::BYTE_ARRAY
        && chunk.dictionary_page_offset().is_some()
        && chunk.page_encoding_stats_mask().is_some_and(|mask| {
            mask.is_only(Encoding::PLAIN_DICTIONARY) || mask.is_only(Encoding::RLE_DICTIONARY)
        })
}

/// Whether the chunk's dictionary page (its first page) lists only accepted
/// values. Entries are PLAIN byte arrays: a 4-byte little-endian length,
/// then the bytes.
fn dictionary_inside(pages: &mut dyn PageReader, accepted: &HashSet<&[u8]>) -> bool {
    let Ok(Some(Page::DictionaryPage {
        buf,
        num_values,
        encoding,
        ..
    })) = pages.get_next_page()
    else {
        return false;
    };
    if !matches!(encoding, Encoding::PLAIN | Encoding::PLAIN_DICTIONARY) {
        return false;
    }
    let mut rest: &[u8] = &buf;
    for _ in 0..num_values {
        let Some((len, tail)) = rest.split_first_chunk::<4>() else {
            return false;
        };
        let len = u32::from_le_bytes(*len) as usize;
        if tail.len() < len || !accepted.contains(&tail[..len]) {
            return false;
        }
        rest = &tail[len..];
    }
    rest.is_empty()
}

#[cfg(test)]
mod tests {
    use super::*;
    use datafusion::arrow::array::{ArrayRef, DictionaryArray, StringArray};
    use datafusion::arrow::datatypes::Int32Type;
    use datafusion::arrow::record_batch::RecordBatch;
    use datafusion::parquet::arrow::ArrowWriter;
    use datafusion::parquet::file::properties::WriterProperties;
    use std::sync::Arc;

    fn write(path: &Path, column: ArrayRef, props: WriterProperties) {
        let batch = RecordBatch::try_from_iter(vec![("stage", column)]).unwrap();
        let mut w =
            ArrowWriter::try_new(File::create(path).unwrap(), batch.schema(), Some(props)).unwrap();
        w.write(&batch).unwrap();
        w.close().unwrap();
    }

    fn strings(values: &[Option<&str>]) -> ArrayRef {
        Arc::new(values.iter().copied().collect::<StringArray>())
    }

    const STAGES: [&str; 2] = ["Open", "Won"];

    fn domains(accepted: &[String]) -> Vec<(&str, &[String])> {
        vec![("stage", accepted)]
    }

    // Dictionary {Open, Won} and a null: every value is accepted, proven.
    // With "Lost" accepted no longer, the dictionary lists an outside
    // value: not proven (the scan decides). A column canon does not know
    // (`status`) is not proven either.
    #[test]
    fn a_dictionary_of_accepted_values_proves_the_column() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("a.parquet");
        write(
            &path,
            strings(&[Some("Open"), Some("Won"), None, Some("Open")]),
            WriterProperties::builder().build(),
        );
        let accepted: Vec<String> = STAGES.iter().map(|s| s.to_string()).collect();
        assert!(prove(&path, &domains(&accepted)));
        let only_open = vec!["Open".to_string()];
        assert!(!prove(&path, &domains(&only_open)));
        assert!(!prove(&path, &[("status", &accepted[..])]));
    }

    // Plain-encoded pages carry their values inline: not proven, whatever
    // they hold.
    #[test]
    fn plain_pages_prove_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("p.parquet");
        write(
            &path,
            strings(&[Some("Open"), Some("Won")]),
            WriterProperties::builder()
                .set_dictionary_enabled(false)
                .build(),
        );
        let accepted: Vec<String> = STAGES.iter().map(|s| s.to_string()).collect();
        assert!(!prove(&path, &domains(&accepted)));
    }

    // An Arrow dictionary whose rows use "Lost": never proven inside
    // {Open, Won}, and proven inside {Open, Won, Lost}.
    #[test]
    fn a_used_outside_entry_is_never_proven_inside() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("d.parquet");
        let dict = DictionaryArray::<Int32Type>::try_new(
            vec![0, 2, 1, 0].into(),
            Arc::new(StringArray::from(vec!["Open", "Won", "Lost"])),
        )
        .unwrap();
        write(&path, Arc::new(dict), WriterProperties::builder().build());
        let accepted: Vec<String> = STAGES.iter().map(|s| s.to_string()).collect();
        assert!(!prove(&path, &domains(&accepted)));
        let with_lost: Vec<String> = vec!["Open".into(), "Won".into(), "Lost".into()];
        assert!(prove(&path, &domains(&with_lost)));
    }
}
