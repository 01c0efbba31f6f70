//! A test file's fixture company written as the extracts canon reads:
//! one Parquet file per source table, with the model's declared columns and
//! types, under a data root of its own. Every value is checked on the way
//! (a table or column the models do not declare, a value of the wrong
//! type, a missing value in a column that may not be null), and each
//! problem is located in the test file (or the CSV) where it was written.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use datafusion::arrow::array::{ArrayRef, RecordBatch, StringArray};
use datafusion::arrow::compute::{CastOptions, cast_with_options};
use datafusion::arrow::datatypes::{Field, Schema};
use datafusion::parquet::arrow::ArrowWriter;

use super::spec::TestFileSpec;
use crate::catalog::Catalog;
use crate::error::{CanonError, Diagnostic, Location, Result};
use crate::spec::load::SourceFile;
use crate::spec::{ColumnSpec, ColumnType};
use crate::suggest::did_you_mean;
use crate::yaml_path;

/// One row's values by column, and where the row was written.
struct Row {
    values: BTreeMap<String, Option<String>>,
    at: Location,
}

/// Writes `file`'s company under `root` (`<source path>/part-00000.parquet`
/// for every source of the catalog, empty when the company leaves it out).
pub fn write(
    catalog: &Catalog,
    file: &SourceFile<TestFileSpec>,
    dir: &Path,
    root: &Path,
) -> Result<()> {
    let company = &file.spec.company;
    let mut problems = Vec::new();
    for name in company.tables.keys() {
        if !catalog.sources.contains_key(name) {
            let known: Vec<&str> = catalog.sources.keys().map(String::as_str).collect();
            let hint = did_you_mean(name, &known)
                .map(|k| format!(" (did you mean `{k}`?)"))
                .unwrap_or_default();
            problems.push(Diagnostic {
                location: file.at(&yaml_path!["company", "tables", name.as_str()]),
                message: format!("no model declares source `{name}`{hint}"),
            });
        }
    }
    for (key, id) in &catalog.sources {
        let (model, source) = catalog.source(*id);
        // Written under `root` only: a model's path that is absolute or
        // climbs out (`..`) would have the fixture overwrite real extracts.
        if !inside(Path::new(&source.path)) {
            problems.push(Diagnostic {
                location: model.at(&yaml_path!["sources", id.index, "path"]),
                message: format!(
                    "source {key}: path `{}` is not a relative path inside the data root; canon test writes fixtures only under its own",
                    source.path
                ),
            });
            continue;
        }
        let rows = match company.tables.get(key) {
            Some(table) => {
                let mut rows = Vec::new();
                if let Some(csv) = &table.csv {
                    let at = file.at(&yaml_path!["company", "tables", key.as_str(), "csv"]);
                    if !inside(Path::new(csv)) {
                        problems.push(Diagnostic {
                            location: at,
                            message: format!(
                                "csv `{csv}` is not a relative path inside the tests folder"
                            ),
                        });
                        continue;
                    }
                    match read_csv(&dir.join(csv), &file.display_path.with_file_name(csv), &at) {
                        Ok(r) => rows.extend(r),
                        Err(d) => {
                            problems.push(d);
                            continue;
                        }
                    }
                }
                for (i, r) in table.rows.iter().enumerate() {
                    let at = file.at(&yaml_path!["company", "tables", key.as_str(), "rows", i]);
                    let mut values = BTreeMap::new();
                    for (column, v) in r {
                        match scalar(v) {
                            Ok(v) => {
                                values.insert(column.clone(), v);
                            }
                            Err(why) => problems.push(Diagnostic {
                                location: file.at(&yaml_path![
                                    "company",
                                    "tables",
                                    key.as_str(),
                                    "rows",
                                    i,
                                    column.as_str()
                                ]),
                                message: why,
                            }),
                        }
                    }
                    rows.push(Row { values, at });
                }
                // Defaults: the table's, then the company's.
                for row in &mut rows {
                    for defaults in [&table.defaults, &company.defaults] {
                        for (column, v) in defaults {
                            if !row.values.contains_key(column)
                                && source.columns.iter().any(|c| &c.name == column)
                                && let Ok(v) = scalar(v)
                            {
                                row.values.insert(column.clone(), v);
                            }
                        }
                    }
                }
                rows
            }
            None => Vec::new(),
        };
        match batch(key, &source.columns, &rows) {
            Ok(batch) => {
                if problems.is_empty() {
                    write_parquet(&root.join(&source.path), &batch)?;
                }
            }
            Err(d) => problems.extend(d),
        }
    }
    if problems.is_empty() {
        Ok(())
    } else {
        Err(CanonError::Definition(problems))
    }
}

/// Whether `path` is relative and never climbs (`..`): joined to a folder
/// it stays inside it (links aside, which read_csv's file check refuses).
fn inside(path: &Path) -> bool {
    !path.as_os_str().is_empty()
        && path.components().all(|c| {
            matches!(
                c,
                std::path::Component::Normal(_) | std::path::Component::CurDir
            )
        })
}

