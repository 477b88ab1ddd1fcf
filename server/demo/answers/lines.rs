//! Counting lines.

/// The number of lines in `text`, as `wc -l` counts them: its newline characters.
pub fn count(text: &str) -> usize {
    text.bytes().filter(|&b| b == b'\n').count()
}

#[cfg(test)]
mod tests {
    use super::count;

    #[test]
    fn counts_newlines_like_wc() {
        assert_eq!(count(""), 0);
        assert_eq!(count("no newline"), 0);
        assert_eq!(count("one\n"), 1);
        assert_eq!(count("two\nlines\n"), 2);
        assert_eq!(count("crlf\r\nends\r\n"), 2);
    }
}
