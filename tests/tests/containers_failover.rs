//! The VRRP pair in containers (the appliance image, as in the demo): the
//! master holds the VIP; stopped, paused or cut off the network, the backup
//! takes it over. Each test snapshots the merged failover timeline of both
//! directors (event order exact, times checked within bounds apart).

use appliance::vrrp::machine::State;
use appliance_tests::containers::{Container, Images, Lab, Vrrp, images, is_mark, is_state};
use std::net::Ipv4Addr;
use std::time::Duration;

const MASTER: u8 = 2;
const BACKUP: u8 = 3;
const VIP: u8 = 100;
/// Startup takes master_down_interval (3 adverts + skew) before MASTER.
const START: Duration = Duration::from_secs(10);

struct Pair {
    lab: Lab,
    images: &'static Images,
    master: Container,
    backup: Container,
}

/// Starts the master, waits until it holds the VIP, then the backup: the
/// start of the timeline is the same every run.
fn pair(test: &str) -> Pair {
    let images = images().expect("images");
    let lab = Lab::new(test).expect("lab");
    let master_conf = lab.director_config(
        "master",
        Vrrp {
            priority: 150,
            host: MASTER,
            peer: BACKUP,
            vip: VIP,
        },
    );
    let backup_conf = lab.director_config(
        "backup",
        Vrrp {
            priority: 100,
            host: BACKUP,
            peer: MASTER,
            vip: VIP,
        },
    );
    let master = lab
        .director(images, "master", MASTER, &master_conf)
        .expect("master");
    lab.wait_state(&master, State::Master, START)
        .expect("master becomes MASTER");
    let backup = lab
        .director(images, "backup", BACKUP, &backup_conf)
        .expect("backup");
    lab.wait_state(&backup, State::Backup, START)
        .expect("backup becomes BACKUP");
    let pair = Pair {
        lab,
        images,
        master,
        backup,
    };
    pair.assert_holders(&["master"]);
    pair
}

impl Pair {
    fn vip(&self) -> Ipv4Addr {
        self.lab.address(VIP)
    }

    /// Exactly `holders` have the VIP on their eth0 (read with `ip`).
    fn assert_holders(&self, holders: &[&str]) {
        let mut have = Vec::new();
        for c in [&self.master, &self.backup] {
            let addrs = self.lab.addresses(self.images, c).expect("addresses");
            if addrs.contains(&self.vip()) {
                have.push(c.role.as_str());
            }
        }
        assert_eq!(have, holders, "who holds the VIP {}", self.vip());
    }

    fn timeline(&self) -> appliance_tests::containers::Merged {
        self.lab
            .merged_timeline(&[&self.master, &self.backup])
            .expect("timelines")
    }
}

fn assert_within(what: &str, delay: Duration, min: Duration, max: Duration) {
    assert!(
        (min..=max).contains(&delay),
        "{what} took {delay:?}, expected between {min:?} and {max:?}"
    );
}

#[test]
fn stopped_master_resigns_backup_takes_over_master_comes_back() {
    let p = pair("stop");
    p.lab.mark("stop master");
    p.lab.stop(&p.master).expect("stop");
    p.lab
        .wait_state(&p.backup, State::Master, Duration::from_secs(5))
        .expect("backup takes over");
    p.assert_holders(&["backup"]);

    p.lab.mark("start master");
    p.lab.start(&p.master).expect("start");
    p.lab
        .wait_state(&p.backup, State::Backup, START)
        .expect("backup steps down");
    p.lab
        .wait_state(&p.master, State::Master, START)
        .expect("master preempts");
    p.assert_holders(&["master"]);

    let t = p.timeline();
    // A resigning master sends priority 0: the backup waits only its skew
    // time ((256 - 100) / 256 s), not the master down interval.
    assert_within(
        "takeover after stop",
        t.delay(is_mark("stop master"), is_state("backup", State::Master))
            .unwrap(),
        Duration::from_millis(300),
        Duration::from_millis(2000),
    );
    // The restarted master starts as backup and preempts after its master
    // down interval (3 x 1s + (256 - 150) / 256 s).
    assert_within(
        "preemption after start",
        t.delay(is_mark("start master"), is_state("master", State::Master))
            .unwrap(),
        Duration::from_millis(3000),
        Duration::from_millis(5000),
    );
    insta::assert_snapshot!(t.render());
}

#[test]
fn paused_master_is_taken_over_and_steps_back_in_on_unpause() {
    let p = pair("pause");
    p.lab.mark("pause master");
    p.lab.pause(&p.master).expect("pause");
    p.lab
        .wait_state(&p.backup, State::Master, START)
        .expect("backup takes over");
    // The frozen master still has the VIP on its interface, as a hung
    // host would.
    p.assert_holders(&["master", "backup"]);

    p.lab.mark("unpause master");
    p.lab.unpause(&p.master).expect("unpause");
    p.lab
        .wait_state(&p.backup, State::Backup, START)
        .expect("backup steps down");
    p.assert_holders(&["master"]);

    let t = p.timeline();
    // No goodbye: the backup waits its master down interval, less what had
    // passed since the last advert (up to 1s).
    assert_within(
        "takeover after pause",
        t.delay(is_mark("pause master"), is_state("backup", State::Master))
            .unwrap(),
        Duration::from_millis(2500),
        Duration::from_millis(4500),
    );
    insta::assert_snapshot!(t.render());
}

#[test]
fn disconnected_master_faults_and_backup_takes_over() {
    let p = pair("disconnect");
    p.lab.mark("disconnect master");
    p.lab.disconnect(&p.master).expect("disconnect");
    p.lab
        .wait_state(&p.master, State::Fault, Duration::from_secs(5))
        .expect("master faults");
    p.lab
        .wait_state(&p.backup, State::Master, START)
        .expect("backup takes over");
    p.assert_holders(&["backup"]);

    let t = p.timeline();
    assert_within(
        "takeover after disconnect",
        t.delay(
            is_mark("disconnect master"),
            is_state("backup", State::Master),
        )
        .unwrap(),
        Duration::from_millis(2500),
        Duration::from_millis(4500),
    );
    insta::assert_snapshot!(t.render());
}
