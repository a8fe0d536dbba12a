//! `realtime-bench`: the benchmark harness (being built; see issue 8).
fn main() {
    eprintln!("realtime-bench has no scenario yet");
    std::process::exit(2);
}
