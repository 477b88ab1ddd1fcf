//! `tally`: prints the lines, words and characters of its standard input, as `wc` does.

use std::io::Read;

fn main() {
    let mut text = String::new();
    if let Err(err) = std::io::stdin().read_to_string(&mut text) {
        eprintln!("tally: cannot read the standard input: {err}");
        std::process::exit(1);
    }
    println!("{}", report(&text));
}

/// Lines, words and characters, in `wc`'s order and layout.
fn report(text: &str) -> String {
    format!(
        "{:>7} {:>7} {:>7}",
        tally::lines::count(text),
        tally::words::count(text),
        tally::chars::count(text)
    )
}

#[cfg(test)]
mod tests {
    use super::report;

    #[test]
    fn reports_lines_words_and_characters() {
        assert_eq!(report("héllo tally\n"), "      1       2      12");
    }
}
