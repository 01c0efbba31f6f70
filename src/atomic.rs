//! Writing a file so that a reader sees the old contents or the new, never
//! half of either: write beside it, sync, then rename over it.

use std::io::Write;
use std::path::{Path, PathBuf};

use crate::error::{CanonError, Result};

/// Replaces `path` with `bytes` atomically (a same-folder temporary,
/// synced, then renamed over it). The temporary is created new under a
/// name no one can guess (`.NAME.tmp-XXXXXX`, `O_EXCL`): a temporary of a
/// predictable name (`.NAME.tmp-PID`) was opened even when something was
/// already there, so a link planted under that name had canon write
/// through it into another file, and a user's file of that name was
/// overwritten. A run that fails removes its temporary; one killed
/// mid-write leaves it beside the target, and later runs do not remove it,
/// since canon cannot tell it from a user's file of that name.
pub fn write_file(path: &Path, bytes: &[u8]) -> Result<()> {
    let (tmp, mut file) = create_temporary(path).map_err(|e| CanonError::io(path, e))?;
    let written = file.write_all(bytes).and_then(|()| file.sync_all());
    drop(file);
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

/// A new temporary beside `path`, `.NAME.tmp-` and six random letters,
/// created exclusively (`O_EXCL`, so never through a link or over a file
/// already there) and readable as the file written directly would be
/// (0666 less the umask).
fn create_temporary(path: &Path) -> std::io::Result<(PathBuf, std::fs::File)> {
    use std::os::unix::fs::OpenOptionsExt;
    let dir = path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "out".into());
    let mut tries = 0;
    loop {
        let mut random = [0u8; 6];
        getrandom::fill(&mut random).map_err(std::io::Error::other)?;
        let letters: String = random
            .iter()
            .map(|b| char::from(b"abcdefghijklmnopqrstuvwxyz0123456789"[usize::from(*b) % 36]))
            .collect();
        let tmp = dir.join(format!(".{name}.tmp-{letters}"));
        match std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o666)
            .open(&tmp)
        {
            Ok(file) => return Ok((tmp, file)),
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists && tries < 8 => tries += 1,
            Err(e) => return Err(e),
        }
    }
}

/// Whether `write_file(path, …)` could create its temporary: run before a
/// long computation, so a read-only folder or a name too long for the
/// file system is said at once, not after minutes of work. The probe is a
/// temporary of its own, created new and removed at once.
pub fn can_write(path: &Path) -> std::io::Result<()> {
    let (tmp, _) = create_temporary(path)?;
    std::fs::remove_file(tmp)
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

    // Readable as a file written directly is (the temporary library's own
    // default is 0600), whatever the umask.
    #[test]
    fn the_file_has_the_mode_a_created_file_has() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let (direct, written) = (dir.path().join("direct"), dir.path().join("written"));
        std::fs::File::create(&direct).unwrap();
        write_file(&written, b"x").unwrap();
        let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode();
        assert_eq!(mode(&written), mode(&direct));
    }

    // A link at the target is replaced, never written through: the file it
    // points to keeps its bytes.
    #[test]
    fn a_link_at_the_target_is_replaced_not_followed() {
        let dir = tempfile::tempdir().unwrap();
        let (victim, out) = (dir.path().join("victim"), dir.path().join("out.csv"));
        std::fs::write(&victim, b"mine").unwrap();
        std::os::unix::fs::symlink(&victim, &out).unwrap();
        write_file(&out, b"new").unwrap();
        assert_eq!(std::fs::read(&victim).unwrap(), b"mine");
        assert!(!std::fs::symlink_metadata(&out).unwrap().is_symlink());
        assert_eq!(std::fs::read(&out).unwrap(), b"new");
        can_write(&out).unwrap();
        let mut names: Vec<_> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        names.sort();
        assert_eq!(names, ["out.csv", "victim"]);
    }
}
