//! The links init sets up itself, before and instead of the daemon: every
//! link up at boot; while the config is invalid or missing, the box's own
//! addresses from the config's `[network]` (or at least every link up), so
//! that an operator can still reach it to fix the config; and beside a
//! keepalived.conf, which cannot say them, those of `network.toml`.

use crate::config::model::Network;
use crate::config::{self, Format};
use std::path::Path;
use tracing::{info, warn};

/// Runs `future` on a runtime of its own: init is synchronous, and these
/// calls are rare.
fn block_on<F: std::future::Future>(future: F) -> Result<F::Output, std::io::Error> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    Ok(runtime.block_on(future))
}

fn apply(network: &Network) -> Result<(), String> {
    match block_on(crate::net::setup::apply(network)) {
        Ok(Ok(())) => Ok(()),
        Ok(Err(e)) => Err(e.to_string()),
        Err(e) => Err(format!("starting a runtime: {e}")),
    }
}

/// Brings every link up, `lo` included (the kernel gives it 127.0.0.1 and
/// ::1 then: the status socket and checks of local services need it): at
/// boot, so that a config naming an interface finds it up even without a
/// `[network]` entry for it, and whenever init keeps the box reachable.
pub(super) fn all_links_up() {
    match block_on(crate::net::setup::all_links_up()) {
        Ok(Ok(links)) => {
            let mut up = Vec::new();
            for (name, result) in links {
                match result {
                    Ok(()) => up.push(name),
                    Err(e) => warn!(error = %e, "bringing a link up failed"),
                }
            }
            info!(links = %up.join(","), "links up");
        }
        Ok(Err(e)) => warn!(error = %e, "bringing the links up failed"),
        Err(e) => warn!(error = %e, "bringing the links up failed: no runtime"),
    }
}

/// Applies `network`, read from `source`, for a daemon that will not: its
/// config is a keepalived.conf. A failure is logged and every link is
/// brought up instead.
pub(super) fn apply_from(network: &Network, source: &Path) {
    match apply(network) {
        Ok(()) => info!(
            file = %source.display(),
            interfaces = network.interface.len(),
            routes = network.route.len(),
            "network applied"
        ),
        Err(e) => {
            warn!(file = %source.display(), error = %e, "network: applying it failed");
            all_links_up();
        }
    }
}

/// Keeps the network up while `file` (the config, if there is one) cannot
/// run: its `[network]` if it is TOML and that table alone is valid, else
/// every link up.
pub(super) fn fallback(file: Option<&Path>) {
    let network = file
        .filter(|file| Format::detect(file) == Format::Toml)
        .and_then(|file| {
            let text = std::fs::read_to_string(file).ok()?;
            match config::load_network(file, &text) {
                Ok(network) if !network.is_empty() => Some(network),
                Ok(_) => None,
                Err(problems) => {
                    warn!(
                        problems = problems.0.len(),
                        "the config's [network] is invalid too"
                    );
                    None
                }
            }
        });
    let Some(network) = network else {
        all_links_up();
        return;
    };
    match apply(&network) {
        Ok(()) => info!(
            interfaces = network.interface.len(),
            routes = network.route.len(),
            "network: the config's [network] applied"
        ),
        Err(e) => {
            warn!(error = %e, "network: applying the config's [network] failed");
            all_links_up();
        }
    }
}
