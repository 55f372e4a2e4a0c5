//! Records the git revision (when built from a git checkout) for the environment endpoint.

use std::process::Command;

fn git(args: &[&str]) -> Option<String> {
    Command::new("git")
        .args(args)
        .output()
        .ok()
        .filter(|o| o.status.success())
        .and_then(|o| String::from_utf8(o.stdout).ok())
        .map(|s| s.trim().to_owned())
}

fn main() {
    let revision = git(&["rev-parse", "--short=12", "HEAD"]).unwrap_or_else(|| "unknown".into());
    println!("cargo:rustc-env=TENURE_GIT_REVISION={revision}");
    println!("cargo:rerun-if-changed=build.rs");
    // Rebuild when HEAD moves. Only paths that exist: a missing one makes Cargo rerun this
    // script (and rebuild the crate) on every build. In a worktree `.git` is a file, so ask git.
    if let Some(git_dir) = git(&["rev-parse", "--git-dir"]) {
        let head = std::path::Path::new(&git_dir).join("HEAD");
        if head.exists() {
            println!("cargo:rerun-if-changed={}", head.display());
        }
        if let Some(reference) = git(&["symbolic-ref", "-q", "HEAD"]) {
            let Some(common) = git(&["rev-parse", "--git-common-dir"]) else {
                return;
            };
            let path = std::path::Path::new(&common).join(reference);
            if path.exists() {
                println!("cargo:rerun-if-changed={}", path.display());
            }
        }
    }
}
