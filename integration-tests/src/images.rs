//! Image names and the one-time build of our own images.
//!
//! Names come from the environment and default to the tags the build scripts make locally:
//! `MARIADB_IMAGE` (default `cdc/mariadb:local`), `S3_IMAGE` (default `cdc/s3s-fs:local`),
//! `CDC_IMAGE_TAG` (default [`DEFAULT_TAG`]) for `cdc/<function>:<tag>`, or one image per
//! function with `<FUNCTION>_IMAGE` (`CDC_CAPTURE_IMAGE`, `DATAHUB_LOCAL_IMAGE`,
//! `FILE_SINK_IMAGE`, `DATAHUB_RELAY_IMAGE`, `OBJECT_SINK_IMAGE`, `TRANSFORM_IMAGE`,
//! `CDC_PIPELINE_IMAGE`). [`functions`] lists every function of the workspace (the crates
//! under `functions/`, as `deploy/images/build.sh` does).
//!
//! [`ensure`] makes sure the images a test needs are present, without pulling: our function
//! images are (re)built with `deploy/images/build.sh` from the debug binaries next to the test
//! executable (`BIN_DIR=target/debug`) when missing or older than their binary; the MariaDB
//! and S3 images with `deploy/images/{mariadb,s3s-fs}/build.sh` when missing. Images named by
//! an override are never built: they must exist. A function image is checked to run
//! (`docker run --rm IMAGE --version`) before it is recorded as built. A process builds once (a mutex and the set
//! of images already checked); processes (nextest runs every test in its own) serialise on
//! an exclusive lock on `target/integration-tests/images.lock`, so the first builds and the
//! others find the images fresh.

use std::collections::BTreeSet;
use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Mutex;

use anyhow::{bail, Context};

use crate::{docker, workspace_root};

/// Tag of the function images this suite builds (`CDC_IMAGE_TAG` overrides it).
pub const DEFAULT_TAG: &str = "0.0.0-it";
pub const DEFAULT_MARIADB_IMAGE: &str = "cdc/mariadb:local";
pub const DEFAULT_S3_IMAGE: &str = "cdc/s3s-fs:local";

pub const DATAHUB_LOCAL: &str = "datahub-local";
pub const CDC_CAPTURE: &str = "cdc-capture";
pub const FILE_SINK: &str = "file-sink";
pub const OBJECT_SINK: &str = "object-sink";
pub const DATAHUB_RELAY: &str = "datahub-relay";
pub const TRANSFORM: &str = "transform";
pub const CDC_PIPELINE: &str = "cdc-pipeline";

/// Every function of the workspace: the directories under `functions/` with a `Cargo.toml`
/// (the rule `deploy/images/build.sh` builds all images by), sorted by name.
pub fn functions() -> anyhow::Result<Vec<String>> {
    let dir = workspace_root().join("functions");
    let mut names = Vec::new();
    for entry in std::fs::read_dir(&dir).with_context(|| format!("listing {}", dir.display()))? {
        let entry = entry.with_context(|| format!("listing {}", dir.display()))?;
        if entry.path().join("Cargo.toml").is_file() {
            names.push(entry.file_name().to_string_lossy().into_owned());
        }
    }
    names.sort();
    if names.is_empty() {
        bail!("no function crate under {}", dir.display());
    }
    Ok(names)
}

/// An image reference split the way testcontainers takes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImageRef {
    pub name: String,
    pub tag: String,
}

impl ImageRef {
    /// `name[:tag]`; the tag is what follows the last `:` after the last `/` (a registry
    /// port is not a tag), `latest` when there is none.
    pub fn parse(reference: &str) -> ImageRef {
        let slash = reference.rfind('/').map_or(0, |i| i + 1);
        match reference[slash..].rfind(':') {
            Some(colon) => ImageRef { name: reference[..slash + colon].to_owned(), tag: reference[slash + colon + 1..].to_owned() },
            None => ImageRef { name: reference.to_owned(), tag: "latest".to_owned() },
        }
    }

    pub fn reference(&self) -> String {
        format!("{}:{}", self.name, self.tag)
    }
}

impl std::fmt::Display for ImageRef {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}:{}", self.name, self.tag)
    }
}

fn var(name: &str) -> Option<String> {
    std::env::var(name).ok().map(|v| v.trim().to_owned()).filter(|v| !v.is_empty())
}

/// The tag of our function images.
pub fn tag() -> String {
    var("CDC_IMAGE_TAG").unwrap_or_else(|| DEFAULT_TAG.to_owned())
}

