//! `cargo xtask`: release chores that need more than cargo.
//!
//! `cargo xtask dist [--only PLATFORM]...` builds git-relay for every
//! platform the Azure Pipelines task ships (static musl Linux binaries and a
//! Windows one, cross-linked with zig through cargo-zigbuild), publishes the
//! plain binaries with SHA256SUMS in `dist/`, and packs the extension into
//! `dist/<publisher>.<id>-<version>.vsix` with `tfx extension create`, which
//! also validates the manifests. `xtask/install-tools.sh` installs the tools.
//!
//! The task's task.json lives at the repository root (the project's
//! layout); the extension needs it inside the task folder, next to the
//! wrapper and the binaries. So nothing is packed from the source tree:
//! everything is copied into a fresh staging directory first, and the root
//! task.json stays the only one anyone edits.
//!
//! `cargo xtask sync-version` writes Cargo.toml's version into task.json and
//! vss-extension.json; `dist` refuses to pack when they disagree.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode};
use std::time::Instant;

/// A platform the task ships: the wrapper's folder name, the Rust target,
/// and the executable's name.
struct Platform {
    name: &'static str,
    target: &'static str,
    exe: &'static str,
}

/// macOS is absent: linking for it needs Apple's SDK (the native
/// certificate store uses Security.framework), which cannot be installed
/// here; build those two on a macOS machine (see docs/azure-pipelines.md).
const PLATFORMS: &[Platform] = &[
    Platform {
        name: "linux-x64",
        target: "x86_64-unknown-linux-musl",
        exe: "git-relay",
    },
    Platform {
        name: "linux-arm64",
        target: "aarch64-unknown-linux-musl",
        exe: "git-relay",
    },
    Platform {
        name: "win-x64",
        target: "x86_64-pc-windows-gnu",
        exe: "git-relay.exe",
    },
];

type Result<T> = std::result::Result<T, String>;

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let outcome = match args.first().map(String::as_str) {
        Some("dist") => dist(&args[1..]),
        Some("sync-version") => sync_version().map(|_| ()),
        _ => Err(USAGE.to_owned()),
    };
    match outcome {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("xtask: {message}");
            ExitCode::FAILURE
        }
    }
}

const USAGE: &str = "usage:
  cargo xtask dist [--only PLATFORM]...   build binaries, SHA256SUMS and the .vsix into dist/
                                          (PLATFORM: linux-x64, linux-arm64, win-x64; default all)
  cargo xtask sync-version                copy Cargo.toml's version into task.json and vss-extension.json
tools: xtask/install-tools.sh";

/// The repository root.
fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("xtask sits in the repository")
        .to_path_buf()
}

