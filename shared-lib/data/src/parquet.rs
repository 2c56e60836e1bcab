//! Parquet inputs, read with the `parquet` crate's row API (no arrow): the fraud table and
//! rating files, one file or a directory of part files ([`Dataset`]), columns chosen by name.
//!
//! Only top-level columns of the plain numeric physical types (`INT32`, `INT64`, `FLOAT`,
//! `DOUBLE`, and `BOOLEAN` for a label) are read as numbers; ids may also be strings. A column of
//! another type is a schema error naming the file and the column, before any row is read. Rows
//! are handled as CSV rows are: a null, a non-finite number or a label other than 0/1 is a bad
//! row, reported as [`Error::BadRow`] with the part file and the row's number in it (1-based), or
//! skipped and counted with `--skip-bad-rows`.
//!
//! The split key of a row without a key column is the hash of its cells printed as text, in
//! column order (numbers as the shortest decimal that reads back the same, e.g. `12.5`, `3`):
//! the same key a CSV row gets when its numbers are written that way. Compression: snappy or
//! none (the crate is built with `snap` only).

use bytes::Bytes;
use parquet::basic::Type as PhysicalType;
use parquet::file::reader::{FileReader, SerializedFileReader};
use parquet::record::{Field, Row};

use crate::Error;
use crate::ratings::{Builder, RatingFormat, ReadRatings};
use crate::row_key::{RowKey, key_hash};
use crate::table::{Table, TableOptions, check_feature_names};
use crate::{Dataset, Input};

/// The most columns a Parquet input may have.
pub const MAX_COLUMNS: usize = 4096;
/// The most rows one dataset may hold (ids and rows are indexed by `u32`).
pub const MAX_ROWS: u64 = u32::MAX as u64;

/// Opens one Parquet file held in memory.
///
/// # Errors
/// [`Error::Input`] naming the file: not Parquet, truncated, an unsupported codec.
pub fn open(part: &Input) -> Result<SerializedFileReader<Bytes>, Error> {
    let reader = SerializedFileReader::new(part.bytes.clone()).map_err(|e| Error::Input {
        path: part.name.clone(),
        reason: format!("not a readable Parquet file: {e}"),
    })?;
    let rows = reader.metadata().file_metadata().num_rows();
    if !(0..=MAX_ROWS as i64).contains(&rows) {
        return Err(Error::Input {
            path: part.name.clone(),
            reason: format!("{rows} rows is outside 0..={MAX_ROWS}"),
        });
    }
    Ok(reader)
}

/// A top-level column: its name and physical type (`None` for a nested column).
#[derive(Debug, Clone, PartialEq)]
pub struct Column {
    pub name: String,
    pub physical: Option<PhysicalType>,
}

/// The top-level columns of a file, in order.
///
/// # Errors
/// [`Error::Input`] for more than [`MAX_COLUMNS`] columns.
pub fn columns(part: &Input, reader: &SerializedFileReader<Bytes>) -> Result<Vec<Column>, Error> {
    let schema = reader.metadata().file_metadata().schema();
    let fields = schema.get_fields();
    if fields.len() > MAX_COLUMNS {
        return Err(Error::Input {
            path: part.name.clone(),
            reason: format!("{} columns, more than {MAX_COLUMNS}", fields.len()),
        });
    }
    Ok(fields
        .iter()
        .map(|f| Column {
            name: f.name().to_owned(),
            physical: f.is_primitive().then(|| f.get_physical_type()),
        })
        .collect())
}

/// Calls `each(row_number, row)` for every row of `part` (numbers from 1).
///
/// # Errors
/// [`Error::Input`] naming the file when a page cannot be decoded; whatever `each` returns
/// (the caller's own error type, so a reader outside this crate can stop with its own).
pub fn for_each_row<E: From<Error>>(
    part: &Input,
    reader: &SerializedFileReader<Bytes>,
    mut each: impl FnMut(u64, &Row) -> Result<(), E>,
) -> Result<(), E> {
    let rows = reader.get_row_iter(None).map_err(|e| Error::Input {
        path: part.name.clone(),
        reason: format!("cannot read rows: {e}"),
    })?;
    for (i, row) in rows.enumerate() {
        let row = row.map_err(|e| Error::Input {
            path: part.name.clone(),
            reason: format!("row {}: {e}", i + 1),
        })?;
        each(i as u64 + 1, &row)?;
    }
    Ok(())
}

fn is_number(physical: Option<PhysicalType>, allow_bool: bool) -> bool {
    matches!(
        physical,
        Some(
            PhysicalType::INT32 | PhysicalType::INT64 | PhysicalType::FLOAT | PhysicalType::DOUBLE
        )
    ) || (allow_bool && physical == Some(PhysicalType::BOOLEAN))
}

