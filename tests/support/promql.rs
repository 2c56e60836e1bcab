//! Enough of Prometheus's formats for the dashboards test (`e2e/dashboards.rs`): which metric
//! families a `/metrics` page has samples for, and which metric names a PromQL expression
//! (already parsed by promtool) reads.

use std::collections::{BTreeMap, BTreeSet};

/// The names a `/metrics` page has samples for, and their `# TYPE`s.
#[derive(Debug, Default)]
pub struct Exported {
    samples: BTreeSet<String>,
    types: BTreeMap<String, String>,
}

impl Exported {
    pub fn parse(text: &str) -> Self {
        let mut exported = Self::default();
        for line in text.lines() {
            if let Some(rest) = line.strip_prefix("# TYPE ") {
                let mut parts = rest.split_whitespace();
                if let (Some(name), Some(kind)) = (parts.next(), parts.next()) {
                    exported.types.insert(name.to_owned(), kind.to_owned());
                }
            } else if !line.starts_with('#') && !line.trim().is_empty() {
                let end = line.find(['{', ' ']).unwrap_or(line.len());
                exported.samples.insert(line[..end].to_owned());
            }
        }
        exported
    }

    /// The family a queried name belongs to, if it has samples: the name itself (a counter or
    /// gauge), or a histogram's with its `_bucket`, `_sum` or `_count` suffix taken off.
    pub fn family_of(&self, name: &str) -> Option<String> {
        if !self.samples.contains(name) {
            return None;
        }
        for suffix in ["_bucket", "_sum", "_count"] {
            if let Some(family) = name.strip_suffix(suffix)
                && matches!(
                    self.types.get(family).map(String::as_str),
                    Some("histogram" | "summary")
                )
            {
                return Some(family.to_owned());
            }
        }
        self.types.contains_key(name).then(|| name.to_owned())
    }

    pub fn families(&self) -> BTreeSet<String> {
        self.samples
            .iter()
            .filter_map(|s| self.family_of(s))
            .collect()
    }
}

/// The metric names in a PromQL expression: identifiers outside strings, label matchers and
/// ranges that are not functions, aggregations, keywords, label lists or numbers. promtool
/// has parsed the expression first, so this sees only valid PromQL.
pub fn metric_names(expr: &str) -> BTreeSet<String> {
    // Aggregation operators and keywords are reserved: never metric names.
    const KEYWORDS: &str = "sum min max avg group stddev stdvar count count_values bottomk topk \
         quantile limitk limit_ratio and or unless bool offset by without on ignoring group_left \
         group_right inf nan";
    const LABEL_LISTS: &str = "by without on ignoring group_left group_right";
    // Blank out strings, `{...}` matchers and `[...]` ranges.
    let mut plain = String::with_capacity(expr.len());
    let mut quote = None;
    let mut closing = None;
    for c in expr.chars() {
        match (quote, closing) {
            (Some(q), _) => {
                if c == q {
                    quote = None;
                }
            }
            (None, _) if matches!(c, '"' | '\'' | '`') => quote = Some(c),
            (None, Some(end)) => {
                if c == end {
                    closing = None;
                }
            }
            (None, None) if c == '{' => closing = Some('}'),
            (None, None) if c == '[' => closing = Some(']'),
            (None, None) => {
                plain.push(c);
                continue;
            }
        }
        plain.push(' ');
    }
    let chars: Vec<char> = plain.chars().collect();
    let mut names = BTreeSet::new();
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        if c.is_ascii_digit() || c == '.' {
            while i < chars.len() && (chars[i].is_ascii_alphanumeric() || chars[i] == '.') {
                i += 1;
            }
            continue;
        }
        if !(c.is_ascii_alphabetic() || c == '_' || c == ':') {
            i += 1;
            continue;
        }
        let start = i;
        while i < chars.len()
            && (chars[i].is_ascii_alphanumeric() || chars[i] == '_' || chars[i] == ':')
        {
            i += 1;
        }
        let word: String = chars[start..i].iter().collect();
        let mut next = i;
        while next < chars.len() && chars[next].is_whitespace() {
            next += 1;
        }
        let called = chars.get(next) == Some(&'(');
        if called && LABEL_LISTS.split_whitespace().any(|w| w == word) {
            // Skip the label list.
            while i < chars.len() && chars[i] != ')' {
                i += 1;
            }
        } else if !called
            && !KEYWORDS
                .split_whitespace()
                .any(|w| w.eq_ignore_ascii_case(&word))
        {
            names.insert(word);
        }
    }
    names
}

#[cfg(test)]
mod tests {
    use super::{Exported, metric_names};

    #[test]
    fn a_histogram_suffix_maps_to_its_family_and_a_bare_histogram_name_to_none() {
        let page = "# TYPE lat histogram\nlat_bucket{le=\"1\"} 1\nlat_sum 1\nlat_count 1\n\
                    # TYPE up gauge\nup 1\n# TYPE empty_total counter\n";
        let exported = Exported::parse(page);
        let family = |name| exported.family_of(name);
        assert_eq!(family("lat_bucket").as_deref(), Some("lat"));
        assert_eq!(family("lat_count").as_deref(), Some("lat"));
        assert_eq!(family("up").as_deref(), Some("up"));
        assert_eq!(family("lat"), None, "a histogram is queried by its samples");
        assert_eq!(
            family("empty_total"),
            None,
            "a family without samples is not exported"
        );
        assert_eq!(family("down"), None);
    }

    #[test]
    fn metric_names_skips_functions_labels_matchers_ranges_and_keywords() {
        let expr = r#"sum by (outcome) (rate(http_requests_total{service="x", outcome=~"a|b"}[5m])) / ignoring (outcome) group_left sum(rate(http_requests_total[1m] offset 5m)) > 0.5 or histogram_quantile(0.99, sum by (le) (rate(lat_bucket{a="}"}[$x]))) unless on(model) up"#;
        let names: Vec<String> = metric_names(expr).into_iter().collect();
        assert_eq!(names, ["http_requests_total", "lat_bucket", "up"]);
    }
}
