//! The adverts one router sends, as another host sees them on its eth0,
//! timestamped by tcpdump: what the stall tests measure the gaps of.

use crate::error::{Error, Result};
use crate::netns::{Host, Process};
use std::io::{BufRead, BufReader, Read};
use std::net::IpAddr;
use std::process::Stdio;
use std::time::Duration;

/// A running capture of `from`'s VRRP packets.
pub struct AdvertLog {
    tcpdump: Process,
}

impl AdvertLog {
    /// Starts tcpdump on `host`'s eth0 and waits until it listens.
    pub fn start(host: &Host, from: IpAddr) -> Result<Self> {
        let family = if from.is_ipv4() { "ip" } else { "ip6" };
        Self::start_filtered(host, &format!("{family} proto 112 and src host {from}"))
    }

    /// The resignations (IPv4 adverts of priority 0) `from` sends to
    /// `host` itself, as `host` sees them.
    pub fn resignations(host: &Host, from: IpAddr, to: IpAddr) -> Result<Self> {
        // IPv4 without options: VRRP's priority is the IP packet's byte 22.
        Self::start_filtered(
            host,
            &format!("ip proto 112 and src host {from} and dst host {to} and ip[22] = 0"),
        )
    }

    /// [`AdvertLog::start`] with a tcpdump filter of the caller's.
    pub fn start_filtered(host: &Host, filter: &str) -> Result<Self> {
        let mut cmd = host.command("tcpdump");
        cmd.args(["-i", "eth0", "-n", "-l", "-tt", "-U", filter])
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let mut tcpdump = host
            .spawn(&mut cmd)
            .map_err(|e| Error::Check(format!("{e} (install the Debian package tcpdump)")))?;
        let stderr = tcpdump
            .take_stderr()
            .ok_or_else(|| Error::Check("tcpdump's stderr".into()))?;
        let mut lines = BufReader::new(stderr).lines();
        loop {
            match lines.next() {
                Some(Ok(line)) if line.contains("listening on") => break,
                Some(Ok(_)) => continue,
                other => return Err(Error::Check(format!("tcpdump did not start: {other:?}"))),
            }
        }
        Ok(Self { tcpdump })
    }

    /// Stops the capture; the times the adverts were seen, in order.
    pub fn stop(mut self) -> Result<Vec<Duration>> {
        self.tcpdump.signal("INT")?;
        let mut text = String::new();
        if let Some(mut out) = self.tcpdump.take_stdout() {
            out.read_to_string(&mut text)
                .map_err(|e| Error::Check(format!("tcpdump's output: {e}")))?;
        }
        self.tcpdump.wait(Duration::from_secs(5))?;
        Ok(parse(&text))
    }
}

/// The `-tt` timestamps (seconds.micros) at the start of each line.
fn parse(text: &str) -> Vec<Duration> {
    text.lines()
        .filter_map(|line| line.split_whitespace().next())
        .filter_map(|stamp| stamp.parse::<f64>().ok())
        .map(Duration::from_secs_f64)
        .collect()
}

/// The longest time between two adverts.
pub fn longest_gap(times: &[Duration]) -> Duration {
    times
        .windows(2)
        .map(|w| w[1].saturating_sub(w[0]))
        .max()
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gaps_between_tcpdump_timestamps() {
        let text = "1700000000.100000 IP 10.0.0.1 > 224.0.0.18: VRRPv3\n\
                    1700000000.200000 IP 10.0.0.1 > 224.0.0.18: VRRPv3\n\
                    1700000000.650000 IP 10.0.0.1 > 224.0.0.18: VRRPv3\n";
        let times = parse(text);
        assert_eq!(times.len(), 3);
        let gap = longest_gap(&times);
        assert!(
            gap > Duration::from_millis(449) && gap < Duration::from_millis(451),
            "{gap:?}"
        );
    }
}
