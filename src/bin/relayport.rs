//! The `relayport` command-line client; see [`relayport::cli`].

fn main() -> std::process::ExitCode {
    relayport::cli::main()
}
