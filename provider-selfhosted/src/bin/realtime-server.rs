//! `realtime-server`: the self-hosted realtime server binary (being built; see issue 3).
fn main() {
    eprintln!("realtime-server is not built yet");
    std::process::exit(2);
}
