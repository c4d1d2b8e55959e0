//! The virtual root: `VPath` is a path as the client sees it (`/` is the served directory), and
//! `Root` is the only code that turns one into something on disk. It never builds a real path
//! string to hand to the kernel: it walks from a descriptor of the served directory, one
//! `openat(O_NOFOLLOW)` per component, holding a descriptor at every step, and reads each
//! symlink itself. So `..`, absolute paths and symlinks cannot lead out of the root, and neither
//! can a directory or link swapped in between a check and a use: there is no check separate
//! from the use.
//!
//! Why not `openat2(RESOLVE_BENEATH)`, which does the same walk in the kernel: it refuses every
//! absolute symlink, even one naming a file inside the root (`ln -s /srv/ftp/pub/v2 latest`,
//! which admins do make), and kernels before 5.6 or seccomp filters lack it. The walk here is
//! the same algorithm with that one rule changed: an absolute target under the root's real
//! path is followed from the root; any other absolute target is treated as missing.

use rustix::fs::{self as sys, AtFlags, Mode, OFlags};
use std::fs::{File, Metadata};
use std::io;
use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

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

/// Symlinks followed in one resolution before giving up, as the kernel's own limit.
const MAX_SYMLINKS: usize = 40;

/// The served directory: its canonical path (for logs and absolute symlink targets) and a
/// descriptor every resolution starts from. Cloning shares the descriptor.
#[derive(Clone, Debug)]
pub struct Root {
    dir: Arc<Path>,
    fd: Arc<OwnedFd>,
}

