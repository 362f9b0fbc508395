//! keepalived's `virtual_server_group` on IPVS, on a real kernel (Debian's,
//! under qemu): `appliance dataplane apply` programs a keepalived.conf
//! whose group is a range of three addresses on port 80, one address on
//! port 8080 and a firewall mark; `ipvsadm -Ln` is the independent witness
//! of one IPVS service per address and mark, each with the virtual
//! server's scheduler and real servers (keepalived's ipvswrapper.c does
//! the same). A second apply of the config with one real server removed
//! takes it out of every service of the group.

use appliance_tests::vm::{Vm, VmOutput, scenario, section};
use std::collections::BTreeMap;
use std::time::Duration;

const APPLY: &str =
    "ip netns exec vsg appliance dataplane apply --state /run/appliance/vsg.json --config";

/// The group and its virtual server, with `real_servers`.
fn config(real_servers: &[&str]) -> String {
    let mut conf = String::from(
        "virtual_server_group web {\n  10.0.3.1-3 80\n  10.0.3.1 8080\n  fwmark 7\n}\n\
         virtual_server group web {\n  lb_algo wrr\n  lb_kind NAT\n  protocol TCP\n",
    );
    for rs in real_servers {
        conf += &format!("  real_server {rs} 80 {{\n    weight 2\n  }}\n");
    }
    conf + "}\n"
}

/// A destination as `ipvsadm -Ln` lists it: address:port, forwarding,
/// weight.
type Listed = (String, String, String);

/// `ipvsadm -Ln`'s services ("TCP 10.0.3.1:80", "FWM 7") with their
/// scheduler and destinations.
fn parse_ipvsadm(table: &[&str]) -> BTreeMap<String, (String, Vec<Listed>)> {
    let mut services = BTreeMap::new();
    let mut current = None;
    for line in table {
        let fields: Vec<&str> = line.split_whitespace().collect();
        match fields.as_slice() {
            [protocol @ ("TCP" | "UDP" | "FWM"), address, scheduler, ..] => {
                let key = format!("{protocol} {address}");
                services.insert(key.clone(), (scheduler.to_string(), Vec::new()));
                current = Some(key);
            }
            ["->", address, forward, weight, _, _] if *address != "RemoteAddress:Port" => {
                let key = current.as_ref().expect("a destination after its service");
                let (_, destinations): &mut (String, Vec<_>) =
                    services.get_mut(key).expect("its service");
                destinations.push((address.to_string(), forward.to_string(), weight.to_string()));
                destinations.sort();
            }
            _ => {}
        }
    }
    services
}

fn script() -> String {
    let mut script = String::from("set -e\n");
    script += &scenario::wait_for("ip netns exec vsg ipvsadm -Ln >&2 || true");
    script += "ip netns add vsg\nip -n vsg link set lo up\n";
    for (file, real_servers) in [
        ("both", &["10.0.2.11", "10.0.2.12"][..]),
        ("one", &["10.0.2.11"][..]),
    ] {
        script += &format!(
            "cat > /root/{file}.conf <<'EOF'\n{}EOF\n",
            config(real_servers)
        );
    }
    script += &format!(
        "echo '--- apply both'\n{APPLY} /root/both.conf\n\
         echo '--- table both'\nip netns exec vsg ipvsadm -Ln\n\
         echo '--- apply one'\n{APPLY} /root/one.conf\n\
         echo '--- table one'\nip netns exec vsg ipvsadm -Ln\n"
    );
    script
}

fn run() -> VmOutput {
    let out = Vm::builder()
        .file(appliance_tests::appliance_bin(), "/usr/bin/appliance")
        .script(script())
        .timeout(Duration::from_secs(180))
        .run()
        .unwrap();
    out.assert_success();
    out
}

#[test]
fn a_group_is_one_ipvs_service_per_address_and_mark() {
    let out = run();
    let stdout = &out.stdout;
    let services = [
        "TCP 10.0.3.1:80",
        "TCP 10.0.3.2:80",
        "TCP 10.0.3.3:80",
        "TCP 10.0.3.1:8080",
        "FWM 7",
    ];
    let destination = |ip: &str| (format!("{ip}:80"), "Masq".to_string(), "2".to_string());

    // Five services and two real servers in each: 15 changes.
    assert_eq!(
        section(stdout, "apply both").first(),
        Some(&"ipvs: 15 change(s)"),
        "{out}"
    );
    let both = parse_ipvsadm(&section(stdout, "table both"));
    assert_eq!(
        both.keys().map(String::as_str).collect::<Vec<_>>(),
        {
            let mut sorted = services.to_vec();
            sorted.sort_unstable();
            sorted
        },
        "{out}"
    );
    for (key, (scheduler, destinations)) in &both {
        assert_eq!(scheduler, "wrr", "{key}\n{out}");
        assert_eq!(
            destinations,
            &[destination("10.0.2.11"), destination("10.0.2.12")],
            "{key}\n{out}"
        );
    }

    // rs2 leaves the config: out of all five services.
    assert_eq!(
        section(stdout, "apply one").first(),
        Some(&"ipvs: 5 change(s)"),
        "{out}"
    );
    let one = parse_ipvsadm(&section(stdout, "table one"));
    assert_eq!(one.len(), 5, "{out}");
    for (key, (_, destinations)) in &one {
        assert_eq!(destinations, &[destination("10.0.2.11")], "{key}\n{out}");
    }
}
