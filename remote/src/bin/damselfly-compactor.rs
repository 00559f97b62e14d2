//! `damselfly-compactor`: a remote compaction worker.
//!
//! ```text
//! damselfly-compactor --storage PATH|s3://BUCKET[/PREFIX] [--listen MULTIADDR] [--peer MULTIADDR]...
//!                     [--pool NAME] [--concurrency N] [--allow-http] [--drill crash-on-job|delay-jobs=SECS]
//! ```
//!
//! Once it listens, it prints `listening on ADDRESS` on stdout for each address it listens on
//! (what a database dials, peer id included), and logs each job to stderr.

use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use damselfly::runtime::TokioRuntime;
use damselfly::storage::{LocalDiskStorage, Storage};
use damselfly_remote::{Drill, Multiaddr, Network, NetworkConfig, PeerId, Worker, WorkerOptions};

/// How long the worker waits for its `--peer`s before it registers.
const PEER_WAIT: Duration = Duration::from_secs(30);

/// The peer id an address ends in (`/p2p/<peer id>`), if any.
fn peer_id(address: &Multiaddr) -> Option<PeerId> {
    match address.iter().last() {
        Some(damselfly_remote::multiaddr::Protocol::P2p(peer)) => Some(peer),
        _ => None,
    }
}

const USAGE: &str = "usage: damselfly-compactor --storage PATH|s3://BUCKET[/PREFIX] \
[--listen MULTIADDR] [--peer MULTIADDR]... [--pool NAME] [--concurrency N] [--allow-http] \
[--drill crash-on-job|delay-jobs=SECS]

  --storage      the database's location: a folder, or (built with the s3 feature) a bucket and
                 prefix; credentials, region and endpoint come from the AWS_* environment
  --listen       where to listen (default /ip4/0.0.0.0/tcp/0: every interface, a free port)
  --peer         a database (or worker) to connect to at start (repeatable); the worker
                 registers once connected, so the database finds it at once
  --pool         the name to register under (default damselfly-compactor)
  --concurrency  jobs run at once (default 1)
  --allow-http   allow a plain-http S3 endpoint (local test servers)
  --drill        misbehave on purpose, for failure drills: die as a job starts, or delay jobs";

#[derive(Debug)]
struct Args {
    storage: String,
    listen: Vec<Multiaddr>,
    peers: Vec<Multiaddr>,
    options: WorkerOptions,
    allow_http: bool,
}

fn parse(mut args: impl Iterator<Item = String>) -> Result<Args, String> {
    let mut storage = None;
    let (mut listen, mut peers) = (Vec::new(), Vec::new());
    let mut options = WorkerOptions::default();
    let mut allow_http = false;
    while let Some(flag) = args.next() {
        let mut value = || args.next().ok_or_else(|| format!("{flag} needs a value"));
        match flag.as_str() {
            "--storage" => storage = Some(value()?),
            "--listen" => listen.push(multiaddr(&value()?)?),
            "--peer" => peers.push(multiaddr(&value()?)?),
            "--pool" => options = options.pool(value()?),
            "--concurrency" => {
                let jobs = value()?;
                match jobs.parse::<usize>() {
                    Ok(jobs) if jobs > 0 => options = options.concurrency(jobs),
                    _ => {
                        return Err(format!(
                            "--concurrency takes a positive number, not {jobs:?}"
                        ));
                    }
                }
            }
            "--allow-http" => allow_http = true,
            "--drill" => options = options.drill(drill(&value()?)?),
            "--help" | "-h" => return Err(String::new()),
            other => return Err(format!("unknown argument {other:?}")),
        }
    }
    if listen.is_empty() {
        listen.push(multiaddr("/ip4/0.0.0.0/tcp/0")?);
    }
    Ok(Args {
        storage: storage.ok_or("--storage is required")?,
        listen,
        peers,
        options,
        allow_http,
    })
}

fn multiaddr(text: &str) -> Result<Multiaddr, String> {
    text.parse()
        .map_err(|error| format!("{text:?} is not a multiaddress: {error}"))
}

fn drill(text: &str) -> Result<Drill, String> {
    if text == "crash-on-job" {
        return Ok(Drill::CrashOnJob);
    }
    match text.strip_prefix("delay-jobs=").map(str::parse::<f64>) {
        Some(Ok(seconds)) if seconds.is_finite() && seconds >= 0.0 => {
            Ok(Drill::DelayJobs(Duration::from_secs_f64(seconds)))
        }
        _ => Err(format!(
            "--drill takes crash-on-job or delay-jobs=SECS, not {text:?}"
        )),
    }
}

async fn open_storage(location: &str, allow_http: bool) -> Result<Arc<dyn Storage>, String> {
    if let Some(bucket_and_prefix) = location.strip_prefix("s3://") {
        return s3_storage(bucket_and_prefix, allow_http);
    }
    let storage = LocalDiskStorage::open_existing(location, Arc::new(TokioRuntime::current()))
        .await
        .map_err(|error| format!("opening {location}: {error}"))?;
    Ok(Arc::new(storage))
}

