//! MovieLens-style rating files: `user\titem\trating\tts` (ml-100k `u.data`),
//! `user::item::rating::ts` (ml-1m `ratings.dat`) and CSV `userId,movieId,rating,timestamp` with
//! a header (ml-latest). The timestamp (Unix seconds) is optional; when present it is kept for
//! `--split time`. Each row also keeps the hash of its content, the key of the hash split
//! ([`crate::row_key`], the trainer's `split`).
//!
//! Ids are kept as the strings in the file (the served model answers in them) and interned to
//! dense indices while reading, so millions of rows cost three small numbers each.

use std::collections::HashMap;

use crate::Error;
use crate::row_key::{RowKey, key_hash};

/// The line format; `Auto` decides from the first data line.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize)]
#[cfg_attr(feature = "clap", derive(clap::ValueEnum))]
#[serde(rename_all = "lowercase")]
pub enum RatingFormat {
    #[default]
    Auto,
    /// `user\titem\trating[\tts]`
    Tsv,
    /// `user::item::rating[::ts]`
    Dcolon,
    /// `userId,movieId,rating[,timestamp]`, a header line first.
    Csv,
    /// Parquet, columns by name (see [`crate::parquet`]); chosen by the file itself,
    /// never by `--format`.
    #[cfg_attr(feature = "clap", value(skip))]
    Parquet,
}

impl RatingFormat {
    fn separator(self) -> &'static str {
        match self {
            Self::Tsv => "\t",
            Self::Dcolon => "::",
            Self::Csv | Self::Auto | Self::Parquet => ",",
        }
    }

    fn detect(line: &str) -> Option<Self> {
        if line.contains("::") {
            Some(Self::Dcolon)
        } else if line.contains('\t') {
            Some(Self::Tsv)
        } else if line.contains(',') {
            Some(Self::Csv)
        } else {
            None
        }
    }
}

/// Ratings (or interaction counts) with interned ids, in file order.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Ratings {
    pub user_ids: Vec<String>,
    pub item_ids: Vec<String>,
    pub users: Vec<u32>,
    pub items: Vec<u32>,
    pub values: Vec<f32>,
    /// Each row's split key: the hash of its content, and its timestamp if it has one.
    pub keys: Vec<RowKey>,
}

impl Ratings {
    pub fn len(&self) -> usize {
        self.values.len()
    }

    pub fn is_empty(&self) -> bool {
        self.values.is_empty()
    }

    pub fn n_users(&self) -> usize {
        self.user_ids.len()
    }

    pub fn n_items(&self) -> usize {
        self.item_ids.len()
    }

    /// The rows for which `keep(row)` holds, with ids re-interned so that only users and items
    /// present in the subset get indices (first-appearance order).
    pub fn subset(&self, mut keep: impl FnMut(usize) -> bool) -> Ratings {
        let mut builder = Builder::default();
        for row in 0..self.len() {
            if keep(row) {
                builder.push_keyed(
                    &self.user_ids[self.users[row] as usize],
                    &self.item_ids[self.items[row] as usize],
                    self.values[row],
                    self.keys[row],
                );
            }
        }
        builder.finish()
    }

    /// The rows `rows` (ascending or not; each at most once), in file order, re-interned as by
    /// [`Ratings::subset`].
    pub fn select(&self, rows: &[usize]) -> Ratings {
        let mut wanted = vec![false; self.len()];
        rows.iter().for_each(|&row| wanted[row] = true);
        self.subset(|row| wanted[row])
    }

    /// The mean value, 0 when empty (the fallback prediction for unknown users or items).
    pub fn mean(&self) -> f32 {
        if self.is_empty() {
            return 0.0;
        }
        (self.values.iter().map(|&v| f64::from(v)).sum::<f64>() / self.len() as f64) as f32
    }
}

/// Interns ids while rows are added.
#[derive(Debug, Default)]
pub struct Builder {
    users: HashMap<String, u32>,
    items: HashMap<String, u32>,
    out: Ratings,
}

