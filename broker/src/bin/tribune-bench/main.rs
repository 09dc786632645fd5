//! `tribune-bench`: a load generator for any NATS server, and the
//! side-by-side comparison behind `make bench` and BENCHMARKS.md.
//!
//! `run` drives one server that is already up; `compare` starts nats-server
//! and tribune-broker with equivalent settings, runs every scenario against
//! both in alternating order over several rounds, and reports medians and
//! ratios; `smoke` runs every scenario with a handful of messages so the
//! tool is exercised by `make test` and cannot rot.

mod auth_flood;
mod burst;
mod callout_storm;
mod churn;
mod cluster_rows;
mod compare;
mod fanout_workers;
mod js;
mod js_cluster;
mod js_r3_failover;
mod js_r3_pub;
mod lame_duck;
mod proc_stats;
mod rx_stamp;
mod scenarios;
mod servers;
mod storm;
mod timed;
mod wire;
mod workers;
mod ws_bench;
mod ws_conn;
mod ws_fleet;
mod ws_frame;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::{Args, Parser, Subcommand};

use scenarios::{Params, Scenario, MASS_EVENTS, STORM_CONNS};

#[derive(Parser)]
#[command(
    name = "tribune-bench",
    about = "Load generator and nats-server comparison for Tribune"
)]
struct Cli {
    #[command(subcommand)]
    cmd: Cmd,
}

/// The size of each scenario's load, shared by `run` and `compare`.
#[derive(Args, Clone, Copy)]
struct Load {
    #[arg(long, default_value_t = 1_000_000)]
    msgs: u64,
    #[arg(long, default_value_t = 20_000)]
    requests: u64,
    #[arg(long, default_value_t = 10_000)]
    idle_conns: u64,
    /// Clients in the connect burst.
    #[arg(long, default_value_t = 3_000)]
    burst_conns: u64,
    /// Messages per JetStream run.
    #[arg(long, default_value_t = 20_000)]
    js_msgs: u64,
    /// Clients flooding the server with wrong passwords (auth flood).
    #[arg(long, default_value_t = 64)]
    flood_clients: u64,
    /// Seconds of round trips measured during the auth flood.
    #[arg(long, default_value_t = 10.0)]
    flood_secs: f64,
    /// WebSocket clients in the WebSocket scenarios.
    #[arg(long, default_value_t = 10_000)]
    ws_conns: u64,
    /// Measured events per WebSocket fan-out run (after one warm-up).
    #[arg(long, default_value_t = 5, value_parser = clap::value_parser!(u64).range(1..))]
    ws_events: u64,
    /// Measured updates per mass fan-out run (after one warm-up).
    #[arg(long, default_value_t = MASS_EVENTS, value_parser = clap::value_parser!(u64).range(1..))]
    mass_events: u64,
    /// Subscribers in every mass fan-out, instead of its own count.
    #[arg(long)]
    mass_conns: Option<u64>,
    /// Mass fan-out subscribers one bench process holds; a larger
    /// fan-out's are split evenly over worker processes of at most this
    /// many each.
    #[arg(long, default_value_t = fanout_workers::PER_PROCESS, value_parser = clap::value_parser!(u64).range(1..))]
    mass_per_process: u64,
    /// Clients in the connection storms.
    #[arg(long, default_value_t = STORM_CONNS)]
    storm_conns: u64,
    /// Seconds each phase of the churn scenario publishes.
    #[arg(long, default_value_t = 5.0)]
    churn_secs: f64,
}

impl Load {
    /// The scenarios' knobs; the clustered JetStream ones and the
    /// WebSocket listener come from the subcommand.
    fn params(self, js_r3_msgs: u64, failovers: u64, ws_addr: Option<SocketAddr>) -> Params {
        Params {
            msgs: self.msgs,
            requests: self.requests,
            idle_conns: self.idle_conns,
            burst_conns: self.burst_conns,
            js_msgs: self.js_msgs,
            flood_clients: self.flood_clients,
            flood_window: Duration::from_secs_f64(self.flood_secs),
            js_r3_msgs,
            failovers,
            ws_conns: self.ws_conns,
            ws_events: self.ws_events,
            ws_addr,
            mass_events: self.mass_events,
            mass_conns: self.mass_conns,
            storm_conns: self.storm_conns,
            churn_phase: Duration::from_secs_f64(self.churn_secs),
            mass_per_process: self.mass_per_process,
        }
    }
}

