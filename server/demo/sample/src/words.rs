//! Counting words.

/// The number of words in `text`: runs of characters that are not whitespace.
pub fn count(text: &str) -> usize {
    text.split_whitespace().count()
}

#[cfg(test)]
mod tests {
    use super::count;

    #[test]
    fn counts_runs_of_non_whitespace() {
        assert_eq!(count(""), 0);
        assert_eq!(count("one"), 1);
        assert_eq!(count("  two\twords\n"), 2);
    }
}
