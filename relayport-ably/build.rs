//! Records the compiler version for the agent string (`rust/<version>`).

fn main() {
    let rustc = std::env::var("RUSTC").unwrap_or_else(|_| "rustc".into());
    let version = std::process::Command::new(rustc)
        .arg("--version")
        .output()
        .ok()
        .and_then(|o| String::from_utf8(o.stdout).ok())
        .and_then(|v| v.split_whitespace().nth(1).map(str::to_owned))
        .filter(|v| {
            v.chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '.' || c == '-')
        })
        .unwrap_or_else(|| "unknown".into());
    println!("cargo:rustc-env=RELAYPORT_ABLY_RUSTC={version}");
    println!("cargo:rerun-if-env-changed=RUSTC");
}
