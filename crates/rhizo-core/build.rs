//! Compiles the wire specs in `proto/` with protox (pure Rust, so no system `protoc` is needed)
//! and generates the prost types into `OUT_DIR/rhizo.v1.rs`.

use std::path::PathBuf;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    // Read at run time: a build script compiled for one checkout may be reused (same target
    // dir) for another at a different path, and must read that checkout's specs.
    let proto_dir = PathBuf::from(std::env::var("CARGO_MANIFEST_DIR")?).join("../../proto");
    let mut files: Vec<PathBuf> = std::fs::read_dir(&proto_dir)?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "proto"))
        .collect();
    files.sort();
    // Relative to the package root, so another checkout sharing the target dir is checked
    // against its own specs, not the ones this script last read.
    println!("cargo:rerun-if-changed=../../proto");
    for f in &files {
        if let Some(name) = f.file_name().and_then(|n| n.to_str()) {
            println!("cargo:rerun-if-changed=../../proto/{name}");
        }
    }
    let descriptors = protox::compile(&files, [&proto_dir])?;
    prost_build::Config::new()
        .bytes(["."])
        .compile_fds(descriptors)?;
    Ok(())
}
