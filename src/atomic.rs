//! Writing a file so that a reader sees the old contents or the new, never
//! half of either: write beside it, then rename over it.

use std::path::Path;

use crate::error::{CanonError, Result};

/// Replaces `path` with `bytes` atomically (same-folder temporary + rename).
pub fn write_file(path: &Path, bytes: &[u8]) -> Result<()> {
    let dir = path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("out");
    let tmp = dir.join(format!(".{name}.tmp-{}", std::process::id()));
    std::fs::write(&tmp, bytes).map_err(|e| CanonError::io(&tmp, e))?;
    std::fs::rename(&tmp, path).map_err(|e| {
        let _ = std::fs::remove_file(&tmp);
        CanonError::io(path, e)
    })
}
