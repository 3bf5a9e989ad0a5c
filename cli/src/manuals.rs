//! `tessera completions <shell>` and `tessera man`: shell completions and man pages generated
//! from the same clap definitions as the parser, so they cannot drift from it.

use std::path::{Path, PathBuf};

use anyhow::Context;
use clap::Args;

#[derive(Debug, Args)]
pub struct CompletionsArgs {
    /// The shell: bash, zsh, fish, elvish or powershell. For bash, e.g.
    /// `tessera completions bash > ~/.local/share/bash-completion/completions/tessera`.
    shell: clap_complete::Shell,
}

#[derive(Debug, Args)]
pub struct ManArgs {
    /// Write one page per command (`tessera.1`, `tessera-up.1`, …) into this folder instead of
    /// printing `tessera(1)`.
    #[arg(long, value_name = "DIR")]
    out_dir: Option<PathBuf>,
}

/// Prints the completion script for `command` (the whole `tessera` command).
pub fn completions(args: &CompletionsArgs, mut command: clap::Command) {
    let name = command.get_name().to_owned();
    clap_complete::generate(args.shell, &mut command, name, &mut std::io::stdout());
}

/// Prints `tessera(1)`, or writes every command's page into `--out-dir`.
pub fn man(args: &ManArgs, command: clap::Command) -> anyhow::Result<()> {
    match &args.out_dir {
        Some(folder) => write_pages(folder, command),
        None => {
            clap_mangen::Man::new(command).render(&mut std::io::stdout()).context("cannot print the page")
        }
    }
}

fn write_pages(folder: &Path, command: clap::Command) -> anyhow::Result<()> {
    std::fs::create_dir_all(folder).with_context(|| format!("cannot create {}", folder.display()))?;
    clap_mangen::generate_to(command, folder)
        .with_context(|| format!("cannot write the pages into {}", folder.display()))?;
    println!("man pages written to {}", folder.display());
    Ok(())
}
