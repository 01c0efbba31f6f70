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
    // A link (a shared signoffs.yaml) is written through to the file it
    // names, where it is: replaced by a plain file, the link was lost and
    // the shared file kept the old contents.
    let target = through_links(path).map_err(|e| CanonError::io(path, e))?;
    let (tmp, mut file) = create_temporary(&target).map_err(|e| CanonError::io(path, e))?;
    // A file replaced keeps its mode and group: a 0600 file came back 0644,
    // readable by every user.
    if let Ok(old) = std::fs::metadata(&target) {
        use std::os::unix::fs::MetadataExt;
        let _ = file.set_permissions(old.permissions());
        let _ = std::os::unix::fs::fchown(&file, None, Some(old.gid()));
    }
    let written = file.write_all(bytes).and_then(|()| file.sync_all());
    drop(file);
    if let Err(e) = written {
        let _ = std::fs::remove_file(&tmp);
        // Named by the file asked for: the temporary's name means nothing
        // to the reader.
        return Err(CanonError::io(path, e));
    }
    std::fs::rename(&tmp, &target).map_err(|e| {
        let _ = std::fs::remove_file(&tmp);
        CanonError::io(path, e)
    })
}

/// `path` with every link at its end followed (a relative link from the
/// link's own folder). Only a link of the user running canon (or root's)
/// is followed: one another user planted where canon writes (a report in
/// /tmp, a cache entry) would have canon replace whatever file it names,
/// as that user could not; it is refused, not followed and not replaced.
fn through_links(path: &Path) -> std::io::Result<PathBuf> {
    use std::os::unix::fs::MetadataExt;
    // SAFETY: geteuid has no preconditions and cannot fail.
    let me = unsafe { libc::geteuid() };
    let mut at = path.to_path_buf();
    for _ in 0..40 {
        match std::fs::symlink_metadata(&at) {
            Ok(meta) if meta.file_type().is_symlink() => {
                if meta.uid() != me && meta.uid() != 0 {
                    return Err(std::io::Error::new(
                        std::io::ErrorKind::PermissionDenied,
                        format!(
                            "{} is a link of another user (uid {}): canon writes through its \
                             own user's links only",
                            at.display(),
                            meta.uid()
                        ),
                    ));
                }
                let to = std::fs::read_link(&at)?;
                at = match at.parent() {
                    Some(dir) if to.is_relative() => dir.join(to),
                    _ => to,
                };
            }
            _ => return Ok(at),
        }
    }
    Err(std::io::Error::other("too many levels of links"))
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
    // The name's own bytes: a name outside UTF-8 grew threefold through
    // a lossy conversion, past what the file system takes.
    let name = path
        .file_name()
        .unwrap_or(std::ffi::OsStr::new("out"))
        .to_os_string();
    let mut tries = 0;
    loop {
        let mut random = [0u8; 6];
        getrandom::fill(&mut random).map_err(std::io::Error::other)?;
        let letters: String = random
            .iter()
            .map(|b| char::from(b"abcdefghijklmnopqrstuvwxyz0123456789"[usize::from(*b) % 36]))
            .collect();
        let mut tmp_name = std::ffi::OsString::from(".");
        tmp_name.push(&name);
        tmp_name.push(format!(".tmp-{letters}"));
        let tmp = dir.join(tmp_name);
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
    let (tmp, _) = create_temporary(&through_links(path)?)?;
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

    // A link at the target (a shared signoffs.yaml) stays a link: the file
    // it names is replaced, atomically, where it is.
    #[test]
    fn a_link_at_the_target_is_written_through() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join("shared")).unwrap();
        let (shared, link) = (
            dir.path().join("shared/signoffs.yaml"),
            dir.path().join("signoffs.yaml"),
        );
        std::fs::write(&shared, b"old").unwrap();
        std::os::unix::fs::symlink("shared/signoffs.yaml", &link).unwrap();
        write_file(&link, b"new").unwrap();
        assert!(std::fs::symlink_metadata(&link).unwrap().is_symlink());
        assert_eq!(std::fs::read(&shared).unwrap(), b"new");
        can_write(&link).unwrap();
        let names = |d: &Path| {
            let mut n: Vec<_> = std::fs::read_dir(d)
                .unwrap()
                .map(|e| e.unwrap().file_name())
                .collect();
            n.sort();
            n
        };
        assert_eq!(names(dir.path()), ["shared", "signoffs.yaml"]);
        assert_eq!(names(&dir.path().join("shared")), ["signoffs.yaml"]);
    }

    // A link another user planted where canon writes is neither followed
    // (its target replaced) nor replaced. Needs the right to give a link to
    // another user (root, as CI runs); elsewhere there is nothing to check.
    #[test]
    fn a_link_of_another_user_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let (victim, link) = (dir.path().join("victim"), dir.path().join("out.csv"));
        std::fs::write(&victim, b"mine").unwrap();
        std::os::unix::fs::symlink(&victim, &link).unwrap();
        if std::os::unix::fs::lchown(&link, Some(65534), None).is_err() {
            return;
        }
        let err = write_file(&link, b"new").unwrap_err().to_string();
        assert!(
            err.contains("is a link of another user (uid 65534)"),
            "{err}"
        );
        assert_eq!(std::fs::read(&victim).unwrap(), b"mine");
        assert!(std::fs::symlink_metadata(&link).unwrap().is_symlink());
    }

    // A file replaced keeps its mode: 0600 came back 0644.
    #[test]
    fn a_replaced_file_keeps_its_mode() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("private.csv");
        std::fs::write(&path, b"old").unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
        write_file(&path, b"new").unwrap();
        let mode = std::fs::metadata(&path).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
    }

    // A name outside UTF-8 is written under its own bytes (a lossy name
    // grew threefold, past what the file system takes).
    #[test]
    fn a_name_outside_utf8_is_written() {
        use std::os::unix::ffi::OsStrExt;
        let dir = tempfile::tempdir().unwrap();
        let mut name = vec![0xe9u8; 90];
        name.extend_from_slice(b".csv");
        let path = dir.path().join(std::ffi::OsStr::from_bytes(&name));
        can_write(&path).unwrap();
        write_file(&path, b"x").unwrap();
        assert_eq!(std::fs::read(&path).unwrap(), b"x");
    }
}
