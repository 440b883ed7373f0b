//! "Did you mean …?": the nearest candidate by edit distance.

/// The candidate closest to `word`, if it is close enough to be a plausible typo.
pub fn nearest<'a, I>(word: &str, candidates: I) -> Option<&'a str>
where
    I: IntoIterator<Item = &'a str>,
{
    let len = word.chars().count();
    let limit = (len / 3).max(2);
    let word = word.to_lowercase();
    candidates
        .into_iter()
        // The distance is at least the difference in length: skip far candidates without
        // computing it, so a 100 KB word costs a length check, not 100 KB × every candidate.
        .filter(|c| c.chars().count().abs_diff(len) <= limit)
        .map(|c| (distance(&word, &c.to_lowercase()), c))
        .filter(|(d, _)| *d <= limit)
        .min_by_key(|(d, _)| *d)
        .map(|(_, c)| c)
}

/// Levenshtein distance (insert, delete, substitute), over characters.
pub fn distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut row: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut prev = row[0];
        row[0] = i + 1;
        for (j, cb) in b.iter().enumerate() {
            let cur = row[j + 1];
            row[j + 1] = if ca == *cb {
                prev
            } else {
                1 + prev.min(cur).min(row[j])
            };
            prev = cur;
        }
    }
    row[b.len()]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn suggests_close_words_only() {
        let keys = ["needs", "run", "exec", "retries", "retry_delay"];
        assert_eq!(nearest("need", keys), Some("needs"));
        assert_eq!(nearest("retires", keys), Some("retries"));
        assert_eq!(nearest("Run", keys), Some("run"));
        assert_eq!(nearest("completely-different", keys), None);
        assert_eq!(distance("kitten", "sitting"), 3);
        assert_eq!(distance("", "abc"), 3);
    }
}
