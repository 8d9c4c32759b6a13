//! Builds the bundled plugins (the `plugins/` workspace) to WebAssembly
//! components, so `cargo build` and `cargo test` need no other step.
//!
//! The guests build in release mode (small, quick for wasmtime to compile)
//! with their own target directory under the workspace's `target/`, since a
//! nested cargo cannot share the outer one's lock. Their location reaches
//! the kernel as `TRELLIS_PLUGINS_DIR`.
//!
//! It also embeds the shipped themes (`themes/`), file by file, so the
//! binary serves its UI wherever it runs (see `web::themes`).

use std::path::PathBuf;
use std::process::Command;

fn main() {
    embed_themes();
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

/// Writes `$OUT_DIR/shipped_themes.rs`: a list of `(path under themes/,
/// bytes)` for every file of every shipped theme.
fn embed_themes() {
    let manifest_dir = PathBuf::from(std::env::var_os("CARGO_MANIFEST_DIR").unwrap_or_default());
    let themes = manifest_dir.join("../themes");
    println!("cargo:rerun-if-changed={}", themes.display());
    let mut files = Vec::new();
    collect(&themes, &themes, &mut files);
    files.sort();
    let mut out = String::from("pub static SHIPPED: &[(&str, &[u8])] = &[\n");
    for (rel, abs) in files {
        println!("cargo:rerun-if-changed={}", abs.display());
        out.push_str(&format!(
            "    ({rel:?}, include_bytes!({:?})),\n",
            abs.display().to_string()
        ));
    }
    out.push_str("];\n");
    let dest =
        PathBuf::from(std::env::var_os("OUT_DIR").unwrap_or_default()).join("shipped_themes.rs");
    if let Err(e) = std::fs::write(&dest, out) {
        eprintln!("could not write {}: {e}", dest.display());
        std::process::exit(1);
    }
}

fn collect(root: &std::path::Path, dir: &std::path::Path, out: &mut Vec<(String, PathBuf)>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for e in entries.flatten() {
        let path = e.path();
        if path.is_dir() {
            println!("cargo:rerun-if-changed={}", path.display());
            collect(root, &path, out);
        } else if let Ok(rel) = path.strip_prefix(root) {
            let rel = rel.to_string_lossy().replace('\\', "/");
            out.push((rel, path.canonicalize().unwrap_or(path)));
        }
    }
}
