//! Where canon may write: never onto what it did not create.
//!
//! Every `--out` a command takes is checked here before anything is
//! computed, so a mistyped path cannot replace the extracts, the
//! definitions, the result cache or canon.yaml. Paths are compared after
//! resolving symbolic links and `..` (a path that does not exist yet is
//! resolved through its nearest existing ancestor), so a link or a detour
//! cannot reach a protected place either.

use std::path::{Component, Path, PathBuf};

use crate::error::{CanonError, Result};

/// The places of a project that no output may land on, inside, or above.
#[derive(Debug, Clone)]
pub struct Protected {
    places: Vec<(PathBuf, String)>,
}

impl Protected {
    /// The project's definitions (canon.yaml, the sign-offs, models/,
    /// metrics/ and its tests), its data
    /// (the configured data root and the run's, and every source folder in
    /// them: a model's `path` may lead elsewhere) and its caches (the
    /// configured one and the run's), whatever the run overrides.
    pub fn of_project(
        catalog: &crate::catalog::Catalog,
        data_root: &Path,
        cache_dir: Option<&Path>,
    ) -> Protected {
        let files = &catalog.files;
        let spec = &files.project.spec;
        let configured_root = files.root.join(&spec.data_root);
        let configured_cache = catalog.configured_cache_folder();
        let mut places = vec![
            (files.root.join("canon.yaml"), "canon.yaml".to_string()),
            (files.root.join(&spec.signoffs), "sign-off file".to_string()),
            (files.root.join(&spec.models), "models folder".to_string()),
            (files.root.join(&spec.metrics), "metrics folder".to_string()),
            (configured_root.clone(), "data root".to_string()),
            (data_root.to_path_buf(), "data root".to_string()),
            (configured_cache, "result cache".to_string()),
            (state_dir(&files.root), "volume state".to_string()),
        ];
        if let Some(cache) = cache_dir {
            places.push((cache.to_path_buf(), "result cache".to_string()));
        }
        for root in [&configured_root, &data_root.to_path_buf()] {
            for model in &files.models {
                for source in &model.spec.sources {
                    places.push((
                        root.join(&source.path),
                        format!("extract folder of {}/{}", model.spec.system, source.name),
                    ));
                }
            }
        }
        Protected {
            places: places
                .into_iter()
                .map(|(path, what)| (resolve(&path), what))
                .collect(),
        }
    }

    /// Refuses (exit 2) a result cache folder that is, is inside or holds a
    /// protected place other than a cache: the cache writes its own files
    /// there, which must not mix with definitions or extracts.
    pub fn check_cache_dir(&self, dir: &Path) -> Result<()> {
        let others = Protected {
            places: self
                .places
                .iter()
                .filter(|(_, what)| what != "result cache")
                .cloned()
                .collect(),
        };
        others.check(dir, "--cache-dir", "a folder of its own, e.g. .canon-cache")
    }

    /// Refuses (exit 2) an output path that is one of the protected places,
    /// inside one, or a folder that holds one.
    pub fn check_out(&self, out: &Path) -> Result<()> {
        self.check(
            out,
            "--out",
            "a path outside the project's definitions, data and cache",
        )
    }

    fn check(&self, path: &Path, flag: &str, instead: &str) -> Result<()> {
        let target = resolve(path);
        for (place, what) in &self.places {
            let relation = if target == *place {
                "is"
            } else if target.starts_with(place) {
                "is inside"
            } else if place.starts_with(&target) {
                "holds"
            } else {
                continue;
            };
            return Err(CanonError::request(format!(
                "{flag} {}: refused, it {relation} the project's {what} ({}); canon never writes \
                 over the project's definitions, data or cache: choose {instead}",
                path.display(),
                place.display()
            )));
        }
        Ok(())
    }
}

/// canon's own state folder in a project, `.canon-state` (the volume
/// check's last row counts): no writer may land on it.
pub fn state_dir(project: &Path) -> PathBuf {
    project.join(".canon-state")
}

/// `path` made absolute with links and `..` resolved: the nearest existing
/// ancestor is canonicalized and the rest is appended component by component.
pub fn resolve(path: &Path) -> PathBuf {
    let absolute = std::path::absolute(path).unwrap_or_else(|_| path.to_path_buf());
    let mut existing = absolute.as_path();
    let mut rest: Vec<Component<'_>> = Vec::new();
    let base = loop {
        if let Ok(real) = std::fs::canonicalize(existing) {
            break real;
        }
        match (existing.parent(), existing.components().next_back()) {
            (Some(parent), Some(last)) => {
                rest.push(last);
                existing = parent;
            }
            _ => break existing.to_path_buf(),
        }
    };
    let mut out = base;
    for c in rest.into_iter().rev() {
        match c {
            Component::ParentDir => {
                out.pop();
            }
            Component::CurDir => {}
            other => out.push(other.as_os_str()),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resolves_links_and_dotdot_of_paths_not_yet_there() {
        let dir = tempfile::tempdir().unwrap();
        let real = std::fs::canonicalize(dir.path()).unwrap();
        std::fs::create_dir(real.join("data")).unwrap();
        #[cfg(unix)]
        std::os::unix::fs::symlink(real.join("data"), real.join("link")).unwrap();
        assert_eq!(
            resolve(&real.join("new/../data/x.csv")),
            real.join("data/x.csv")
        );
        #[cfg(unix)]
        assert_eq!(resolve(&real.join("link/new/f")), real.join("data/new/f"));
    }

    #[test]
    fn refuses_the_place_inside_it_and_above_it() {
        let dir = tempfile::tempdir().unwrap();
        let root = std::fs::canonicalize(dir.path()).unwrap();
        std::fs::create_dir(root.join("data")).unwrap();
        let p = Protected {
            places: vec![(root.join("data"), "data root".into())],
        };
        for bad in [root.join("data"), root.join("data/a/b.csv"), root.clone()] {
            let e = p.check_out(&bad).unwrap_err();
            assert!(matches!(e, CanonError::Request(_)), "{bad:?}: {e}");
        }
        p.check_out(&root.join("out.csv")).unwrap();
        p.check_out(&root.join("datasets")).unwrap();
    }
}