fn dist(args: &[String]) -> Result<()> {
    let started = Instant::now();
    let platforms = select_platforms(args)?;
    let root = root();
    let metadata = cargo_metadata(&root)?;
    let version = check_versions(&root, &metadata.version)?;
    let tfx = root.join("xtask/node_modules/.bin/tfx");
    if !tfx.exists() {
        return Err(format!(
            "{} is missing: run xtask/install-tools.sh",
            tfx.display()
        ));
    }

    let stage = metadata.target_dir.join("xtask-stage");
    let dist = root.join("dist");
    remove_dir(&stage)?;
    remove_dir(&dist)?;
    let task_dir = stage.join("task");
    copy_dir(&root.join("task"), &task_dir)?;
    copy(&root.join("task.json"), &task_dir.join("task.json"))?;
    copy(
        &root.join("vss-extension.json"),
        &stage.join("vss-extension.json"),
    )?;
    fs::create_dir_all(&dist).map_err(|e| format!("create {}: {e}", dist.display()))?;

    for (platform, built) in build(&root, &metadata.target_dir, &platforms)? {
        copy(
            &built,
            &task_dir.join("bin").join(platform.name).join(platform.exe),
        )?;
        let published = match platform.exe.strip_suffix(".exe") {
            Some(stem) => format!("{stem}-{version}-{}.exe", platform.name),
            None => format!("{}-{version}-{}", platform.exe, platform.name),
        };
        copy(&built, &dist.join(&published))?;
    }
    checksums(&dist)?;

    run(Command::new(&tfx)
        .args(["extension", "create", "--no-prompt", "--no-color", "--root"])
        .arg(&stage)
        .args(["--manifests", "vss-extension.json", "--output-path"])
        .arg(&dist))?;

    println!(
        "\ndist/ ({} platform(s), {:.0} s):",
        platforms.len(),
        started.elapsed().as_secs_f64()
    );
    let mut entries: Vec<_> = fs::read_dir(&dist)
        .map_err(|e| e.to_string())?
        .filter_map(|e| e.ok())
        .collect();
    entries.sort_by_key(|e| e.file_name());
    for entry in entries {
        let size = entry.metadata().map(|m| m.len()).unwrap_or(0);
        println!(
            "  {:>10.1} MiB  {}",
            size as f64 / 1048576.0,
            entry.file_name().to_string_lossy()
        );
    }
    if platforms.len() < PLATFORMS.len() {
        println!(
            "note: --only was given, so the .vsix holds only {}: do not publish it",
            names(&platforms)
        );
    }
    Ok(())
}

fn select_platforms(args: &[String]) -> Result<Vec<&'static Platform>> {
    let mut wanted = Vec::new();
    let mut args = args.iter();
    while let Some(arg) = args.next() {
        let value = match arg.strip_prefix("--only=") {
            Some(v) => v.to_owned(),
            None if arg == "--only" => args.next().ok_or("--only needs a platform")?.clone(),
            None => return Err(format!("unknown argument {arg}\n{USAGE}")),
        };
        for name in value.split(',') {
            let platform = PLATFORMS.iter().find(|p| p.name == name).ok_or_else(|| {
                format!(
                    "unknown platform {name}; known: {}",
                    names(&PLATFORMS.iter().collect::<Vec<_>>())
                )
            })?;
            wanted.push(platform);
        }
    }
    Ok(if wanted.is_empty() {
        PLATFORMS.iter().collect()
    } else {
        wanted
    })
}

fn names(platforms: &[&Platform]) -> String {
    platforms
        .iter()
        .map(|p| p.name)
        .collect::<Vec<_>>()
        .join(", ")
}

/// Builds the release binaries; returns each platform's.
///
/// One cargo invocation for every target: the build scripts and proc
/// macros are compiled once for the host, and cargo keeps both cores busy
/// across targets while one of them is in its long link (LTO) step.
fn build<'a>(
    root: &Path,
    target_dir: &Path,
    platforms: &[&'a Platform],
) -> Result<Vec<(&'a Platform, PathBuf)>> {
    let started = Instant::now();
    println!("== building {}", names(platforms));
    let mut cmd = Command::new(cargo());
    cmd.current_dir(root).args([
        "zigbuild",
        "--release",
        "--locked",
        "--package",
        "git-relay",
        "--bin",
        "git-relay",
    ]);
    for platform in platforms {
        cmd.args(["--target", platform.target]);
    }
    run(&mut cmd)?;
    println!("   built in {:.0} s", started.elapsed().as_secs_f64());
    platforms
        .iter()
        .map(|platform| {
            let built = target_dir
                .join(platform.target)
                .join("release")
                .join(platform.exe);
            if built.is_file() {
                Ok((*platform, built))
            } else {
                Err(format!("the build did not produce {}", built.display()))
            }
        })
        .collect()
}

