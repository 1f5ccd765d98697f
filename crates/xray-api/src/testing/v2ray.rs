//! Finding the `v2ray` binary, and the skip-or-fail rule when it is missing.

use std::io::{self, Write};
use std::path::{Path, PathBuf};

/// Set to `1` (CI does) to make a missing v2ray binary a test failure instead of a skip.
pub const REQUIRE_ENV: &str = "TOLLGATE_REQUIRE_V2RAY";
/// Overrides the binary's location (default `/usr/bin/v2ray`, then `v2ray` on `PATH`).
pub const BINARY_ENV: &str = "TOLLGATE_V2RAY_BIN";

/// A located v2ray 4.x binary.
#[derive(Clone, Debug)]
pub struct V2Ray {
    path: PathBuf,
}

impl V2Ray {
    /// Looks for the binary: `$TOLLGATE_V2RAY_BIN`, `/usr/bin/v2ray`, then `PATH`.
    pub fn locate() -> Option<V2Ray> {
        if let Some(explicit) = std::env::var_os(BINARY_ENV) {
            let path = PathBuf::from(explicit);
            return path.is_file().then_some(V2Ray { path });
        }
        let default = Path::new("/usr/bin/v2ray");
        if default.is_file() {
            return Some(V2Ray {
                path: default.to_path_buf(),
            });
        }
        let search = std::env::var_os("PATH")?;
        std::env::split_paths(&search)
            .map(|dir| dir.join("v2ray"))
            .find(|candidate| candidate.is_file())
            .map(|path| V2Ray { path })
    }

    /// The binary for a test named `test_name`, or `None` after printing a loud SKIP line.
    ///
    /// # Panics
    /// When the binary is missing and `TOLLGATE_REQUIRE_V2RAY=1`: in CI a skipped real-core test
    /// would be a silent hole.
    pub fn or_skip(test_name: &str) -> Option<V2Ray> {
        if let Some(found) = V2Ray::locate() {
            return Some(found);
        }
        let required = std::env::var(REQUIRE_ENV).is_ok_and(|v| v.trim() == "1");
        let hint = format!(
            "no v2ray binary (looked at ${BINARY_ENV}, /usr/bin/v2ray, PATH); install it with `apt-get install -y v2ray`"
        );
        if required {
            panic!("{test_name}: {hint}; {REQUIRE_ENV}=1 makes this a failure");
        }
        // Straight to the stderr handle: libtest captures `eprintln!` of passing tests, and a
        // skip must be seen.
        let _ = writeln!(
            io::stderr(),
            "\n######## SKIP {test_name}: {hint} ########\n"
        );
        None
    }

    /// The binary's path.
    pub fn path(&self) -> &Path {
        &self.path
    }
}