fn type_name(physical: Option<PhysicalType>) -> String {
    physical.map_or_else(|| "a nested group".to_owned(), |t| t.to_string())
}

/// A cell as a number: `Err` for null, non-numbers and non-finite values.
pub fn number(field: &Field) -> Result<f64, String> {
    let v = match field {
        Field::Null => return Err("null".into()),
        Field::Bool(b) => f64::from(u8::from(*b)),
        Field::Byte(v) => f64::from(*v),
        Field::Short(v) => f64::from(*v),
        Field::Int(v) => f64::from(*v),
        Field::Long(v) => *v as f64,
        Field::UByte(v) => f64::from(*v),
        Field::UShort(v) => f64::from(*v),
        Field::UInt(v) => f64::from(*v),
        Field::ULong(v) => *v as f64,
        Field::Float(v) => f64::from(*v),
        Field::Double(v) => *v,
        other => return Err(format!("{other} is not a number")),
    };
    if v.is_finite() {
        Ok(v)
    } else {
        Err(format!("{v} is not a finite number"))
    }
}

/// A cell as the text a CSV file would hold (see the module doc); `None` for null.
pub fn text(field: &Field) -> Option<String> {
    Some(match field {
        Field::Null => return None,
        Field::Bool(b) => u8::from(*b).to_string(),
        Field::Byte(v) => v.to_string(),
        Field::Short(v) => v.to_string(),
        Field::Int(v) => v.to_string(),
        Field::Long(v) => v.to_string(),
        Field::UByte(v) => v.to_string(),
        Field::UShort(v) => v.to_string(),
        Field::UInt(v) => v.to_string(),
        Field::ULong(v) => v.to_string(),
        Field::Float(v) => v.to_string(),
        Field::Double(v) => v.to_string(),
        Field::Str(s) => s.clone(),
        other => other.to_string(),
    })
}

/// Reads a Parquet dataset as the fraud table: the label column by name, an optional key column,
/// every other column a feature in schema order (see the module doc).
///
/// # Errors
/// [`Error::Input`] for unreadable files and schema problems (a missing label, a non-numeric
/// feature, parts with different columns), each naming the file; [`Error::BadRow`] for the first
/// bad row unless skipped.
pub fn read_table(data: &Dataset, options: &TableOptions) -> Result<Table, Error> {
    let mut table: Option<Table> = None;
    let mut first_columns: Option<(String, Vec<Column>)> = None;
    for part in &data.parts {
        let reader = open(part)?;
        let cols = columns(part, &reader)?;
        let schema_error = |reason: String| Error::Input {
            path: part.name.clone(),
            reason,
        };
        let names: Vec<&str> = cols.iter().map(|c| c.name.as_str()).collect();
        if let Some((first, expected)) = &first_columns
            && *expected != cols
        {
            return Err(schema_error(format!(
                "its columns differ from those of {first} (every part file must have the \
                     same schema)"
            )));
        }
        let label_at = names
            .iter()
            .position(|n| *n == options.label)
            .ok_or_else(|| {
                schema_error(format!(
                    "no label column {:?} (columns: {})",
                    options.label,
                    names.join(",")
                ))
            })?;
        let key_at = match &options.key_column {
            Some(key) => Some(names.iter().position(|n| n == key).ok_or_else(|| {
                schema_error(format!(
                    "no split key column {key:?} (columns: {})",
                    names.join(",")
                ))
            })?),
            None => None,
        };
        if key_at == Some(label_at) {
            return Err(Error::Usage(
                "the split key column cannot be the label".into(),
            ));
        }
        for (i, c) in cols.iter().enumerate() {
            if Some(i) == key_at {
                if c.physical.is_none() {
                    return Err(schema_error(format!(
                        "the split key column {:?} is a nested group, not a value",
                        c.name
                    )));
                }
                continue;
            }
            if !is_number(c.physical, i == label_at) {
                return Err(schema_error(format!(
                    "column {:?} has type {}; features and the label must be INT32, INT64, \
                     FLOAT or DOUBLE",
                    c.name,
                    type_name(c.physical)
                )));
            }
        }
        let feature_names: Vec<String> = names
            .iter()
            .enumerate()
            .filter(|&(i, _)| i != label_at && Some(i) != key_at)
            .map(|(_, n)| (*n).to_owned())
            .collect();
        check_feature_names(&feature_names).map_err(schema_error)?;
        let t = table.get_or_insert_with(|| Table {
            feature_names,
            values: Vec::new(),
            labels: Vec::new(),
            keys: Vec::new(),
            skipped: 0,
        });
        let mut features = Vec::with_capacity(cols.len());
        let mut cells: Vec<String> = Vec::with_capacity(cols.len());
        for_each_row(part, &reader, |n, row| {
            match table_row(row, label_at, key_at, &mut features, &mut cells) {
                Ok((label, key)) => {
                    t.values.extend_from_slice(&features);
                    t.labels.push(label);
                    t.keys.push(key);
                    Ok(())
                }
                Err(_) if options.skip_bad_rows => {
                    t.skipped += 1;
                    Ok(())
                }
                Err(reason) => Err(Error::BadRow {
                    file: part.name.clone(),
                    line: n,
                    reason,
                }),
            }
        })?;
        if t.labels.len() as u64 > MAX_ROWS {
            return Err(schema_error(format!("more than {MAX_ROWS} rows in all")));
        }
        first_columns.get_or_insert_with(|| (part.name.clone(), cols));
    }
    let table = table.ok_or_else(|| Error::Input {
        path: data.name.clone(),
        reason: "no Parquet files".into(),
    })?;
    if table.skipped > 0 {
        tracing::warn!(file = %data.name, skipped = table.skipped, "Skipped bad rows.");
    }
    Ok(table)
}

