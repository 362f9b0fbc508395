//! The daemon's Prometheus metrics: the registry, the metric families, and
//! the HTTP endpoint that serves them (`GET /metrics`, OpenMetrics text)
//! and, with `[global] status_page`, the status page ([`status_page`]).
//! Off unless `[global] metrics_listen` names an address.
//!
//! Counters and the check latency histogram are recorded as things happen
//! (the daemon and the checker call [`Metrics`]); the gauges (VRRP state and
//! priority, real-server health and weight) are read from the daemon's
//! [`Status`] at each scrape, so they always agree with `appliance status`.
//! Nothing here decides anything.

use crate::check::decision::Mode;
use crate::daemon::status::Status;
use crate::dataplane::ipvs::listing::Traffic;
use crate::dataplane::{Op, reconcile::Report};
use crate::status_page::{self, history::History};
use crate::vrrp::machine::State;
use http_body_util::Full;
use hyper::body::Bytes;
use hyper::{Method, Request, Response, StatusCode};
use prometheus_client::collector::Collector;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric};
use prometheus_client::metrics::MetricType;
use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;
use std::future::Future;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, SystemTime};
use tokio::net::TcpListener;

/// Seconds since the Unix epoch.
fn unix_now() -> f64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64())
}

/// A scrape's answer to a client that asks for OpenMetrics (Prometheus
/// does).
const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";
/// A scrape's answer to any other client (curl, `promtool check
/// metrics`): Prometheus' own text format, as its client libraries do.
const CLASSIC_CONTENT_TYPE: &str = prometheus_client::encoding::prometheus_text::CONTENT_TYPE;