impl Root {
    pub fn new(dir: &Path) -> io::Result<Root> {
        let dir = dir.canonicalize()?;
        let fd = sys::open(&dir, OFlags::PATH | OFlags::DIRECTORY | OFlags::CLOEXEC, Mode::empty()).map_err(|e| {
            io::Error::new(io::Error::from(e).kind(), format!("{}: {}", dir.display(), io::Error::from(e)))
        })?;
        Ok(Root { dir: dir.into(), fd: Arc::new(fd) })
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Where `path` is on disk, as a path string, for programs outside the server (the upload
    /// hook). Never used to open anything here: the string is only as good as the tree at the
    /// moment it is built, which is right after an upload landed under that very name.
    pub fn real_path(&self, path: &VPath) -> PathBuf {
        self.dir.join(std::ffi::OsStr::from_bytes(&path.as_bytes()[1..]))
    }

    /// A user's home as a root of its own: an absolute `home` is served instead of this root; a
    /// relative one is a directory inside it, refused (as not found, like any path leading out)
    /// when its real path is outside, e.g. through a symlink. Either way it is jailed exactly
    /// as this root is.
    pub fn home(&self, home: &Path) -> io::Result<Root> {
        if home.is_absolute() {
            return Root::new(home);
        }
        let root = Root::new(&self.dir.join(home))?;
        if !root.dir.starts_with(&self.dir) {
            let outside = format!("{}: leads out of {}", self.dir.join(home).display(), self.dir.display());
            return Err(io::Error::new(io::ErrorKind::NotFound, outside));
        }
        Ok(root)
    }

    /// Opens an existing file or directory for reading, following symlinks that stay inside.
    /// Non-blocking, so that a FIFO cannot stall the loop.
    pub fn open(&self, path: &VPath) -> io::Result<File> {
        self.resolve(path, OFlags::RDONLY | OFlags::NONBLOCK).map(File::from)
    }

    /// The metadata of what `path` names, following symlinks that stay inside. Opens nothing
    /// for reading (`O_PATH`), so a device node or FIFO is only looked at.
    pub fn metadata(&self, path: &VPath) -> io::Result<Metadata> {
        File::from(self.resolve(path, OFlags::PATH)?).metadata()
    }

    /// A directory entry itself, for commands that create, replace or remove it: its parent is
    /// resolved inside the root, and the final name is never followed, so `DELE` of a symlink
    /// removes the link and an upload onto a symlink replaces the link.
    pub fn entry(&self, path: &VPath) -> io::Result<Entry> {
        if path.is_root() {
            return Err(io::ErrorKind::PermissionDenied.into());
        }
        let dir = self.resolve(&path.parent(), OFlags::PATH | OFlags::DIRECTORY)?;
        Ok(Entry { dir: Arc::new(dir), name: path.file_name().to_vec() })
    }

    /// The walk described at the top of this file; `flags` apply to the final component.
    fn resolve(&self, path: &VPath, flags: OFlags) -> io::Result<OwnedFd> {
        // Directories walked so far below the root, innermost last: `..` pops one, so it can
        // never climb above the root, whatever was renamed meanwhile.
        let mut dirs: Vec<OwnedFd> = Vec::new();
        // Components still to walk, next one last.
        let mut todo: Vec<Vec<u8>> = Vec::new();
        push_components(&mut todo, &path.as_bytes()[1..]);
        let mut links = 0;
        while let Some(name) = todo.pop() {
            if name == b".." {
                dirs.pop();
                continue;
            }
            let at = dirs.last().unwrap_or(&self.fd).as_fd();
            let last = todo.is_empty();
            let how = if last { flags } else { OFlags::PATH | OFlags::DIRECTORY };
            let opened = sys::openat(at, name.as_slice(), how | OFlags::NOFOLLOW | OFlags::CLOEXEC, Mode::empty());
            // With O_NOFOLLOW a symlink either fails to open (ELOOP, or ENOTDIR where a
            // directory is required) or, under O_PATH, opens as the link itself.
            let link = match opened {
                Ok(fd) if how.contains(OFlags::PATH) && is_symlink(&fd)? => {
                    sys::readlinkat(at, name.as_slice(), Vec::new())
                }
                Ok(fd) if last => return Ok(fd),
                Ok(fd) => {
                    dirs.push(fd);
                    continue;
                }
                Err(e) => sys::readlinkat(at, name.as_slice(), Vec::new()).map_err(|_| e),
            }?;
            links += 1;
            if links > MAX_SYMLINKS {
                return Err(io::Error::from_raw_os_error(libc::ELOOP));
            }
            let target = link.into_bytes();
            if target.starts_with(b"/") {
                let inside = target.strip_prefix(self.dir.as_os_str().as_bytes()).filter(|rest| {
                    rest.is_empty() || rest.starts_with(b"/") || self.dir.as_os_str().as_bytes() == b"/"
                });
                // Same answer as a missing file: the client learns nothing about the outside.
                let Some(rest) = inside else { return Err(io::ErrorKind::NotFound.into()) };
                dirs.clear();
                push_components(&mut todo, rest);
            } else {
                push_components(&mut todo, &target);
            }
        }
        // Every component was a directory (or there were none): reopen the innermost with `flags`.
        let at = dirs.last().unwrap_or(&self.fd).as_fd();
        Ok(sys::openat(at, c".", flags | OFlags::CLOEXEC, Mode::empty())?)
    }
}

/// Pushes the components of `path` so that the first one is popped first.
fn push_components(todo: &mut Vec<Vec<u8>>, path: &[u8]) {
    let parts = path.split(|&b| b == b'/').filter(|part| !part.is_empty() && *part != b".");
    let at = todo.len();
    todo.extend(parts.map(<[u8]>::to_vec));
    todo[at..].reverse();
}

fn is_symlink(fd: &OwnedFd) -> io::Result<bool> {
    Ok(sys::FileType::from_raw_mode(sys::fstat(fd)?.st_mode).is_symlink())
}

/// One name in a directory that was resolved inside the root; the name itself is never
/// followed if it is a symlink. Every operation is relative to the directory's descriptor.
#[derive(Clone, Debug)]
pub struct Entry {
    dir: Arc<OwnedFd>,
    name: Vec<u8>,
}

impl Entry {
    pub fn name(&self) -> &[u8] {
        &self.name
    }

    /// Another name in the same directory.
    pub fn sibling(&self, name: Vec<u8>) -> Entry {
        Entry { dir: Arc::clone(&self.dir), name }
    }

    /// The entry's own metadata (a symlink's, not its target's), if it exists.
    pub fn kind(&self) -> io::Result<sys::FileType> {
        let stat = sys::statat(self.dir.as_fd(), self.name.as_slice(), AtFlags::SYMLINK_NOFOLLOW)?;
        Ok(sys::FileType::from_raw_mode(stat.st_mode))
    }

    /// Opens the entry itself with `flags` (plus `O_NOFOLLOW`); `mode` applies when it is created.
    pub fn open(&self, flags: OFlags, mode: u32) -> io::Result<File> {
        let flags = flags | OFlags::NOFOLLOW | OFlags::CLOEXEC;
        Ok(File::from(sys::openat(self.dir.as_fd(), self.name.as_slice(), flags, Mode::from_raw_mode(mode))?))
    }

    pub fn create_dir(&self) -> io::Result<()> {
        Ok(sys::mkdirat(self.dir.as_fd(), self.name.as_slice(), Mode::from_raw_mode(0o777))?)
    }

    pub fn remove_dir(&self) -> io::Result<()> {
        Ok(sys::unlinkat(self.dir.as_fd(), self.name.as_slice(), AtFlags::REMOVEDIR)?)
    }

    pub fn remove_file(&self) -> io::Result<()> {
        Ok(sys::unlinkat(self.dir.as_fd(), self.name.as_slice(), AtFlags::empty())?)
    }

    pub fn rename_to(&self, to: &Entry) -> io::Result<()> {
        Ok(sys::renameat(self.dir.as_fd(), self.name.as_slice(), to.dir.as_fd(), to.name.as_slice())?)
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

    /// A scratch tree: `outside/secret`, and the served `outside/served` with links of every kind.
    struct Tree {
        top: std::path::PathBuf,
        root: Root,
    }

    impl Tree {
        fn new(label: &str) -> Tree {
            static NEXT: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
            let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            let top = std::env::temp_dir().join(format!("mioftpd-root-{label}-{}-{n}", std::process::id()));
            let _ = std::fs::remove_dir_all(&top);
            let served = top.join("served");
            std::fs::create_dir_all(served.join("inside/deeper")).unwrap();
            std::fs::write(top.join("secret"), b"secret").unwrap();
            std::fs::write(served.join("inside/ok"), b"ok").unwrap();
            symlink(top.join("secret"), served.join("out")).unwrap();
            symlink(&top, served.join("updir")).unwrap();
            symlink("../../secret", served.join("inside/dotdot")).unwrap();
            symlink("inside/ok", served.join("good")).unwrap();
            symlink("../ok", served.join("inside/deeper/up")).unwrap();
            symlink("inside", served.join("indir")).unwrap();
            symlink("loop", served.join("loop")).unwrap();
            let root = Root::new(&served).unwrap();
            symlink(root.dir().join("inside/ok"), served.join("absolute-in")).unwrap();
            Tree { top, root }
        }

        fn read(&self, path: &str) -> io::Result<Vec<u8>> {
            let mut out = Vec::new();
            std::io::Read::read_to_end(&mut self.root.open(&v(path))?, &mut out)?;
            Ok(out)
        }
    }

    impl Drop for Tree {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.top);
        }
    }

    #[test]
    fn real_paths_are_under_the_served_directory() {
        let t = Tree::new("real");
        assert_eq!(t.root.real_path(&v("/inside/ok")), t.top.canonicalize().unwrap().join("served/inside/ok"));
        assert_eq!(std::fs::read(t.root.real_path(&v("/inside/ok"))).unwrap(), b"ok");
        assert_eq!(t.root.real_path(&VPath::root()), t.root.dir());
    }

    #[test]
    fn a_home_is_jailed_like_the_root() {
        let t = Tree::new("home");
        let home = t.root.home(Path::new("inside")).unwrap();
        assert_eq!(home.dir(), t.root.dir().join("inside"));
        let mut ok = Vec::new();
        std::io::Read::read_to_end(&mut home.open(&v("/../../ok")).unwrap(), &mut ok).unwrap();
        assert_eq!(ok, b"ok", "'..' stops at the home");
        assert!(home.open(&v("/deeper/up")).is_ok(), "a relative link inside the home");
        assert!(home.open(&v("/dotdot")).is_err(), "a link out of the home");
        assert!(home.open(&v("/../indir/ok")).is_err(), "the rest of the root is outside too");
        assert!(t.root.home(Path::new("indir")).is_ok(), "a link to a directory inside the root");
        let err = t.root.home(Path::new("updir")).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::NotFound, "a link out of the root: {err}");
        assert!(t.root.home(Path::new("missing")).is_err());
        let absolute = t.root.home(&t.top).unwrap();
        assert!(absolute.open(&v("/secret")).is_ok(), "an absolute home replaces the root");
    }