fn table_row(
    row: &Row,
    label_at: usize,
    key_at: Option<usize>,
    features: &mut Vec<f64>,
    cells: &mut Vec<String>,
) -> Result<(u8, RowKey), String> {
    features.clear();
    cells.clear();
    let mut label = 0;
    let mut key_text = None;
    for (i, (name, field)) in row.get_column_iter().enumerate() {
        if Some(i) == key_at {
            match text(field) {
                Some(t) if !t.is_empty() => key_text = Some(t),
                _ => return Err(format!("column {name:?}: the split key is empty")),
            }
            continue;
        }
        let value = number(field).map_err(|e| format!("column {name:?}: {e}"))?;
        if key_at.is_none() {
            cells.push(text(field).unwrap_or_default());
        }
        if i == label_at {
            label = match value {
                0.0 => 0,
                1.0 => 1,
                _ => return Err(format!("label {value} is not 0 or 1")),
            };
        } else {
            features.push(value);
        }
    }
    let hash = match key_text {
        Some(k) => key_hash([k.as_bytes()]),
        None => key_hash(cells.iter().map(String::as_bytes)),
    };
    Ok((label, RowKey { hash, time: None }))
}

/// The rating columns of a Parquet input, by name. `None` picks the first present of the usual
/// names: `userId`, `user_id`, `user`; `movieId`, `itemId`, `item_id`, `item`; `rating`;
/// `timestamp` (optional: without it rows have no time).
#[derive(Debug, Clone, Default)]
pub struct RatingColumns {
    pub user: Option<String>,
    pub item: Option<String>,
    pub rating: Option<String>,
    pub time: Option<String>,
}

const USER_NAMES: &[&str] = &["userId", "user_id", "user"];
const ITEM_NAMES: &[&str] = &["movieId", "itemId", "item_id", "item"];
const RATING_NAMES: &[&str] = &["rating"];
const TIME_NAMES: &[&str] = &["timestamp"];

fn find_column(
    cols: &[Column],
    given: Option<&str>,
    defaults: &[&str],
    what: &str,
) -> Result<Option<usize>, String> {
    match given {
        Some(name) => cols
            .iter()
            .position(|c| c.name == name)
            .map(Some)
            .ok_or_else(|| format!("no {what} column {name:?}")),
        None => Ok(defaults
            .iter()
            .find_map(|d| cols.iter().position(|c| c.name == *d))),
    }
}