#[cfg(feature = "s3")]
fn s3_storage(bucket_and_prefix: &str, allow_http: bool) -> Result<Arc<dyn Storage>, String> {
    use damselfly::storage::{S3Spec, S3Storage};
    let (bucket, prefix) = bucket_and_prefix
        .split_once('/')
        .unwrap_or((bucket_and_prefix, ""));
    let spec = S3Spec::new(bucket).prefix(prefix).allow_http(allow_http);
    let storage = S3Storage::connect(spec).map_err(|error| error.to_string())?;
    Ok(Arc::new(storage))
}

#[cfg(not(feature = "s3"))]
fn s3_storage(_: &str, _: bool) -> Result<Arc<dyn Storage>, String> {
    Err("this damselfly-compactor was built without the s3 feature".to_owned())
}

fn main() -> ExitCode {
    let args = match parse(std::env::args().skip(1)) {
        Ok(args) => args,
        Err(error) => {
            if !error.is_empty() {
                eprintln!("damselfly-compactor: {error}");
            }
            eprintln!("{USAGE}");
            return ExitCode::from(2);
        }
    };
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_ansi(false)
        .init();
    let mut config = NetworkConfig::new();
    for address in &args.listen {
        config = config.listen(address.clone());
    }
    for address in &args.peers {
        config = config.peer(address.clone());
    }
    let network = match Network::start(config) {
        Ok(network) => network,
        Err(error) => {
            eprintln!("damselfly-compactor: {error}");
            return ExitCode::FAILURE;
        }
    };
    network.block_on(async move {
        let result = async {
            let storage = open_storage(&args.storage, args.allow_http).await?;
            // Registering announces the worker to the peers it is connected to: the database
            // it names with --peer stores the announcement, and finds the worker at once.
            let peers: Vec<PeerId> = args.peers.iter().filter_map(peer_id).collect();
            for peer in network.wait_connected(&peers, PEER_WAIT).await {
                tracing::warn!(%peer, "not connected to a --peer; registering anyway");
            }
            let worker = Worker::start(network, storage, args.options)
                .await
                .map_err(|error| error.to_string())?;
            for address in network.listen_addresses().await {
                println!("listening on {address}");
            }
            worker.wait().await;
            Ok::<_, String>(())
        };
        match result.await {
            Ok(()) => ExitCode::SUCCESS,
            Err(error) => {
                eprintln!("damselfly-compactor: {error}");
                ExitCode::FAILURE
            }
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(text: &str) -> Result<Args, String> {
        parse(text.split_whitespace().map(str::to_owned))
    }

    #[test]
    fn parses_a_full_command_line() {
        let parsed = args(
            "--storage /data/db --listen /ip4/127.0.0.1/tcp/4100 --peer /ip4/10.0.0.2/tcp/4100 \
             --peer /ip4/10.0.0.3/tcp/4100 --pool pool-a --concurrency 3 --allow-http \
             --drill delay-jobs=1.5",
        )
        .expect("parses");
        assert_eq!(parsed.storage, "/data/db");
        assert_eq!(
            parsed.listen,
            vec![multiaddr("/ip4/127.0.0.1/tcp/4100").expect("addr")]
        );
        assert_eq!(parsed.peers.len(), 2);
        assert!(parsed.allow_http);
        let shown = format!("{:?}", parsed.options);
        assert!(
            shown.contains("pool-a") && shown.contains("concurrency: 3"),
            "{shown}"
        );
        assert!(shown.contains("DelayJobs(1.5s)"), "{shown}");
    }

    #[test]
    fn refuses_bad_command_lines_saying_why() {
        for (line, expected) in [
            ("--listen /ip4/127.0.0.1/tcp/0", "--storage is required"),
            (
                "--storage /x --concurrency 0",
                "--concurrency takes a positive number",
            ),
            ("--storage /x --listen nowhere", "is not a multiaddress"),
            ("--storage /x --drill explode", "--drill takes crash-on-job"),
            ("--storage /x --frobnicate", "unknown argument"),
            ("--storage", "--storage needs a value"),
        ] {
            match args(line) {
                Ok(parsed) => panic!("{line:?} parsed as {parsed:?}"),
                Err(error) => assert!(error.contains(expected), "{line:?}: {error}"),
            }
        }
    }

    #[test]
    fn listens_everywhere_by_default() {
        let parsed = args("--storage /x").expect("parses");
        assert_eq!(
            parsed.listen,
            vec![multiaddr("/ip4/0.0.0.0/tcp/0").expect("addr")]
        );
        assert_eq!(
            format!("{:?}", parsed.options.clone()),
            format!("{:?}", WorkerOptions::default())
        );
    }
}