fn checksums(dist: &Path) -> Result<()> {
    let mut files: Vec<String> = fs::read_dir(dist)
        .map_err(|e| e.to_string())?
        .filter_map(|e| e.ok())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    files.sort();
    let out = Command::new("sha256sum")
        .current_dir(dist)
        .args(&files)
        .output()
        .map_err(|e| format!("sha256sum: {e}"))?;
    if !out.status.success() {
        return Err(format!(
            "sha256sum failed: {}",
            String::from_utf8_lossy(&out.stderr)
        ));
    }
    fs::write(dist.join("SHA256SUMS"), &out.stdout).map_err(|e| format!("write SHA256SUMS: {e}"))
}

struct Metadata {
    version: String,
    target_dir: PathBuf,
}

/// The package version and the target directory, as cargo sees them
/// (CARGO_TARGET_DIR and config included).
fn cargo_metadata(root: &Path) -> Result<Metadata> {
    let out = Command::new(cargo())
        .current_dir(root)
        .args(["metadata", "--format-version", "1", "--no-deps", "--locked"])
        .output()
        .map_err(|e| format!("cargo metadata: {e}"))?;
    if !out.status.success() {
        return Err(format!(
            "cargo metadata failed: {}",
            String::from_utf8_lossy(&out.stderr)
        ));
    }
    let doc: serde_json::Value =
        serde_json::from_slice(&out.stdout).map_err(|e| format!("cargo metadata: {e}"))?;
    let version = doc["packages"]
        .as_array()
        .and_then(|p| p.iter().find(|p| p["name"] == "git-relay"))
        .and_then(|p| p["version"].as_str())
        .ok_or("cargo metadata lists no git-relay package")?
        .to_owned();
    let target_dir = doc["target_directory"]
        .as_str()
        .ok_or("cargo metadata gives no target directory")?
        .into();
    Ok(Metadata {
        version,
        target_dir,
    })
}

/// The versions task.json and vss-extension.json declare.
fn manifest_versions(root: &Path) -> Result<(String, String)> {
    let task = read_json(&root.join("task.json"))?;
    let v = &task["version"];
    let task_version = format!("{}.{}.{}", v["Major"], v["Minor"], v["Patch"]);
    let extension = read_json(&root.join("vss-extension.json"))?;
    let extension_version = extension["version"].as_str().unwrap_or("").to_owned();
    Ok((task_version, extension_version))
}

fn check_versions(root: &Path, cargo_version: &str) -> Result<String> {
    let (task, extension) = manifest_versions(root)?;
    if task != cargo_version || extension != cargo_version {
        return Err(format!(
            "versions disagree: Cargo.toml {cargo_version}, task.json {task}, vss-extension.json {extension}; run `cargo xtask sync-version`"
        ));
    }
    Ok(cargo_version.to_owned())
}

/// Rewrites the version numbers in place, keeping the files' formatting.
fn sync_version() -> Result<String> {
    let root = root();
    let version = cargo_metadata(&root)?.version;
    let core = version.split(['-', '+']).next().unwrap_or(&version);
    let parts: Vec<&str> = core.split('.').collect();
    let [major, minor, patch] = parts[..] else {
        return Err(format!(
            "cannot split version {version} into major.minor.patch"
        ));
    };
    let task_path = root.join("task.json");
    let mut task = read(&task_path)?;
    for (key, value) in [("Major", major), ("Minor", minor), ("Patch", patch)] {
        task = replace_value(&task, &format!("\"{key}\""), value, false)?;
    }
    write(&task_path, &task)?;
    let ext_path = root.join("vss-extension.json");
    let ext = replace_value(&read(&ext_path)?, "\"version\"", &version, true)?;
    write(&ext_path, &ext)?;
    let (task_version, ext_version) = manifest_versions(&root)?;
    println!("task.json {task_version}, vss-extension.json {ext_version} (Cargo.toml {version})");
    Ok(version)
}

