//! `tokenone export decrypt FILE [--out DIR]`: opens an encrypted project export (`.t1x`) and
//! writes its JSON bundle. The whole file is decrypted into a private scratch file first and
//! only moved into place once every chunk has authenticated, so a wrong passphrase, a flipped
//! byte, or a truncated or reordered file writes nothing.

use anyhow::{bail, Context};
use std::io::{BufReader, IsTerminal, Write};
use std::path::{Path, PathBuf};
use tokenone_core::export::{open_stream, MIN_PASSPHRASE_CHARS};
use zeroize::Zeroizing;

/// The environment variable that supplies the passphrase without a prompt.
pub const PASSPHRASE_ENV: &str = "TOKENONE_EXPORT_PASSPHRASE";

fn passphrase() -> anyhow::Result<Zeroizing<String>> {
    if let Ok(p) = std::env::var(PASSPHRASE_ENV) {
        return Ok(Zeroizing::new(p));
    }
    if !std::io::stdin().is_terminal() {
        bail!("no passphrase: set {PASSPHRASE_ENV} or run on a terminal to be prompted");
    }
    let p = rpassword::prompt_password("Export passphrase: ").context("reading the passphrase")?;
    if p.chars().count() < MIN_PASSPHRASE_CHARS {
        bail!("the passphrase is shorter than {MIN_PASSPHRASE_CHARS} characters, so it cannot be the export's");
    }
    Ok(Zeroizing::new(p))
}

/// `<file stem>.json` in `out`.
fn target(file: &Path, out: &Path) -> PathBuf {
    let stem = file
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| "tokenone-export".into());
    out.join(format!("{stem}.json"))
}

fn create_private(path: &Path) -> std::io::Result<std::fs::File> {
    let mut opts = std::fs::OpenOptions::new();
    opts.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        opts.mode(0o600);
    }
    opts.open(path)
}

pub fn decrypt(file: &Path, out: Option<&Path>) -> anyhow::Result<()> {
    let out_dir = out.unwrap_or_else(|| Path::new("."));
    let dest = target(file, out_dir);
    if dest.exists() {
        bail!("{} already exists; not overwriting it", dest.display());
    }
    let input = std::fs::File::open(file).with_context(|| format!("opening {}", file.display()))?;
    let pass = passphrase()?;
    if !out_dir.as_os_str().is_empty() {
        std::fs::create_dir_all(out_dir).with_context(|| format!("creating {}", out_dir.display()))?;
    }
    let scratch = out_dir.join(format!(
        ".{}.partial-{}",
        dest.file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default(),
        std::process::id()
    ));
    let result = (|| -> anyhow::Result<u64> {
        let mut f = std::io::BufWriter::new(create_private(&scratch).context("creating a scratch file")?);
        let n = open_stream(BufReader::with_capacity(256 * 1024, input), &pass, &mut f)?;
        let f = f.into_inner().map_err(|e| e.into_error())?;
        f.sync_all()?;
        Ok(n)
    })();
    match result {
        Ok(n) => {
            std::fs::rename(&scratch, &dest).with_context(|| format!("moving the bundle to {}", dest.display()))?;
            let _ = std::io::stderr().flush();
            eprintln!("decrypted {n} bytes to {}", dest.display());
            Ok(())
        }
        Err(e) => {
            let _ = std::fs::remove_file(&scratch);
            Err(e.context(format!("{} was not decrypted; nothing was written", file.display())))
        }
    }
}
