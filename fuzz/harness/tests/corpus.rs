//! Replays the kept inputs of every fuzz target through its body: its real
//! inputs (`fuzz/seeds/TARGET/`), the corpus libFuzzer grew from them
//! (`fuzz/corpus/TARGET/`) and the inputs of past findings
//! (`fuzz/regressions/TARGET/`). A panic is a regression, named by its
//! file; an empty or missing seeds or corpus directory fails too, so that
//! the replay cannot pass by testing nothing.

use std::path::{Path, PathBuf};

/// One test per target, and the list of them.
macro_rules! replay {
    ($($target:ident),* $(,)?) => {
        $(
            #[test]
            fn $target() {
                replay(stringify!($target), appliance_fuzz_harness::$target);
            }
        )*
        const TARGETS: &[&str] = &[$(stringify!($target)),*];
    };
}

replay!(
    bgp_stream,
    http_response,
    ipvs_reply,
    keepalived_conf,
    nftables_reply,
    pcap_decode,
    smtp_reply,
    syn_answer,
    toml_config,
    vrrp_packet,
);

fn fuzz_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// The files in `dir`, sorted; none if it does not exist.
fn files(dir: &Path) -> Vec<PathBuf> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut files: Vec<PathBuf> = entries
        .map(|e| e.expect("a directory entry").path())
        .filter(|p| p.is_file())
        .collect();
    files.sort();
    files
}

fn replay(target: &str, body: fn(&[u8])) {
    let mut inputs = Vec::new();
    for dir in ["seeds", "corpus"] {
        let files = files(&fuzz_dir().join(dir).join(target));
        assert!(
            !files.is_empty(),
            "fuzz/{dir}/{target}/ is empty or missing (fuzz/README.md)"
        );
        inputs.extend(files);
    }
    inputs.extend(files(&fuzz_dir().join("regressions").join(target)));
    let mut failed = Vec::new();
    for file in &inputs {
        let data = std::fs::read(file).unwrap_or_else(|e| panic!("{}: {e}", file.display()));
        // Named first: a stack overflow aborts without unwinding.
        eprintln!("{}", file.display());
        if std::panic::catch_unwind(|| body(&data)).is_err() {
            failed.push(file.display().to_string());
        }
    }
    assert!(
        failed.is_empty(),
        "{target}: {} input(s) panic (messages above):\n{}",
        failed.len(),
        failed.join("\n")
    );
}

/// Every target in fuzz_targets/ is replayed here and has its seeds and
/// corpus directories, and every regressions directory belongs to one.
#[test]
fn every_target_is_replayed() {
    let stems = |dir: &str, ext: Option<&str>| -> Vec<String> {
        let mut names: Vec<String> = std::fs::read_dir(fuzz_dir().join(dir))
            .into_iter()
            .flatten()
            .map(|e| e.expect("a directory entry").path())
            .filter(|p| ext.is_none_or(|ext| p.extension().is_some_and(|e| e == ext)))
            .filter_map(|p| Some(p.file_stem()?.to_str()?.to_owned()))
            .collect();
        names.sort();
        names
    };
    assert_eq!(stems("fuzz_targets", Some("rs")), TARGETS);
    assert_eq!(stems("seeds", None), TARGETS);
    assert_eq!(stems("corpus", None), TARGETS);
    for dir in stems("regressions", None) {
        assert!(
            TARGETS.contains(&dir.as_str()),
            "fuzz/regressions/{dir}/ has no target"
        );
    }
}