/// Reads a Parquet dataset of ratings (see [`RatingColumns`]); ids are kept as text, a row's key
/// is the hash of `user, item, rating, timestamp` as text, as for a rating file.
///
/// # Errors
/// [`Error::Input`] naming the file for unreadable files and schema problems; [`Error::BadRow`]
/// for the first bad row (a null, an empty id, a non-finite rating) unless skipped.
pub fn read_ratings(
    data: &Dataset,
    names: &RatingColumns,
    skip_bad_rows: bool,
) -> Result<ReadRatings, Error> {
    let mut builder = Builder::default();
    let mut skipped = 0u64;
    let mut rows = 0u64;
    for part in &data.parts {
        let reader = open(part)?;
        let cols = columns(part, &reader)?;
        let schema_error = |reason: String| Error::Input {
            path: part.name.clone(),
            reason: format!(
                "{reason} (columns: {})",
                cols.iter()
                    .map(|c| c.name.as_str())
                    .collect::<Vec<_>>()
                    .join(",")
            ),
        };
        let required = |given: &Option<String>, defaults: &[&str], what: &str| {
            find_column(&cols, given.as_deref(), defaults, what)
                .and_then(|c| {
                    c.ok_or_else(|| format!("no {what} column ({})", defaults.join(", ")))
                })
                .map_err(schema_error)
        };
        let user = required(&names.user, USER_NAMES, "user")?;
        let item = required(&names.item, ITEM_NAMES, "item")?;
        let rating = required(&names.rating, RATING_NAMES, "rating")?;
        let time = find_column(&cols, names.time.as_deref(), TIME_NAMES, "timestamp")
            .map_err(schema_error)?;
        for (at, what) in [(user, "user"), (item, "item")] {
            if cols[at].physical.is_none() {
                return Err(schema_error(format!(
                    "the {what} column {:?} is a nested group",
                    cols[at].name
                )));
            }
        }
        for at in std::iter::once(rating).chain(time) {
            if !is_number(cols[at].physical, false) {
                return Err(schema_error(format!(
                    "column {:?} has type {}; ratings and timestamps must be INT32, INT64, \
                     FLOAT or DOUBLE",
                    cols[at].name,
                    type_name(cols[at].physical)
                )));
            }
        }
        for_each_row(part, &reader, |n, row| {
            rows += 1;
            let fields: Vec<&Field> = row.get_column_iter().map(|(_, f)| f).collect();
            match rating_row(&fields, user, item, rating, time) {
                Ok((u, i, v, key)) => builder.push_keyed(&u, &i, v, key),
                Err(_) if skip_bad_rows => skipped += 1,
                Err(reason) => {
                    return Err(Error::BadRow {
                        file: part.name.clone(),
                        line: n,
                        reason,
                    });
                }
            }
            if rows > MAX_ROWS {
                return Err(Error::Input {
                    path: data.name.clone(),
                    reason: format!("more than {MAX_ROWS} rows"),
                });
            }
            Ok(())
        })?;
    }
    let ratings = builder.finish();
    if ratings.is_empty() {
        return Err(Error::Input {
            path: data.name.clone(),
            reason: format!("no ratings ({skipped} bad rows skipped)"),
        });
    }
    Ok(ReadRatings {
        ratings,
        format: RatingFormat::Parquet,
        skipped,
    })
}

fn rating_row(
    fields: &[&Field],
    user: usize,
    item: usize,
    rating: usize,
    time: Option<usize>,
) -> Result<(String, String, f32, RowKey), String> {
    let id = |at: usize, what: &str| match text(fields[at]) {
        Some(t) if !t.trim().is_empty() => Ok(t.trim().to_owned()),
        _ => Err(format!("empty {what} id")),
    };
    let (u, i) = (id(user, "user")?, id(item, "item")?);
    let value = number(fields[rating]).map_err(|e| format!("rating: {e}"))? as f32;
    if !value.is_finite() {
        return Err("rating is not finite as a 32-bit float".into());
    }
    let rating_text = text(fields[rating]).unwrap_or_default();
    let (time, time_text) = match time.map(|t| fields[t]) {
        None | Some(Field::Null) => (None, String::new()),
        Some(f) => {
            let t = number(f).map_err(|e| format!("timestamp: {e}"))?;
            if t.fract() != 0.0 {
                return Err(format!("timestamp {t} is not an integer"));
            }
            (Some(t as i64), text(f).unwrap_or_default())
        }
    };
    let hash = key_hash([
        u.as_bytes(),
        i.as_bytes(),
        rating_text.as_bytes(),
        time_text.as_bytes(),
    ]);
    Ok((u, i, value, RowKey { hash, time }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cells_print_as_shortest_decimals() {
        assert_eq!(text(&Field::Double(12.5)).unwrap(), "12.5");
        assert_eq!(text(&Field::Double(3.0)).unwrap(), "3");
        assert_eq!(text(&Field::Float(0.1)).unwrap(), "0.1");
        assert_eq!(text(&Field::Long(-7)).unwrap(), "-7");
        assert_eq!(text(&Field::Null), None);
        assert_eq!(number(&Field::Int(4)), Ok(4.0));
        assert!(number(&Field::Null).unwrap_err().contains("null"));
        assert!(number(&Field::Double(f64::NAN)).is_err());
        assert!(number(&Field::Str("1".into())).is_err());
    }

    #[test]
    fn truncated_files_are_refused_naming_the_file() {
        let Err(err) = open(&Input::from_bytes("x.parquet", &b"PAR1 not really"[..])) else {
            panic!("opened");
        };
        let err = err.to_string();
        assert!(
            err.starts_with("cannot read x.parquet: not a readable Parquet"),
            "{err}"
        );
    }
}