    #[test]
    fn symlinks_out_of_the_root_are_refused() {
        let t = Tree::new("out");
        for path in ["/out", "/updir/secret", "/updir", "/inside/dotdot", "/loop"] {
            assert!(t.read(path).is_err(), "{path} must not open");
            assert!(t.root.metadata(&v(path)).is_err(), "{path} must not stat");
        }
        assert_eq!(t.root.open(&v("/out")).unwrap_err().kind(), io::ErrorKind::NotFound, "no hint of the outside");
        assert!(t.root.entry(&v("/updir/new")).is_err(), "a parent outside the root");
        assert!(t.root.entry(&VPath::root()).is_err());
    }

    #[test]
    fn symlinks_inside_the_root_work() {
        let t = Tree::new("in");
        for path in ["/good", "/inside/deeper/up", "/indir/ok", "/absolute-in", "/inside/deeper/../ok"] {
            assert_eq!(t.read(path).unwrap(), b"ok", "{path}");
        }
        assert!(t.root.metadata(&v("/indir")).unwrap().is_dir());
        assert!(t.root.metadata(&VPath::root()).unwrap().is_dir());
    }

    #[test]
    fn entries_are_the_names_themselves() {
        let t = Tree::new("entry");
        let link = t.root.entry(&v("/out")).unwrap();
        assert!(link.kind().unwrap().is_symlink(), "the link, not its target");
        link.remove_file().unwrap();
        assert_eq!(std::fs::read(t.top.join("secret")).unwrap(), b"secret", "the target is untouched");
        // Writing onto a link that leads out must not write through it.
        let good = t.root.entry(&v("/updir")).unwrap();
        assert!(good.open(OFlags::WRONLY, 0o644).is_err());
        let made = t.root.entry(&v("/indir/made")).unwrap();
        made.create_dir().unwrap();
        assert!(t.top.join("served/inside/made").is_dir(), "created through a link inside the root");
        made.rename_to(&t.root.entry(&v("/renamed")).unwrap()).unwrap();
        assert!(t.top.join("served/renamed").is_dir());
    }

