//! glibc's allocator set up for a scan that allocates and frees batch-sized buffers on every core.
//!
//! With glibc's defaults a scan of `opa` spent about 8% of its time in the kernel zeroing pages
//! (`clear_page_erms` under `memset`, `perf record` of `ebiq report` over 20M rows): each freed
//! buffer above glibc's moving mmap threshold was unmapped, or trimmed from its arena's top, and
//! the next batch's buffer faulted fresh zeroed pages back in, about 145k page faults over 100M
//! rows. Keeping buffers up to 32 MiB in the arenas and trimming only above 64 MiB takes that to
//! about 12k; one arena per core, rather than glibc's eight, keeps the memory those arenas hold
//! near what the default held (BENCHMARKS.md, "glibc's allocator").
//!
//! Anyone who sets glibc's own malloc settings in the environment (`GLIBC_TUNABLES`,
//! `MALLOC_ARENA_MAX`, ...) keeps them: this changes nothing then.

/// Buffers up to this size are reused from the arenas instead of being mapped and unmapped.
const MMAP_THRESHOLD: usize = 32 * 1024 * 1024;
/// Free memory at the top of an arena is returned to the system only above this size.
const TRIM_THRESHOLD: usize = 64 * 1024 * 1024;

/// The environment variables through which glibc takes its malloc settings.
const GLIBC_MALLOC_VARIABLES: [&str; 5] = [
    "MALLOC_ARENA_MAX",
    "MALLOC_MMAP_THRESHOLD_",
    "MALLOC_TRIM_THRESHOLD_",
    "MALLOC_TOP_PAD_",
    "MALLOC_MMAP_MAX_",
];

/// What to tell glibc's allocator.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct MallocSettings {
    arena_max: usize,
    mmap_threshold: usize,
    trim_threshold: usize,
}

/// The settings for `cores` cores, unless `variable` (a reader of the environment) shows that
/// glibc's malloc is already set up by whoever started us.
fn malloc_settings(
    cores: usize,
    variable: impl Fn(&str) -> Option<String>,
) -> Option<MallocSettings> {
    let tunables_set = variable("GLIBC_TUNABLES").is_some_and(|t| t.contains("glibc.malloc."));
    let legacy_set = GLIBC_MALLOC_VARIABLES
        .iter()
        .any(|name| variable(name).is_some());
    (!tunables_set && !legacy_set).then_some(MallocSettings {
        arena_max: cores.max(1),
        mmap_threshold: MMAP_THRESHOLD,
        trim_threshold: TRIM_THRESHOLD,
    })
}

/// Sets up glibc's allocator for ebiq's scans. Call it first in `main`, before any thread starts,
/// since an arena limit applies only to arenas not yet made.
pub fn tune() {
    let cores = std::thread::available_parallelism().map_or(1, usize::from);
    if let Some(settings) = malloc_settings(cores, |name| std::env::var(name).ok()) {
        apply(settings);
    }
}

#[cfg(all(target_os = "linux", target_env = "gnu"))]
#[allow(unsafe_code)]
fn apply(settings: MallocSettings) {
    let as_int = |value: usize| libc::c_int::try_from(value).unwrap_or(libc::c_int::MAX);
    // SAFETY: mallopt takes no pointers; it sets glibc's allocator parameters, and is called
    // before any other thread exists. A value glibc refuses is left at its default (it returns
    // 0), which costs only speed.
    unsafe {
        libc::mallopt(libc::M_ARENA_MAX, as_int(settings.arena_max));
        libc::mallopt(libc::M_MMAP_THRESHOLD, as_int(settings.mmap_threshold));
        libc::mallopt(libc::M_TRIM_THRESHOLD, as_int(settings.trim_threshold));
    }
}

#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
fn apply(_settings: MallocSettings) {}

#[cfg(test)]
mod tests {
    use super::*;

    fn environment(pairs: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
        let pairs: Vec<(String, String)> = pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        move |name| {
            pairs
                .iter()
                .find(|(k, _)| k == name)
                .map(|(_, v)| v.clone())
        }
    }

    #[test]
    fn one_arena_per_core_when_nothing_is_set() {
        assert_eq!(
            malloc_settings(6, environment(&[])),
            Some(MallocSettings {
                arena_max: 6,
                mmap_threshold: MMAP_THRESHOLD,
                trim_threshold: TRIM_THRESHOLD,
            })
        );
        assert_eq!(
            malloc_settings(0, environment(&[])).map(|s| s.arena_max),
            Some(1)
        );
    }

    #[test]
    fn glibc_settings_from_the_environment_are_kept() {
        for set in [
            ("GLIBC_TUNABLES", "glibc.malloc.arena_max=4"),
            ("MALLOC_ARENA_MAX", "4"),
            ("MALLOC_TRIM_THRESHOLD_", "0"),
        ] {
            assert_eq!(malloc_settings(2, environment(&[set])), None, "{set:?}");
        }
    }

    #[test]
    fn tunables_for_other_parts_of_glibc_do_not_count() {
        let settings = malloc_settings(
            2,
            environment(&[("GLIBC_TUNABLES", "glibc.pthread.rseq=0")]),
        );
        assert_eq!(settings.map(|s| s.arena_max), Some(2));
    }
}
