//! "Did you mean …?": the nearest candidate to a misspelt word.

/// The candidate closest to `word`, ignoring ASCII case, if it is close enough to be a
/// plausible typo: up to one edit per three characters, at most three.
pub(crate) fn nearest<'a>(
    word: &str,
    candidates: impl IntoIterator<Item = &'a str>,
) -> Option<&'a str> {
    let word = word.to_ascii_lowercase();
    let len = word.chars().count();
    let limit = (len / 3).clamp(1, 3);
    candidates
        .into_iter()
        // The distance is at least the difference in length: skip far candidates cheaply.
        .filter(|c| c.chars().count().abs_diff(len) <= limit)
        .map(|c| (distance(&word, &c.to_ascii_lowercase()), c))
        .filter(|(d, _)| *d <= limit)
        .min_by_key(|(d, _)| *d)
        .map(|(_, c)| c)
}

/// Edit distance where swapping two neighbouring characters counts as one edit
/// (optimal string alignment): `dialy` is one edit from `daily`.
fn distance(a: &str, b: &str) -> usize {
    let a: Vec<char> = a.chars().collect();
    let b: Vec<char> = b.chars().collect();
    // Three rolling rows: two back is needed for transpositions.
    let mut before: Vec<usize> = vec![0; b.len() + 1];
    let mut previous: Vec<usize> = (0..=b.len()).collect();
    let mut current: Vec<usize> = vec![0; b.len() + 1];
    for i in 1..=a.len() {
        current[0] = i;
        for j in 1..=b.len() {
            let cost = usize::from(a[i - 1] != b[j - 1]);
            let mut best = (previous[j] + 1)
                .min(current[j - 1] + 1)
                .min(previous[j - 1] + cost);
            if i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1] {
                best = best.min(before[j - 2] + 1);
            }
            current[j] = best;
        }
        std::mem::swap(&mut before, &mut previous);
        std::mem::swap(&mut previous, &mut current);
    }
    previous[b.len()]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn distances() {
        for (a, b, d) in [
            ("", "", 0),
            ("mon", "mon", 0),
            ("mo", "mon", 1),
            ("dialy", "daily", 1),
            ("europe/berln", "europe/berlin", 1),
            ("abc", "xyz", 3),
        ] {
            assert_eq!(distance(a, b), d, "{a} vs {b}");
        }
    }

    #[test]
    fn nearest_ignores_case_and_rejects_far_words() {
        let days = ["MON", "TUE", "WED"];
        assert_eq!(nearest("mon", days), Some("MON"));
        assert_eq!(nearest("Tues", days), Some("TUE"));
        assert_eq!(nearest("xyz", days), None);
    }
}
