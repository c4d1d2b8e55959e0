//! The virtual root: `VPath` is a path as the client sees it (`/` is the served directory), and
//! `Root` is the only code that turns one into a real filesystem path. Every path a client names
//! passes through `Root::existing` or `Root::entry`, which refuse anything — `..`, absolute
//! paths, symlinks — that would land outside the served directory.

use std::ffi::OsStr;
use std::io;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

/// A normalized client-side path: starts with `/`, has no `.`/`..`/empty components and no
/// trailing slash (except the root itself). Bytes, because file names need not be UTF-8.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct VPath(Vec<u8>);

impl VPath {
    pub fn root() -> VPath {
        VPath(b"/".to_vec())
    }

    /// Resolves `arg` (absolute, or relative to `self`) lexically. `..` at the root stays at the
    /// root, as it does in a chroot.
    pub fn join(&self, arg: &[u8]) -> VPath {
        let mut parts: Vec<&[u8]> = Vec::new();
        let base: &[u8] = if arg.first() == Some(&b'/') { b"" } else { &self.0 };
        for part in base.split(|&b| b == b'/').chain(arg.split(|&b| b == b'/')) {
            match part {
                b"" | b"." => {}
                b".." => {
                    parts.pop();
                }
                name => parts.push(name),
            }
        }
        let mut path = Vec::with_capacity(self.0.len() + arg.len() + 1);
        for part in &parts {
            path.push(b'/');
            path.extend_from_slice(part);
        }
        if path.is_empty() {
            path.push(b'/');
        }
        VPath(path)
    }

    pub fn parent(&self) -> VPath {
        self.join(b"..")
    }

    pub fn is_root(&self) -> bool {
        self.0 == b"/"
    }

    /// The last component (empty for the root).
    pub fn file_name(&self) -> &[u8] {
        let at = self.0.iter().rposition(|&b| b == b'/').map_or(0, |i| i + 1);
        &self.0[at..]
    }

    pub fn as_bytes(&self) -> &[u8] {
        &self.0
    }

    /// For logs.
    pub fn display(&self) -> String {
        String::from_utf8_lossy(&self.0).into_owned()
    }
}

/// The served directory, canonicalized once at start.
#[derive(Debug)]
pub struct Root {
    dir: PathBuf,
}

impl Root {
    pub fn new(dir: &Path) -> io::Result<Root> {
        let dir = dir.canonicalize()?;
        if !dir.is_dir() {
            return Err(io::Error::new(io::ErrorKind::NotADirectory, format!("{} is not a directory", dir.display())));
        }
        Ok(Root { dir })
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The real path of something that must exist, with every symlink resolved; refused when
    /// that lands outside the root.
    pub fn existing(&self, path: &VPath) -> io::Result<PathBuf> {
        let real = self.lexical(path).canonicalize()?;
        self.contain(real)
    }

    /// The real path of a directory entry itself: its parent must resolve inside the root, and
    /// the final name is not followed, so `DELE` of a symlink removes the link, and an upload
    /// onto a symlink replaces the link instead of writing through it.
    pub fn entry(&self, path: &VPath) -> io::Result<PathBuf> {
        if path.is_root() {
            return Err(io::ErrorKind::PermissionDenied.into());
        }
        let parent = self.existing(&path.parent())?;
        Ok(parent.join(OsStr::from_bytes(path.file_name())))
    }

    /// Whether a real path (for example a symlink's target) lies inside the root.
    pub fn contains(&self, real: &Path) -> bool {
        real.starts_with(&self.dir)
    }

    fn lexical(&self, path: &VPath) -> PathBuf {
        self.dir.join(OsStr::from_bytes(&path.as_bytes()[1..]))
    }

    fn contain(&self, real: PathBuf) -> io::Result<PathBuf> {
        if self.contains(&real) {
            Ok(real)
        } else {
            // Same answer as a missing file: the client learns nothing about the outside.
            Err(io::ErrorKind::NotFound.into())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::symlink;

    fn v(s: &str) -> VPath {
        VPath::root().join(s.as_bytes())
    }

    #[test]
    fn join_normalizes_and_clamps_at_root() {
        let cwd = v("/a/b");
        assert_eq!(cwd.join(b"c").as_bytes(), b"/a/b/c");
        assert_eq!(cwd.join(b"../c").as_bytes(), b"/a/c");
        assert_eq!(cwd.join(b"/x//y/./z/").as_bytes(), b"/x/y/z");
        assert_eq!(cwd.join(b"../../../../etc/passwd").as_bytes(), b"/etc/passwd");
        assert_eq!(cwd.join(b"..").join(b"..").join(b"..").as_bytes(), b"/");
        assert_eq!(v("/a/b").file_name(), b"b");
        assert_eq!(VPath::root().parent(), VPath::root());
    }

    #[test]
    fn symlinks_out_of_the_root_are_refused() {
        let tmp = std::env::temp_dir().join(format!("mioftpd-root-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&tmp);
        std::fs::create_dir_all(tmp.join("served/inside")).unwrap();
        std::fs::write(tmp.join("secret"), b"x").unwrap();
        std::fs::write(tmp.join("served/inside/ok"), b"y").unwrap();
        symlink(tmp.join("secret"), tmp.join("served/out")).unwrap();
        symlink(&tmp, tmp.join("served/updir")).unwrap();
        symlink("inside/ok", tmp.join("served/good")).unwrap();
        let root = Root::new(&tmp.join("served")).unwrap();

        assert!(root.existing(&v("/out")).is_err());
        assert!(root.existing(&v("/updir/secret")).is_err());
        assert!(root.entry(&v("/updir/new")).is_err());
        assert_eq!(root.entry(&v("/out")).unwrap(), root.dir().join("out"), "the link itself, not its target");
        assert_eq!(std::fs::read(root.existing(&v("/good")).unwrap()).unwrap(), b"y");
        assert!(root.entry(&v("/inside/new")).is_ok());
        assert!(root.entry(&VPath::root()).is_err());
        std::fs::remove_dir_all(&tmp).unwrap();
    }
}
