//! "Did you mean …?" for misspelt keys and variables.

/// Edit distance (insert, delete, substitute), over chars.
pub(crate) fn levenshtein(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    let mut cur = vec![0; b.len() + 1];
    for (i, ca) in a.chars().enumerate() {
        cur[0] = i + 1;
        for (j, cb) in b.iter().enumerate() {
            let substitute = prev[j] + usize::from(ca != *cb);
            cur[j + 1] = substitute.min(prev[j + 1] + 1).min(cur[j] + 1);
        }
        std::mem::swap(&mut prev, &mut cur);
    }
    prev[b.len()]
}

/// The candidate closest to `wanted`, if it is close enough to be a plausible typo: at most
/// 2 edits for short names, a bit more for long dotted keys (one edit per 6 characters, max 4).
pub(crate) fn closest<'a>(wanted: &str, candidates: impl IntoIterator<Item = &'a str>) -> Option<&'a str> {
    let limit = (wanted.chars().count() / 6).clamp(2, 4);
    candidates
        .into_iter()
        .map(|c| (levenshtein(wanted, c), c))
        .filter(|(d, _)| *d <= limit)
        .min_by_key(|(d, _)| *d)
        .map(|(_, c)| c)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn distances() {
        assert_eq!(levenshtein("database.hots", "database.host"), 2);
        assert_eq!(levenshtein("", "abc"), 3);
        assert_eq!(levenshtein("kitten", "sitting"), 3);
    }

    #[test]
    fn closest_ignores_far_candidates() {
        let keys = ["database.host", "database.port"];
        assert_eq!(closest("database.hots", keys), Some("database.host"));
        assert_eq!(closest("monitoring.prot", ["monitoring.port"]), Some("monitoring.port"));
        assert_eq!(closest("colour", keys), None);
    }
}