/// A YAML scalar as the text a column is read from (none for null).
fn scalar(v: &serde_yaml::Value) -> std::result::Result<Option<String>, String> {
    use serde_yaml::Value;
    match v {
        Value::Null => Ok(None),
        Value::Bool(b) => Ok(Some(b.to_string())),
        Value::Number(n) => Ok(Some(n.to_string())),
        Value::String(s) => Ok(Some(s.clone())),
        _ => Err("a column's value is one scalar (text, number, true/false or null)".into()),
    }
}

/// The rows as a batch of the declared columns, each cast from text to its
/// declared type; every problem located at its row.
fn batch(
    table: &str,
    columns: &[ColumnSpec],
    rows: &[Row],
) -> std::result::Result<RecordBatch, Vec<Diagnostic>> {
    let mut problems = Vec::new();
    for row in rows {
        for column in row.values.keys() {
            if !columns.iter().any(|c| &c.name == column) {
                let known: Vec<&str> = columns.iter().map(|c| c.name.as_str()).collect();
                let hint = did_you_mean(column, &known)
                    .map(|k| format!(" (did you mean `{k}`?)"))
                    .unwrap_or_default();
                problems.push(Diagnostic {
                    location: row.at.clone(),
                    message: format!("{table} has no column `{column}`{hint}"),
                });
            }
        }
    }
    let mut fields = Vec::new();
    let mut arrays: Vec<ArrayRef> = Vec::new();
    for c in columns {
        let texts: Vec<Option<&str>> = rows
            .iter()
            .map(|r| r.values.get(&c.name).and_then(|v| v.as_deref()))
            .collect();
        for (row, text) in rows.iter().zip(&texts) {
            match text {
                None if !c.nullable => problems.push(Diagnostic {
                    location: row.at.clone(),
                    message: format!(
                        "{table}.{} is not nullable: give it a value (or a default)",
                        c.name
                    ),
                }),
                Some(t) => {
                    if let Some(why) = value_problem(c.ty, t) {
                        problems.push(Diagnostic {
                            location: row.at.clone(),
                            message: format!("{table}.{}: {why}", c.name),
                        });
                    }
                }
                None => {}
            }
        }
        let text: ArrayRef = Arc::new(StringArray::from(texts.clone()));
        let options = CastOptions {
            safe: false,
            ..Default::default()
        };
        match cast_with_options(&text, &c.ty.arrow(), &options) {
            Ok(a) => arrays.push(a),
            Err(_) => {
                // Located value by value (the batch cast does not say which).
                for (row, t) in rows.iter().zip(&texts) {
                    let one: ArrayRef = Arc::new(StringArray::from(vec![*t]));
                    if cast_with_options(&one, &c.ty.arrow(), &options).is_err() {
                        problems.push(Diagnostic {
                            location: row.at.clone(),
                            message: format!(
                                "{table}.{}: cannot read `{}` as {}",
                                c.name,
                                t.unwrap_or_default(),
                                c.ty.name()
                            ),
                        });
                    }
                }
                arrays.push(datafusion::arrow::array::new_null_array(
                    &c.ty.arrow(),
                    rows.len(),
                ));
            }
        }
        fields.push(Field::new(&c.name, c.ty.arrow(), c.nullable));
    }
    if !problems.is_empty() {
        return Err(problems);
    }
    RecordBatch::try_new(Arc::new(Schema::new(fields)), arrays).map_err(|e| {
        vec![Diagnostic {
            location: rows
                .first()
                .map(|r| r.at.clone())
                .unwrap_or_else(|| Location::new(PathBuf::from(table), 1, 1)),
            message: format!("{table}: {e}"),
        }]
    })
}

/// What is wrong with `text` as a value of type `ty` that a cast would not
/// say: money or a rate with more decimals than it keeps (a cast would
/// round them away).
fn value_problem(ty: ColumnType, text: &str) -> Option<String> {
    let places = match ty {
        ColumnType::Money => 2,
        ColumnType::Rate => 6,
        _ => return None,
    };
    let decimals = text.trim().split_once('.').map_or(0, |(_, f)| f.len());
    (decimals > places).then(|| {
        format!(
            "`{text}` has {decimals} decimals; {} keeps {places}",
            ty.name()
        )
    })
}

fn write_parquet(dir: &Path, batch: &RecordBatch) -> Result<()> {
    std::fs::create_dir_all(dir).map_err(|e| CanonError::io(dir, e))?;
    let path = dir.join("part-00000.parquet");
    let file = std::fs::File::create(&path).map_err(|e| CanonError::io(&path, e))?;
    let mut writer = ArrowWriter::try_new(file, batch.schema(), None)
        .map_err(|e| CanonError::Internal(format!("writing {}: {e}", path.display())))?;
    writer
        .write(batch)
        .and_then(|_| writer.close().map(|_| ()))
        .map_err(|e| CanonError::Internal(format!("writing {}: {e}", path.display())))
}

