//! A numeric CSV table with a 0/1 label column: the fraud trainer's input.
//!
//! The first row is the header. One column, named by `--label`, holds the class (0 or 1); an
//! optional key column (`--split-key`, any text) identifies the row for the held-out split; every
//! other column is a numeric feature, in header order, which becomes the model's feature order.
//! Each row keeps the hash of its key, or of its whole content without a key column
//! ([`crate::row_key`], the trainer's `split`).
//! A bad row (wrong field count, a cell that is not a finite number, a label other than 0/1) is an
//! [`Error::BadRow`] naming the file and line, or, when the caller allows it, is skipped and
//! counted: a nightly job over a large export should not die on one torn line, but it must say
//! how many it dropped.

use csv::{ByteRecord, ReaderBuilder};

use crate::Error;
use crate::Input;
use crate::row_key::{RowKey, key_hash};

/// How to read a table.
#[derive(Debug, Clone)]
pub struct TableOptions {
    /// The label column's name.
    pub label: String,
    /// Skip and count bad rows instead of failing on the first.
    pub skip_bad_rows: bool,
    /// A column that identifies rows for the split: read as text, not a feature.
    pub key_column: Option<String>,
}

/// Rows of numeric features (row-major) and their 0/1 labels.
#[derive(Debug, Clone, PartialEq)]
pub struct Table {
    pub feature_names: Vec<String>,
    /// `rows × feature_names.len()` values, row after row; all finite.
    pub values: Vec<f64>,
    pub labels: Vec<u8>,
    /// Each row's split key (see [`crate::row_key`]).
    pub keys: Vec<RowKey>,
    /// Bad rows skipped (only with `skip_bad_rows`).
    pub skipped: u64,
}

impl Table {
    pub fn n_rows(&self) -> usize {
        self.labels.len()
    }

    pub fn n_features(&self) -> usize {
        self.feature_names.len()
    }

    /// The features of row `i`.
    pub fn row(&self, i: usize) -> &[f64] {
        let p = self.n_features();
        &self.values[i * p..(i + 1) * p]
    }

    /// Rows labelled 1.
    pub fn positives(&self) -> usize {
        self.labels.iter().filter(|&&y| y == 1).count()
    }

    /// The rows `indices`, in that order, as a new table.
    pub fn select(&self, indices: &[usize]) -> Self {
        let mut values = Vec::with_capacity(indices.len() * self.n_features());
        let mut labels = Vec::with_capacity(indices.len());
        let mut keys = Vec::with_capacity(indices.len());
        for &i in indices {
            values.extend_from_slice(self.row(i));
            labels.push(self.labels[i]);
            keys.push(self.keys[i]);
        }
        Self {
            feature_names: self.feature_names.clone(),
            values,
            labels,
            keys,
            skipped: 0,
        }
    }

    /// `(min, max)` of each feature; `None` for an empty table.
    pub fn feature_ranges(&self) -> Vec<Option<(f64, f64)>> {
        let p = self.n_features();
        let mut ranges: Vec<Option<(f64, f64)>> = vec![None; p];
        for row in self.values.chunks_exact(p) {
            for (range, &v) in ranges.iter_mut().zip(row) {
                *range = Some(match *range {
                    None => (v, v),
                    Some((lo, hi)) => (lo.min(v), hi.max(v)),
                });
            }
        }
        ranges
    }

    /// Fails unless both classes occur: a classifier cannot be trained (or evaluated) otherwise,
    /// and an all-legitimate training window is a real possibility for a scheduled job.
    ///
    /// # Errors
    /// [`Error::Training`] saying which class is missing.
    pub fn require_both_classes(&self, what: &str) -> Result<(), Error> {
        let positives = self.positives();
        if positives == 0 || positives == self.n_rows() {
            let only = if positives == 0 { 0 } else { 1 };
            return Err(Error::Training(format!(
                "{what} has {} rows, all of class {only}; both classes (0 and 1) are needed",
                self.n_rows()
            )));
        }
        Ok(())
    }
}

/// Reads a dataset as a table: Parquet (see [`crate::parquet`]) or one CSV file.
///
/// # Errors
/// As [`read_table`] and [`crate::parquet::read_table`].
pub fn read_dataset_table(data: &crate::Dataset, options: &TableOptions) -> Result<Table, Error> {
    if data.is_parquet() {
        crate::parquet::read_table(data, options)
    } else {
        read_table(data.single()?, options)
    }
}

