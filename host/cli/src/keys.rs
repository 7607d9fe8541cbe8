//! `tessera keys`: the operator's key commands. `init` creates the master key
//! that wraps every tenant key; it never prints or logs the key itself.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, Subcommand};
use tessera_privacy::MasterKey;

#[derive(Debug, Subcommand)]
pub enum KeysCommand {
    /// Create a new master key file (mode 0600; an existing file is never overwritten).
    Init(InitArgs),
    /// Print the id of the master key in a file (to tell keys apart without revealing them).
    Id(InitArgs),
}

#[derive(Debug, Args)]
pub struct InitArgs {
    /// The master key file.
    #[arg(
        long,
        env = "TESSERA_MASTER_KEY_FILE",
        default_value = "tessera-master.key"
    )]
    key_file: PathBuf,
}

pub fn run(command: KeysCommand) -> anyhow::Result<ExitCode> {
    match command {
        KeysCommand::Init(args) => {
            let key = MasterKey::generate()?;
            key.write_new(&args.key_file)?;
            println!(
                "created master key {} in {}",
                key.id(),
                args.key_file.display()
            );
            println!("keep a copy somewhere safe: without it, no tenant's data can be read");
        }
        KeysCommand::Id(args) => {
            let key = MasterKey::from_file(&args.key_file)?;
            println!("{}", key.id());
        }
    }
    Ok(ExitCode::SUCCESS)
}
