//! The release profile builds most dependencies at a low optimisation level and lists the crates that
//! run per row or per batch at full optimisation. An upgrade that renames a listed crate, or brings
//! a new per-row crate, would otherwise make the engine silently slower: this test names it.

use std::collections::BTreeMap;

/// Crates whose names mark them as per-row or per-batch code.
const PER_ROW_PREFIXES: [&str; 13] = [
    "arrow",
    "object_store",
    "parquet",
    "datafusion-common",
    "datafusion-execution",
    "datafusion-physical-",
    "datafusion-functions",
    "datafusion-datasource",
    "zstd",
    "lz4",
    "brotli",
    "snap",
    "hashbrown",
];

/// Crates those prefixes catch that do not run per row in ebiq: planning, the cluster's RPC, and
/// file formats ebiq never reads.
const NOT_PER_ROW: [&str; 9] = [
    "arrow-flight",
    "arrow-avro",
    "datafusion-physical-optimizer",
    "datafusion-functions-nested",
    "datafusion-functions-table",
    "datafusion-datasource-avro",
    "datafusion-datasource-csv",
    "datafusion-datasource-json",
    "datafusion-datasource-arrow",
];

fn project_file(name: &str) -> String {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join(name);
    std::fs::read_to_string(&path).expect("Cargo.toml and Cargo.lock are checked in")
}

/// The `crate = { opt-level = X }` lines of one `[profile.NAME.package]` table.
fn package_levels(manifest: &str, profile: &str) -> BTreeMap<String, String> {
    let header = format!("[profile.{profile}.package]");
    let mut lines = manifest.lines().skip_while(|line| line.trim() != header);
    assert!(lines.next().is_some(), "Cargo.toml has no {header}");
    lines
        .take_while(|line| !line.trim_start().starts_with('['))
        .filter(|line| !line.trim().is_empty() && !line.trim_start().starts_with('#'))
        .map(|line| {
            let (name, setting) = line
                .split_once(" = ")
                .unwrap_or_else(|| panic!("unexpected line in {header}: {line}"));
            let level = setting
                .split("opt-level = ")
                .nth(1)
                .and_then(|rest| rest.split([' ', '}']).next())
                .unwrap_or_else(|| panic!("no opt-level in {header}: {line}"));
            (
                name.trim_matches('"').to_owned(),
                level.trim_matches('"').to_owned(),
            )
        })
        .collect()
}

fn locked_packages() -> Vec<String> {
    project_file("Cargo.lock")
        .lines()
        .filter_map(|line| line.strip_prefix("name = \""))
        .map(|name| name.trim_end_matches('"').to_owned())
        .collect()
}

#[test]
fn every_crate_a_profile_lists_is_one_the_build_uses() {
    let manifest = project_file("Cargo.toml");
    let locked = locked_packages();
    for profile in ["release", "dist"] {
        let levels = package_levels(&manifest, profile);
        assert!(
            levels.len() > 20,
            "[profile.{profile}.package] lists {levels:?}"
        );
        let stale: Vec<_> = levels
            .keys()
            .filter(|name| *name != "*" && !locked.contains(name))
            .collect();
        assert!(
            stale.is_empty(),
            "[profile.{profile}.package] lists crates no longer in Cargo.lock: {stale:?}"
        );
    }
}

/// A profile's package levels as Cargo applies them: `dist` inherits `release`'s and overrides some.
fn effective_levels(manifest: &str, profile: &str) -> BTreeMap<String, String> {
    let mut levels = package_levels(manifest, "release");
    if profile != "release" {
        levels.extend(package_levels(manifest, profile));
    }
    levels
}

#[test]
fn every_per_row_crate_is_fully_optimised_in_release_and_dist() {
    let manifest = project_file("Cargo.toml");
    let release_default = package_levels(&manifest, "release").remove("*");
    assert_eq!(
        release_default.as_deref(),
        Some("0"),
        "crates outside the lists are built without optimisation, for a short cold build"
    );
    for profile in ["release", "dist"] {
        let levels = effective_levels(&manifest, profile);
        let mut missing: Vec<_> = locked_packages()
            .into_iter()
            .filter(|name| PER_ROW_PREFIXES.iter().any(|p| name.starts_with(p)))
            .filter(|name| !NOT_PER_ROW.contains(&name.as_str()))
            .filter(|name| levels.get(name).map(String::as_str) != Some("3"))
            .collect();
        missing.dedup();
        assert!(
            missing.is_empty(),
            "per-row crates not at opt-level 3 in {profile}: {missing:?}"
        );
    }
}
