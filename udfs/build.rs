//! Embeds every `rules/*.sql` file, so a new rule file becomes new functions with no code change.

use std::fmt::Write as _;
use std::path::PathBuf;
use std::{env, fs, io};

fn main() -> io::Result<()> {
    let rules =
        PathBuf::from(env::var("CARGO_MANIFEST_DIR").map_err(io::Error::other)?).join("rules");
    println!("cargo::rerun-if-changed={}", rules.display());
    let mut files: Vec<PathBuf> = fs::read_dir(&rules)?
        .map(|entry| entry.map(|e| e.path()))
        .collect::<io::Result<_>>()?;
    files.retain(|path| path.extension().is_some_and(|e| e == "sql"));
    files.sort();
    let mut code = String::from("pub(crate) static BUILTIN_RULES: &[(&str, &str)] = &[\n");
    for path in &files {
        println!("cargo::rerun-if-changed={}", path.display());
        let name = path
            .file_name()
            .and_then(|n| n.to_str())
            .unwrap_or_default();
        writeln!(
            code,
            "    ({:?}, include_str!({:?})),",
            format!("rules/{name}"),
            path.display()
        )
        .map_err(io::Error::other)?;
    }
    code.push_str("];\n");
    fs::write(
        PathBuf::from(env::var("OUT_DIR").map_err(io::Error::other)?).join("builtin_rules.rs"),
        code,
    )
}
