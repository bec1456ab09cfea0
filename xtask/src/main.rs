//! `cargo xtask`: release chores that need more than cargo.
//!
//! `cargo xtask dist [--only PLATFORM]...` builds git-relay for every
//! platform the Azure Pipelines task ships (static musl Linux binaries and a
//! Windows one, cross-linked with zig through cargo-zigbuild), publishes the
//! plain binaries with SHA256SUMS in `dist/`, and packs the extension into
//! `dist/<publisher>.<id>-<version>.vsix` with `tfx extension create`, which
//! also validates the manifests. `xtask/install-tools.sh` installs the tools.
//! Binaries it cannot build here (macOS, Windows on arm64) are packed and
//! published with the rest when built elsewhere and given with
//! `--with PLATFORM=FILE`, as the release workflow does.
//!
//! The task's task.json lives at the repository root (the project's
//! layout); the extension needs it inside the task folder, next to the
//! wrapper and the binaries. So nothing is packed from the source tree:
//! everything is copied into a fresh staging directory first, and the root
//! task.json stays the only one anyone edits.
//!
//! `cargo xtask sync-version` writes Cargo.toml's version into task.json and
//! vss-extension.json; `dist` refuses to pack when they disagree. The
//! Marketplace takes only `major.minor.patch` numbers, so a prerelease crate
//! version (`0.2.0-beta.1`) is packed as `0.2.0` under the extension id
//! `<id>-preview`, private: the public listing's later `0.2.0` does not
//! collide with it (see `marketplace_version`).
//!
//! Everything vss-extension.json names (icons, the overview, the licence,
//! the task folder) is staged from the repository, and after packing the
//! .vsix is listed to check each one made it in. `cargo xtask icons` draws
//! the icons (see `icon`).

mod icon;

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

/// Platforms `dist` cannot build here (macOS needs Apple's SDK; Windows on
/// arm64 is built natively by the release workflow) but packs when given a
/// binary built elsewhere: `--with darwin-arm64=PATH`.
const PREBUILT_PLATFORMS: &[Platform] = &[
    Platform {
        name: "win-arm64",
        target: "aarch64-pc-windows-msvc",
        exe: "git-relay.exe",
    },
    Platform {
        name: "darwin-x64",
        target: "x86_64-apple-darwin",
        exe: "git-relay",
    },
    Platform {
        name: "darwin-arm64",
        target: "aarch64-apple-darwin",
        exe: "git-relay",
    },
];

