//! Writing a file so that a reader sees the old contents or the new, never
//! half of either: write beside it, sync, then rename over it.

use std::io::Write;
use std::path::Path;

use crate::error::{CanonError, Result};

/// Replaces `path` with `bytes` atomically (same-folder temporary, synced,
/// then renamed). A run killed mid-write leaves its hidden `.NAME.tmp-PID`
/// beside the target; it is not removed by later runs, since canon cannot
/// tell it from a user's file of that name.
pub fn write_file(path: &Path, bytes: &[u8]) -> Result<()> {
    let tmp = temporary(path);
    let written = std::fs::File::create(&tmp).and_then(|mut f| {
        f.write_all(bytes)?;
        f.sync_all()
    });
    if let Err(e) = written {
        let _ = std::fs::remove_file(&tmp);
        // Named by the file asked for: the temporary's name means nothing
        // to the reader.
        return Err(CanonError::io(path, e));
    }
    std::fs::rename(&tmp, path).map_err(|e| {
        let _ = std::fs::remove_file(&tmp);
        CanonError::io(path, e)
    })
}

/// The temporary `write_file` writes `path` through.
fn temporary(path: &Path) -> std::path::PathBuf {
    let dir = path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("out");
    dir.join(format!(".{name}.tmp-{}", std::process::id()))
}

/// Whether `write_file(path, …)` could create its temporary: run before a
/// long computation, so a read-only folder or a name too long for the
/// file system is said at once, not after minutes of work. The probe is
/// created new and removed at once; a file already of its name is left
/// alone (not canon's to remove) and taken as a yes.
pub fn can_write(path: &Path) -> std::io::Result<()> {
    let tmp = temporary(path);
    match std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(&tmp)
    {
        Ok(_) => std::fs::remove_file(&tmp),
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Ok(()),
        Err(e) => Err(e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replaces_the_file_and_leaves_nothing_beside_it() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("out.csv");
        std::fs::write(&path, b"old").unwrap();
        write_file(&path, b"new").unwrap();
        assert_eq!(std::fs::read(&path).unwrap(), b"new");
        let names: Vec<_> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names, ["out.csv"]);
    }
}
