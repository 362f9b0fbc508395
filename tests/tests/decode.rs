//! `appliance decode` against an independent witness: tcpdump's own VRRP
//! dissector, run on the same capture files, packet by packet.

use appliance_tests::{appliance_bin, fixture};
use serde_json::Value;
use std::path::Path;
use std::process::Command;

/// What tcpdump -vv -n prints about one VRRP packet.
#[derive(Debug, Default)]
struct Witness {
    src: String,
    dst: String,
    ttl: u64,
    version: u64,
    vrid: u64,
    prio: u64,
    /// Version 2: "none", "simple" or "ah".
    authtype: Option<String>,
    /// Seconds for version 2, centiseconds for version 3.
    intvl: u64,
    addrs: Vec<String>,
    auth: Option<String>,
}

/// The text after `key` up to the next space, comma or closing paren.
fn word_after<'a>(line: &'a str, key: &str) -> Option<&'a str> {
    let start = line.find(key)? + key.len();
    let rest = line.get(start..)?;
    let end = rest.find([' ', ',', ')']).unwrap_or(rest.len());
    rest.get(..end)
}

fn number_after(line: &str, key: &str) -> u64 {
    let word =
        word_after(line, key).unwrap_or_else(|| panic!("no {key:?} in tcpdump line {line:?}"));
    let digits: String = word.chars().take_while(char::is_ascii_digit).collect();
    digits
        .parse()
        .unwrap_or_else(|_| panic!("{key:?} is not a number in {line:?}"))
}

fn parse_witness(line: &str) -> Witness {
    // "... 10.99.0.2 > 224.0.0.18: VRRPv2, ..."
    let (before, _) = line.split_once(": VRRPv").expect("a VRRP line");
    let mut tokens = before.rsplit(' ');
    let dst = tokens.next().expect("destination").to_string();
    assert_eq!(tokens.next(), Some(">"), "no `src > dst` in {line:?}");
    let src = tokens.next().expect("source").to_string();
    let ttl = if line.contains(" hlim ") {
        number_after(line, " hlim ")
    } else {
        number_after(line, " ttl ")
    };
    let addrs = line
        .split_once("addrs")
        .and_then(|(_, rest)| rest.split_once(": "))
        .map(|(_, list)| list.split(" auth ").next().unwrap_or(list))
        .map(|list| list.trim().split(',').map(str::to_string).collect())
        .unwrap_or_default();
    let auth = line
        .split_once(" auth \"")
        .and_then(|(_, rest)| rest.rsplit_once('"'))
        .map(|(text, _)| text.to_string());
    Witness {
        src,
        dst,
        ttl,
        version: number_after(line, "VRRPv"),
        vrid: number_after(line, " vrid "),
        prio: number_after(line, " prio "),
        authtype: word_after(line, " authtype ").map(str::to_string),
        intvl: number_after(line, " intvl "),
        addrs,
        auth,
    }
}

/// tcpdump's view of every VRRP packet in `file`, in order.
fn tcpdump(file: &Path) -> Vec<Witness> {
    let output = match Command::new("tcpdump")
        .arg("-r")
        .arg(file)
        .args(["-vv", "-n"])
        .output()
    {
        Ok(output) => output,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            panic!(
                "tcpdump is the independent witness of this test: install the Debian package `tcpdump`"
            )
        }
        Err(e) => panic!("running tcpdump: {e}"),
    };
    assert!(
        output.status.success(),
        "tcpdump failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    let text = String::from_utf8(output.stdout).expect("tcpdump prints text");
    // With -v, tcpdump continues an IPv4 packet on an indented line.
    let mut packets: Vec<String> = Vec::new();
    for line in text.lines() {
        match packets.last_mut() {
            Some(last) if line.starts_with(char::is_whitespace) => {
                last.push(' ');
                last.push_str(line.trim());
            }
            _ => packets.push(line.to_string()),
        }
    }
    packets
        .iter()
        .filter(|p| p.contains(": VRRPv"))
        .map(|p| parse_witness(p))
        .collect()
}

