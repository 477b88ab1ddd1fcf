//! `tally`: prints how many words its standard input holds.

use std::io::Read;

fn main() {
    let mut text = String::new();
    if let Err(err) = std::io::stdin().read_to_string(&mut text) {
        eprintln!("tally: cannot read the standard input: {err}");
        std::process::exit(1);
    }
    println!("{}", tally::words::count(&text));
}