/// A CSV file's rows: a header, then records; `,` separates, `"` quotes
/// (`""` is a quote inside), an empty unquoted cell is null. `shown` is the
/// path errors name; `at` where the test file names the CSV.
fn read_csv(path: &Path, shown: &Path, at: &Location) -> std::result::Result<Vec<Row>, Diagnostic> {
    // A regular file, not a link (which could lead anywhere), a folder or
    // a pipe (which would block the read).
    let regular = std::fs::symlink_metadata(path).is_ok_and(|m| m.file_type().is_file());
    if !regular {
        return Err(Diagnostic {
            location: at.clone(),
            message: format!(
                "{} is not a regular file (missing, a link, a folder or a pipe)",
                shown.display()
            ),
        });
    }
    let text = std::fs::read_to_string(path).map_err(|e| Diagnostic {
        location: at.clone(),
        message: format!("cannot read {}: {e}", path.display()),
    })?;
    // A byte order mark some editors write is not part of the header.
    let text = text.strip_prefix('\u{feff}').unwrap_or(&text).to_string();
    let records = parse_csv(&text).map_err(|(line, why)| Diagnostic {
        location: Location::new(shown.to_path_buf(), line, 1),
        message: why,
    })?;
    let mut records = records.into_iter();
    let Some((_, header)) = records.next() else {
        return Ok(Vec::new());
    };
    let header: Vec<String> = header
        .into_iter()
        .map(|h| h.unwrap_or_default().trim().to_string())
        .collect();
    for (i, h) in header.iter().enumerate() {
        if header[..i].contains(h) {
            return Err(Diagnostic {
                location: Location::new(shown.to_path_buf(), 1, 1),
                message: format!("column `{h}` is named twice in the header"),
            });
        }
    }
    let mut rows = Vec::new();
    for (line, cells) in records {
        if cells.len() != header.len() {
            return Err(Diagnostic {
                location: Location::new(shown.to_path_buf(), line, 1),
                message: format!(
                    "{} cells where the header has {}",
                    cells.len(),
                    header.len()
                ),
            });
        }
        rows.push(Row {
            values: header.iter().cloned().zip(cells).collect(),
            at: Location::new(shown.to_path_buf(), line, 1),
        });
    }
    Ok(rows)
}

type Record = (usize, Vec<Option<String>>);

/// RFC 4180 records with the line each starts on; a blank line is skipped.
fn parse_csv(text: &str) -> std::result::Result<Vec<Record>, (usize, String)> {
    let mut out = Vec::new();
    let mut line = 1;
    let mut chars = text.chars().peekable();
    while chars.peek().is_some() {
        let start = line;
        let mut cells = Vec::new();
        let mut cell = String::new();
        let mut quoted = false;
        let mut touched = false;
        loop {
            match chars.next() {
                None => break,
                Some('"') if !touched => {
                    quoted = true;
                    touched = true;
                    loop {
                        match chars.next() {
                            None => return Err((start, "a quoted cell is not closed".into())),
                            Some('"') if chars.peek() == Some(&'"') => {
                                chars.next();
                                cell.push('"');
                            }
                            Some('"') => break,
                            Some(c) => {
                                if c == '\n' {
                                    line += 1;
                                }
                                cell.push(c);
                            }
                        }
                    }
                }
                Some(',') => {
                    cells.push(take(&mut cell, quoted));
                    quoted = false;
                    touched = false;
                }
                Some('\r') if chars.peek() == Some(&'\n') => {}
                Some('\n') => {
                    line += 1;
                    break;
                }
                Some(c) => {
                    touched = true;
                    cell.push(c);
                }
            }
        }
        cells.push(take(&mut cell, quoted));
        if !(cells.len() == 1 && cells[0].is_none()) {
            out.push((start, cells));
        }
    }
    Ok(out)
}

fn take(cell: &mut String, quoted: bool) -> Option<String> {
    let value = std::mem::take(cell);
    (quoted || !value.is_empty()).then_some(value)
}

#[cfg(test)]
mod tests {
    use super::parse_csv;

    #[test]
    fn csv_quotes_commas_newlines_and_nulls() {
        let text = "id,name,note\nA1,\"Globex, Inc\",\n\nA2,\"Say \"\"hi\"\"\nthere\",\"\"\n";
        let rows = parse_csv(text).unwrap();
        assert_eq!(rows.len(), 3);
        assert_eq!(rows[1].0, 2);
        assert_eq!(
            rows[1].1,
            [Some("A1".into()), Some("Globex, Inc".into()), None]
        );
        // Line 4 starts the third record; a quoted empty cell is text.
        assert_eq!(rows[2].0, 4);
        assert_eq!(
            rows[2].1,
            [
                Some("A2".into()),
                Some("Say \"hi\"\nthere".into()),
                Some(String::new())
            ]
        );
        assert_eq!(parse_csv("a,\"b\n").unwrap_err().0, 1);
    }
}
