//! `Root`, the resolver that turns client paths into open files, over a fixed tree full of
//! symlinks: inward, outward, absolute inside, dangling, looping, and links to directories
//! outside. The input is split on LF into path arguments, each joined to a working directory
//! that follows them like `CWD`.
//!
//! Checks, for every argument: whatever `open` or `metadata` reaches is inside the root (the
//! one file outside holds a marker that must never be read, and no directory outside may be
//! listed), and `entry` never hands out a parent outside the root (creating a probe name there
//! must land inside). Runs against the real filesystem, as the server does.

#![no_main]

use libfuzzer_sys::fuzz_target;
use mioftpd::fs::{Root, VPath};
use std::io::Read;
use std::os::unix::fs::symlink;
use std::path::PathBuf;
use std::sync::OnceLock;

const OUTSIDE_MARKER: &[u8] = b"OUTSIDE-THE-ROOT";

struct Tree {
    top: PathBuf,
    root: Root,
}

fn tree() -> &'static Tree {
    static TREE: OnceLock<Tree> = OnceLock::new();
    TREE.get_or_init(|| {
        let top = std::env::temp_dir().join(format!("mioftpd-fuzz-root-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&top);
        let served = top.join("served");
        std::fs::create_dir_all(served.join("a/b/c")).unwrap();
        std::fs::create_dir_all(top.join("outdir")).unwrap();
        std::fs::write(top.join("secret"), OUTSIDE_MARKER).unwrap();
        std::fs::write(top.join("outdir/secret"), OUTSIDE_MARKER).unwrap();
        std::fs::write(served.join("a/file"), b"inside").unwrap();
        let links: [(&str, PathBuf); 10] = [
            ("out", top.join("secret")),
            ("outdir", top.join("outdir")),
            ("up", "..".into()),
            ("a/up2", "../..".into()),
            ("a/b/rel-out", "../../../secret".into()),
            ("a/b/in", "../file".into()),
            ("a/b/c/deep", "../../b".into()),
            ("loop", "loop".into()),
            ("dangling", "nowhere".into()),
            ("abs-in", served.join("a")),
        ];
        for (name, target) in links {
            symlink(target, served.join(name)).unwrap();
        }
        let root = Root::new(&served).unwrap();
        Tree { top, root }
    })
}

fuzz_target!(|data: &[u8]| {
    let t = tree();
    let mut cwd = VPath::root();
    for arg in data.split(|&b| b == b'\n').take(16) {
        let path = cwd.join(arg);
        if let Ok(mut file) = t.root.open(&path) {
            let mut bytes = Vec::new();
            if file.read_to_end(&mut bytes).is_ok() {
                assert_ne!(bytes, OUTSIDE_MARKER, "{} read the file outside", path.display());
            }
        }
        if let Ok(meta) = t.root.metadata(&path)
            && meta.is_dir()
        {
            cwd = path.clone();
        }
        if let Ok(entry) = t.root.entry(&path) {
            // Probe where the entry's directory really is: a name made there must appear inside.
            let probe = entry.sibling(b".fuzz-probe".to_vec());
            if probe.create_dir().is_ok() {
                let outside = t.top.join(".fuzz-probe").exists() || t.top.join("outdir/.fuzz-probe").exists();
                let _ = probe.remove_dir();
                assert!(!outside, "{}: entry's directory is outside the root", path.display());
            }
        }
    }
});