/// Parses `input` as a table.
///
/// # Errors
/// [`Error::BadRow`] for a bad header (line 1: no label column, duplicate or unusable names, no
/// feature columns) and, unless skipped, for the first bad row; [`Error::Input`] if the CSV
/// itself cannot be read (e.g. invalid UTF-8 in the header).
pub fn read_table(input: &Input, options: &TableOptions) -> Result<Table, Error> {
    let file = input.name.as_str();
    let bad = |line: u64, reason: String| Error::BadRow {
        file: file.to_owned(),
        line,
        reason,
    };
    let mut reader = ReaderBuilder::new()
        .has_headers(true)
        .flexible(true)
        .trim(csv::Trim::All)
        .from_reader(&input.bytes[..]);
    let header = reader
        .headers()
        .map_err(|e| Error::Input {
            path: file.to_owned(),
            reason: e.to_string(),
        })?
        .clone();
    let names: Vec<String> = header.iter().map(str::to_owned).collect();
    let label_at = names
        .iter()
        .position(|n| *n == options.label)
        .ok_or_else(|| {
            bad(
                1,
                format!(
                    "no label column {:?} in the header (columns: {})",
                    options.label,
                    names.join(",")
                ),
            )
        })?;
    let key_at = match &options.key_column {
        Some(key) => Some(names.iter().position(|n| n == key).ok_or_else(|| {
            bad(
                1,
                format!(
                    "no split key column {key:?} in the header (columns: {})",
                    names.join(",")
                ),
            )
        })?),
        None => None,
    };
    if key_at == Some(label_at) {
        return Err(bad(1, "the split key column cannot be the label".into()));
    }
    let columns = Columns {
        count: names.len(),
        label: label_at,
        key: key_at,
    };
    let feature_names: Vec<String> = names
        .iter()
        .enumerate()
        .filter(|&(i, _)| i != label_at && Some(i) != key_at)
        .map(|(_, n)| n.clone())
        .collect();
    check_feature_names(&feature_names).map_err(|reason| bad(1, reason))?;

    let mut table = Table {
        feature_names,
        values: Vec::new(),
        labels: Vec::new(),
        keys: Vec::new(),
        skipped: 0,
    };
    let mut record = ByteRecord::new();
    let mut row = Vec::with_capacity(names.len());
    loop {
        let more = reader.read_byte_record(&mut record).map_err(|e| {
            let line = e.position().map_or(0, csv::Position::line);
            bad(line, e.to_string())
        })?;
        if !more {
            break;
        }
        let line = record.position().map_or(0, csv::Position::line);
        match parse_row(&record, &columns, &mut row) {
            Ok((label, key)) => {
                table.values.extend_from_slice(&row);
                table.labels.push(label);
                table.keys.push(key);
            }
            Err(_) if options.skip_bad_rows => table.skipped += 1,
            Err(reason) => return Err(bad(line, reason)),
        }
    }
    if table.skipped > 0 {
        tracing::warn!(file, skipped = table.skipped, "Skipped bad rows.");
    }
    Ok(table)
}

/// Where the label and the key are among the columns.
struct Columns {
    count: usize,
    label: usize,
    key: Option<usize>,
}

/// Fills `features` from one record and returns its label and split key.
fn parse_row(
    record: &ByteRecord,
    columns: &Columns,
    features: &mut Vec<f64>,
) -> Result<(u8, RowKey), String> {
    if record.len() != columns.count {
        return Err(format!(
            "expected {} fields, found {}",
            columns.count,
            record.len()
        ));
    }
    let key = RowKey {
        hash: match columns.key {
            Some(k) => {
                let cell = record.get(k).unwrap_or_default();
                if cell.is_empty() {
                    return Err(format!("column {}: the split key is empty", k + 1));
                }
                key_hash([cell])
            }
            None => key_hash(record.iter()),
        },
        time: None,
    };
    features.clear();
    let mut label = 0;
    for (i, cell) in record.iter().enumerate() {
        if Some(i) == columns.key {
            continue;
        }
        let value = parse_number(cell).map_err(|e| format!("column {}: {e}", i + 1))?;
        if i == columns.label {
            label = match value {
                0.0 => 0,
                1.0 => 1,
                _ => return Err(format!("label {value} is not 0 or 1")),
            };
        } else {
            features.push(value);
        }
    }
    Ok((label, key))
}

fn parse_number(cell: &[u8]) -> Result<f64, String> {
    let text = std::str::from_utf8(cell).map_err(|_| "not UTF-8".to_owned())?;
    let value: f64 = text
        .parse()
        .map_err(|_| format!("{:?} is not a number", truncate(text)))?;
    if !value.is_finite() {
        return Err(format!("{text:?} is not a finite number"));
    }
    Ok(value)
}

fn truncate(text: &str) -> String {
    text.chars().take(40).collect()
}

