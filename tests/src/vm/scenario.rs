//! Shell building blocks of the VM scenarios (busybox ash in the guest):
//! the lines every topology repeats, so that a scenario's own text says
//! only what is particular to it.

/// Defines `wait_for SECONDS WHAT COMMAND...`: runs COMMAND (output
/// dropped) every 100 ms until it succeeds; after SECONDS it prints what it
/// waited for, runs `on_timeout` (lines that show the state: logs, tables)
/// and exits 1.
pub fn wait_for(on_timeout: &str) -> String {
    let mut dump = String::new();
    for line in on_timeout.lines() {
        dump += &format!("      {line}\n");
    }
    format!(
        "# wait_for SECONDS WHAT COMMAND...: poll every 100 ms.\n\
         wait_for() {{\n\
         \x20 t=$1; what=$2; shift 2; i=0\n\
         \x20 while ! \"$@\" > /dev/null 2>&1; do\n\
         \x20   i=$((i+1))\n\
         \x20   if [ $i -gt $((t*10)) ]; then\n\
         \x20     echo \"timed out after ${{t}}s waiting for $what\" >&2\n\
         {dump}\
         \x20     exit 1\n\
         \x20   fi\n\
         \x20   sleep 0.1\n\
         \x20 done\n\
         }}\n"
    )
}

/// Defines `mark WHAT`: appends `WHAT N1 N2 …` to /tmp/marks, the lines
/// each of the `timelines` files holds so far
/// ([`crate::timeline::marks`] reads it back). The guest's busybox `date`
/// has no sub-second time, so a mark is placed by what was written before
/// it, not by its clock.
pub fn mark(timelines: &[&str]) -> String {
    let counts: Vec<String> = timelines
        .iter()
        .map(|t| format!("$(if [ -e {t} ]; then wc -l < {t}; else echo 0; fi)"))
        .collect();
    format!(
        "# mark WHAT: what the test did, after the timelines' lines so far.\n\
         mark() {{ echo \"$1 {}\" >> /tmp/marks; }}\n",
        counts.join(" ")
    )
}

/// A bridge, up: the LAN the hosts of [`host`] plug into.
pub fn bridge(name: &str) -> String {
    format!("ip link add {name} type bridge\nip link set {name} up\n")
}

/// A host: namespace `name` with `lo` up and `eth0` at `addr/24`, its peer
/// (`p-NAME`) on `bridge`.
pub fn host(bridge: &str, name: &str, addr: &str) -> String {
    format!(
        "ip netns add {name}\n\
         ip -n {name} link set lo up\n\
         ip link add p-{name} type veth peer name eth0 netns {name}\n\
         ip link set p-{name} master {bridge} up\n\
         ip -n {name} addr add {addr}/24 dev eth0\n\
         ip -n {name} link set eth0 up\n"
    )
}

/// An LVS-DR real server's side of the VIP: on `lo`, neither answered for
/// in ARP nor announced as a source (arp_ignore 1, arp_announce 2).
pub fn dr_real_server(name: &str, vip: &str) -> String {
    format!(
        "for c in all eth0; do\n\
         \x20 ip netns exec {name} sysctl -qw net.ipv4.conf.$c.arp_ignore=1\n\
         \x20 ip netns exec {name} sysctl -qw net.ipv4.conf.$c.arp_announce=2\n\
         done\n\
         ip -n {name} addr add {vip}/32 dev lo\n"
    )
}

/// An LVS-TUN real server's side of the VIP (the LVS-TUN howto): on
/// `tunl0`, the ipip module's fallback device, which takes in IP-in-IP
/// from any sender and so the director's encapsulated requests; neither
/// answered for in ARP nor announced (arp_ignore 1, arp_announce 2); and
/// no reverse-path filter, since a client's packet comes in on `tunl0`
/// while the route back to the client leaves by `eth0`.
pub fn tun_real_server(name: &str, vip: &str) -> String {
    format!(
        "for c in all eth0; do\n\
         \x20 ip netns exec {name} sysctl -qw net.ipv4.conf.$c.arp_ignore=1\n\
         \x20 ip netns exec {name} sysctl -qw net.ipv4.conf.$c.arp_announce=2\n\
         done\n\
         for c in all tunl0; do\n\
         \x20 ip netns exec {name} sysctl -qw net.ipv4.conf.$c.rp_filter=0\n\
         done\n\
         ip -n {name} addr add {vip}/32 dev tunl0\n\
         ip -n {name} link set tunl0 up\n"
    )
}

/// busybox httpd in namespace `name` on port 80, serving `name\n`, its pid
/// in shell variable `$name`; waits (with `wait_for`) until `from` fetches
/// it at `addr`.
pub fn httpd(name: &str, addr: &str, from: &str) -> String {
    format!(
        "mkdir -p /srv/{name}\n\
         echo {name} > /srv/{name}/index.html\n\
         ip netns exec {name} httpd -f -p 80 -h /srv/{name} &\n\
         {name}=$!\n\
         wait_for 10 'httpd on {name}' ip netns exec {from} timeout 2 wget -qO /dev/null http://{addr}/\n"
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wait_for_indents_the_timeout_lines_inside_the_function() {
        let text = wait_for("cat /tmp/a.log >&2 || true\nipvsadm -Ln >&2");
        assert!(
            text.contains(
                "\n      cat /tmp/a.log >&2 || true\n      ipvsadm -Ln >&2\n      exit 1\n"
            ),
            "{text}"
        );
        assert!(
            text.starts_with("# wait_for") && text.ends_with("}\n"),
            "{text}"
        );
        assert!(text.contains("${t}s"), "{text}");
    }

    #[test]
    fn a_tun_real_server_holds_the_vip_on_tunl0_without_reverse_path_filter() {
        let text = tun_real_server("rs1", "10.0.0.100");
        assert!(
            text.contains(
                "ip -n rs1 addr add 10.0.0.100/32 dev tunl0\nip -n rs1 link set tunl0 up\n"
            ),
            "{text}"
        );
        assert!(
            text.contains("for c in all tunl0; do\n  ip netns exec rs1 sysctl -qw net.ipv4.conf.$c.rp_filter=0\n"),
            "{text}"
        );
    }

    #[test]
    fn a_host_is_plugged_into_the_named_bridge() {
        let text = host("br-back", "rs1", "10.0.2.11");
        assert!(
            text.contains("ip link set p-rs1 master br-back up\n"),
            "{text}"
        );
        assert!(
            text.contains("ip -n rs1 addr add 10.0.2.11/24 dev eth0\n"),
            "{text}"
        );
    }
}