/// Replaces the value after the first `key:` in a JSON text: a bare number,
/// or a string when `quoted`.
fn replace_value(text: &str, key: &str, value: &str, quoted: bool) -> Result<String> {
    let at = text.find(key).ok_or_else(|| format!("no {key} found"))?;
    let colon = at
        + key.len()
        + text[at + key.len()..]
            .find(':')
            .ok_or_else(|| format!("no value after {key}"))?;
    let start = colon + 1 + text[colon + 1..].len() - text[colon + 1..].trim_start().len();
    let end = if quoted {
        let close = text[start + 1..]
            .find('"')
            .ok_or_else(|| format!("unterminated value of {key}"))?;
        start + 1 + close + 1
    } else {
        start
            + text[start..]
                .find(|c: char| !c.is_ascii_digit())
                .unwrap_or(text.len() - start)
    };
    let replacement = if quoted {
        format!("\"{value}\"")
    } else {
        value.to_owned()
    };
    Ok(format!("{}{replacement}{}", &text[..start], &text[end..]))
}

fn read_json(path: &Path) -> Result<serde_json::Value> {
    serde_json::from_str(&read(path)?).map_err(|e| format!("{}: {e}", path.display()))
}

fn read(path: &Path) -> Result<String> {
    fs::read_to_string(path).map_err(|e| format!("read {}: {e}", path.display()))
}

fn write(path: &Path, text: &str) -> Result<()> {
    fs::write(path, text).map_err(|e| format!("write {}: {e}", path.display()))
}

fn cargo() -> String {
    std::env::var("CARGO").unwrap_or_else(|_| "cargo".to_owned())
}

fn run(cmd: &mut Command) -> Result<()> {
    let status = cmd.status().map_err(|e| format!("{cmd:?}: {e}"))?;
    if status.success() {
        Ok(())
    } else {
        Err(format!("{cmd:?} failed ({status})"))
    }
}

fn remove_dir(dir: &Path) -> Result<()> {
    match fs::remove_dir_all(dir) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
            Err(format!("remove {}: {e}", dir.display()))
        }
        _ => Ok(()),
    }
}

fn copy(from: &Path, to: &Path) -> Result<()> {
    if let Some(parent) = to.parent() {
        fs::create_dir_all(parent).map_err(|e| format!("create {}: {e}", parent.display()))?;
    }
    fs::copy(from, to)
        .map(|_| ())
        .map_err(|e| format!("copy {} to {}: {e}", from.display(), to.display()))
}

fn copy_dir(from: &Path, to: &Path) -> Result<()> {
    for entry in fs::read_dir(from).map_err(|e| format!("read {}: {e}", from.display()))? {
        let entry = entry.map_err(|e| e.to_string())?;
        let path = entry.path();
        if path.is_dir() {
            copy_dir(&path, &to.join(entry.file_name()))?;
        } else {
            copy(&path, &to.join(entry.file_name()))?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions_are_replaced_in_place() {
        let task =
            "{\n  \"version\": {\n    \"Major\": 0,\n    \"Minor\": 12,\n    \"Patch\": 3\n  }\n}";
        let task = replace_value(task, "\"Minor\"", "4", false).unwrap();
        assert_eq!(
            task,
            "{\n  \"version\": {\n    \"Major\": 0,\n    \"Minor\": 4,\n    \"Patch\": 3\n  }\n}"
        );
        let ext = "{ \"manifestVersion\": 1, \"version\": \"0.1.0\", \"x\": \"y\" }";
        assert_eq!(
            replace_value(ext, "\"version\"", "1.2.3", true).unwrap(),
            "{ \"manifestVersion\": 1, \"version\": \"1.2.3\", \"x\": \"y\" }"
        );
    }

    #[test]
    fn platforms_are_selected_by_name() {
        let one = select_platforms(&["--only".to_owned(), "linux-x64".to_owned()]).unwrap();
        assert_eq!(names(&one), "linux-x64");
        assert_eq!(select_platforms(&[]).unwrap().len(), PLATFORMS.len());
        assert!(select_platforms(&["--only=mac".to_owned()]).is_err());
    }
}
