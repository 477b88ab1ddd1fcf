//! tally: counts the words, lines and characters of a text, like a small `wc`.

pub mod chars;
pub mod lines;
pub mod words;
