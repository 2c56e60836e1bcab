//! The trainer's readers of training files on arbitrary bytes: MovieLens-style rating files
//! (`suite_data::ratings::parse_ratings`, every format, strict and skipping) and the fraud
//! CSV table (`suite_data::table::read_table`). What they return must be consistent.
#![no_main]

use libfuzzer_sys::fuzz_target;
use suite_data::Input;
use suite_data::ratings::{RatingFormat, parse_ratings};
use suite_data::table::{TableOptions, read_table};

fuzz_target!(|bytes: &[u8]| {
    for format in [
        RatingFormat::Auto,
        RatingFormat::Tsv,
        RatingFormat::Dcolon,
        RatingFormat::Csv,
    ] {
        for skip_bad_rows in [false, true] {
            if let Ok(read) = parse_ratings("fuzz", bytes, format, skip_bad_rows) {
                let r = &read.ratings;
                assert_ne!(read.format, RatingFormat::Auto);
                assert!(!r.is_empty());
                assert_eq!(r.users.len(), r.len());
                assert_eq!(r.items.len(), r.len());
                assert!(r.users.iter().all(|&u| (u as usize) < r.n_users()));
                assert!(r.items.iter().all(|&i| (i as usize) < r.n_items()));
                assert!(r.values.iter().all(|v| v.is_finite()));
                let _ = r.mean();
                let half = r.subset(|row| row % 2 == 0);
                assert_eq!(half.len(), r.len().div_ceil(2));
            }
        }
    }

    let input = Input::from_bytes("fuzz.csv", bytes.to_vec());
    for (label, key_column) in [("is_fraud", None), ("label", Some("id"))] {
        for skip_bad_rows in [false, true] {
            let options = TableOptions {
                label: label.to_owned(),
                skip_bad_rows,
                key_column: key_column.map(str::to_owned),
            };
            if let Ok(table) = read_table(&input, &options) {
                let p = table.n_features();
                assert!(p > 0);
                assert_eq!(table.values.len(), table.n_rows() * p);
                assert!(table.values.iter().all(|v| v.is_finite()));
                assert!(table.labels.iter().all(|&y| y <= 1));
                assert_eq!(table.keys.len(), table.n_rows());
                let _ = table.feature_ranges();
                let _ = table.positives();
                let _ = table.require_both_classes("fuzz");
                let all: Vec<usize> = (0..table.n_rows()).collect();
                assert_eq!(table.select(&all).values, table.values);
            }
        }
    }
});
