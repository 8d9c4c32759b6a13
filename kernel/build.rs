//! Builds the bundled plugins (the `plugins/` workspace) to WebAssembly
//! components, so `cargo build` and `cargo test` need no other step.
//!
//! The guests build in release mode (small, quick for wasmtime to compile)
//! with their own target directory under the workspace's `target/`, since a
//! nested cargo cannot share the outer one's lock. Their location reaches
//! the kernel as `TRELLIS_PLUGINS_DIR`.

use std::path::PathBuf;
use std::process::Command;

fn main() {
    let manifest_dir = PathBuf::from(std::env::var_os("CARGO_MANIFEST_DIR").unwrap_or_default());
    let root = manifest_dir.parent().map(PathBuf::from).unwrap_or_default();
    let plugins = root.join("plugins");
    let target_dir = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| root.join("target"))
        .join("plugins");
    println!(
        "cargo:rerun-if-changed={}",
        plugins.join("Cargo.toml").display()
    );
    println!(
        "cargo:rerun-if-changed={}",
        plugins.join("Cargo.lock").display()
    );
    // Every plugin crate (and the SDK): whatever sits in `plugins/` but its
    // own build output.
    if let Ok(entries) = std::fs::read_dir(&plugins) {
        for e in entries.flatten() {
            if e.path().is_dir() && e.file_name() != "target" {
                println!("cargo:rerun-if-changed={}", e.path().display());
            }
        }
    }
    println!("cargo:rerun-if-changed={}", root.join("wit").display());

    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let mut cmd = Command::new(cargo);
    cmd.current_dir(&plugins)
        .args([
            "build",
            "--release",
            "--target",
            "wasm32-wasip2",
            "--workspace",
        ])
        .arg("--target-dir")
        .arg(&target_dir);
    // What the outer build set for the host must not leak into the guests.
    for var in [
        "CARGO_ENCODED_RUSTFLAGS",
        "RUSTFLAGS",
        "CARGO_BUILD_TARGET",
        "CARGO_TARGET_DIR",
        "CARGO_PRIMARY_PACKAGE",
        "CARGO_MANIFEST_DIR",
        "CARGO_MANIFEST_PATH",
        "RUSTC_WORKSPACE_WRAPPER",
        "CARGO_PROFILE_RELEASE_DEBUG",
    ] {
        cmd.env_remove(var);
    }
    let status = cmd.status();
    match status {
        Ok(s) if s.success() => {}
        Ok(s) => {
            eprintln!(
                "building the plugins failed ({s}); is the wasm32-wasip2 target installed? \
                 Run `rustup target add wasm32-wasip2`."
            );
            std::process::exit(1);
        }
        Err(e) => {
            eprintln!("could not run cargo to build the plugins: {e}");
            std::process::exit(1);
        }
    }
    println!(
        "cargo:rustc-env=TRELLIS_PLUGINS_DIR={}",
        target_dir.join("wasm32-wasip2").join("release").display()
    );
}
