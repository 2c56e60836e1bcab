//! The trainer: generates data, trains, evaluates, gates and publishes models (issue #3).
//! Not built yet.

fn main() {
    eprintln!("trainer: not implemented yet (see issue #3)");
    std::process::exit(2);
}
