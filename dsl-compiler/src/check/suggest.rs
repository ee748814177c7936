//! "Did you mean …?" hints: the closest candidate by edit distance (optimal string alignment,
//! so a swap of two neighbours costs one), ignoring case.

/// The edit distance between two names, ignoring ASCII case.
pub(super) fn distance(a: &str, b: &str) -> usize {
    let a: Vec<char> = a.chars().map(|c| c.to_ascii_lowercase()).collect();
    let b: Vec<char> = b.chars().map(|c| c.to_ascii_lowercase()).collect();
    let width = b.len() + 1;
    let mut d = vec![0usize; (a.len() + 1) * width];
    for i in 0..=a.len() {
        d[i * width] = i;
    }
    for (j, cell) in d.iter_mut().enumerate().take(width) {
        *cell = j;
    }
    for i in 1..=a.len() {
        for j in 1..=b.len() {
            let cost = usize::from(a[i - 1] != b[j - 1]);
            let mut best = (d[(i - 1) * width + j] + 1)
                .min(d[i * width + j - 1] + 1)
                .min(d[(i - 1) * width + j - 1] + cost);
            if i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1] {
                best = best.min(d[(i - 2) * width + j - 2] + 1);
            }
            d[i * width + j] = best;
        }
    }
    d[a.len() * width + b.len()]
}

/// The candidate closest to `name`, if it is close enough to be a plausible typo. When none is
/// a single edit away, a candidate that `name` extends with words (`format_number` for
/// `format`) is the one meant, before a farther spelling (`format_date`).
pub(super) fn closest<'c>(
    name: &str,
    candidates: impl IntoIterator<Item = &'c str>,
) -> Option<&'c str> {
    let candidates: Vec<&'c str> = candidates.into_iter().collect();
    let limit = name.chars().count().div_ceil(3);
    let best = candidates
        .iter()
        .filter(|c| **c != name)
        .map(|c| (distance(name, c), *c))
        .filter(|(d, _)| *d <= limit.max(1))
        .min_by_key(|(d, _)| *d);
    if let Some((d, c)) = best {
        if d <= 1 {
            return Some(c);
        }
    }
    let extended = candidates
        .iter()
        .filter(|c| {
            name.len() > c.len() + 1
                && name.is_char_boundary(c.len())
                && name[..c.len()].eq_ignore_ascii_case(c)
                && name[c.len()..].starts_with('_')
        })
        .max_by_key(|c| c.len());
    extended.copied().or(best.map(|(_, c)| c))
}

/// "did you mean `X`?" for the closest candidate.
pub(super) fn did_you_mean<'c>(
    name: &str,
    candidates: impl IntoIterator<Item = &'c str>,
) -> Option<String> {
    closest(name, candidates).map(|c| format!("did you mean `{c}`?"))
}

/// "did you mean `X`?" when there is a close candidate, else "{what} are `a`, `b`, `c`" (or
/// "there are no …" / "it has no …" for an empty list). `what` reads like "the declared
/// templates" or "its fields".
pub(super) fn hint_or_list(name: &str, what: &str, candidates: &[&str]) -> String {
    did_you_mean(name, candidates.iter().copied()).unwrap_or_else(|| {
        if candidates.is_empty() {
            match what.strip_prefix("its ") {
                Some(rest) => format!("it has no {rest}"),
                None => format!("there are no {}", what.strip_prefix("the ").unwrap_or(what)),
            }
        } else {
            format!("{what} are {}", list(candidates))
        }
    })
}

/// `` `a`, `b`, `c` ``.
pub(super) fn list(items: &[&str]) -> String {
    items
        .iter()
        .map(|i| format!("`{i}`"))
        .collect::<Vec<_>>()
        .join(", ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn distance_counts_edits_and_swaps() {
        assert_eq!(distance("Product", "Product"), 0);
        assert_eq!(distance("Prodcut", "Product"), 1);
        assert_eq!(distance("qty", "quantity"), 5);
        assert_eq!(distance("ORDER", "order"), 0);
        assert_eq!(distance("", "abc"), 3);
        assert_eq!(distance("kitten", "sitting"), 3);
    }

    #[test]
    fn closest_ignores_far_candidates() {
        let names = ["Product", "Order", "Session"];
        assert_eq!(closest("Prodcut", names), Some("Product"));
        assert_eq!(closest("order", names), Some("Order"));
        assert_eq!(closest("Invoice", names), None);
        let functions = ["format", "format_date", "round"];
        assert_eq!(closest("format_number", functions), Some("format"));
        assert_eq!(closest("format_dat", functions), Some("format_date"));
        assert_eq!(
            did_you_mean("America/New_Yrok", ["America/New_York", "Europe/Paris"]),
            Some("did you mean `America/New_York`?".to_string())
        );
        assert_eq!(
            hint_or_list("urgent", "declared queues", &["critical", "default", "low"]),
            "declared queues are `critical`, `default`, `low`"
        );
        assert_eq!(
            hint_or_list("x", "the declared templates", &[]),
            "there are no declared templates"
        );
        assert_eq!(
            hint_or_list("x", "its parameters", &[]),
            "it has no parameters"
        );
    }
}