fn decode(file: &Path) -> Vec<Value> {
    let output = Command::new(appliance_bin())
        .arg("decode")
        .arg(file)
        .output()
        .expect("running appliance");
    assert!(
        output.status.success(),
        "appliance decode failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    let text = String::from_utf8(output.stdout).expect("appliance prints text");
    text.lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
        .collect()
}

fn authtype_code(name: &str) -> u64 {
    match name {
        "none" => 0,
        "simple" => 1,
        "ah" => 2,
        other => panic!("tcpdump authtype {other:?}"),
    }
}

/// Compares the two, packet by packet and field by field.
fn agree(file: &Path) -> Vec<Value> {
    let ours = decode(file);
    let theirs = tcpdump(file);
    assert_eq!(
        ours.len(),
        theirs.len(),
        "packet count of {}",
        file.display()
    );
    assert!(!ours.is_empty(), "no VRRP packet in {}", file.display());
    for (i, (r, w)) in ours.iter().zip(&theirs).enumerate() {
        let at = format!(
            "VRRP packet {} of {}: ours {r}, tcpdump's {w:?}",
            i + 1,
            file.display()
        );
        assert_eq!(r["src"], w.src, "{at}");
        assert_eq!(r["dst"], w.dst, "{at}");
        assert_eq!(r["ttl"], w.ttl, "{at}");
        assert_eq!(r["version"], w.version, "{at}");
        assert_eq!(r["type"], 1, "{at}");
        assert_eq!(r["vrid"], w.vrid, "{at}");
        assert_eq!(r["priority"], w.prio, "{at}");
        assert_eq!(r["count"], w.addrs.len() as u64, "{at}");
        assert_eq!(r["addresses"], serde_json::json!(w.addrs), "{at}");
        assert_eq!(r["checksum_ok"], true, "{at}");
        assert!(r.get("error").is_none(), "{at}");
        match w.version {
            2 => {
                let authtype = w
                    .authtype
                    .as_deref()
                    .expect("tcpdump prints authtype for v2");
                assert_eq!(r["auth_type"], authtype_code(authtype), "{at}");
                assert_eq!(r["adver_int"], w.intvl, "{at}");
                if let Some(auth) = &w.auth {
                    assert_eq!(r["auth"], auth.as_str(), "{at}");
                }
            }
            _ => {
                assert_eq!(r["max_adver_int_cs"], w.intvl, "{at}");
                assert!(
                    r.get("auth").is_none() && r.get("adver_int").is_none(),
                    "{at}"
                );
            }
        }
    }
    ours
}

#[test]
fn decode_agrees_with_tcpdump_on_keepalived_v2_pass() {
    let ours = agree(&fixture("pcap/keepalived-v2-pass.pcap"));
    // Master at 150, resigning (0) on shutdown; then the backup takes over
    // at 100 and resigns in turn.
    let priorities: Vec<u64> = ours
        .iter()
        .map(|r| r["priority"].as_u64().unwrap())
        .collect();
    assert_eq!(priorities, [150, 150, 150, 0, 100, 100, 100, 100, 100, 0]);
    assert!(
        ours.iter()
            .all(|r| r["vrid"] == 51 && r["auth"] == "aminglin")
    );
}

#[test]
fn decode_agrees_with_tcpdump_on_keepalived_v3() {
    let ours = agree(&fixture("pcap/keepalived-v3.pcap"));
    let families: Vec<bool> = ours
        .iter()
        .map(|r| r["src"].as_str().unwrap().contains(':'))
        .collect();
    assert!(
        families.contains(&true) && families.contains(&false),
        "IPv4 and IPv6 both present"
    );
}

#[test]
fn decode_refuses_a_file_that_is_not_a_capture() {
    let output = Command::new(appliance_bin())
        .arg("decode")
        .arg(fixture("keepalived/netns-master-v2.conf"))
        .output()
        .expect("running appliance");
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("not a pcap or pcapng file"), "{stderr}");
}