type Result<T> = std::result::Result<T, String>;

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let outcome = match args.first().map(String::as_str) {
        Some("dist") => dist(&args[1..]),
        Some("sync-version") => sync_version().map(|_| ()),
        Some("icons") => write_icons(),
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
  cargo xtask dist [--only PLATFORM]... [--with PLATFORM=FILE]...
                                          build binaries, SHA256SUMS and the .vsix into dist/
                                          (--only: linux-x64, linux-arm64, win-x64; default all;
                                          --with: also pack a binary built elsewhere for
                                          win-arm64, darwin-x64 or darwin-arm64)
  cargo xtask sync-version                copy Cargo.toml's version into task.json and vss-extension.json
  cargo xtask icons                       draw docs/marketplace/icon.png and task/icon.png
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
    let (only, with) = split_args(args)?;
    let platforms = select_platforms(&only)?;
    let prebuilt = prebuilt_binaries(&with)?;
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
    let manifest = read_json(&root.join("vss-extension.json"))?;
    let named = manifest_paths(&manifest)?;
    for path in &named {
        match path.as_str() {
            "task" => {}
            LICENSE_PAGE => write(&stage.join(LICENSE_PAGE), &license_page(&root)?)?,
            other => copy(&root.join(other), &stage.join(other))?,
        }
    }
    fs::create_dir_all(&dist).map_err(|e| format!("create {}: {e}", dist.display()))?;

    let mut binaries = build(&root, &metadata.target_dir, &platforms)?;
    binaries.extend(prebuilt);
    for (platform, built) in binaries {
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

    let mut create = Command::new(&tfx);
    create
        .args(["extension", "create", "--no-prompt", "--no-color", "--root"])
        .arg(&stage)
        .args(["--manifests", "vss-extension.json", "--output-path"])
        .arg(&dist);
    if let Some(overrides) = prerelease_overrides(&version, &manifest)? {
        println!("== prerelease {version}: packed as {overrides}");
        create.args(["--override", &overrides]);
    }
    run(&mut create)?;
    let vsix = fs::read_dir(&dist)
        .map_err(|e| e.to_string())?
        .filter_map(|e| e.ok())
        .map(|e| e.path())
        .find(|p| p.extension().is_some_and(|x| x == "vsix"))
        .ok_or("tfx wrote no .vsix")?;
    let listing = zip_listing(&vsix)?;
    let missing = missing_from_vsix(&named, &listing);
    if !missing.is_empty() {
        return Err(format!(
            "{} lacks what vss-extension.json names: {}",
            vsix.display(),
            missing.join(", ")
        ));
    }

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

/// `dist`'s arguments: the `--only` ones, and the values of `--with`.
fn split_args(args: &[String]) -> Result<(Vec<String>, Vec<String>)> {
    let (mut only, mut with) = (Vec::new(), Vec::new());
    let mut args = args.iter();
    while let Some(arg) = args.next() {
        if let Some(value) = arg.strip_prefix("--with=") {
            with.push(value.to_owned());
        } else if arg == "--with" {
            with.push(args.next().ok_or("--with needs PLATFORM=FILE")?.clone());
        } else if arg == "--only" {
            only.push(arg.clone());
            only.push(args.next().ok_or("--only needs a platform")?.clone());
        } else {
            only.push(arg.clone());
        }
    }
    Ok((only, with))
}

/// The binaries given with `--with PLATFORM=FILE`, each checked to exist.
fn prebuilt_binaries(with: &[String]) -> Result<Vec<(&'static Platform, PathBuf)>> {
    with.iter()
        .map(|value| {
            let (name, file) = value
                .split_once('=')
                .ok_or_else(|| format!("--with {value}: expected PLATFORM=FILE"))?;
            let platform = PREBUILT_PLATFORMS
                .iter()
                .find(|p| p.name == name)
                .ok_or_else(|| {
                    format!(
                        "--with {name}: known: {}",
                        names(&PREBUILT_PLATFORMS.iter().collect::<Vec<_>>())
                    )
                })?;
            let file = PathBuf::from(file);
            if !file.is_file() {
                return Err(format!("--with {name}: no file {}", file.display()));
            }
            Ok((platform, file))
        })
        .collect()
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
    let [major, minor, patch] = marketplace_version(cargo_version)?;
    let packed = format!("{major}.{minor}.{patch}");
    if task != packed || extension != packed {
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
    let [major, minor, patch] = marketplace_version(&version)?;
    let task_path = root.join("task.json");
    let mut task = read(&task_path)?;
    for (key, value) in [("Major", major), ("Minor", minor), ("Patch", patch)] {
        task = replace_value(&task, &format!("\"{key}\""), &value.to_string(), false)?;
    }
    write(&task_path, &task)?;
    let ext_path = root.join("vss-extension.json");
    let packed = format!("{major}.{minor}.{patch}");
    let ext = replace_value(&read(&ext_path)?, "\"version\"", &packed, true)?;
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

/// The version the Marketplace and the agent see for a crate version: its
/// `major.minor.patch` numbers. Both take nothing else (no `-beta.1`, no
/// `+build`), and the task's version is three integers.
fn marketplace_version(cargo_version: &str) -> Result<[u64; 3]> {
    let core = cargo_version
        .split_once(['-', '+'])
        .map_or(cargo_version, |(core, _)| core);
    let numbers: Vec<u64> = core
        .split('.')
        .map(|n| match n.parse() {
            // No leading zeros: "01" is not semver and would not round-trip.
            Ok(v) if n.len() == 1 || !n.starts_with('0') => Ok(v),
            _ => Err(format!("{cargo_version} is not major.minor.patch")),
        })
        .collect::<Result<_>>()?;
    match numbers[..] {
        [major, minor, patch] => Ok([major, minor, patch]),
        _ => Err(format!("{cargo_version} is not major.minor.patch")),
    }
}

/// For a prerelease, the `tfx --override` that packs it as a private
/// extension of its own (`<id>-preview`): the Marketplace refuses a version
/// it has seen, and the release this prerelease leads to will want the same
/// numbers under the public id.
fn prerelease_overrides(version: &str, manifest: &serde_json::Value) -> Result<Option<String>> {
    if !version.contains('-') {
        return Ok(None);
    }
    let id = manifest["id"]
        .as_str()
        .ok_or("vss-extension.json has no id")?;
    let name = manifest["name"].as_str().unwrap_or(id);
    Ok(Some(
        serde_json::json!({
            "id": format!("{id}-preview"),
            "name": format!("{name} (preview {version})"),
            "public": false,
        })
        .to_string(),
    ))
}

/// The page staged as the listing's licence: both licences the crate
/// offers, the user's choice (Cargo.toml's `MIT OR Apache-2.0`).
const LICENSE_PAGE: &str = "license.md";

fn license_page(root: &Path) -> Result<String> {
    Ok(format!(
        "git-relay is licensed under either of the MIT licence or the Apache License, Version 2.0, at your option.\n\n## MIT\n\n```\n{}```\n\n## Apache-2.0\n\n```\n{}```\n",
        read(&root.join("LICENSE-MIT"))?,
        read(&root.join("LICENSE-APACHE"))?
    ))
}

/// Every file or folder vss-extension.json names: icons, content pages,
/// `files` entries, and the folders its task contributions live in.
fn manifest_paths(manifest: &serde_json::Value) -> Result<Vec<String>> {
    let mut paths = Vec::new();
    if let Some(icons) = manifest["icons"].as_object() {
        paths.extend(icons.values().filter_map(|v| v.as_str()).map(str::to_owned));
    }
    if let Some(content) = manifest["content"].as_object() {
        paths.extend(
            content
                .values()
                .filter_map(|v| v["path"].as_str())
                .map(str::to_owned),
        );
    }
    let files: Vec<&str> = manifest["files"]
        .as_array()
        .map(|f| f.iter().filter_map(|f| f["path"].as_str()).collect())
        .unwrap_or_default();
    for contribution in manifest["contributions"].as_array().into_iter().flatten() {
        if let Some(folder) = contribution["properties"]["name"].as_str() {
            if !files.contains(&folder) {
                return Err(format!(
                    "contribution {} lives in {folder}, which `files` does not pack",
                    contribution["id"]
                ));
            }
        }
    }
    paths.extend(files.into_iter().map(str::to_owned));
    paths.sort();
    paths.dedup();
    Ok(paths)
}

/// The names of the files in a zip archive (the .vsix), by `unzip -Z1`.
fn zip_listing(zip: &Path) -> Result<Vec<String>> {
    let out = Command::new("unzip")
        .arg("-Z1")
        .arg(zip)
        .output()
        .map_err(|e| format!("unzip: {e}"))?;
    if !out.status.success() {
        return Err(format!(
            "unzip -Z1 {} failed: {}",
            zip.display(),
            String::from_utf8_lossy(&out.stderr)
        ));
    }
    Ok(String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(str::to_owned)
        .collect())
}

/// The named paths that are neither a file of the archive nor a folder
/// holding one.
fn missing_from_vsix(named: &[String], listing: &[String]) -> Vec<String> {
    named
        .iter()
        .filter(|path| {
            let folder = format!("{path}/");
            !listing
                .iter()
                .any(|entry| entry == *path || entry.starts_with(&folder))
        })
        .cloned()
        .collect()
}

fn write_icons() -> Result<()> {
    let root = root();
    for (path, size) in icon::ICONS {
        let file = icon::png(*size, &icon::draw(*size));
        let path = root.join(path);
        if let Some(parent) = path.parent() {
            fs::create_dir_all(parent).map_err(|e| format!("create {}: {e}", parent.display()))?;
        }
        fs::write(&path, &file).map_err(|e| format!("write {}: {e}", path.display()))?;
        println!("{} ({size}x{size}, {} bytes)", path.display(), file.len());
    }
    Ok(())
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
    fn prerelease_versions_pack_as_marketplace_versions() {
        assert_eq!(marketplace_version("0.2.0-beta.1").unwrap(), [0, 2, 0]);
        assert_eq!(marketplace_version("1.10.3").unwrap(), [1, 10, 3]);
        assert_eq!(marketplace_version("1.2.3+build.7").unwrap(), [1, 2, 3]);
        for bad in ["1.2", "1.2.3.4", "1.02.3", "a.b.c", "", "1..3"] {
            assert!(marketplace_version(bad).is_err(), "{bad}");
        }
        let manifest = read_json(&root().join("vss-extension.json")).unwrap();
        assert_eq!(prerelease_overrides("0.2.0", &manifest).unwrap(), None);
        let overrides = prerelease_overrides("0.2.0-beta.1", &manifest)
            .unwrap()
            .unwrap();
        let overrides: serde_json::Value = serde_json::from_str(&overrides).unwrap();
        assert_eq!(overrides["id"], "git-relay-preview");
        assert_eq!(overrides["public"], false);
    }

    #[test]
    fn manifest_is_ready_for_the_marketplace() {
        let root = root();
        let manifest = read_json(&root.join("vss-extension.json")).unwrap();
        let named = manifest_paths(&manifest).unwrap();
        for path in [
            "docs/marketplace/icon.png",
            "docs/marketplace/overview.md",
            "license.md",
            "task",
        ] {
            assert!(
                named.iter().any(|n| n == path),
                "{path} not named: {named:?}"
            );
        }
        // What dist copies from the repository must be there; the task
        // folder and the licence page are assembled by dist itself.
        for path in &named {
            if path != "task" && path != LICENSE_PAGE {
                assert!(root.join(path).is_file(), "{path} is missing");
            }
        }
        assert!(license_page(&root).unwrap().contains("Apache License"));
        assert_eq!(manifest["repository"]["type"], "git");
        for link in ["home", "getstarted", "support", "license", "repository"] {
            let uri = manifest["links"][link]["uri"].as_str().unwrap_or("");
            assert!(uri.starts_with("https://"), "links.{link}: {uri:?}");
        }
        // Preview while the version is 0.x, not after.
        let (_, version) = manifest_versions(&root).unwrap();
        let preview = manifest["galleryFlags"]
            .as_array()
            .is_some_and(|f| f.iter().any(|f| f == "Preview"));
        assert_eq!(
            preview,
            version.starts_with("0."),
            "galleryFlags for {version}"
        );
    }

    #[test]
    fn a_vsix_lacking_a_named_file_is_caught() {
        let named = vec![
            "docs/marketplace/icon.png".to_owned(),
            "license.md".to_owned(),
            "task".to_owned(),
        ];
        let listing: Vec<String> = [
            "extension.vsixmanifest",
            "docs/marketplace/icon.png",
            "task/task.json",
            "task/run.js",
        ]
        .map(str::to_owned)
        .to_vec();
        assert_eq!(missing_from_vsix(&named, &listing), ["license.md"]);
        let mut full = listing.clone();
        full.push("license.md".to_owned());
        assert!(missing_from_vsix(&named, &full).is_empty());
        // A folder counts only through its files: "task" is not "taskbar/".
        let other = ["taskbar/x".to_owned()];
        assert_eq!(missing_from_vsix(&named[2..], &other), ["task"]);
    }

    #[test]
    fn a_contribution_outside_the_packed_files_is_refused() {
        let manifest = serde_json::json!({
            "files": [{ "path": "other" }],
            "contributions": [{ "id": "t", "properties": { "name": "task" } }],
        });
        assert!(manifest_paths(&manifest).is_err());
    }

    #[test]
    fn platforms_are_selected_by_name() {
        let one = select_platforms(&["--only".to_owned(), "linux-x64".to_owned()]).unwrap();
        assert_eq!(names(&one), "linux-x64");
        assert_eq!(select_platforms(&[]).unwrap().len(), PLATFORMS.len());
        assert!(select_platforms(&["--only=mac".to_owned()]).is_err());

        let args: Vec<String> = [
            "--only",
            "win-x64",
            "--with",
            "darwin-arm64=/x",
            "--with=win-arm64=/y",
        ]
        .map(str::to_owned)
        .to_vec();
        let (only, with) = split_args(&args).unwrap();
        assert_eq!(names(&select_platforms(&only).unwrap()), "win-x64");
        assert_eq!(with, ["darwin-arm64=/x", "win-arm64=/y"]);
        let this = std::env::current_exe().unwrap();
        let given = prebuilt_binaries(&[format!("darwin-x64={}", this.display())]).unwrap();
        assert_eq!(given[0].0.exe, "git-relay");
        assert!(prebuilt_binaries(&["darwin-x64=/no/such/file".to_owned()]).is_err());
        assert!(prebuilt_binaries(&[format!("linux-x64={}", this.display())]).is_err());
    }
}
