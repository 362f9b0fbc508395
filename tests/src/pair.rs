//! Two appliance directors on a LAN, `m` (priority 150) and `b` (priority
//! 100), sharing one VIP, with a client host `c`: the topology of the
//! failover tests. It keeps the test's marks, so the merged timeline of
//! both nodes renders with what the test did in between, and checks the
//! VIP is held by exactly one side.

use crate::daemon::Daemon;
use crate::error::{Error, Result};
use crate::netns::{Host, Lan};
use crate::timeline::{self, Entry};
use crate::vrrp_conf::Instance;
use appliance::vrrp::machine::State;
use std::cell::RefCell;
use std::net::IpAddr;
use std::time::{Duration, Instant};

/// How long an election may take on a loaded machine: the master's
/// Master_Down_Interval (about 3.4 s) plus generous slack.
pub const ELECTION: Duration = Duration::from_secs(15);

/// The addresses of a pair on subnet `10.<net>.0.0/24` (and `fd<net as
/// two hex digits>::/64`).
#[derive(Clone, Copy, Debug)]
pub struct Net(pub u8);

impl Net {
    pub fn m(self) -> String {
        format!("10.{}.0.1", self.0)
    }
    pub fn b(self) -> String {
        format!("10.{}.0.2", self.0)
    }
    pub fn vip(self) -> String {
        format!("10.{}.0.100", self.0)
    }
    pub fn vip6(self) -> String {
        format!("fd{:02x}::100", self.0)
    }
    /// `addr/24` or, for IPv6, `addr/64`.
    pub fn cidr(addr: &str) -> String {
        if addr.contains(':') {
            format!("{addr}/64")
        } else {
            format!("{addr}/24")
        }
    }
    /// The IPv6 address of host number `n` (1 = m, 2 = b, 10 = client).
    pub fn v6(self, n: u8) -> String {
        format!("fd{:02x}::{n}", self.0)
    }
}

/// Which director.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Side {
    M,
    B,
}

impl Side {
    pub fn name(self) -> &'static str {
        match self {
            Side::M => "m",
            Side::B => "b",
        }
    }

    pub fn other(self) -> Side {
        match self {
            Side::M => Side::B,
            Side::B => Side::M,
        }
    }
}

/// Two running directors and a client on one LAN. Fields drop in order:
/// the daemons before the LAN they run in.
pub struct Pair {
    pub m: Daemon,
    pub b: Daemon,
    pub m_conf: Instance,
    pub b_conf: Instance,
    pub vip: IpAddr,
    /// The test's marks (behind a RefCell so marking needs no exclusive
    /// borrow while a host is in use).
    marks: RefCell<Vec<Entry>>,
    pub lan: Lan,
}

impl Pair {
    /// Starts `m` and `b` with the given configs on subnet `net` (hosts
    /// get both 10.<net>.0.x/24 and fd<net>::x/64) and waits until `m`
    /// holds `vip` and `b` does not.
    pub fn start(net: Net, m_conf: Instance, b_conf: Instance, vip: &str) -> Result<Self> {
        Self::start_with(net, m_conf, b_conf, vip, |_| Ok(()))
    }

    /// [`Pair::start`], with `setup` run on the LAN once its hosts exist
    /// and before the daemons start (a second interface to track, say).
    pub fn start_with(
        net: Net,
        m_conf: Instance,
        b_conf: Instance,
        vip: &str,
        setup: impl FnOnce(&Lan) -> Result<()>,
    ) -> Result<Self> {
        let mut lan = Lan::new()?;
        for (name, n) in [("m", 1), ("b", 2), ("c", 10)] {
            let v4 = Net::cidr(&format!("10.{}.0.{n}", net.0));
            let v6 = Net::cidr(&net.v6(n));
            lan.add_host(name, &[v4.as_str(), v6.as_str()])?;
        }
        setup(&lan)?;
        let vip: IpAddr = vip
            .parse()
            .map_err(|e| Error::Check(format!("VIP {vip}: {e}")))?;
        // A mark before each start keeps the two startups apart in the
        // rendering however long a start takes.
        let mut marks = vec![Entry::mark("start m")];
        let m = Daemon::start(lan.host("m"), &m_conf.render())?;
        marks.push(Entry::mark("start b"));
        let b = Daemon::start(lan.host("b"), &b_conf.render())?;
        let mut pair = Self {
            m,
            b,
            m_conf,
            b_conf,
            vip,
            marks: RefCell::new(marks),
            lan,
        };
        pair.wait_holder(Side::M, ELECTION)?;
        let started = pair.marks.borrow().first().cloned();
        if let Some(started) = started {
            pair.m.wait_notify(State::Master, &started, ELECTION)?;
        }
        Ok(pair)
    }

    pub fn host(&self, side: Side) -> &Host {
        self.lan.host(side.name())
    }

    /// Records something the test is about to do.
    pub fn mark(&self, what: &str) -> Entry {
        let mark = Entry::mark(what);
        self.marks.borrow_mut().push(mark.clone());
        mark
    }

    /// Waits until `side` holds the VIP and the other side does not;
    /// returns how long until `side` had it.
    pub fn wait_holder(&self, side: Side, within: Duration) -> Result<Duration> {
        let took = self.host(side).wait_address(self.vip, true, within)?;
        self.host(side.other())
            .wait_address(self.vip, false, within)?;
        Ok(took)
    }

    /// Checks, every 50 ms for `period`, that `side` holds the VIP and the
    /// other side does not (no dual master, no gap).
    pub fn hold(&self, side: Side, period: Duration) -> Result<()> {
        hold(self.host(side), self.host(side.other()), self.vip, period)
    }

    /// Both nodes' timelines and the marks, merged by wall clock.
    pub fn merged(&self) -> Result<Vec<Entry>> {
        let m = self.m.timeline()?;
        let b = self.b.timeline()?;
        Ok(timeline::merge(&[&m, &b, &self.marks.borrow()]))
    }

    /// The order snapshot of [`Pair::merged`].
    pub fn render_order(&self) -> Result<String> {
        Ok(timeline::render_order(&self.merged()?))
    }
}

/// Checks, every 50 ms for `period`, that `holder` has `vip` and `other`
/// does not.
pub fn hold(holder: &Host, other: &Host, vip: IpAddr, period: Duration) -> Result<()> {
    let start = Instant::now();
    while start.elapsed() < period {
        let held = holder.has_address(vip)?;
        let dual = other.has_address(vip)?;
        if !held || dual {
            return Err(Error::Check(format!(
                "{vip} after {:?}: on {}: {held}, on {}: {dual}; expected on {} only",
                start.elapsed(),
                holder.name(),
                other.name(),
                holder.name()
            )));
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    Ok(())
}

/// Asserts `measured` lies in `[expected - early, expected + late]`, and
/// prints it (`cargo nextest run --no-capture` shows the measurements).
pub fn assert_interval(
    what: &str,
    measured: Duration,
    expected: Duration,
    early: Duration,
    late: Duration,
) {
    eprintln!("MEASURED {what}: {measured:?} (expected {expected:?})");
    assert!(
        measured + early >= expected && measured <= expected + late,
        "{what}: {measured:?}, expected {expected:?} (-{early:?}/+{late:?})"
    );
}
