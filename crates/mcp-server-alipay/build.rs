//! How the `mcp-server-alipay` binary is linked, where the linker is Rust's own LLD (the default on
//! x86_64 Linux with glibc since Rust 1.90, the workspace's oldest Rust):
//!
//! - `--symbol-ordering-file=hot-functions.txt`: the functions a start and the common calls run go
//!   first, together. Without it they are spread over all 17 MB of code, and the kernel maps whole
//!   page-cache folios around each page touched: 12–14 MB of the idle RSS was code, now 2 MB
//!   (docs/benchmarks.md). A name the build does not have is skipped, so a stale list costs only
//!   the layout; `scripts/hot-functions.sh` regenerates it and `--check` says how much matches.
//!   (The crate builds as one codegen unit in release, Cargo.toml says why: its names then survive
//!   edits.)
//! - `-z pack-relative-relocs`: the 34,000 relative relocations as a 9 KB bitmap (DT_RELR) rather than
//!   800 KB of records the loader reads at every start. glibc applies it from 2.36, and a binary
//!   with it refuses to load on an older one, so only when building for the glibc it runs here.
//!
//! Any other linker (a `linker` setting, `-fuse-ld`, another target) gets neither, and links as usual.

use std::env;
use std::path::Path;
use std::process::Command;

const BIN: &str = "mcp-server-alipay";

fn main() {
    println!("cargo:rerun-if-changed=hot-functions.txt");
    println!("cargo:rerun-if-changed=build.rs");
    if !links_with_rust_lld() {
        return;
    }
    let list =
        Path::new(&env::var("CARGO_MANIFEST_DIR").unwrap_or_default()).join("hot-functions.txt");
    if list.is_file() {
        println!(
            "cargo:rustc-link-arg-bin={BIN}=-Wl,--symbol-ordering-file={}",
            list.display()
        );
        println!("cargo:rustc-link-arg-bin={BIN}=-Wl,--no-warn-symbol-ordering");
    }
    if native_glibc_at_least(2, 36) {
        println!("cargo:rustc-link-arg-bin={BIN}=-Wl,-z,pack-relative-relocs");
    }
}

/// x86_64 Linux with glibc and no linker chosen by hand: rustc links with its bundled LLD.
fn links_with_rust_lld() -> bool {
    let cfg = |key: &str| env::var(key).unwrap_or_default();
    let flags = cfg("CARGO_ENCODED_RUSTFLAGS");
    cfg("CARGO_CFG_TARGET_ARCH") == "x86_64"
        && cfg("CARGO_CFG_TARGET_OS") == "linux"
        && cfg("CARGO_CFG_TARGET_ENV") == "gnu"
        && env::var_os("RUSTC_LINKER").is_none()
        && !flags.contains("linker")
        && !flags.contains("link-self-contained")
        && !flags.contains("fuse-ld")
}

/// Building for this machine, whose glibc (`getconf GNU_LIBC_VERSION`: "glibc 2.36") is at least
/// `major.minor`. Anything unexpected answers no.
fn native_glibc_at_least(major: u32, minor: u32) -> bool {
    if env::var("HOST").ok() != env::var("TARGET").ok() {
        return false;
    }
    let Ok(out) = Command::new("getconf").arg("GNU_LIBC_VERSION").output() else {
        return false;
    };
    let text = String::from_utf8_lossy(&out.stdout);
    let Some(version) = text.trim().strip_prefix("glibc ") else {
        return false;
    };
    let mut parts = version.split('.').map(|p| p.parse::<u32>().ok());
    match (parts.next().flatten(), parts.next().flatten()) {
        (Some(a), Some(b)) => (a, b) >= (major, minor),
        _ => false,
    }
}
