//! `tessera`: the one binary of the Tessera marketing cloud. This stage has
//! the partner loop (`plugin test`) and an end-to-end `demo`; the server and
//! the operator commands arrive with their issues.

mod audit;
mod bundle;
mod campaign;
mod data;
mod demo;
mod import;
mod keys;
mod migrate;
mod plugin;
mod plugin_new;
mod plugin_new_js;
mod plugin_test;
mod report;
mod segment;
mod serve;
mod subject;
mod token;
mod upkeep;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, Parser, Subcommand};
use tessera_runtime::{Runtime, RuntimeConfig, TrustedRoots};

/// mimalloc instead of the system allocator: under load the store copies
/// tree nodes on every write, and glibc's allocator was about a quarter of
/// the server's CPU (docs/BENCHMARKS.md, section 5).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Debug, Parser)]
#[command(
    name = "tessera",
    version,
    about = "Tessera: a marketing cloud whose connectors, segments and strategies are sandboxed WebAssembly plugins"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Import the large retail example through the connector plugins into the encrypted store, build segments, run a campaign, exercise the subject rights.
    Demo(demo::DemoArgs),
    /// Work with plugins.
    #[command(subcommand)]
    Plugin(PluginCommand),
    /// Manage the master key and publisher keys.
    #[command(subcommand)]
    Keys(keys::KeysCommand),
    /// Build, sign, inspect and verify signed plugin bundles.
    #[command(subcommand)]
    Bundle(bundle::BundleCommand),
    /// Create tenants (works on the data directory directly, which a running
    /// server holds exclusively).
    #[command(subcommand)]
    Tenant(data::TenantCommand),
    /// Check and read a tenant's audit trail (works on the data directory
    /// directly, which a running server holds exclusively).
    #[command(subcommand)]
    Audit(audit::AuditCommand),
    /// Show, export or erase a person's data (works on the data directory
    /// directly, which a running server holds exclusively).
    #[command(subcommand)]
    Subject(subject::SubjectCommand),
    /// Run due purges and retention sweeps (works on the data directory
    /// directly, which a running server holds exclusively).
    #[command(subcommand)]
    Jobs(data::JobsCommand),
    /// Run the HTTP service (API tokens and roles, Segment-compatible
    /// ingest, subjects, deletions, audit, tenant and schema, plugins,
    /// health and metrics).
    Serve(serve::ServeArgs),
    /// Copy a sled data directory into PostgreSQL, every tenant and record
    /// kind byte for byte, then verify the copy by counts and digests (works
    /// on the data directory directly: stop the server first). Re-running
    /// finishes an interrupted copy; the subject keys stay where they are.
    Migrate(migrate::MigrateArgs),
    /// Import a file into a running server through one of the tenant's
    /// connectors, with a progress bar and the quality report.
    Import(import::ImportArgs),
    /// Create, list and revoke API tokens on a running server.
    #[command(subcommand)]
    Token(token::TokenCommand),
    /// Save, preview, recompute and list segments on a running server.
    #[command(subcommand)]
    Segment(segment::SegmentCommand),
    /// Show a customer profile from a running server (operator or marketer
    /// token): traits by the role, aggregates, segments with when and why,
    /// consents.
    Profile(segment::ProfileArgs),
    /// The strategy catalog of a running server: each strategy's actions,
    /// parameters, purposes and evaluated campaigns.
    Catalog(campaign::CatalogArgs),
    /// Campaigns of a running server: save, simulate, run, pause, complete,
    /// evaluate, send to a whole segment through a destination, and
    /// strategies recommended for a segment.
    #[command(subcommand)]
    Campaign(campaign::CampaignCommand),
}

#[derive(Debug, Subcommand)]
enum PluginCommand {
    /// Create a working plugin project: source, bundle manifest, build script.
    New(plugin_new::NewArgs),
    /// Load a component under the real sandbox limits, type-check it, print its
    /// manifest, run a sample call and print what it cost.
    Test(plugin_test::TestArgs),
    #[command(flatten)]
    Lifecycle(plugin::LifecycleCommand),
}

/// Where compiled components are cached.
#[derive(Debug, Args)]
struct CacheArgs {
    /// Directory of the compiled-component cache [default: ~/.cache/tessera/components].
    #[arg(long, global = true, env = "TESSERA_CACHE_DIR")]
    cache_dir: Option<PathBuf>,
    /// Compile every component afresh, keeping nothing on disk.
    #[arg(long, global = true)]
    no_cache: bool,
}

impl CacheArgs {
    fn runtime(&self) -> anyhow::Result<Runtime> {
        self.runtime_trusting(TrustedRoots::default())
    }

    /// The runtime, whose connectors' HTTPS requests trust `roots`.
    fn runtime_trusting(&self, outbound_roots: TrustedRoots) -> anyhow::Result<Runtime> {
        let cache_dir = if self.no_cache {
            None
        } else {
            self.cache_dir.clone().or_else(|| {
                std::env::var_os("XDG_CACHE_HOME")
                    .map(PathBuf::from)
                    .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache")))
                    .map(|dir| dir.join("tessera/components"))
            })
        };
        Ok(Runtime::new(RuntimeConfig {
            cache_dir,
            concurrent_calls: 16,
            outbound_roots,
            ..RuntimeConfig::default()
        })?)
    }
}

/// SplitMix64: deterministic pseudo-random numbers for synthetic data and
/// simulated feedback (reproducible runs, no global RNG).
pub(crate) fn splitmix(x: u64) -> u64 {
    let mut z = x.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    // A server logs its requests by default; one-shot commands only errors.
    let default_filter = if matches!(cli.command, Command::Serve(_)) {
        "info"
    } else {
        "error"
    };
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("TESSERA_LOG")
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default_filter)),
        )
        .with_writer(std::io::stderr)
        .init();
    let result = match cli.command {
        Command::Demo(args) => demo::run(args),
        Command::Plugin(PluginCommand::New(args)) => plugin_new::run(args),
        Command::Plugin(PluginCommand::Test(args)) => plugin_test::run(args),
        Command::Plugin(PluginCommand::Lifecycle(command)) => plugin::run(command),
        Command::Keys(command) => keys::run(command),
        Command::Bundle(command) => bundle::run(command),
        Command::Tenant(command) => data::tenant(command),
        Command::Audit(command) => audit::run(command),
        Command::Subject(command) => subject::run(command),
        Command::Jobs(command) => data::jobs(command),
        Command::Serve(args) => serve::run(args),
        Command::Token(command) => token::run(command),
        Command::Segment(command) => segment::run(command),
        Command::Profile(args) => segment::profile(args),
        Command::Catalog(args) => campaign::catalog(args),
        Command::Campaign(command) => campaign::run(command),
        Command::Import(args) => import::run(args),
        Command::Migrate(args) => migrate::run(args),
    };
    match result {
        Ok(code) => code,
        Err(error) => {
            eprintln!("error: {error:#}");
            ExitCode::from(2)
        }
    }
}
