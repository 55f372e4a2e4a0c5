//! Records the git revision for `tenure --version` and the environment endpoint:
//! `TENURE_GIT_REVISION` when the build sets it (the Docker image's build argument: its
//! context has no `.git`), else `git rev-parse` in a checkout, else "unknown".

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

/// The revision given in the environment: its first line, trimmed, when that is not empty.
/// Only printable ASCII is kept, since it ends up in a `cargo:` line and in JSON.
fn from_env() -> Option<String> {
    let value = std::env::var("TENURE_GIT_REVISION").ok()?;
    let line: String = value
        .lines()
        .next()
        .unwrap_or_default()
        .trim()
        .chars()
        .filter(|c| c.is_ascii_graphic())
        .take(64)
        .collect();
    (!line.is_empty()).then_some(line)
}

fn main() {
    println!("cargo:rerun-if-changed=build.rs");
    println!("cargo:rerun-if-env-changed=TENURE_GIT_REVISION");
    if let Some(revision) = from_env() {
        println!("cargo:rustc-env=TENURE_GIT_REVISION={revision}");
        return;
    }
    let revision = git(&["rev-parse", "--short=12", "HEAD"]).unwrap_or_else(|| "unknown".into());
    println!("cargo:rustc-env=TENURE_GIT_REVISION={revision}");
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