/// The two text formats a scrape may get.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    OpenMetrics,
    /// Prometheus' text format 0.0.4.
    Text,
}
/// The longest a scraper may take to send its request.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);
/// How long one connection may stay open, keep-alive included (a scraper
/// connects again).
const CONNECTION_TIME: Duration = Duration::from_secs(30);
/// Connections served at once.
pub(crate) const MAX_CLIENTS: usize = 32;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct InstanceLabels {
    instance: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct StateLabels {
    instance: String,
    state: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct TransitionLabels {
    instance: String,
    from: String,
    to: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ReasonLabels {
    reason: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct DropLabels {
    /// Empty when no instance has the packet's VRID (or it was not VRRP).
    instance: String,
    reason: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RealServerLabels {
    service: String,
    real_server: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ConnectionLabels {
    #[prometheus(flatten)]
    of: RealServerLabels,
    /// `active` (established TCP) or `inactive`.
    state: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct DirectionLabels {
    #[prometheus(flatten)]
    of: RealServerLabels,
    /// `in` (client to real server) or `out`.
    direction: String,
}

/// A traffic counter's two directions: to the real server, from it.
type InOut = fn(&Traffic) -> [u64; 2];

/// Each real server's traffic as the kernel counted it at the last
/// scrape (IPVS's counters, or the nftables dataplane's counting sets;
/// encoded as read).
#[derive(Debug, Default)]
struct TrafficCounters(Mutex<Vec<(RealServerLabels, Traffic)>>);

impl Collector for TrafficCounters {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let rows = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        if rows.is_empty() {
            return Ok(());
        }
        {
            let mut family = encoder.encode_descriptor(
                "real_server_scheduled_connections",
                "Connections the kernel sent to the real server since it entered the table",
                None,
                MetricType::Counter,
            )?;
            for (labels, t) in rows.iter() {
                ConstCounter::new(t.conns).encode(family.encode_family(labels)?)?;
            }
        }
        let families: [(&str, &str, InOut); 2] = [
            (
                "real_server_packets",
                "Packets to (in) and from (out) the real server through the director since it entered the table",
                |t| [t.in_packets, t.out_packets],
            ),
            (
                "real_server_bytes",
                "Bytes to (in) and from (out) the real server through the director since it entered the table",
                |t| [t.in_bytes, t.out_bytes],
            ),
        ];
        for (name, help, pick) in families {
            let mut family = encoder.encode_descriptor(name, help, None, MetricType::Counter)?;
            for (labels, t) in rows.iter() {
                for (direction, value) in ["in", "out"].into_iter().zip(pick(t)) {
                    let labels = DirectionLabels {
                        of: labels.clone(),
                        direction: direction.into(),
                    };
                    ConstCounter::new(value).encode(family.encode_family(&labels)?)?;
                }
            }
        }
        Ok(())
    }
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct AdminLabels {
    #[prometheus(flatten)]
    of: RealServerLabels,
    admin: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct CheckLabels {
    check: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct OperationLabels {
    backend: String,
    operation: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct OutcomeLabels {
    outcome: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct BackendLabels {
    backend: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct FifoLabels {
    fifo: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct BuildLabels {
    version: String,
}

/// How a reload ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ReloadOutcome {
    /// The new config runs, all of it.
    Applied,
    /// The new config runs but for the parts that failed to apply.
    Partial,
    /// The config was invalid or could not be read: the old one runs.
    Rejected,
}

impl ReloadOutcome {
    fn name(self) -> &'static str {
        match self {
            ReloadOutcome::Applied => "applied",
            ReloadOutcome::Partial => "partial",
            ReloadOutcome::Rejected => "rejected",
        }
    }
}

/// Reload durations from 1 ms to about 33 s.
fn reload_histogram() -> Histogram {
    Histogram::new(exponential_buckets(0.001, 2.0, 16))
}

type HistogramFamily<L> = Family<L, Histogram, fn() -> Histogram>;

/// Check latencies from 1 ms to about 33 s.
fn check_histogram() -> Histogram {
    Histogram::new(exponential_buckets(0.001, 2.0, 16))
}

/// The registry and handles on its families.
pub struct Metrics {
    registry: Registry,
    /// One scrape at a time sets the gauges from its status and encodes.
    scrape: Mutex<()>,
    vrrp_state: Family<StateLabels, Gauge>,
    vrrp_priority: Family<InstanceLabels, Gauge>,
    transitions: Family<TransitionLabels, Counter>,
    adverts_sent: Family<InstanceLabels, Counter>,
    adverts_received: Family<InstanceLabels, Counter>,
    adverts_dropped: Family<DropLabels, Counter>,
    real_server_up: Family<RealServerLabels, Gauge>,
    real_server_weight: Family<RealServerLabels, Gauge>,
    real_server_admin: Family<AdminLabels, Gauge>,
    real_server_connections: Family<ConnectionLabels, Gauge>,
    traffic: Arc<TrafficCounters>,
    check_duration: HistogramFamily<CheckLabels>,
    check_local_faults: Family<ReasonLabels, Counter>,
    dataplane_operations: Family<OperationLabels, Counter>,
    dataplane_errors: Family<BackendLabels, Counter>,
    notify_fifo_dropped: Family<FifoLabels, Counter>,
    alert_mails: Family<OutcomeLabels, Counter>,
    reloads: Family<OutcomeLabels, Counter>,
    reload_duration: Histogram,
    last_reload_successful: Gauge,
    last_reload_success: Gauge<f64, std::sync::atomic::AtomicU64>,
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    pub fn new() -> Self {
        let mut metrics = Self {
            scrape: Mutex::new(()),
            vrrp_state: Family::default(),
            vrrp_priority: Family::default(),
            transitions: Family::default(),
            adverts_sent: Family::default(),
            adverts_received: Family::default(),
            adverts_dropped: Family::default(),
            real_server_up: Family::default(),
            real_server_weight: Family::default(),
            real_server_admin: Family::default(),
            real_server_connections: Family::default(),
            traffic: Arc::default(),
            check_duration: Family::new_with_constructor(check_histogram),
            check_local_faults: Family::default(),
            dataplane_operations: Family::default(),
            dataplane_errors: Family::default(),
            notify_fifo_dropped: Family::default(),
            alert_mails: Family::default(),
            reloads: Family::default(),
            reload_duration: reload_histogram(),
            last_reload_successful: Gauge::default(),
            last_reload_success: Gauge::default(),
            registry: Registry::with_prefix("appliance"),
        };
        let build_info = Family::<BuildLabels, Gauge>::default();
        build_info
            .get_or_create(&BuildLabels {
                version: env!("CARGO_PKG_VERSION").to_owned(),
            })
            .set(1);
        metrics.registry.register(
            "build_info",
            "The running appliance's version, as a label; always 1",
            build_info,
        );
        metrics.registry.register(
            "config_reloads",
            "Config reloads (SIGHUP, appliance reload), by outcome: applied, partial (some parts failed to apply), rejected (the running config stays)",
            metrics.reloads.clone(),
        );
        metrics.registry.register_with_unit(
            "config_reload_duration",
            "How long reloads took, from the request to the applied table",
            prometheus_client::registry::Unit::Seconds,
            metrics.reload_duration.clone(),
        );
        metrics.registry.register(
            "config_last_reload_successful",
            "Whether the last reload applied the whole config: 1 yes, 0 no (1 before any reload)",
            metrics.last_reload_successful.clone(),
        );
        metrics.last_reload_successful.set(1);
        metrics.registry.register(
            "config_last_reload_success_timestamp_seconds",
            "When the config last loaded in full (the start, or the last applied reload), in seconds since the Unix epoch",
            metrics.last_reload_success.clone(),
        );
        metrics.last_reload_success.set(unix_now());
        metrics.registry.register(
            "vrrp_state",
            "VRRP instance state: 1 for the state it is in, 0 for the others",
            metrics.vrrp_state.clone(),
        );
        metrics.registry.register(
            "vrrp_priority",
            "VRRP instance effective priority (after tracking)",
            metrics.vrrp_priority.clone(),
        );
        metrics.registry.register(
            "vrrp_transitions",
            "VRRP state transitions",
            metrics.transitions.clone(),
        );
        metrics.registry.register(
            "vrrp_adverts_sent",
            "VRRP advertisements sent",
            metrics.adverts_sent.clone(),
        );
        metrics.registry.register(
            "vrrp_adverts_received",
            "VRRP advertisements received and accepted",
            metrics.adverts_received.clone(),
        );
        metrics.registry.register(
            "vrrp_adverts_dropped",
            "VRRP packets dropped, by the instance their VRID named (empty: none) and reason",
            metrics.adverts_dropped.clone(),
        );
        metrics.registry.register(
            "real_server_up",
            "Real server health: 1 up, 0 down",
            metrics.real_server_up.clone(),
        );
        metrics.registry.register(
            "real_server_weight",
            "Real server weight as the checker sets it",
            metrics.real_server_weight.clone(),
        );
        metrics.registry.register(
            "real_server_admin",
            "What the operator set for a real server (appliance enable, disable, drain): 1 for its setting, 0 for the others",
            metrics.real_server_admin.clone(),
        );
        metrics.registry.register(
            "real_server_connections",
            "Connections the kernel holds to the real server: active (established TCP) and inactive (the others)",
            metrics.real_server_connections.clone(),
        );
        metrics
            .registry
            .register_collector(Box::new(metrics.traffic.clone()));
        metrics.registry.register_with_unit(
            "check_duration",
            "Health check probe duration, by check type",
            prometheus_client::registry::Unit::Seconds,
            metrics.check_duration.clone(),
        );
        metrics.registry.register(
            "check_local_faults",
            "Health checks the director could not run (out of descriptors, memory, processes or ports), by reason; the real server's state stays",
            metrics.check_local_faults.clone(),
        );
        metrics.registry.register(
            "dataplane_operations",
            "Dataplane operations carried out, by backend and kind",
            metrics.dataplane_operations.clone(),
        );
        metrics.registry.register(
            "dataplane_errors",
            "Dataplane reconciles that failed, by backend",
            metrics.dataplane_errors.clone(),
        );
        metrics.registry.register(
            "notify_fifo_dropped",
            "Lines not written to a notify FIFO because it was full (nobody read it), by FIFO",
            metrics.notify_fifo_dropped.clone(),
        );
        metrics.registry.register(
            "alert_mails",
            "Alert mails, by outcome: sent, failed (the relay refused it or did not answer), dropped (the queue was full)",
            metrics.alert_mails.clone(),
        );
        metrics
    }

    /// A reload ended so, after `took`.
    pub fn reload_done(&self, outcome: ReloadOutcome, took: Duration) {
        self.reloads
            .get_or_create(&OutcomeLabels {
                outcome: outcome.name().to_owned(),
            })
            .inc();
        self.reload_duration.observe(took.as_secs_f64());
        let applied = outcome == ReloadOutcome::Applied;
        self.last_reload_successful.set(i64::from(applied));
        if applied {
            self.last_reload_success.set(unix_now());
        }
    }

    /// A line for the notify FIFO `fifo` did not fit.
    pub fn notify_fifo_dropped(&self, fifo: &str) {
        self.notify_fifo_dropped
            .get_or_create(&FifoLabels {
                fifo: fifo.to_owned(),
            })
            .inc();
    }

    /// An alert mail `sent`, `failed` or `dropped`.
    pub fn alert_mail(&self, outcome: &str) {
        self.alert_mails
            .get_or_create(&OutcomeLabels {
                outcome: outcome.to_owned(),
            })
            .inc();
    }

    #[cfg(test)]
    pub fn notify_fifo_dropped_count(&self, fifo: &str) -> u64 {
        self.notify_fifo_dropped
            .get_or_create(&FifoLabels {
                fifo: fifo.to_owned(),
            })
            .get()
    }

    pub fn vrrp_transition(&self, instance: &str, from: State, to: State) {
        self.transitions
            .get_or_create(&TransitionLabels {
                instance: instance.to_owned(),
                from: from.to_string(),
                to: to.to_string(),
            })
            .inc();
    }

    pub fn advert_sent(&self, instance: &str) {
        self.adverts_sent
            .get_or_create(&InstanceLabels {
                instance: instance.to_owned(),
            })
            .inc();
    }

    pub fn advert_received(&self, instance: &str) {
        self.adverts_received
            .get_or_create(&InstanceLabels {
                instance: instance.to_owned(),
            })
            .inc();
    }

    /// A packet dropped for `reason` ([`crate::vrrp::packet::Rejection::name`]),
    /// meant for `instance` (empty when its VRID named none).
    pub fn advert_dropped(&self, instance: &str, reason: &str) {
        self.adverts_dropped
            .get_or_create(&DropLabels {
                instance: instance.to_owned(),
                reason: reason.to_owned(),
            })
            .inc();
    }

    /// A probe of type `check` (`TCP_CHECK`, `HTTP_GET`...) took `took`.
    pub fn check_done(&self, check: &str, took: Duration) {
        self.check_duration
            .get_or_create(&CheckLabels {
                check: check.to_owned(),
            })
            .observe(took.as_secs_f64());
    }

    /// A check not run for a lack of the director's own (a
    /// [`crate::check::decision::LocalFault`] name).
    pub fn check_local_fault(&self, reason: &str) {
        self.check_local_faults
            .get_or_create(&ReasonLabels {
                reason: reason.to_owned(),
            })
            .inc();
    }

    /// A reconcile's operations.
    pub fn dataplane_applied(&self, report: &Report) {
        for op in &report.applied {
            self.dataplane_operations
                .get_or_create(&OperationLabels {
                    backend: report.backend.to_owned(),
                    operation: operation_name(op).to_owned(),
                })
                .inc();
        }
    }

    /// A reconcile on `backend` failed.
    pub fn dataplane_error(&self, backend: &str) {
        self.dataplane_errors
            .get_or_create(&BackendLabels {
                backend: backend.to_owned(),
            })
            .inc();
    }

    /// The current values, as OpenMetrics text, the gauges set from
    /// `status` (left out without one: the daemon did not answer).
    pub fn scrape(&self, status: Option<&Status>) -> String {
        self.scrape_as(status, Format::OpenMetrics)
    }

    /// The metrics in `format`, gauges set from `status`.
    pub fn scrape_as(&self, status: Option<&Status>, format: Format) -> String {
        let _one = self.scrape.lock().unwrap_or_else(|e| e.into_inner());
        self.vrrp_state.clear();
        self.vrrp_priority.clear();
        self.real_server_up.clear();
        self.real_server_weight.clear();
        self.real_server_admin.clear();
        self.real_server_connections.clear();
        self.traffic
            .0
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clear();
        if let Some(status) = status {
            self.set_gauges(status);
        }
        let mut out = String::new();
        // Writing to a String cannot fail.
        let _ = match format {
            Format::OpenMetrics => {
                prometheus_client::encoding::text::encode(&mut out, &self.registry)
            }
            Format::Text => {
                prometheus_client::encoding::prometheus_text::encode(&mut out, &self.registry)
            }
        };
        out
    }

    fn set_gauges(&self, status: &Status) {
        for i in &status.instances {
            // Every state gets its series, so that a query for MASTER finds
            // 0 rather than nothing.
            for s in [
                State::Initialize,
                State::Backup,
                State::Master,
                State::Fault,
            ] {
                self.vrrp_state
                    .get_or_create(&StateLabels {
                        instance: i.name.clone(),
                        state: s.to_string(),
                    })
                    .set(i64::from(s == i.state));
            }
            self.vrrp_priority
                .get_or_create(&InstanceLabels {
                    instance: i.name.clone(),
                })
                .set(i64::from(i.priority.get()));
        }
        let mut traffic = Vec::new();
        for vs in &status.virtual_servers {
            for rs in &vs.real_servers {
                let labels = RealServerLabels {
                    service: vs.service.clone(),
                    real_server: rs.address.to_string(),
                };
                self.real_server_up
                    .get_or_create(&labels)
                    .set(i64::from(rs.alive));
                self.real_server_weight
                    .get_or_create(&labels)
                    .set(i64::from(rs.weight));
                if let Some(c) = &rs.connections {
                    for (state, n) in [("active", c.active), ("inactive", c.inactive)] {
                        self.real_server_connections
                            .get_or_create(&ConnectionLabels {
                                of: labels.clone(),
                                state: state.into(),
                            })
                            .set(i64::from(n));
                    }
                    if let Some(t) = c.traffic {
                        traffic.push((labels.clone(), t));
                    }
                }
                // Every setting gets its series, as the VRRP states do.
                for admin in [Mode::Enabled, Mode::Draining, Mode::Disabled] {
                    self.real_server_admin
                        .get_or_create(&AdminLabels {
                            of: labels.clone(),
                            admin: admin.name().into(),
                        })
                        .set(i64::from(rs.admin == admin.name()));
                }
            }
        }
        *self
            .traffic
            .0
            .lock()
            .unwrap_or_else(PoisonError::into_inner) = traffic;
    }
}

fn operation_name(op: &Op) -> &'static str {
    match op {
        Op::AddService(_) => "add_service",
        Op::EditService(_) => "edit_service",
        Op::DeleteService(_) => "delete_service",
        Op::AddDestination { .. } => "add_destination",
        Op::EditDestination { .. } => "edit_destination",
        Op::DeleteDestination { .. } => "delete_destination",
    }
}

/// The status page's part of the endpoint: whether it is on (a reload
/// turns it on or off) and the recent timeline it draws.
#[derive(Clone, Debug, Default)]
pub(crate) struct Page {
    pub(crate) on: Arc<AtomicBool>,
    pub(crate) history: History,
}

impl Page {
    fn is_on(&self) -> bool {
        self.on.load(Ordering::Relaxed)
    }
}

/// What a path asks for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Route {
    Metrics,
    Page,
    Style,
    Script,
    Unknown,
}

impl Route {
    fn of(path: &str, page: &Page) -> Route {
        match path {
            "/metrics" => Route::Metrics,
            "/" if page.is_on() => Route::Page,
            "/status.css" if page.is_on() => Route::Style,
            "/status.js" if page.is_on() => Route::Script,
            _ => Route::Unknown,
        }
    }

    /// Whether answering needs the daemon's status.
    fn needs_status(self) -> bool {
        matches!(self, Route::Metrics | Route::Page)
    }
}

/// The status page's own headers: nothing but its own style sheet and
/// script may load or run (a check result or a name in the config can
/// never become markup, and if it did, it could not run), no framing, and
/// nothing cached of the page itself.
const PAGE_HEADERS: [(hyper::header::HeaderName, &str); 5] = [
    (
        hyper::header::CONTENT_SECURITY_POLICY,
        "default-src 'none'; style-src 'self'; script-src 'self'; connect-src 'self'; \
         img-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'",
    ),
    (hyper::header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
    (hyper::header::X_FRAME_OPTIONS, "DENY"),
    (hyper::header::REFERRER_POLICY, "no-referrer"),
    (hyper::header::CACHE_CONTROL, "no-store"),
];

/// Serves `metrics` on `listener` until the task is dropped: `GET
/// /metrics` (and `HEAD`) answer the current values, with the gauges from
/// what `status()` gives; with the status page on, `/` answers the page
/// (and `/status.css`, `/status.js` its parts); other paths 404, other
/// methods 405.
///
/// At most [`MAX_CLIENTS`] connections at once (one more is closed at
/// once), each closed after [`CONNECTION_TIME`]: idle or slow clients by
/// the thousand must neither hold the descriptors the health checks need
/// nor memory.
pub(crate) async fn serve<F, Fut>(
    listener: TcpListener,
    metrics: Arc<Metrics>,
    page: Page,
    status: F,
) where
    F: Fn() -> Fut + Clone + Send + Sync + 'static,
    Fut: Future<Output = Option<Status>> + Send,
{
    let slots = Arc::new(tokio::sync::Semaphore::new(MAX_CLIENTS));
    loop {
        let (stream, peer) = match listener.accept().await {
            Ok(accepted) => accepted,
            Err(e) => {
                tracing::warn!(error = %e, "metrics endpoint: accept failed");
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        let Ok(slot) = slots.clone().try_acquire_owned() else {
            tracing::debug!(%peer, max = MAX_CLIENTS, "metrics endpoint: client refused, too many at once");
            continue;
        };
        let metrics = metrics.clone();
        let status = status.clone();
        let page = page.clone();
        tokio::spawn(async move {
            let _slot = slot;
            let service = hyper::service::service_fn(move |request| {
                let metrics = metrics.clone();
                let status = status.clone();
                let page = page.clone();
                async move {
                    crate::fail_point!("metrics-request");
                    let wanted = Route::of(request.uri().path(), &page).needs_status()
                        && matches!(*request.method(), Method::GET | Method::HEAD);
                    let snapshot = if wanted { status().await } else { None };
                    Ok::<_, std::convert::Infallible>(answer(
                        &request,
                        &metrics,
                        &page,
                        snapshot.as_ref(),
                    ))
                }
            });
            let connection = hyper::server::conn::http1::Builder::new()
                .timer(hyper_util::rt::TokioTimer::new())
                .header_read_timeout(REQUEST_TIMEOUT)
                .serve_connection(hyper_util::rt::TokioIo::new(stream), service);
            match tokio::time::timeout(CONNECTION_TIME, connection).await {
                Ok(Ok(())) => {}
                Ok(Err(e)) => {
                    tracing::debug!(%peer, error = %e, "metrics endpoint: connection ended");
                }
                Err(_) => {
                    tracing::debug!(%peer, "metrics endpoint: connection closed after its time")
                }
            }
        });
    }
}

fn reply(status: StatusCode, content_type: &str, body: String) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(Bytes::from(body)));
    *response.status_mut() = status;
    if let Ok(value) = content_type.parse() {
        response
            .headers_mut()
            .insert(hyper::header::CONTENT_TYPE, value);
    }
    response
}

fn answer<B>(
    request: &Request<B>,
    metrics: &Metrics,
    page: &Page,
    status: Option<&Status>,
) -> Response<Full<Bytes>> {
    let route = Route::of(request.uri().path(), page);
    if route != Route::Unknown && !matches!(*request.method(), Method::GET | Method::HEAD) {
        let mut response = reply(
            StatusCode::METHOD_NOT_ALLOWED,
            "text/plain",
            format!("method not allowed: GET {}\n", request.uri().path()),
        );
        if let Ok(value) = "GET, HEAD".parse() {
            response.headers_mut().insert(hyper::header::ALLOW, value);
        }
        return response;
    }
    let mut response = match route {
        Route::Metrics => {
            let openmetrics = request
                .headers()
                .get_all(hyper::header::ACCEPT)
                .iter()
                .filter_map(|v| v.to_str().ok())
                .any(|v| v.contains("application/openmetrics-text"));
            return if openmetrics {
                reply(StatusCode::OK, CONTENT_TYPE, metrics.scrape(status))
            } else {
                reply(
                    StatusCode::OK,
                    CLASSIC_CONTENT_TYPE,
                    metrics.scrape_as(status, Format::Text),
                )
            };
        }
        Route::Page => reply(
            if status.is_some() {
                StatusCode::OK
            } else {
                StatusCode::SERVICE_UNAVAILABLE
            },
            "text/html; charset=utf-8",
            status_page::render(status, &page.history.recent(), SystemTime::now()),
        ),
        Route::Style => reply(
            StatusCode::OK,
            "text/css; charset=utf-8",
            status_page::CSS.into(),
        ),
        Route::Script => reply(
            StatusCode::OK,
            "text/javascript; charset=utf-8",
            status_page::JS.into(),
        ),
        Route::Unknown => {
            let body = if page.is_on() {
                "not found: the status page is at /, the metrics at /metrics\n"
            } else {
                "not found: the metrics are at /metrics\n"
            };
            return reply(StatusCode::NOT_FOUND, "text/plain", body.into());
        }
    };
    for (name, value) in PAGE_HEADERS {
        if let Ok(value) = value.parse() {
            response.headers_mut().insert(name, value);
        }
    }
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample(text: &str, name: &str, labels: &str) -> Option<f64> {
        let prefix = if labels.is_empty() {
            format!("{name} ")
        } else {
            format!("{name}{{{labels}}} ")
        };
        text.lines()
            .find_map(|l| l.strip_prefix(&prefix))
            .and_then(|v| v.parse().ok())
    }

    #[test]
    fn records_vrrp_checks_and_dataplane_and_encodes_them() {
        let m = Metrics::new();
        m.vrrp_transition("VI_1", State::Backup, State::Master);
        m.advert_sent("VI_1");
        m.advert_sent("VI_1");
        m.advert_received("VI_1");
        m.advert_dropped("VI_1", "auth_mismatch");
        m.advert_dropped("", "unknown_vrid");
        m.check_done("TCP_CHECK", Duration::from_millis(3));
        m.dataplane_error("ipvs");
        let before = m.scrape(None);
        m.reload_done(ReloadOutcome::Applied, Duration::from_millis(20));
        m.reload_done(ReloadOutcome::Rejected, Duration::from_millis(2));
        let mut status = crate::daemon::status::tests::sample();
        status.virtual_servers[0].real_servers[0]
            .connections
            .get_or_insert_with(Default::default)
            .traffic = Some(Traffic {
            conns: 9,
            in_packets: 10,
            out_packets: 11,
            in_bytes: 12,
            out_bytes: 13,
            ..Traffic::default()
        });
        let text = m.scrape(Some(&status));
        let get = |name: &str, labels: &str| {
            sample(&text, name, labels).unwrap_or_else(|| panic!("{name}{{{labels}}}\n{text}"))
        };
        assert_eq!(
            get("appliance_vrrp_state", r#"instance="VI_1",state="MASTER""#),
            1.0
        );
        assert_eq!(
            get("appliance_vrrp_state", r#"instance="VI_1",state="BACKUP""#),
            0.0
        );
        assert_eq!(get("appliance_vrrp_priority", r#"instance="VI_1""#), 100.0);
        assert_eq!(
            get(
                "appliance_vrrp_transitions_total",
                r#"instance="VI_1",from="BACKUP",to="MASTER""#
            ),
            1.0
        );
        assert_eq!(
            get("appliance_vrrp_adverts_sent_total", r#"instance="VI_1""#),
            2.0
        );
        assert_eq!(
            get(
                "appliance_vrrp_adverts_received_total",
                r#"instance="VI_1""#
            ),
            1.0
        );
        assert_eq!(
            get(
                "appliance_vrrp_adverts_dropped_total",
                r#"instance="VI_1",reason="auth_mismatch""#
            ),
            1.0
        );
        assert_eq!(
            get(
                "appliance_vrrp_adverts_dropped_total",
                r#"instance="",reason="unknown_vrid""#
            ),
            1.0
        );
        assert_eq!(
            get(
                "appliance_build_info",
                &format!(r#"version="{}""#, env!("CARGO_PKG_VERSION"))
            ),
            1.0
        );
        assert_eq!(
            get("appliance_config_reloads_total", r#"outcome="applied""#),
            1.0
        );
        assert_eq!(
            get("appliance_config_reloads_total", r#"outcome="rejected""#),
            1.0
        );
        assert_eq!(
            get("appliance_config_reload_duration_seconds_count", ""),
            2.0
        );
        assert_eq!(
            sample(&before, "appliance_config_last_reload_successful", ""),
            Some(1.0),
            "a started daemon loaded its config"
        );
        assert_eq!(get("appliance_config_last_reload_successful", ""), 0.0);
        let success = get("appliance_config_last_reload_success_timestamp_seconds", "");
        assert!(
            success
                >= sample(
                    &before,
                    "appliance_config_last_reload_success_timestamp_seconds",
                    ""
                )
                .unwrap()
                && success > 1.7e9,
            "{success}"
        );
        let rs = r#"service="TCP 10.0.0.100:80",real_server="10.0.0.11:8080""#;
        let with = |extra: &str| format!("{rs},{extra}");
        assert_eq!(
            get(
                "appliance_real_server_connections",
                &with(r#"state="active""#)
            ),
            2.0
        );
        assert_eq!(
            get(
                "appliance_real_server_connections",
                &with(r#"state="inactive""#)
            ),
            5.0
        );
        assert_eq!(
            get("appliance_real_server_scheduled_connections_total", rs),
            9.0
        );
        assert_eq!(
            get(
                "appliance_real_server_packets_total",
                &with(r#"direction="out""#)
            ),
            11.0
        );
        assert_eq!(
            get(
                "appliance_real_server_bytes_total",
                &with(r#"direction="in""#)
            ),
            12.0
        );
        assert_eq!(get("appliance_real_server_up", rs), 0.0);
        assert_eq!(get("appliance_real_server_weight", rs), 1.0);
        let admin = |setting| format!("{rs},admin=\"{setting}\"");
        assert_eq!(get("appliance_real_server_admin", &admin("enabled")), 1.0);
        assert_eq!(get("appliance_real_server_admin", &admin("disabled")), 0.0);
        assert_eq!(
            get(
                "appliance_check_duration_seconds_count",
                r#"check="TCP_CHECK""#
            ),
            1.0
        );
        assert_eq!(
            get("appliance_dataplane_errors_total", r#"backend="ipvs""#),
            1.0
        );
        assert!(text.ends_with("# EOF\n"), "{text}");
        // Without a status the gauges are left out, the counters are not.
        let text = m.scrape(None);
        assert!(!text.contains("appliance_vrrp_state{"), "{text}");
        assert!(
            text.contains("appliance_vrrp_adverts_sent_total{"),
            "{text}"
        );
    }

    /// Prometheus' text format names a counter by its samples and has no
    /// end marker; the samples are OpenMetrics' own.
    #[test]
    fn the_text_format_names_counters_by_their_samples() {
        let m = Metrics::new();
        m.advert_sent("VI_1");
        let text = m.scrape_as(None, Format::Text);
        assert!(
            text.contains("# TYPE appliance_vrrp_adverts_sent_total counter\n")
                && text.contains("appliance_vrrp_adverts_sent_total{instance=\"VI_1\"} 1\n")
                && !text.contains("# EOF"),
            "{text}"
        );
    }

    #[test]
    fn only_get_and_head_of_metrics_are_answered() {
        let m = Metrics::new();
        let request = |method: Method, path: &str| {
            Request::builder()
                .method(method)
                .uri(path)
                .body(())
                .unwrap()
        };
        let ok = answer(
            &request(Method::GET, "/metrics"),
            &m,
            &Page::default(),
            None,
        );
        assert_eq!(ok.status(), StatusCode::OK);
        assert_eq!(
            ok.headers()[hyper::header::CONTENT_TYPE],
            CLASSIC_CONTENT_TYPE
        );
        // Prometheus' own Accept header.
        let scrape = Request::builder()
            .uri("/metrics")
            .header(
                hyper::header::ACCEPT,
                "application/openmetrics-text;version=1.0.0,application/openmetrics-text;version=0.0.1;q=0.75,text/plain;version=0.0.4;q=0.5,*/*;q=0.1",
            )
            .body(())
            .unwrap();
        let ok = answer(&scrape, &m, &Page::default(), None);
        assert_eq!(ok.headers()[hyper::header::CONTENT_TYPE], CONTENT_TYPE);
        assert_eq!(
            answer(&request(Method::GET, "/"), &m, &Page::default(), None).status(),
            StatusCode::NOT_FOUND
        );
        let post = answer(
            &request(Method::POST, "/metrics"),
            &m,
            &Page::default(),
            None,
        );
        assert_eq!(post.status(), StatusCode::METHOD_NOT_ALLOWED);
        assert_eq!(post.headers()[hyper::header::ALLOW], "GET, HEAD");
    }

    #[test]
    fn the_status_page_is_served_only_when_on_with_its_own_headers() {
        let m = Metrics::new();
        let page = Page::default();
        let get = |path: &str| Request::builder().uri(path).body(()).unwrap();
        for path in ["/", "/status.css", "/status.js"] {
            assert_eq!(
                answer(&get(path), &m, &page, None).status(),
                StatusCode::NOT_FOUND,
                "{path} while off"
            );
        }
        page.on.store(true, Ordering::Relaxed);
        let status = crate::daemon::status::tests::sample();
        let html = answer(&get("/"), &m, &page, Some(&status));
        assert_eq!(html.status(), StatusCode::OK);
        assert_eq!(
            html.headers()[hyper::header::CONTENT_TYPE],
            "text/html; charset=utf-8"
        );
        let csp = html.headers()[hyper::header::CONTENT_SECURITY_POLICY]
            .to_str()
            .unwrap();
        assert!(csp.starts_with("default-src 'none'; style-src 'self'; script-src 'self'"));
        assert_eq!(html.headers()[hyper::header::X_FRAME_OPTIONS], "DENY");
        assert_eq!(
            answer(&get("/"), &m, &page, None).status(),
            StatusCode::SERVICE_UNAVAILABLE,
            "no status: the page says so"
        );
        let css = answer(&get("/status.css"), &m, &page, None);
        assert_eq!(
            css.headers()[hyper::header::CONTENT_TYPE],
            "text/css; charset=utf-8"
        );
        let js = answer(&get("/status.js"), &m, &page, None);
        assert_eq!(
            js.headers()[hyper::header::CONTENT_TYPE],
            "text/javascript; charset=utf-8"
        );
        assert_eq!(
            answer(&get("/metrics"), &m, &page, None).status(),
            StatusCode::OK
        );
        let post = Request::builder()
            .method(Method::POST)
            .uri("/")
            .body(())
            .unwrap();
        let refused = answer(&post, &m, &page, Some(&status));
        assert_eq!(refused.status(), StatusCode::METHOD_NOT_ALLOWED);
        assert_eq!(
            answer(&get("/index.html"), &m, &page, None).status(),
            StatusCode::NOT_FOUND
        );
    }
}
