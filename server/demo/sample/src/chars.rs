//! Counting characters.

/// The number of characters in `text`: Unicode scalar values, not bytes.
pub fn count(text: &str) -> usize {
    todo!("count the characters of {text:?}")
}