impl Builder {
    /// Adds a row keyed by its content (user, item, value), with no timestamp.
    pub fn push(&mut self, user: &str, item: &str, value: f32) {
        let value_text = value.to_string();
        let key = RowKey {
            hash: key_hash([user.as_bytes(), item.as_bytes(), value_text.as_bytes()]),
            time: None,
        };
        self.push_keyed(user, item, value, key);
    }

    pub fn push_keyed(&mut self, user: &str, item: &str, value: f32, key: RowKey) {
        let u = intern(&mut self.users, &mut self.out.user_ids, user);
        let i = intern(&mut self.items, &mut self.out.item_ids, item);
        self.out.users.push(u);
        self.out.items.push(i);
        self.out.values.push(value);
        self.out.keys.push(key);
    }

    pub fn finish(self) -> Ratings {
        self.out
    }
}

fn intern(index: &mut HashMap<String, u32>, ids: &mut Vec<String>, id: &str) -> u32 {
    if let Some(&i) = index.get(id) {
        return i;
    }
    let i = ids.len() as u32;
    index.insert(id.to_owned(), i);
    ids.push(id.to_owned());
    i
}

/// What reading produced.
#[derive(Debug, Clone)]
pub struct ReadRatings {
    pub ratings: Ratings,
    /// The format used (never `Auto`).
    pub format: RatingFormat,
    /// Rows skipped as bad (only with `skip_bad_rows`).
    pub skipped: u64,
}

/// Reads ratings from a dataset: Parquet by column names, or one MovieLens-style text file (the
/// ratings' twin of [`crate::table::read_dataset_table`]).
///
/// # Errors
/// As [`parse_ratings`] and [`crate::parquet::read_ratings`].
pub fn read_dataset_ratings(
    data: &crate::Dataset,
    format: RatingFormat,
    columns: &crate::parquet::RatingColumns,
    skip_bad_rows: bool,
) -> Result<ReadRatings, Error> {
    if data.is_parquet() {
        crate::parquet::read_ratings(data, columns, skip_bad_rows)
    } else {
        let input = data.single()?;
        parse_ratings(&input.name, &input.bytes, format, skip_bad_rows)
    }
}

/// Parses a rating file. `name` is used in errors (`file:line`).
///
/// # Errors
/// [`Error::BadRow`] for the first bad row (wrong field count, empty id, a rating that is not a
/// finite number, bytes that are not UTF-8) unless `skip_bad_rows`, which counts them instead;
/// [`Error::Input`] when the format cannot be detected or there is no rating at all.
pub fn parse_ratings(
    name: &str,
    bytes: &[u8],
    format: RatingFormat,
    skip_bad_rows: bool,
) -> Result<ReadRatings, Error> {
    let mut format = match format {
        RatingFormat::Parquet => {
            return Err(Error::Input {
                path: name.to_owned(),
                reason: "--format parquet, but this is not a Parquet file".into(),
            });
        }
        f => f,
    };
    let mut builder = Builder::default();
    let mut skipped = 0u64;
    let mut seen_data_line = false;
    for (n, raw) in bytes.split(|&b| b == b'\n').enumerate() {
        let line_no = n as u64 + 1;
        let bad = |reason: String| Error::BadRow {
            file: name.to_owned(),
            line: line_no,
            reason,
        };
        let parsed = std::str::from_utf8(raw)
            .map_err(|_| bad("not UTF-8".into()))
            .map(|l| l.strip_suffix('\r').unwrap_or(l));
        let line = match parsed {
            Ok(l) if l.trim().is_empty() => continue,
            Ok(l) => l,
            Err(_) if skip_bad_rows => {
                skipped += 1;
                continue;
            }
            Err(e) => return Err(e),
        };
        if format == RatingFormat::Auto {
            format = RatingFormat::detect(line).ok_or_else(|| Error::Input {
                path: name.to_owned(),
                reason: format!(
                    "line {line_no}: cannot tell the format (no tab, '::' or ','); use --format"
                ),
            })?;
        }
        let first = !seen_data_line;
        seen_data_line = true;
        match parse_line(line, format) {
            Ok(row) => builder.push_keyed(row.user, row.item, row.value, row.key),
            // The CSV header: a first line whose rating column is not a number.
            Err(_) if first && format == RatingFormat::Csv && looks_like_header(line) => {}
            Err(_) if skip_bad_rows => skipped += 1,
            Err(reason) => return Err(bad(reason)),
        }
    }
    let ratings = builder.finish();
    if ratings.is_empty() {
        return Err(Error::Input {
            path: name.to_owned(),
            reason: format!("no ratings ({skipped} bad rows skipped)"),
        });
    }
    Ok(ReadRatings {
        ratings,
        format,
        skipped,
    })
}

