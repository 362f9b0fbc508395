//! The checker's runner against 1,000 real servers on loopback (10 virtual
//! servers of 100): all come up; 100 of them stop and are reported down,
//! and dropped from their pools, within delay_loop + retry ×
//! delay_before_retry (plus slack); restarted, they are reported up within
//! one delay_loop (plus slack). Also the status view and a MISC_CHECK's
//! dynamic weight flowing to the pool.

use appliance::check::decision::{DynamicWeight, Outcome, VsId};
use appliance::check::runner::{self, Options, Report};
use appliance::config::model::{Config, VirtualServer};
use appliance_tests::loopback::{self, Server};
use std::collections::{BTreeMap, BTreeSet};
use std::net::SocketAddr;
use std::time::Duration;
use tokio::sync::mpsc::UnboundedReceiver;
use tokio::time::Instant;

const VS: usize = 10;
const PER_VS: usize = 100;

fn config(servers: &[SocketAddr]) -> Vec<VirtualServer> {
    let mut text = String::new();
    for (v, chunk) in servers.chunks(PER_VS).enumerate() {
        text.push_str(&format!(
            "[[virtual_server]]\nservice = {{ address = \"10.9.0.{}:80\" }}\ndelay_loop = \"1s\"\n",
            v + 1
        ));
        for addr in chunk {
            text.push_str(&format!(
                "[[virtual_server.real_server]]\naddress = \"{addr}\"\n\
                 check = [{{ type = \"TCP_CHECK\", connect_timeout = \"1s\", retry = 1, delay_before_retry = \"500ms\" }}]\n"
            ));
        }
    }
    toml::from_str::<Config>(&text).unwrap().virtual_server
}

/// Collects reports until `done` says the wanted state is reached or
/// `within` passes; returns the time it took.
async fn wait_for(
    rx: &mut UnboundedReceiver<Report>,
    within: Duration,
    mut done: impl FnMut(&Report) -> bool,
) -> Duration {
    let start = Instant::now();
    let deadline = start + within;
    loop {
        match tokio::time::timeout_at(deadline, rx.recv()).await {
            Ok(Some(report)) => {
                if done(&report) {
                    return start.elapsed();
                }
            }
            Ok(None) => panic!("the runner stopped"),
            Err(_) => panic!("not reached within {within:?}"),
        }
    }
}

#[tokio::test]
async fn a_thousand_servers_go_down_and_come_back_within_bounds() {
    loopback::raise_nofile_limit().unwrap();
    let mut servers = Vec::new();
    for i in 0..VS * PER_VS {
        let addr = SocketAddr::new(loopback::address(3, i).into(), 0);
        servers.push(Some(Server::start(addr).await.unwrap()));
    }
    let addrs: Vec<SocketAddr> = servers.iter().flatten().map(|s| s.addr).collect();
    let vss = config(&addrs);
    let (handle, mut rx) = runner::spawn(&vss, Options::default()).unwrap();

    // The initial pools hold everyone.
    let mut pools = BTreeMap::new();
    wait_for(&mut rx, Duration::from_secs(1), |r| {
        if let Report::Pool {
            vs, destinations, ..
        } = r
        {
            pools.insert(*vs, destinations.len());
        }
        pools.len() == VS
    })
    .await;
    assert!(pools.values().all(|n| *n == PER_VS), "{pools:?}");

    // Every check runs within bootstrap (1 s) + warmup (up to delay_loop).
    let start = Instant::now();
    loop {
        let status = handle.status().await.unwrap();
        let checked = status
            .iter()
            .flat_map(|vs| &vs.servers)
            .filter(|rs| rs.alive && rs.checks.iter().all(|c| c.up && c.last.is_some()))
            .count();
        if checked == VS * PER_VS {
            break;
        }
        assert!(
            start.elapsed() < Duration::from_secs(4),
            "{checked} checked"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    // Stop every tenth server.
    let stopped: BTreeSet<SocketAddr> = addrs.iter().step_by(10).copied().collect();
    for slot in servers.iter_mut().step_by(10) {
        slot.take().unwrap().stop().await;
    }
    let mut down = BTreeSet::new();
    let mut pools: BTreeMap<VsId, Vec<SocketAddr>> = BTreeMap::new();
    // Bound: a run within delay_loop (1 s), one retry 0.5 s later, each
    // refused at once; plus slack for a loaded machine.
    let took = wait_for(&mut rx, Duration::from_secs(5), |r| {
        match r {
            Report::Server { address, alive, .. } => {
                assert!(!alive, "{address} came up");
                assert!(stopped.contains(address), "{address} went down");
                down.insert(*address);
            }
            Report::Pool {
                vs, destinations, ..
            } => {
                pools.insert(*vs, destinations.iter().map(|d| d.address).collect());
            }
            _ => {}
        }
        down.len() == stopped.len()
            && pools.values().map(Vec::len).sum::<usize>() == VS * PER_VS - stopped.len()
            && pools.len() == VS
    })
    .await;
    assert!(took <= Duration::from_millis(4000), "took {took:?}");
    for pool in pools.values() {
        assert!(pool.iter().all(|a| !stopped.contains(a)));
    }

    // Restart them: each is up at its next run, within a delay_loop.
    for addr in &stopped {
        Server::start(*addr).await.unwrap();
    }
    let mut up = BTreeSet::new();
    let took = wait_for(&mut rx, Duration::from_secs(5), |r| {
        if let Report::Server { address, alive, .. } = r {
            assert!(*alive && stopped.contains(address));
            up.insert(*address);
        }
        up.len() == stopped.len()
    })
    .await;
    assert!(took <= Duration::from_millis(3000), "took {took:?}");
    handle.shutdown().await;
}

#[tokio::test]
async fn a_dynamic_misc_check_sets_the_weight_in_the_pool() {
    let text = r#"
[[virtual_server]]
service = { address = "10.9.1.1:80" }
delay_loop = "300ms"
[[virtual_server.real_server]]
address = "127.0.0.1:9"
weight = 10
check = [{ type = "MISC_CHECK", misc_path = { program = "/bin/sh", args = ["-c", "exit 6"] }, misc_dynamic = true, warmup = "0s" }]
"#;
    let vss = toml::from_str::<Config>(text).unwrap().virtual_server;
    let (handle, mut rx) = runner::spawn(&vss, Options::default()).unwrap();
    let mut weights = Vec::new();
    wait_for(&mut rx, Duration::from_secs(5), |r| {
        match r {
            Report::Pool { destinations, .. } => {
                weights.push(destinations.iter().map(|d| d.weight).collect::<Vec<_>>());
            }
            Report::Server { weight, cause, .. } => {
                assert_eq!(*weight, 4);
                assert_eq!(*cause, Outcome::UpWeighted(DynamicWeight::Set(4)));
            }
            _ => {}
        }
        weights.len() == 2
    })
    .await;
    assert_eq!(weights, vec![vec![10], vec![4]]);
    let status = handle.status().await.unwrap();
    assert_eq!(status[0].servers[0].weight, 4);
    assert_eq!(status[0].servers[0].checks[0].kind, "MISC_CHECK");
    handle.shutdown().await;
}