    /// A directory swapped for a symlink to the outside between any two steps changes nothing:
    /// every resolution either sees the directory or refuses the link.
    #[test]
    fn a_directory_swapped_for_an_outward_link_never_leaks() {
        let t = Tree::new("race");
        let served = t.top.join("served");
        std::fs::write(served.join("inside/deeper/secret"), b"inner").unwrap();
        let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let swapper = {
            let (stop, served, top) = (Arc::clone(&stop), served.clone(), t.top.clone());
            std::thread::spawn(move || {
                while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                    let _ = std::fs::rename(served.join("inside"), served.join("parked"));
                    let _ = symlink(&top, served.join("inside"));
                    let _ = std::fs::remove_file(served.join("inside"));
                    let _ = std::fs::rename(served.join("parked"), served.join("inside"));
                }
            })
        };
        let mut inner = 0;
        for _ in 0..20_000 {
            if let Ok(bytes) = t.read("/inside/deeper/secret") {
                assert_eq!(bytes, b"inner");
                inner += 1;
            }
            assert!(t.read("/inside/secret").is_err(), "the file outside must never be read");
        }
        stop.store(true, std::sync::atomic::Ordering::Relaxed);
        swapper.join().unwrap();
        assert!(inner > 0, "the inside file stays reachable between swaps");
    }

    /// Property: for random client paths over a tree full of links, whatever opens is a file
    /// inside the root, and never the one outside.
    #[test]
    fn random_paths_never_reach_outside() {
        let t = Tree::new("prop");
        let parts: [&[u8]; 12] = [
            b"..", b".", b"inside", b"deeper", b"up", b"out", b"updir", b"indir", b"good", b"dotdot", b"ok", b"secret",
        ];
        let mut seed = 0x2545_f491_4f6c_dd1du64;
        let mut next = |n: usize| {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            (seed % n as u64) as usize
        };
        let mut opened = 0;
        for _ in 0..5_000 {
            let mut arg = Vec::new();
            if next(2) == 0 {
                arg.push(b'/');
            }
            for i in 0..1 + next(6) {
                if i > 0 {
                    arg.push(b'/');
                }
                arg.extend_from_slice(parts[next(parts.len())]);
            }
            let path = v("/inside/deeper").join(&arg);
            if let Ok(bytes) = t.read(&path.display()) {
                assert_eq!(bytes, b"ok", "{} opened something other than the inside file", path.display());
                opened += 1;
            }
        }
        assert!(opened > 50, "the walk must also reach the inside file often ({opened} times)");
    }
}
