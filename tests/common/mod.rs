//! What the binary's tests share: running `ebiq` from the project folder, and scratch folders.

#![allow(dead_code)]

pub mod server;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// The checked-out project.
pub fn project() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

/// The binary under test: this build's, or the one `EBIQ_BIN` names (a release build, to run these
/// tests over large data).
pub fn binary() -> std::path::PathBuf {
    std::env::var_os("EBIQ_BIN").map_or_else(|| env!("CARGO_BIN_EXE_ebiq").into(), Into::into)
}

/// Runs `ebiq args` in the project folder, whatever its exit code.
pub fn ebiq(args: &[&str]) -> Output {
    Command::new(binary())
        .args(args)
        .current_dir(project())
        .output()
        .expect("the process runs")
}

/// Runs `ebiq args` and fails the test, with ebiq's stderr, unless it succeeds.
pub fn ebiq_ok(args: &[&str]) -> Output {
    let output = ebiq(args);
    assert!(
        output.status.success(),
        "ebiq {args:?}: {}",
        stderr(&output)
    );
    output
}

/// What `ebiq` said on stderr.
pub fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

/// The report's queries, by name (`queries/*.sql` without `.sql`), in the order they run.
pub fn report_queries() -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(project().join("queries"))
        .expect("queries/ is checked in")
        .map(|entry| entry.expect("queries/ can be listed").path())
        .filter(|path| path.extension().is_some_and(|e| e == "sql"))
        .filter_map(|path| Some(path.file_stem()?.to_string_lossy().into_owned()))
        .collect();
    names.sort();
    names
}

/// The column names of a CSV output's header line (ebiq's CSVs quote no header), by position.
pub struct CsvHeader<'a>(Vec<&'a str>);

impl<'a> CsvHeader<'a> {
    /// The header, from the first of `lines`.
    pub fn read(lines: &mut std::str::Lines<'a>) -> Self {
        Self(lines.next().expect("a header line").split(',').collect())
    }

    /// The position of the column `name`.
    pub fn at(&self, name: &str) -> usize {
        self.0
            .iter()
            .position(|h| *h == name)
            .unwrap_or_else(|| panic!("no column {name} in {:?}", self.0))
    }
}

/// A folder path that does not exist yet, inside a temporary folder of its own that is removed
/// with everything in it when this is dropped, a failed test's included.
pub struct Scratch {
    path: PathBuf,
    _root: tempfile::TempDir,
}

impl std::ops::Deref for Scratch {
    type Target = Path;

    fn deref(&self) -> &Path {
        &self.path
    }
}

impl AsRef<Path> for Scratch {
    fn as_ref(&self) -> &Path {
        &self.path
    }
}

/// A [`Scratch`] folder named after the test `name`.
pub fn scratch(name: &str) -> Scratch {
    let root = tempfile::Builder::new()
        .prefix(&format!("ebiq-test-{name}-"))
        .tempdir()
        .expect("a temporary folder");
    Scratch {
        path: root.path().join(name),
        _root: root,
    }
}
