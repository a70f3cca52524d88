//! `cargo xtask ci`: the one entry point that runs every check, locally and in
//! CI: `cargo fmt --check`, `cargo clippy` with warnings denied, the tidy
//! checks, the Python venv with the pinned real clients (`cargo xtask venv`),
//! and the whole test suite with cargo-nextest (or `cargo test` where nextest
//! is missing).

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{bail, Context};

fn main() -> anyhow::Result<()> {
    let task = std::env::args().nth(1).unwrap_or_default();
    let root = workspace_root();
    match task.as_str() {
        "ci" => ci(&root),
        "tidy" => tidy(&root),
        "venv" => venv(&root),
        _ => bail!("usage: cargo xtask ci | tidy | venv"),
    }
}

fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .ancestors()
        .nth(2)
        .map(Path::to_path_buf)
        .unwrap_or_else(|| PathBuf::from("."))
}

fn ci(root: &Path) -> anyhow::Result<()> {
    run(root, "cargo", &["fmt", "--all", "--check"])?;
    tidy(root)?;
    run(
        root,
        "cargo",
        &[
            "clippy",
            "--workspace",
            "--all-targets",
            "--",
            "-D",
            "warnings",
        ],
    )?;
    system_packages(root)?;
    venv(root)?;
    if has_nextest(root) {
        run(
            root,
            "cargo",
            &["nextest", "run", "--workspace", "--no-fail-fast"],
        )?;
    } else {
        eprintln!("xtask: cargo-nextest not found; running cargo test");
        run(root, "cargo", &["test", "--workspace", "--no-fail-fast"])?;
    }
    eprintln!("xtask: all checks passed");
    Ok(())
}

fn has_nextest(root: &Path) -> bool {
    Command::new("cargo")
        .args(["nextest", "--version"])
        .current_dir(root)
        .output()
        .is_ok_and(|out| out.status.success())
}

fn run(root: &Path, program: &str, args: &[&str]) -> anyhow::Result<()> {
    eprintln!("xtask: $ {program} {}", args.join(" "));
    let status = Command::new(program)
        .args(args)
        .current_dir(root)
        .status()
        .with_context(|| format!("cannot run {program}"))?;
    if !status.success() {
        bail!("{program} {} failed ({status})", args.join(" "));
    }
    Ok(())
}

/// Debian packages the tests run: `iptables` (network partitions between
/// nodes on loopback addresses) and `faketime` (libfaketime, per-node clock
/// skew). Installed with apt when missing.
fn system_packages(root: &Path) -> anyhow::Result<()> {
    const NEEDED: &[(&str, &str)] = &[("iptables", "iptables"), ("faketime", "faketime")];
    let missing: Vec<&str> = NEEDED
        .iter()
        .filter(|(command, _)| {
            !Command::new("sh")
                .args(["-c", &format!("command -v {command}")])
                .output()
                .is_ok_and(|o| o.status.success())
        })
        .map(|(_, package)| *package)
        .collect();
    if missing.is_empty() {
        return Ok(());
    }
    run(root, "apt-get", &["update", "-qq"])?;
    let mut args = vec!["install", "-y", "-qq", "--no-install-recommends"];
    args.extend(&missing);
    run(root, "apt-get", &args)
}

/// Creates `.venv` with the pinned real clients the tests drive.
fn venv(root: &Path) -> anyhow::Result<()> {
    let python = root.join(".venv/bin/python");
    if !python.exists() {
        run(root, "python3", &["-m", "venv", ".venv"])?;
    }
    run(
        root,
        ".venv/bin/python",
        &[
            "-m",
            "pip",
            "install",
            "--quiet",
            "--disable-pip-version-check",
            "-r",
            "tools/ilion/tests/python/requirements.txt",
        ],
    )
}

/// Fails on a Rust source file without a module doc (`//!`) or with a
/// leftover `dbg!`.
fn tidy(root: &Path) -> anyhow::Result<()> {
    let mut problems = Vec::new();
    for dir in [
        "storage-lsm",
        "gossip",
        "replication",
        "cql-frontend",
        "tools",
        "jepsen-tests",
        "benches",
    ] {
        visit(&root.join(dir), &mut |path| check_file(path, &mut problems))?;
    }
    if !problems.is_empty() {
        for problem in &problems {
            eprintln!("tidy: {problem}");
        }
        bail!("tidy found {} problem(s)", problems.len());
    }
    eprintln!("xtask: tidy ok");
    Ok(())
}

fn visit(dir: &Path, on_file: &mut dyn FnMut(&Path)) -> anyhow::Result<()> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Ok(());
    };
    for entry in entries {
        let path = entry?.path();
        let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("");
        if path.is_dir() {
            if name != "target" && !name.starts_with('.') {
                visit(&path, on_file)?;
            }
        } else if name.ends_with(".rs") {
            on_file(&path);
        }
    }
    Ok(())
}

fn check_file(path: &Path, problems: &mut Vec<String>) {
    let Ok(text) = std::fs::read_to_string(path) else {
        problems.push(format!("{}: unreadable", path.display()));
        return;
    };
    let first_code = text
        .lines()
        .map(str::trim)
        .find(|line| !line.is_empty() && !line.starts_with("#!["));
    if !first_code.is_some_and(|line| line.starts_with("//!")) {
        problems.push(format!(
            "{}: missing module doc (start the file with //! saying what it owns)",
            path.display()
        ));
    }
    let needle = concat!("db", "g!(");
    if text.contains(needle) {
        problems.push(format!("{}: leftover debug macro", path.display()));
    }
}