fn looks_like_header(line: &str) -> bool {
    line.split(',')
        .nth(2)
        .is_some_and(|f| f.trim().parse::<f64>().is_err())
}

/// One parsed line.
struct Row<'a> {
    user: &'a str,
    item: &'a str,
    value: f32,
    key: RowKey,
}

fn parse_line(line: &str, format: RatingFormat) -> Result<Row<'_>, String> {
    let mut fields = line.split(format.separator());
    let (Some(user), Some(item), Some(rating)) = (fields.next(), fields.next(), fields.next())
    else {
        return Err(format!(
            "expected user{0}item{0}rating[{0}timestamp], got {line:?}",
            format.separator().escape_default()
        ));
    };
    let timestamp = fields.next().map(str::trim);
    let extra = fields.count();
    if extra > 0 {
        return Err(format!("expected at most 4 fields, got {}", 4 + extra));
    }
    let time = match timestamp {
        None | Some("") => None,
        Some(t) => Some(
            t.parse::<i64>()
                .map_err(|_| format!("timestamp {t:?} is not an integer"))?,
        ),
    };
    let (user, item) = (user.trim(), item.trim());
    if user.is_empty() || item.is_empty() {
        return Err("empty user or item id".into());
    }
    let value: f32 = rating
        .trim()
        .parse()
        .map_err(|_| format!("rating {rating:?} is not a number"))?;
    if !value.is_finite() {
        return Err(format!("rating {rating:?} is not finite"));
    }
    let parts = [
        user.as_bytes(),
        item.as_bytes(),
        rating.trim().as_bytes(),
        timestamp.unwrap_or_default().as_bytes(),
    ];
    Ok(Row {
        user,
        item,
        value,
        key: RowKey {
            hash: key_hash(parts),
            time,
        },
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const TSV: &str = "196\t242\t3\t881250949\n186\t302\t3\t891717742\n196\t377\t1\t878887116\n";
    const DCOLON: &str = "1::1193::5::978300760\n1::661::3::978302109\n2::1193::4::978298413\n";
    const CSV: &str =
        "userId,movieId,rating,timestamp\n1,1,4.0,964982703\n1,3,4.5,964981247\n2,1,2.5,1\n";

    #[test]
    fn the_three_movielens_forms_are_detected_and_read() {
        let cases = [
            (TSV, RatingFormat::Tsv, 2, 3, vec![3.0, 3.0, 1.0]),
            (DCOLON, RatingFormat::Dcolon, 2, 2, vec![5.0, 3.0, 4.0]),
            (CSV, RatingFormat::Csv, 2, 2, vec![4.0, 4.5, 2.5]),
        ];
        for (text, format, users, items, values) in cases {
            let read = parse_ratings("f", text.as_bytes(), RatingFormat::Auto, false).unwrap();
            assert_eq!(read.format, format);
            assert_eq!(read.ratings.n_users(), users, "{format:?}");
            assert_eq!(read.ratings.n_items(), items, "{format:?}");
            assert_eq!(read.ratings.values, values);
            assert_eq!(read.skipped, 0);
        }
        let read = parse_ratings("f", DCOLON.as_bytes(), RatingFormat::Dcolon, false).unwrap();
        assert_eq!(read.ratings.user_ids, ["1", "2"]);
        assert_eq!(read.ratings.item_ids, ["1193", "661"]);
        assert_eq!(read.ratings.items, [0, 1, 0]);
    }

    #[test]
    fn timestamps_are_kept_and_content_keys_the_rows() {
        let read = parse_ratings("f", TSV.as_bytes(), RatingFormat::Auto, false).unwrap();
        let times: Vec<Option<i64>> = read.ratings.keys.iter().map(|k| k.time).collect();
        assert_eq!(times, [Some(881250949), Some(891717742), Some(878887116)]);
        // A subset keeps each row's key.
        let last = read.ratings.subset(|row| row == 2);
        assert_eq!(last.keys, [read.ratings.keys[2]]);
        // The same row in another file has the same key, whatever its position.
        let again = parse_ratings(
            "g",
            b"x\ty\t1\t5\n196\t377\t1\t878887116\n",
            RatingFormat::Tsv,
            false,
        )
        .unwrap();
        assert_eq!(again.ratings.keys[1], read.ratings.keys[2]);
        let err = parse_ratings("f", b"1\t2\t3\tyesterday\n", RatingFormat::Tsv, false)
            .unwrap_err()
            .to_string();
        assert!(err.contains("timestamp \"yesterday\""), "{err}");
    }

    #[test]
    fn crlf_blank_lines_and_missing_timestamps_are_accepted() {
        let text = "u1,i1,1\r\n\r\nu2,i2,2.5\r\n";
        let read = parse_ratings("f", text.as_bytes(), RatingFormat::Csv, false).unwrap();
        assert_eq!(read.ratings.values, [1.0, 2.5]);
        assert_eq!(read.ratings.item_ids, ["i1", "i2"]);
    }

    #[test]
    fn bad_rows_name_the_file_and_line() {
        let cases = [
            ("1\t2\t3\n1\t2\n", 2, "expected user"),
            ("1\t2\t3\n\n1\t2\tx\n", 3, "not a number"),
            ("1\t2\tNaN\n", 1, "not finite"),
            ("1\t\t3\n", 1, "empty"),
            ("1\t2\t3\t4\t5\n", 1, "at most 4"),
        ];
        for (text, line, needle) in cases {
            let err =
                parse_ratings("data.tsv", text.as_bytes(), RatingFormat::Tsv, false).unwrap_err();
            let msg = err.to_string();
            assert!(
                matches!(&err, Error::BadRow { file, line: l, .. } if file == "data.tsv" && *l == line),
                "{msg}"
            );
            assert!(msg.contains(needle), "{needle:?} not in {msg}");
        }
    }

    #[test]
    fn bad_rows_can_be_skipped_and_counted() {
        let text = b"1::2::3::0\n1::2::oops::0\n\xff\xfe\n3::4::5\n";
        let read = parse_ratings("f", text, RatingFormat::Auto, true).unwrap();
        assert_eq!(read.skipped, 2);
        assert_eq!(read.ratings.values, [3.0, 5.0]);
        assert!(parse_ratings("f", text, RatingFormat::Auto, false).is_err());
    }

    #[test]
    fn a_forced_format_overrides_detection_and_empty_input_is_an_error() {
        // Forced TSV on a CSV file: every line has one field only.
        let err = parse_ratings("f", b"1,2,3\n", RatingFormat::Tsv, false).unwrap_err();
        assert!(matches!(err, Error::BadRow { line: 1, .. }), "{err}");
        let err =
            parse_ratings("f", b"userId,movieId,rating\n", RatingFormat::Auto, false).unwrap_err();
        assert!(err.to_string().contains("no ratings"), "{err}");
        let err = parse_ratings("f", b"12 13 4\n", RatingFormat::Auto, false).unwrap_err();
        assert!(err.to_string().contains("--format"), "{err}");
    }

    #[test]
    fn subsets_reintern_ids() {
        let read = parse_ratings("f", TSV.as_bytes(), RatingFormat::Tsv, false).unwrap();
        let odd = read.ratings.subset(|row| row == 1);
        assert_eq!(odd.user_ids, ["186"]);
        assert_eq!(odd.item_ids, ["302"]);
        assert_eq!((odd.users[0], odd.items[0]), (0, 0));
        assert!((read.ratings.mean() - 7.0 / 3.0).abs() < 1e-6);
    }
}
