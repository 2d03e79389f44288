//! Links the shim's binaries with packed relative relocations (`DT_RELR`, glibc 2.36+,
//! binutils 2.38+): a position-independent Rust binary has one relocation per pointer in its
//! read-only data, about 1 MB of `.rela.dyn` that the loader reads into every shim process;
//! packed, it is a few kilobytes (docs/adr/0014).

// Cargo reads a build script's directives from its standard output.
#[allow(clippy::disallowed_macros)]
fn main() {
    println!("cargo:rerun-if-changed=build.rs");
    let os = std::env::var("CARGO_CFG_TARGET_OS").unwrap_or_default();
    let env = std::env::var("CARGO_CFG_TARGET_ENV").unwrap_or_default();
    if os == "linux" && env == "gnu" {
        println!("cargo:rustc-link-arg-bins=-Wl,-z,pack-relative-relocs");
    }
}