/// `CDC_CAPTURE_IMAGE` for `cdc-capture`, …
fn override_var(function: &str) -> String {
    format!("{}_IMAGE", function.to_uppercase().replace('-', "_"))
}

/// The image of a function: its override, else `cdc/<function>:<tag>`.
pub fn function_image(function: &str) -> ImageRef {
    match var(&override_var(function)) {
        Some(reference) => ImageRef::parse(&reference),
        None => ImageRef { name: format!("cdc/{function}"), tag: tag() },
    }
}

pub fn mariadb_image() -> ImageRef {
    ImageRef::parse(&var("MARIADB_IMAGE").unwrap_or_else(|| DEFAULT_MARIADB_IMAGE.to_owned()))
}

pub fn s3_image() -> ImageRef {
    ImageRef::parse(&var("S3_IMAGE").unwrap_or_else(|| DEFAULT_S3_IMAGE.to_owned()))
}

/// Where cargo put the binaries of this build: the test executable is `<dir>/deps/<test>-<hash>`.
pub fn bin_dir() -> PathBuf {
    std::env::current_exe()
        .ok()
        .and_then(|exe| exe.parent()?.parent().map(Path::to_path_buf))
        .filter(|dir| dir.join("deps").is_dir())
        .unwrap_or_else(|| workspace_root().join("target/debug"))
}

/// The suite's own directory in the target directory: the lock and the build stamps.
fn state_dir() -> PathBuf {
    let bin = bin_dir();
    bin.parent().unwrap_or(&bin).join("integration-tests")
}

/// What a test needs.
#[derive(Debug, Clone, Default)]
pub struct Needs {
    pub functions: Vec<String>,
    pub mariadb: bool,
    pub s3: bool,
}

/// Images already checked (or built) by this process.
static ENSURED: Mutex<BTreeSet<String>> = Mutex::new(BTreeSet::new());

/// Makes sure every image in `needs` is present locally, building ours when missing or
/// stale (see the module docs). Blocking: call it before starting containers.
pub fn ensure(needs: &Needs) -> anyhow::Result<()> {
    let mut ensured = ENSURED.lock().unwrap_or_else(|e| e.into_inner());
    let dir = state_dir();
    std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
    let lock_path = dir.join("images.lock");
    let lock = File::options().create(true).truncate(false).write(true).open(&lock_path).with_context(|| format!("opening {}", lock_path.display()))?;
    lock.lock().with_context(|| format!("locking {}", lock_path.display()))?;

    let tag = tag();
    let bin = bin_dir();
    let mut stale: Vec<&str> = Vec::new();
    for function in needs.functions.iter().map(String::as_str) {
        let image = function_image(function);
        if ensured.contains(&image.reference()) {
            continue;
        }
        let ours = var(&override_var(function)).is_none();
        if !ours {
            require_present(&image, &format!("{} names it", override_var(function)))?;
            ensured.insert(image.reference());
            continue;
        }
        let binary = bin.join(function);
        let stamp = binary_stamp(&binary).with_context(|| {
            format!("{} is missing: build the function first (cargo build -p {function})", binary.display())
        })?;
        let recorded = std::fs::read_to_string(stamp_path(function, &tag)).unwrap_or_default();
        let fresh = image_id(&image).is_some_and(|id| recorded.trim() == format!("{stamp} {id}"));
        if !fresh {
            stale.push(function);
        }
    }
    if !stale.is_empty() {
        let script = workspace_root().join("deploy/images/build.sh");
        let build = |functions: &[&str]| {
            eprintln!("integration-tests: building {} with {} (tag {tag}, BIN_DIR={})", functions.join(", "), script.display(), bin.display());
            run_script(Command::new(&script).args(functions).env("CDC_VERSION", &tag).env("BIN_DIR", &bin).env("IMAGE_PREFIX", "cdc"))
        };
        build(&stale)?;
        for &function in &stale {
            let image = function_image(function);
            if let Err(first) = smoke(&image) {
                // Seen once: an image without the binary's libraries, so the kernel cannot
                // exec it (the build script decided "static" from an ldd that failed). One
                // rebuild, then give up with both answers.
                eprintln!("integration-tests: {first:#}; building it again");
                build(&[function])?;
                smoke(&image).with_context(|| format!("{image} does not run after a rebuild either (first attempt: {first:#})"))?;
            }
            let id = image_id(&image).with_context(|| format!("{script:?} ran but {image} is not there"))?;
            let stamp = binary_stamp(&bin.join(function))?;
            std::fs::write(stamp_path(function, &tag), format!("{stamp} {id}\n")).context("writing the build stamp")?;
        }
    }
    for function in &needs.functions {
        ensured.insert(function_image(function).reference());
    }

    let mut others = Vec::new();
    if needs.mariadb {
        others.push((mariadb_image(), DEFAULT_MARIADB_IMAGE, "MARIADB_IMAGE", "deploy/images/mariadb/build.sh"));
    }
    if needs.s3 {
        others.push((s3_image(), DEFAULT_S3_IMAGE, "S3_IMAGE", "deploy/images/s3s-fs/build.sh"));
    }
    for (image, default, variable, script) in others {
        if ensured.contains(&image.reference()) {
            continue;
        }
        if image_id(&image).is_none() {
            if image.reference() != default {
                bail!("{variable}={image} is not present on the Docker engine, and this suite never pulls: pull or build it first, or unset {variable} to build {default}");
            }
            let script = workspace_root().join(script);
            eprintln!("integration-tests: building {image} with {}", script.display());
            run_script(Command::new(&script).env(variable, image.reference()))?;
            image_id(&image).with_context(|| format!("{script:?} ran but {image} is not there"))?;
        }
        ensured.insert(image.reference());
    }
    drop(lock);
    Ok(())
}

