//! Every keepalived.conf fixture loads through the public API, and its TOML
//! conversion loads back to an equal model.

use appliance::config::{Format, load_file, load_str};
use appliance_tests::fixture;
use std::path::Path;

#[test]
fn fixtures_load_and_round_trip() {
    for name in appliance_tests::keepalived_fixtures() {
        let name = name.as_str();
        let config = load_file(&fixture(name)).unwrap_or_else(|d| panic!("{name}:\n{d}"));
        for toml in [
            config.to_toml().expect("serialisable"),
            config.to_toml_minimal().expect("serialisable"),
        ] {
            let again = load_str(Path::new("converted.toml"), &toml, Format::Toml)
                .unwrap_or_else(|d| panic!("{name} converted:\n{d}\n{toml}"));
            assert_eq!(again, config, "{name}");
        }
    }
}

#[test]
fn lvs_dr_fixture_content() {
    let config = load_file(&fixture("keepalived/seed-lvs-dr.conf")).expect("loads");
    let vs = &config.virtual_server[0];
    assert_eq!(vs.real_server.len(), 2);
    assert_eq!(vs.delay_loop, std::time::Duration::from_secs(10));
    assert_eq!(vs.real_server[1].address.to_string(), "192.168.188.137:80");
    assert_eq!(vs.real_server[1].weight.get(), 100);
}

#[test]
fn master_and_backup_differ_only_in_state_and_priority() {
    let master = load_file(&fixture("keepalived/netns-master-v2.conf")).expect("loads");
    let backup = load_file(&fixture("keepalived/netns-backup-v2.conf")).expect("loads");
    let (m, b) = (&master.vrrp_instance[0], &backup.vrrp_instance[0]);
    assert_eq!((m.priority.get(), b.priority.get()), (150, 100));
    assert_eq!(m.virtual_router_id, b.virtual_router_id);
    assert_eq!(m.authentication, b.authentication);
    assert_eq!(m.virtual_ipaddress, b.virtual_ipaddress);
}

#[test]
fn the_toml_example_in_the_docs_equals_the_lvs_dr_fixture() {
    let doc_path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../docs/config.md");
    let doc = std::fs::read_to_string(&doc_path).expect("docs/config.md");
    let start = doc.find("```toml\n").expect("a toml block") + "```toml\n".len();
    let len = doc[start..].find("```").expect("end of the toml block");
    let example = load_str(
        Path::new("example.toml"),
        &doc[start..start + len],
        Format::Toml,
    )
    .unwrap_or_else(|d| panic!("{d}"));
    let fixture = load_file(&fixture("keepalived/seed-lvs-dr.conf")).expect("loads");
    assert_eq!(example, fixture);
}