/// Feature names become the manifest's schema and the service's query parameters, so they are
/// checked here, before any training time is spent.
pub fn check_feature_names(names: &[String]) -> Result<(), String> {
    if names.is_empty() {
        return Err("no feature columns besides the label".into());
    }
    for (i, name) in names.iter().enumerate() {
        if name.is_empty()
            || name.len() > 64
            || !name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
        {
            return Err(format!(
                "column name {name:?} must have 1-64 characters of A-Z, a-z, 0-9 and '_'"
            ));
        }
        if names[..i].contains(name) {
            return Err(format!("column {name:?} appears twice"));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn options(skip: bool) -> TableOptions {
        TableOptions {
            label: "is_fraud".into(),
            skip_bad_rows: skip,
            key_column: None,
        }
    }

    fn read(text: &str, skip: bool) -> Result<Table, Error> {
        read_table(&Input::from_bytes("t.csv", text.to_owned()), &options(skip))
    }

    #[test]
    fn features_keep_header_order_around_the_label() {
        let t = read("a,is_fraud,b\n1,0,2.5\n3,1,-4e2\n", false).unwrap();
        assert_eq!(t.feature_names, ["a", "b"]);
        assert_eq!(t.values, [1.0, 2.5, 3.0, -400.0]);
        assert_eq!(t.labels, [0, 1]);
        assert_eq!(t.row(1), [3.0, -400.0]);
        assert_eq!(t.feature_ranges(), [Some((1.0, 3.0)), Some((-400.0, 2.5))]);
        assert_eq!(t.select(&[1]).labels, [1]);
    }

    #[test]
    fn bad_rows_name_file_and_line() {
        let cases = [
            (
                "a,is_fraud\n1,0\n2\n",
                "t.csv:3: expected 2 fields, found 1",
            ),
            (
                "a,is_fraud\n1,0\nx,1\n",
                "t.csv:3: column 1: \"x\" is not a number",
            ),
            (
                "a,is_fraud\n1,0\n1,0\nNaN,1\n",
                "t.csv:4: column 1: \"NaN\" is not a finite",
            ),
            (
                "a,is_fraud\ninf,0\n",
                "t.csv:2: column 1: \"inf\" is not a finite",
            ),
            ("a,is_fraud\n1,2\n", "t.csv:2: label 2 is not 0 or 1"),
            (
                "a,is_fraud\n1,\n",
                "t.csv:2: column 2: \"\" is not a number",
            ),
            ("a,b\n1,0\n", "t.csv:1: no label column \"is_fraud\""),
            ("is_fraud\n1\n", "t.csv:1: no feature columns"),
            (
                "a,a,is_fraud\n1,1,0\n",
                "t.csv:1: column \"a\" appears twice",
            ),
            ("a b,is_fraud\n1,0\n", "t.csv:1: column name \"a b\""),
        ];
        for (text, expected) in cases {
            let err = read(text, false).unwrap_err().to_string();
            assert!(err.starts_with(expected), "{text:?}: {err}");
        }
    }

    #[test]
    fn a_key_column_is_no_feature_and_keys_the_split() {
        let keyed = TableOptions {
            key_column: Some("id".into()),
            ..options(false)
        };
        let text = "id,a,is_fraud\nt1,1,0\nt2,1,0\n";
        let t = read_table(&Input::from_bytes("t.csv", text), &keyed).unwrap();
        assert_eq!(t.feature_names, ["a"]);
        assert_eq!(t.values, [1.0, 1.0]);
        // Same content but different ids: different keys; the id alone decides.
        assert_ne!(t.keys[0], t.keys[1]);
        let moved = "a,id,is_fraud\n7,t1,1\n";
        let m = read_table(&Input::from_bytes("m.csv", moved), &keyed).unwrap();
        assert_eq!(m.keys[0], t.keys[0]);
        // Without a key column, the content is the key: equal rows, equal keys.
        let c = read("a,is_fraud\n1,0\n1,0\n2,0\n", false).unwrap();
        assert_eq!(c.keys[0], c.keys[1]);
        assert_ne!(c.keys[0], c.keys[2]);
        let err = read_table(&Input::from_bytes("t.csv", "a,is_fraud\n1,0\n"), &keyed)
            .unwrap_err()
            .to_string();
        assert!(err.contains("no split key column \"id\""), "{err}");
    }

    #[test]
    fn skip_bad_rows_counts_and_keeps_the_good_ones() {
        let t = read("a,is_fraud\n1,0\nx,1\n2\n3,1\n4,7\n", true).unwrap();
        assert_eq!(t.skipped, 3);
        assert_eq!(t.values, [1.0, 3.0]);
        assert_eq!(t.labels, [0, 1]);
    }

    #[test]
    fn a_single_class_is_refused_with_a_clear_message() {
        let t = read("a,is_fraud\n1,0\n2,0\n", false).unwrap();
        let err = t.require_both_classes("the data").unwrap_err().to_string();
        assert!(err.contains("all of class 0"), "{err}");
        let t = read("a,is_fraud\n1,0\n2,1\n", false).unwrap();
        t.require_both_classes("the data").unwrap();
    }
}