/// The image's binary runs: `docker run --rm IMAGE --version` (clap prints the version).
fn smoke(image: &ImageRef) -> anyhow::Result<()> {
    let out = docker(&["run", "--rm", "--label", crate::topology::LABEL, &image.reference(), "--version"]).with_context(|| format!("{image} built but its binary does not run"))?;
    if out.trim().is_empty() {
        bail!("{image} --version printed nothing");
    }
    Ok(())
}

fn require_present(image: &ImageRef, why: &str) -> anyhow::Result<()> {
    if image_id(image).is_none() {
        bail!("{image} ({why}) is not present on the Docker engine, and this suite never pulls: pull or build it first");
    }
    Ok(())
}

/// The image's ID, `None` when the engine has no such image.
pub fn image_id(image: &ImageRef) -> Option<String> {
    docker(&["image", "inspect", "--format", "{{.Id}}", &image.reference()]).ok().map(|id| id.trim().to_owned())
}

/// The image's size in bytes, as `docker image inspect -f '{{.Size}}'` reports it.
pub fn image_size(image: &ImageRef) -> anyhow::Result<u64> {
    let text = docker(&["image", "inspect", "--format", "{{.Size}}", &image.reference()])?;
    text.trim().parse().with_context(|| format!("the size of {image}: {text:?}"))
}

/// Size and modification time of a binary: a rebuilt binary changes them.
fn binary_stamp(binary: &Path) -> anyhow::Result<String> {
    let meta = std::fs::metadata(binary).with_context(|| format!("reading {}", binary.display()))?;
    let modified = meta.modified()?.duration_since(std::time::UNIX_EPOCH).unwrap_or_default();
    Ok(format!("{} {}", meta.len(), modified.as_nanos()))
}

/// A stamp names the binary an image was built from and the image, once `smoke` passed on it
/// (the `.v2` suffix retires stamps written before that check).
fn stamp_path(function: &str, tag: &str) -> PathBuf {
    state_dir().join(format!("{function}-{tag}.v2.stamp"))
}

fn run_script(command: &mut Command) -> anyhow::Result<()> {
    let rendered = format!("{command:?}");
    let output = command.output().with_context(|| format!("running {rendered}"))?;
    let text = format!("{}{}", String::from_utf8_lossy(&output.stdout), String::from_utf8_lossy(&output.stderr));
    if !output.status.success() {
        bail!("{rendered} failed ({}):\n{text}", output.status);
    }
    eprint!("{text}");
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::ImageRef;

    #[test]
    fn references_split_at_the_tag_not_at_a_registry_port() {
        assert_eq!(ImageRef::parse("cdc/file-sink:0.0.0-it"), ImageRef { name: "cdc/file-sink".into(), tag: "0.0.0-it".into() });
        assert_eq!(ImageRef::parse("mariadb"), ImageRef { name: "mariadb".into(), tag: "latest".into() });
        assert_eq!(ImageRef::parse("registry:5000/cdc/mariadb"), ImageRef { name: "registry:5000/cdc/mariadb".into(), tag: "latest".into() });
        assert_eq!(ImageRef::parse("registry:5000/mariadb:11.4").reference(), "registry:5000/mariadb:11.4");
    }
}
