//! A runc bundle built from Debian's static busybox, and a container run that cleans up after
//! itself even when the test fails.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use anyhow::{bail, Context, Result};
use serde_json::Value;

/// Where Debian's `busybox-static` installs the binary.
pub const BUSYBOX: &str = "/bin/busybox";

/// True when this process runs as root.
pub fn is_root() -> bool {
    // SAFETY: geteuid has no preconditions and cannot fail.
    #[allow(unsafe_code)]
    unsafe {
        libc::geteuid() == 0
    }
}

/// True when `runc` answers `--version`.
pub fn have_runc() -> bool {
    Command::new("runc")
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success())
}

/// True when a statically linked busybox is at [`BUSYBOX`] (a 64-bit ELF file without a
/// `PT_INTERP` program header, so it runs in a rootfs that has no dynamic loader).
pub fn have_static_busybox() -> bool {
    std::fs::read(BUSYBOX).is_ok_and(|elf| is_static_elf64(&elf))
}

fn is_static_elf64(elf: &[u8]) -> bool {
    const PT_INTERP: u32 = 3;
    let u16_at = |o: usize| elf.get(o..o + 2).map(|b| u16::from_le_bytes([b[0], b[1]]));
    let u32_at = |o: usize| {
        elf.get(o..o + 4)
            .map(|b| u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
    };
    let u64_at = |o: usize| {
        elf.get(o..o + 8)
            .and_then(|b| b.try_into().ok())
            .map(u64::from_le_bytes)
    };
    if elf.get(..5) != Some(b"\x7fELF\x02") {
        return false;
    }
    let (Some(phoff), Some(size), Some(num)) = (u64_at(0x20), u16_at(0x36), u16_at(0x38)) else {
        return false;
    };
    let Ok(phoff) = usize::try_from(phoff) else {
        return false;
    };
    (0..usize::from(num))
        .all(|i| u32_at(phoff + i * usize::from(size)).is_some_and(|t| t != PT_INTERP))
}

/// A bundle directory: `config.json` and a busybox `rootfs/`.
#[derive(Debug)]
pub struct Bundle {
    /// The bundle directory.
    pub dir: PathBuf,
    /// The parsed `config.json`, edited by the test before [`Bundle::write_config`].
    pub config: Value,
}

impl Bundle {
    /// Creates a bundle under `parent` running `args` with runc's default spec.
    pub fn new(parent: &Path, args: &[&str]) -> Result<Self> {
        let dir = parent.join("bundle");
        let rootfs = dir.join("rootfs");
        for sub in ["bin", "proc", "dev", "sys", "tmp", "etc"] {
            std::fs::create_dir_all(rootfs.join(sub))?;
        }
        std::fs::copy(BUSYBOX, rootfs.join("bin/busybox")).context("copying busybox")?;
        std::os::unix::fs::symlink("busybox", rootfs.join("bin/sh"))?;
        std::fs::write(rootfs.join("etc/secret"), "s3cr3t\n")?;
        let out = Command::new("runc")
            .arg("spec")
            .current_dir(&dir)
            .output()
            .context("running runc spec")?;
        if !out.status.success() {
            bail!("runc spec failed: {}", String::from_utf8_lossy(&out.stderr));
        }
        let mut config: Value = serde_json::from_slice(&std::fs::read(dir.join("config.json"))?)?;
        config["process"]["terminal"] = Value::Bool(false);
        config["process"]["args"] = args.iter().map(|a| Value::from(*a)).collect();
        config["root"]["readonly"] = Value::Bool(false);
        Ok(Self { dir, config })
    }

    /// Writes the (edited) `config.json`.
    pub fn write_config(&self) -> Result<()> {
        std::fs::write(
            self.dir.join("config.json"),
            serde_json::to_vec_pretty(&self.config)?,
        )?;
        Ok(())
    }
}

/// A container run with `runc run`; `runc delete --force` on drop.
#[derive(Debug)]
pub struct Container {
    root: PathBuf,
    id: String,
}

impl Container {
    /// A container `id` whose runc state lives under `root`.
    pub fn new(root: &Path, id: &str) -> Self {
        Self {
            root: root.to_owned(),
            id: id.to_owned(),
        }
    }

    /// `runc run` in the foreground; returns when the container exits.
    pub fn run(&self, bundle: &Bundle) -> Result<Output> {
        Command::new("runc")
            .arg("--root")
            .arg(&self.root)
            .args(["run", "--bundle"])
            .arg(&bundle.dir)
            .arg(&self.id)
            .stdin(std::process::Stdio::null())
            .output()
            .context("running runc run")
    }
}

impl Drop for Container {
    fn drop(&mut self) {
        // Best effort: the container has normally exited and been deleted by `runc run`.
        let _ = Command::new("runc")
            .arg("--root")
            .arg(&self.root)
            .args(["delete", "--force", &self.id])
            .output();
    }
}
