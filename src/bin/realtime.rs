//! The `realtime` command-line client; see [`realtime::cli`].

fn main() -> std::process::ExitCode {
    realtime::cli::main()
}