#[derive(Subcommand)]
enum Cmd {
    /// Run scenarios against a server that is already running.
    Run {
        /// Server address, host:port.
        #[arg(long, default_value = "127.0.0.1:4222")]
        addr: SocketAddr,
        /// Pid of the server, to report its CPU and memory.
        #[arg(long)]
        server_pid: Option<u32>,
        /// Another node of the same cluster, for the clustered scenarios.
        #[arg(long)]
        peer: Option<SocketAddr>,
        #[arg(long, value_enum, num_args = 1.., default_values_t = Scenario::on_running_server())]
        scenario: Vec<Scenario>,
        /// The server's WebSocket listener (`websocket { no_tls: true }`),
        /// for the WebSocket scenarios.
        #[arg(long)]
        ws_addr: Option<SocketAddr>,
        #[command(flatten)]
        load: Load,
    },
    /// Start nats-server and tribune-broker and compare them.
    Compare {
        #[arg(long)]
        nats_server: PathBuf,
        #[arg(long)]
        tribune: PathBuf,
        /// tribune-auth, for the auth-callout storm (default: beside
        /// `--tribune`).
        #[arg(long)]
        auth: Option<PathBuf>,
        #[arg(long, default_value_t = 3)]
        rounds: usize,
        #[arg(long, value_enum, num_args = 1.., default_values_t = Scenario::ALL)]
        scenario: Vec<Scenario>,
        /// Messages per clustered (R3) JetStream publish run.
        #[arg(long, default_value_t = js_cluster::DEFAULT_R3_MSGS, value_parser = clap::value_parser!(u64).range(1..))]
        js_r3_msgs: u64,
        /// Stream leaders killed per clustered failover run.
        #[arg(long, default_value_t = js_cluster::DEFAULT_FAILOVERS, value_parser = clap::value_parser!(u64).range(1..))]
        failovers: u64,
        #[command(flatten)]
        load: Load,
        /// Rewrite the generated part of this file with the results.
        #[arg(long)]
        write: Option<PathBuf>,
    },
    /// Print the server configuration the auth-flood scenario needs (its
    /// users), for servers started by hand for `run` or `smoke`.
    AuthFloodConfig {
        /// bcrypt cost of the flooded user's hash.
        #[arg(long, default_value_t = auth_flood::BCRYPT_COST)]
        cost: u32,
    },
    /// Every scenario with a few messages against an already running server.
    Smoke {
        #[arg(long)]
        addr: SocketAddr,
        /// Only these (the JetStream ones need a server with JetStream,
        /// auth-flood one with the users of `auth-flood-config`).
        #[arg(long, value_enum, num_args = 1.., default_values_t = Scenario::on_running_server())]
        scenario: Vec<Scenario>,
        /// The server's WebSocket listener (`websocket { no_tls: true }`),
        /// for the WebSocket scenarios.
        #[arg(long)]
        ws_addr: Option<SocketAddr>,
    },
    /// One of a connection storm's worker processes (started by the storm
    /// itself; see `storm.rs`).
    #[command(hide = true)]
    StormWorker {
        #[command(flatten)]
        share: workers::Share,
        /// The node (an index into `nodes`) that goes into lame-duck mode.
        #[arg(long)]
        lame: Option<usize>,
    },
    /// One worker process of the largest fan-outs (started by the bench
    /// itself; see `fanout_workers.rs`).
    #[command(hide = true)]
    FanoutWorker {
        #[command(flatten)]
        share: workers::Share,
        /// Messages each client stays for (the warm-up included).
        #[arg(long)]
        msgs: usize,
        /// Over the WebSocket listener rather than the client port.
        #[arg(long)]
        websocket: bool,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.cmd {
        Cmd::Run {
            addr,
            server_pid,
            peer,
            scenario,
            ws_addr,
            load,
        } => {
            // The clustered JetStream scenarios do not run against one server.
            let p = load.params(
                js_cluster::DEFAULT_R3_MSGS,
                js_cluster::DEFAULT_FAILOVERS,
                ws_addr,
            );
            compare::raise_fd_limit(p.most_conns(&scenario));
            scenario.iter().try_for_each(|&s| {
                let o = scenarios::run(s, addr, peer, server_pid, p)?;
                println!("{:<32} {}", s.title(), compare::describe(&o));
                Ok::<_, std::io::Error>(())
            })
        }
        Cmd::Compare {
            nats_server,
            tribune,
            auth,
            rounds,
            scenario,
            js_r3_msgs,
            failovers,
            load,
            write,
        } => {
            // Each measurement starts its servers with a listener of its own.
            let p = load.params(js_r3_msgs, failovers, None);
            let auth = auth.unwrap_or_else(|| tribune.with_file_name("tribune-auth"));
            compare::compare(
                &nats_server,
                &tribune,
                &auth,
                rounds,
                &scenario,
                p,
                write.as_deref(),
            )
        }
        Cmd::AuthFloodConfig { cost } => {
            auth_flood::server_config(cost).map(|conf| print!("{conf}"))
        }
        Cmd::Smoke {
            addr,
            scenario,
            ws_addr,
        } => {
            let p = Params {
                msgs: 2_000,
                requests: 200,
                idle_conns: 20,
                burst_conns: 50,
                js_msgs: 600,
                flood_clients: 4,
                flood_window: Duration::from_millis(400),
                js_r3_msgs: 600,
                failovers: 1,
                ws_conns: 20,
                ws_events: 2,
                ws_addr,
                mass_events: 2,
                mass_conns: Some(20),
                storm_conns: 20,
                churn_phase: Duration::from_millis(300),
                // 20 subscribers over workers of at most 8 (7, 7 and 6):
                // the worker path runs too.
                mass_per_process: 8,
            };
            scenario.iter().try_for_each(|&s| {
                let o = scenarios::run(s, addr, None, None, p)?;
                println!("smoke {:<32} {}", s.title(), compare::describe(&o));
                Ok::<_, std::io::Error>(())
            })
        }
        Cmd::StormWorker { share, lame } => storm::worker(&share, lame),
        Cmd::FanoutWorker {
            share,
            msgs,
            websocket,
        } => {
            let transport = if websocket {
                ws_conn::Transport::WebSocket
            } else {
                ws_conn::Transport::Tcp
            };
            fanout_workers::worker(&share, msgs, transport)
        }
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("tribune-bench: {e}");
            ExitCode::FAILURE
        }
    }
}
