//! Counting characters.

/// The number of characters in `text`: Unicode scalar values, not bytes.
pub fn count(text: &str) -> usize {
    text.chars().count()
}

#[cfg(test)]
mod tests {
    use super::count;

    #[test]
    fn counts_characters() {
        assert_eq!(count(""), 0);
        assert_eq!(count("tally"), 5);
    }

    #[test]
    fn counts_characters_not_bytes() {
        assert_eq!(count("héllo"), 5);
        assert_eq!(count("🦀 crab"), 6);
    }
}
