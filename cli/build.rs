//! Puts the commit the binary is built from into `tessera --version`: `TESSERA_GIT_COMMIT`
//! from the environment (a container build without `.git` passes it in), else
//! `git rev-parse --short HEAD`, else "unknown". It runs again only when the commit can have
//! changed (HEAD, or the branch it points to, moved), not on every build.

use std::path::PathBuf;
use std::process::Command;

fn git(args: &[&str]) -> Option<String> {
    let output = Command::new("git").args(args).output().ok()?;
    let text = String::from_utf8(output.stdout).ok()?;
    (output.status.success() && !text.trim().is_empty()).then(|| text.trim().to_owned())
}

/// A file inside the git folder (`HEAD`, `refs/heads/main`), wherever a worktree keeps it.
fn git_path(name: &str) -> Option<PathBuf> {
    let path = PathBuf::from(git(&["rev-parse", "--git-path", name])?);
    path.exists().then_some(path)
}

fn main() {
    println!("cargo:rerun-if-changed=build.rs");
    println!("cargo:rerun-if-env-changed=TESSERA_GIT_COMMIT");
    let given = std::env::var("TESSERA_GIT_COMMIT").ok().filter(|c| !c.trim().is_empty());
    let commit = given.clone().or_else(|| git(&["rev-parse", "--short", "HEAD"]));
    if given.is_none() && commit.is_some() {
        // A missing file would make Cargo run this script on every build: name only those
        // that exist. A branch's ref may be loose or packed.
        let branch = git(&["symbolic-ref", "-q", "HEAD"]);
        for name in ["HEAD", "packed-refs"].into_iter().map(str::to_owned).chain(branch) {
            if let Some(path) = git_path(&name) {
                println!("cargo:rerun-if-changed={}", path.display());
            }
        }
    }
    println!("cargo:rustc-env=TESSERA_GIT_COMMIT={}", commit.as_deref().unwrap_or("unknown"));
}
