//! The VRRP state machine of one virtual router instance, sans-IO: RFC 5798
//! §6.4 (v3) and RFC 3768 §6.4 (v2) — Initialize, Backup, Master — plus
//! keepalived's FAULT state, priority tracking, preemption controls and
//! gratuitous-ARP timers.
//!
//! Shaped like a smoltcp socket: [`Machine::new`], then
//! [`Machine::handle`]`(now, input)` returns the [`Action`]s to perform and
//! [`Machine::poll_timeout`] says when to deliver [`Input::Timer`] next. Time
//! is always a parameter; nothing here reads a clock or touches a socket.
//!
//! Timing follows the RFCs, computed in microseconds like keepalived:
//! - v2: `Skew_Time = (256 − Priority) / 256` s;
//! - v3: `Skew_Time = ((256 − Priority) × Master_Adver_Interval) / 256` cs,
//!   floored to the microsecond (keepalived's `VRRP_TIMER_SKEW`);
//! - `Master_Down_Interval = 3 × Master_Adver_Interval + Skew_Time`, where a
//!   v3 backup learns `Master_Adver_Interval` from the adverts it accepts
//!   and a v2 router uses its own interval (and discards adverts that carry
//!   another one, RFC 3768 §7.1).
//!
//! Where keepalived deviates from the RFCs this follows keepalived, since
//! the appliance replaces it; each deviation is marked "keepalived:" below.
//!
//! keepalived's initial `state` (checked in its `vrrp_init_state` and
//! `vrrp_complete_instance`): `state MASTER` with a priority below 255 does
//! *not* make the router master at once. keepalived enters BACKUP with the
//! ordinary `Master_Down_Interval`, exactly as `state BACKUP` does; the
//! keyword's only effect is to clear `nopreempt` and `preempt_delay` (they
//! "will not work with initial state MASTER"). (keepalived's shortened
//! startup timer, `Master_Adver_Interval + Skew(255)`, applies only to a
//! `state MASTER` member held in BACKUP by its sync group; sync groups here
//! always start in BACKUP, so it never applies.) Priority 255 (the address
//! owner) implies `state MASTER`, forces preemption on, and goes master at
//! once (RFC 5798 §6.4.1).

use crate::clock::{Instant, format_duration};
use crate::vrrp::{Centiseconds, Priority, Version, Vrid};
use serde::{Deserialize, Serialize};
use std::fmt;
use std::net::IpAddr;
use std::time::Duration;

/// The protocol state of an instance.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "UPPERCASE")]
pub enum State {
    /// Not running (before startup, after shutdown).
    Initialize,
    Backup,
    Master,
    /// keepalived's FAULT: our interface is down or a weight-0 tracked
    /// object failed; we neither send nor listen.
    Fault,
}

impl fmt::Display for State {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.pad(match self {
            State::Initialize => "INIT",
            State::Backup => "BACKUP",
            State::Master => "MASTER",
            State::Fault => "FAULT",
        })
    }
}

/// keepalived's `state` keyword: the state an instance wants at startup.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "UPPERCASE")]
pub enum InitialState {
    #[default]
    Backup,
    Master,
}

/// A tracked object's weight: keepalived allows −253..=253. Zero means
/// "failure puts the instance in FAULT"; positive is added to the priority
/// while the object is up; negative is added (i.e. subtracted) while down.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(try_from = "i32", into = "i32")]
pub struct Weight(i16);

impl Weight {
    /// A script's or an interface's weight: keepalived's −253..=253.
    pub fn new(value: i32) -> Result<Self, WeightError> {
        Self::within(value, 253)
    }

    /// A tracked file's or process's weight: keepalived reads it in
    /// −254..=254 (for a file, the product with its value is what is
    /// bounded, see [`TrackKind::File`]).
    pub fn for_file(value: i32) -> Result<Self, WeightError> {
        Self::within(value, 254)
    }

    fn within(value: i32, limit: i16) -> Result<Self, WeightError> {
        match i16::try_from(value) {
            Ok(v) if (-limit..=limit).contains(&v) => Ok(Self(v)),
            _ => Err(WeightError { value, limit }),
        }
    }

    pub fn get(self) -> i16 {
        self.0
    }
}

/// A track weight outside keepalived's range.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("weight {value} is out of range -{limit}..={limit}")]
pub struct WeightError {
    pub value: i32,
    pub limit: i16,
}

impl TryFrom<i32> for Weight {
    type Error = WeightError;
    fn try_from(value: i32) -> Result<Self, WeightError> {
        Self::new(value)
    }
}

impl From<Weight> for i32 {
    fn from(w: Weight) -> i32 {
        i32::from(w.0)
    }
}

/// The name of a tracked script or interface.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
pub struct TrackName(pub String);

impl fmt::Display for TrackName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// What is tracked.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "kind")]
pub enum TrackKind {
    /// A check script run periodically by the driver; each run's result is
    /// an [`Input::Script`]. keepalived's `rise`/`fall`: the script turns OK
    /// after `rise` consecutive successes and failed after `fall`
    /// consecutive failures; its first result counts at once.
    Script { rise: u32, fall: u32 },
    /// Another interface's link state ([`Input::Interface`]).
    Interface,
    /// keepalived's `track_file`: a file holding an integer, read by the
    /// driver on each change ([`Input::File`]). The value times the weight
    /// (negated with `reverse`) is added to the priority, at most 253; a
    /// product of −254 or less puts the instance in FAULT. With weight 0 a
    /// non-zero value (a zero one with `reverse`) puts it in FAULT.
    File { reverse: bool },
    /// keepalived's `track_process`: whether enough matching processes run
    /// (the quorum, [`Input::Process`], decided by
    /// [`crate::vrrp::process`]). As a script: a positive weight is added
    /// while the quorum holds, a negative one while it does not, negated
    /// with `reverse`; with weight 0 a lost quorum (a held one with
    /// `reverse`) puts the instance in FAULT.
    Process { reverse: bool },
}

/// One tracked object of an instance.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Track {
    pub name: TrackName,
    pub kind: TrackKind,
    pub weight: Weight,
}

/// Everything the machine needs to know about its instance.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct InstanceConfig {
    /// keepalived's instance name (`VI_1`).
    pub name: String,
    pub vrid: Vrid,
    pub version: Version,
    /// Configured (base) priority; 255 makes us the address owner.
    pub priority: Priority,
    /// Our Advertisement_Interval. v2 uses whole seconds.
    pub adver_int: Centiseconds,
    /// Our primary address on the VRRP interface, for the equal-priority
    /// tie-break.
    pub primary_address: IpAddr,
    pub initial_state: InitialState,
    /// RFC Preempt_Mode; keepalived's `nopreempt` clears it.
    pub preempt: bool,
    /// keepalived's `preempt_delay`: after startup or leaving FAULT, accept
    /// lower-priority adverts (do not preempt) until this long after the
    /// first one. Zero disables it.
    pub preempt_delay: Duration,
    /// keepalived's `garp_master_delay` (default 5 s): a second gratuitous
    /// burst this long after becoming master. Zero disables it.
    pub garp_master_delay: Duration,
    /// keepalived's `garp_master_repeat` (default 5): messages per burst.
    pub garp_master_repeat: u32,
    /// keepalived's `garp_master_refresh` (default off): while master,
    /// repeat gratuitous messages at this period. Zero disables it.
    pub garp_master_refresh: Duration,
    /// keepalived's `garp_master_refresh_repeat` (default 1).
    pub garp_master_refresh_repeat: u32,
    /// keepalived's `lower_prio_no_advert`: when false (the default) a
    /// master answers a lower-priority advert with an advert of its own.
    pub lower_prio_no_advert: bool,
    /// keepalived's `garp_lower_prio_repeat` (default `garp_master_repeat`,
    /// 0 in strict mode): a master hearing a lower-priority advert (a
    /// partition healing: the other side was master too) sends this many
    /// gratuitous messages, so neighbours that learnt the other's MAC for
    /// the VIPs come back. Zero disables it.
    pub garp_lower_prio_repeat: u32,
    /// keepalived's `garp_lower_prio_delay` (default `garp_master_delay`):
    /// a second such burst this long after the first. Zero disables it.
    pub garp_lower_prio_delay: Duration,
    pub tracks: Vec<Track>,
    /// This router was MASTER until a restart less than its
    /// Master_Down_Interval ago (keepalived keeps a master's state across
    /// a reload; the appliance across a restart too): it resumes as MASTER
    /// at once, before any backup's timer runs out, so the VIP never moves.
    /// A better router's advert sends it back to BACKUP as usual.
    pub resume_master: bool,
}

impl InstanceConfig {
    /// keepalived's defaults for everything but the identity.
    pub fn new(name: impl Into<String>, vrid: Vrid, primary_address: IpAddr) -> Self {
        Self {
            name: name.into(),
            vrid,
            version: Version::V2,
            priority: Priority::DEFAULT,
            adver_int: Centiseconds::from_secs(1),
            primary_address,
            initial_state: InitialState::Backup,
            preempt: true,
            preempt_delay: Duration::ZERO,
            garp_master_delay: Duration::from_secs(5),
            garp_master_repeat: 5,
            garp_master_refresh: Duration::ZERO,
            garp_master_refresh_repeat: 1,
            lower_prio_no_advert: false,
            garp_lower_prio_repeat: 5,
            garp_lower_prio_delay: Duration::from_secs(5),
            tracks: Vec::new(),
            resume_master: false,
        }
    }
}

/// An advertisement as received, already decoded and validated by the
/// packet layer.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Advert {
    /// The sender's primary address (IP source address).
    pub from: IpAddr,
    pub priority: Priority,
    pub adver_int: Centiseconds,
}

/// Commands a sync group gives its members (see `vrrp::group`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum GroupCommand {
    /// Another member went master: follow it from BACKUP.
    Master,
    /// Another member left master for BACKUP: leave master too.
    Backup,
    /// Whether another member is in FAULT (which holds us in FAULT too).
    Fault { active: bool },
}

/// What happened, as far as the machine is concerned.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Input {
    Startup,
    /// Clean stop: a master resigns with a priority 0 advert.
    Shutdown,
    Advert(Advert),
    /// The time returned by [`Machine::poll_timeout`] has come.
    Timer,
    /// One run of a tracked script finished.
    Script {
        name: TrackName,
        success: bool,
    },
    /// A tracked interface changed state.
    Interface {
        name: TrackName,
        up: bool,
    },
    /// A tracked file holds this value now (keepalived reads a missing or
    /// non-numeric file as 0).
    File {
        name: TrackName,
        value: i64,
    },
    /// A tracked process gained (`up`) or lost its quorum.
    Process {
        name: TrackName,
        up: bool,
    },
    /// Our own (VRRP) interface changed state.
    Link {
        up: bool,
    },
    /// A new configured priority (e.g. a reload).
    SetPriority(Priority),
    Group(GroupCommand),
    /// A planned handover (`appliance switchover`), make-before-break: a
    /// master resigns (priority 0 adverts, each interval) but keeps its
    /// VIPs and goes on forwarding until another router's advert shows it
    /// has taken over, and only then steps down to BACKUP; it then lets the
    /// new master be (no preemption) until it is master again. No taker
    /// within three intervals: it goes on as master. Ignored unless MASTER.
    /// With `to`, the resignations go to that router alone (a unicast
    /// peer), so that it, and no other backup, takes over.
    Switchover {
        to: Option<IpAddr>,
    },
}

/// Why a state changed; rendered in the failover timeline.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "reason")]
pub enum Reason {
    Startup,
    AddressOwner,
    /// Master_Down_Timer expired: nothing accepted for `silent_for`.
    MasterDown {
        silent_for: Duration,
    },
    /// Master_Down_Timer expired after the master resigned (priority 0),
    /// `after` being our Skew_Time.
    MasterResigned {
        after: Duration,
    },
    /// We discarded lower-priority adverts and the timer expired.
    Preempt {
        over: Priority,
        from: IpAddr,
        silent_for: Duration,
    },
    /// A better master advertised.
    HigherPriority {
        from: IpAddr,
        priority: Priority,
    },
    /// Same priority, higher primary address.
    HigherAddress {
        from: IpAddr,
        priority: Priority,
    },
    LinkDown,
    LinkUp,
    TrackFailed {
        name: TrackName,
    },
    TrackRecovered {
        name: TrackName,
    },
    SyncGroup,
    Shutdown,
    /// It was master until a restart within its Master_Down_Interval.
    Resumed,
    /// A planned handover: `to` advertised after we resigned.
    Switchover {
        to: IpAddr,
    },
}

impl fmt::Display for Reason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let d = |d: &Duration| format_duration(*d);
        match self {
            Reason::Startup => write!(f, "startup"),
            Reason::AddressOwner => write!(f, "address owner (priority 255)"),
            Reason::MasterDown { silent_for } => {
                write!(f, "master down: no advert for {}", d(silent_for))
            }
            Reason::MasterResigned { after } => {
                write!(f, "master resigned (priority 0), skew {}", d(after))
            }
            Reason::Preempt {
                over,
                from,
                silent_for,
            } => write!(
                f,
                "preempt: ignored priority {over} from {from}, no better advert for {}",
                d(silent_for)
            ),
            Reason::HigherPriority { from, priority } => {
                write!(f, "higher priority {priority} from {from}")
            }
            Reason::HigherAddress { from, priority } => {
                write!(f, "equal priority {priority}, higher address {from}")
            }
            Reason::LinkDown => write!(f, "interface down"),
            Reason::LinkUp => write!(f, "interface up"),
            Reason::TrackFailed { name } => write!(f, "track {name} failed"),
            Reason::TrackRecovered { name } => write!(f, "track {name} recovered"),
            Reason::SyncGroup => write!(f, "sync group"),
            Reason::Shutdown => write!(f, "shutdown"),
            Reason::Switchover { to } => write!(f, "switchover: {to} took over"),
            Reason::Resumed => write!(
                f,
                "resumed: master until a restart within its master down interval"
            ),
        }
    }
}

/// Why gratuitous ARPs / unsolicited NAs are sent.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum GarpReason {
    /// The burst on becoming master.
    BecameMaster,
    /// The second burst, `garp_master_delay` later.
    MasterDelay,
    /// `garp_master_refresh`.
    Refresh,
    /// A lower-priority advert heard while master (`garp_lower_prio_repeat`).
    LowerPriority,
    /// The second burst, `garp_lower_prio_delay` later.
    LowerPriorityDelay,
}

impl fmt::Display for GarpReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            GarpReason::BecameMaster => "became master",
            GarpReason::MasterDelay => "garp_master_delay",
            GarpReason::Refresh => "garp_master_refresh",
            GarpReason::LowerPriority => "lower priority advert",
            GarpReason::LowerPriorityDelay => "garp_lower_prio_delay",
        })
    }
}

/// What the driver must do, in order.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Action {
    SendAdvert {
        priority: Priority,
        adver_int: Centiseconds,
    },
    /// A priority 0 advert to `to` alone: a switchover to a chosen peer.
    ResignTo {
        adver_int: Centiseconds,
        to: IpAddr,
    },
    AddVips,
    RemoveVips,
    /// Gratuitous ARP (IPv4) / unsolicited NA (IPv6) for every VIP,
    /// `repeat` times.
    SendGratuitous {
        repeat: u32,
        reason: GarpReason,
    },
    /// Run the notify script for the new state (keepalived's
    /// `notify_master`/`notify_backup`/`notify_fault`/`notify_stop`).
    Notify {
        state: State,
    },
    StateChanged {
        from: State,
        to: State,
        reason: Reason,
    },
    PriorityChanged {
        from: Priority,
        to: Priority,
    },
    /// As master, an advert of a lower priority came from `from` (a split
    /// brain healing): keepalived's `notify_master_rx_lower_pri`. At most
    /// once per advert interval, with the answer.
    HeardLowerPriority {
        from: IpAddr,
        priority: Priority,
    },
}

/// A tracked object's current view.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum TrackState {
    /// No result yet: keepalived neither adds nor subtracts its weight.
    Unknown,
    Up,
    Down,
}

#[derive(Clone, Debug)]
struct TrackSlot {
    track: Track,
    state: TrackState,
    /// keepalived's script `result` counter: 0..rise+fall, OK when >= rise.
    result: u32,
    /// A tracked file's last value; `None` until the driver reads it.
    value: Option<i64>,
}

/// What a tracked file's value does to one instance (keepalived's
/// `process_update_vrrp_track_file_status`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum FileEffect {
    Fault,
    /// Added to the priority.
    Adjust(i32),
}

impl FileEffect {
    fn of(value: i64, weight: Weight, reverse: bool) -> Self {
        let weight = i64::from(weight.get());
        if weight == 0 {
            return if (value != 0) != reverse {
                Self::Fault
            } else {
                Self::Adjust(0)
            };
        }
        let sign = if reverse { -1 } else { 1 };
        // No overflow: the driver's values fit in an i32 (plus one, as
        // keepalived's range check), the weight in ±254.
        let product = value.saturating_mul(weight).saturating_mul(sign);
        if product <= -254 {
            Self::Fault
        } else {
            Self::Adjust(i32::try_from(product.min(253)).unwrap_or(253))
        }
    }
}

impl TrackSlot {
    fn new(track: Track) -> Self {
        let result = match track.kind {
            // keepalived's initial "one success is enough" value.
            TrackKind::Script { rise, .. } => rise.max(1) - 1,
            TrackKind::Interface | TrackKind::File { .. } | TrackKind::Process { .. } => 0,
        };
        Self {
            track,
            state: TrackState::Unknown,
            result,
            value: None,
        }
    }

    /// Feeds a tracked file's value; whether it changed.
    fn file_value(&mut self, value: i64) -> bool {
        self.value.replace(value) != Some(value)
    }

    fn file_effect(&self) -> Option<FileEffect> {
        let TrackKind::File { reverse } = self.track.kind else {
            return None;
        };
        self.value
            .map(|value| FileEffect::of(value, self.track.weight, reverse))
    }

    /// Feeds one script result; returns the new state if it changed.
    fn script_result(&mut self, success: bool) -> Option<TrackState> {
        let TrackKind::Script { rise, fall } = self.track.kind else {
            return None;
        };
        let (rise, fall) = (rise.max(1), fall.max(1));
        let before = self.state;
        if success {
            if self.result < rise - 1 {
                self.result += 1;
            } else {
                self.result = rise + fall - 1;
                self.state = TrackState::Up;
            }
        } else if self.result > rise {
            self.result -= 1;
        } else if self.result == rise || before != TrackState::Down {
            // From OK to failed, or the very first result is a failure.
            self.result = 0;
            self.state = TrackState::Down;
        }
        (self.state != before).then_some(self.state)
    }

    /// The priority contribution (keepalived's `total_priority` terms).
    fn contribution(&self) -> i32 {
        if let TrackKind::File { .. } = self.track.kind {
            return match self.file_effect() {
                Some(FileEffect::Adjust(by)) => by,
                Some(FileEffect::Fault) | None => 0,
            };
        }
        let w = i32::from(self.track.weight.get());
        // keepalived's weight_multiplier: -1 with `reverse`.
        let sign = match self.track.kind {
            TrackKind::Process { reverse: true } => -1,
            _ => 1,
        };
        match self.state {
            TrackState::Up if w > 0 => w * sign,
            TrackState::Down if w < 0 => w * sign,
            _ => 0,
        }
    }

    fn faulty(&self) -> bool {
        match self.track.kind {
            TrackKind::File { .. } => self.file_effect() == Some(FileEffect::Fault),
            // keepalived: down when `have_quorum != (weight_multiplier == 1)`.
            TrackKind::Process { reverse: true } => {
                self.track.weight.get() == 0 && self.state == TrackState::Up
            }
            _ => self.track.weight.get() == 0 && self.state == TrackState::Down,
        }
    }
}

/// One VRRP instance.
#[derive(Clone, Debug)]
pub struct Machine {
    cfg: InstanceConfig,
    state: State,
    effective: Priority,
    master_adver_int: Centiseconds,
    /// Backup: Master_Down_Timer. Master: Adver_Timer.
    timer: Option<Instant>,
    garp_delay_at: Option<Instant>,
    garp_refresh_at: Option<Instant>,
    /// The second burst after a lower-priority advert.
    garp_lower_at: Option<Instant>,
    /// keepalived's `preempt_time`: when the preempt delay ends.
    preempt_until: Option<Instant>,
    /// Last accepted advert (or entry to BACKUP).
    last_heard: Instant,
    /// Last discarded lower-priority advert, newer than `last_heard`.
    last_ignored: Option<(Instant, Priority, IpAddr)>,
    /// When a master last answered a lower-priority advert.
    last_reply: Option<Instant>,
    /// The timer is at Skew_Time because the master resigned.
    resigned: bool,
    link_up: bool,
    tracks: Vec<TrackSlot>,
    sync_member: bool,
    group_fault: bool,
    wants_master: bool,
    /// A switchover is under way until then.
    handover_until: Option<Instant>,
    /// The router a switchover resigns to, if one was chosen.
    handover_to: Option<IpAddr>,
    /// Handed over: no preemption until master again.
    yielded: bool,
    /// Handed over: the VIPs go then (see `leave_master`).
    release_at: Option<Instant>,
}

impl Machine {
    pub fn new(config: InstanceConfig) -> Self {
        let mut cfg = config;
        if cfg.priority == Priority::OWNER {
            cfg.initial_state = InitialState::Master;
            cfg.preempt = true;
        }
        if cfg.initial_state == InitialState::Master {
            cfg.preempt = true;
            cfg.preempt_delay = Duration::ZERO;
        }
        if !cfg.preempt {
            cfg.preempt_delay = Duration::ZERO;
        }
        let tracks = cfg.tracks.iter().cloned().map(TrackSlot::new).collect();
        let mut machine = Self {
            effective: cfg.priority,
            master_adver_int: cfg.adver_int,
            cfg,
            state: State::Initialize,
            timer: None,
            garp_delay_at: None,
            garp_refresh_at: None,
            garp_lower_at: None,
            preempt_until: None,
            last_heard: Instant::ZERO,
            last_ignored: None,
            last_reply: None,
            resigned: false,
            link_up: true,
            tracks,
            sync_member: false,
            group_fault: false,
            wants_master: false,
            handover_until: None,
            handover_to: None,
            yielded: false,
            release_at: None,
        };
        machine.effective = machine.computed_priority();
        machine
    }

    pub fn config(&self) -> &InstanceConfig {
        &self.cfg
    }

    pub fn name(&self) -> &str {
        &self.cfg.name
    }

    pub fn state(&self) -> State {
        self.state
    }

    /// The priority we advertise (configured priority adjusted by tracks).
    pub fn priority(&self) -> Priority {
        self.effective
    }

    /// Master_Adver_Interval as currently known.
    pub fn master_adver_int(&self) -> Centiseconds {
        self.master_adver_int
    }

    /// In a sync group, a BACKUP whose master-down timer expired but which
    /// waits for the other members (keepalived's `wantstate == MASTER`).
    pub fn wants_master(&self) -> bool {
        self.state == State::Backup && self.wants_master
    }

    /// Whether this instance is faulty by itself (not via its sync group).
    pub fn own_fault(&self) -> bool {
        !self.link_up || self.tracks.iter().any(TrackSlot::faulty)
    }

    /// Makes the instance a sync-group member: an expired master-down timer
    /// then only marks it as wanting master; the group decides.
    pub fn set_sync_member(&mut self, member: bool) {
        self.sync_member = member;
    }

    /// When to deliver [`Input::Timer`] next.
    pub fn poll_timeout(&self) -> Option<Instant> {
        [
            self.timer,
            self.garp_delay_at,
            self.garp_refresh_at,
            self.garp_lower_at,
            self.release_at,
        ]
        .into_iter()
        .flatten()
        .min()
    }

    /// RFC Skew_Time for our current priority.
    pub fn skew_time(&self) -> Duration {
        skew(self.cfg.version, self.effective, self.master_adver_int)
    }

    /// RFC Master_Down_Interval.
    pub fn master_down_interval(&self) -> Duration {
        master_down_interval(self.cfg.version, self.effective, self.master_adver_int)
    }

    pub fn handle(&mut self, now: Instant, input: Input) -> Vec<Action> {
        let mut out = Vec::new();
        match input {
            Input::Startup => self.startup(now, &mut out),
            Input::Shutdown => self.shutdown(&mut out),
            Input::Advert(advert) => self.advert(now, advert, &mut out),
            Input::Timer => self.timers(now, &mut out),
            Input::Script { name, success } => {
                // Every matching track counts the result (no short-circuit).
                let mut changed = false;
                for t in self.tracks.iter_mut().filter(|t| {
                    t.track.name == name && matches!(t.track.kind, TrackKind::Script { .. })
                }) {
                    changed |= t.script_result(success).is_some();
                }
                if changed {
                    self.tracks_changed(now, &name, &mut out);
                }
            }
            Input::Interface { name, up } => {
                let new = if up { TrackState::Up } else { TrackState::Down };
                let mut changed = false;
                for t in self
                    .tracks
                    .iter_mut()
                    .filter(|t| t.track.name == name && t.track.kind == TrackKind::Interface)
                {
                    changed |= t.state != new;
                    t.state = new;
                }
                if changed {
                    self.tracks_changed(now, &name, &mut out);
                }
            }
            Input::File { name, value } => {
                let mut changed = false;
                for t in self.tracks.iter_mut().filter(|t| {
                    t.track.name == name && matches!(t.track.kind, TrackKind::File { .. })
                }) {
                    changed |= t.file_value(value);
                }
                if changed {
                    self.tracks_changed(now, &name, &mut out);
                }
            }
            Input::Process { name, up } => {
                let new = if up { TrackState::Up } else { TrackState::Down };
                let mut changed = false;
                for t in self.tracks.iter_mut().filter(|t| {
                    t.track.name == name && matches!(t.track.kind, TrackKind::Process { .. })
                }) {
                    changed |= t.state != new;
                    t.state = new;
                }
                if changed {
                    self.tracks_changed(now, &name, &mut out);
                }
            }
            Input::Link { up } => {
                if self.link_up != up {
                    self.link_up = up;
                    let reason = if up { Reason::LinkUp } else { Reason::LinkDown };
                    self.fault_changed(now, reason, &mut out);
                }
            }
            Input::SetPriority(priority) => {
                self.cfg.priority = priority;
                self.update_priority(&mut out);
            }
            Input::Group(cmd) => self.group(now, cmd, &mut out),
            Input::Switchover { to } => self.switchover(now, to, &mut out),
        }
        out
    }

    /// Whether a switchover is under way.
    pub fn handing_over(&self) -> bool {
        self.handover_until.is_some()
    }

    fn switchover(&mut self, now: Instant, to: Option<IpAddr>, out: &mut Vec<Action>) {
        if self.state != State::Master || self.handover_until.is_some() {
            return;
        }
        let interval = Duration::from_micros(self.cfg.adver_int.as_micros());
        self.handover_until = Some(now + interval * 3);
        self.handover_to = to;
        out.push(self.handover_resignation());
        self.timer = Some(now + interval);
    }

    /// A switchover's priority 0 advert: to every router, or to the one
    /// chosen.
    fn handover_resignation(&self) -> Action {
        match self.handover_to {
            Some(to) => Action::ResignTo {
                adver_int: self.cfg.adver_int,
                to,
            },
            None => Action::SendAdvert {
                priority: Priority::RESIGN,
                adver_int: self.cfg.adver_int,
            },
        }
    }

    fn startup(&mut self, now: Instant, out: &mut Vec<Action>) {
        if self.state != State::Initialize {
            return;
        }
        self.master_adver_int = self.cfg.adver_int;
        if self.faulty() {
            let reason = self.fault_reason();
            self.transition(State::Fault, reason, out);
            out.push(Action::Notify {
                state: State::Fault,
            });
        } else if self.cfg.priority == Priority::OWNER {
            self.become_master(now, Reason::AddressOwner, out);
        } else if self.cfg.resume_master && !self.sync_member {
            self.become_master(now, Reason::Resumed, out);
        } else {
            self.enter_backup(now, Reason::Startup, out);
        }
    }

    fn shutdown(&mut self, out: &mut Vec<Action>) {
        if self.state == State::Master {
            out.push(Action::SendAdvert {
                priority: Priority::RESIGN,
                adver_int: self.cfg.adver_int,
            });
            out.push(Action::RemoveVips);
        } else if self.release_at.take().is_some() {
            out.push(Action::RemoveVips);
        }
        if self.state != State::Initialize {
            self.transition(State::Initialize, Reason::Shutdown, out);
            // keepalived's notify_stop, and STOP to `notify`.
            out.push(Action::Notify {
                state: State::Initialize,
            });
        }
        self.clear_timers();
        self.wants_master = false;
    }

    fn advert(&mut self, now: Instant, advert: Advert, out: &mut Vec<Action>) {
        // RFC 3768 §7.1: a v2 advert with another interval is discarded.
        if self.cfg.version == Version::V2 && advert.adver_int != self.cfg.adver_int {
            return;
        }
        match self.state {
            State::Backup => self.backup_advert(now, advert),
            State::Master => self.master_advert(now, advert, out),
            State::Initialize | State::Fault => {}
        }
    }

    /// RFC 5798 §6.4.2 / RFC 3768 §6.4.2, with keepalived's preempt_delay.
    fn backup_advert(&mut self, now: Instant, advert: Advert) {
        if advert.priority == Priority::RESIGN {
            self.timer = Some(now + self.skew_time());
            self.resigned = true;
            return;
        }
        let delaying =
            !self.cfg.preempt_delay.is_zero() && self.preempt_until.is_none_or(|until| until > now);
        if !self.cfg.preempt || self.yielded || advert.priority >= self.effective || delaying {
            if self.cfg.version == Version::V3 {
                self.master_adver_int = advert.adver_int;
            }
            self.timer = Some(now + self.master_down_interval());
            self.last_heard = now;
            self.last_ignored = None;
            self.resigned = false;
            self.wants_master = false;
            // keepalived: preempt_delay starts at the first lower-priority
            // advert and stops when a better one arrives.
            if !self.cfg.preempt_delay.is_zero() {
                if advert.priority >= self.effective {
                    self.preempt_until = None;
                } else if self.preempt_until.is_none() {
                    self.preempt_until = Some(now + self.cfg.preempt_delay);
                }
            }
        } else {
            self.last_ignored = Some((now, advert.priority, advert.from));
        }
    }

    /// RFC 5798 §6.4.3 / RFC 3768 §6.4.3.
    fn master_advert(&mut self, now: Instant, advert: Advert, out: &mut Vec<Action>) {
        if self.handover_until.is_some()
            && advert.priority != Priority::RESIGN
            && advert.from != self.cfg.primary_address
        {
            if self.cfg.version == Version::V3 {
                self.master_adver_int = advert.adver_int;
            }
            self.leave_master(
                now,
                State::Backup,
                Reason::Switchover { to: advert.from },
                out,
            );
            self.yielded = true;
            return;
        }
        if advert.priority == Priority::RESIGN {
            self.send_advert(now, out);
            return;
        }
        let ours = self.cfg.primary_address;
        if advert.priority > self.effective
            || (advert.priority == self.effective && advert.from > ours)
        {
            if self.cfg.version == Version::V3 {
                self.master_adver_int = advert.adver_int;
            }
            let reason = if advert.priority > self.effective {
                Reason::HigherPriority {
                    from: advert.from,
                    priority: advert.priority,
                }
            } else {
                Reason::HigherAddress {
                    from: advert.from,
                    priority: advert.priority,
                }
            };
            self.leave_master(now, State::Backup, reason, out);
            self.last_heard = now;
        } else if advert.from != ours {
            // keepalived (RFC: discard): answer a lower-priority master at
            // once so it steps down without waiting for our next advert,
            // and announce the VIPs again, since its gratuitous ARPs took
            // them while the link was split. Once per interval at most
            // (keepalived answers every one), outside the advert timer: a
            // flood of lower-priority adverts neither makes us a reflector
            // nor moves our regular adverts.
            let interval = Duration::from_micros(self.cfg.adver_int.as_micros());
            if self.last_reply.is_none_or(|at| now >= at + interval) {
                self.last_reply = Some(now);
                out.push(Action::HeardLowerPriority {
                    from: advert.from,
                    priority: advert.priority,
                });
                if !self.cfg.lower_prio_no_advert {
                    out.push(Action::SendAdvert {
                        priority: self.effective,
                        adver_int: self.cfg.adver_int,
                    });
                }
                if self.cfg.garp_lower_prio_repeat > 0 {
                    out.push(Action::SendGratuitous {
                        repeat: self.cfg.garp_lower_prio_repeat,
                        reason: GarpReason::LowerPriority,
                    });
                    if !self.cfg.garp_lower_prio_delay.is_zero() {
                        self.garp_lower_at = Some(now + self.cfg.garp_lower_prio_delay);
                    }
                }
            }
        }
    }

    fn timers(&mut self, now: Instant, out: &mut Vec<Action>) {
        if self.release_at.is_some_and(|at| at <= now) {
            self.release_at = None;
            if self.state != State::Master {
                out.push(Action::RemoveVips);
            }
        }
        if let Some(due) = self.timer.filter(|at| *at <= now) {
            match self.state {
                State::Backup => self.master_down(now, out),
                State::Master if self.handover_until.is_some_and(|until| now < until) => {
                    // Still handing over: resign again, in case the last
                    // one was lost.
                    out.push(self.handover_resignation());
                    self.timer = Some(now + Duration::from_micros(self.cfg.adver_int.as_micros()));
                }
                State::Master => {
                    // A switchover no one took: go on as master.
                    self.handover_until = None;
                    self.send_advert(now, out);
                    // The next advert is due an interval after this one
                    // was, not after the late wake-up that sent it: timers
                    // fire a little late, and the lateness must not add up
                    // into a longer interval.
                    let next = due + Duration::from_micros(self.cfg.adver_int.as_micros());
                    if next > now {
                        self.timer = Some(next);
                    }
                }
                State::Initialize | State::Fault => self.timer = None,
            }
        }
        if self.state != State::Master {
            return;
        }
        if self.garp_delay_at.is_some_and(|at| at <= now) {
            self.garp_delay_at = None;
            out.push(Action::SendGratuitous {
                repeat: self.cfg.garp_master_repeat,
                reason: GarpReason::MasterDelay,
            });
        }
        if self.garp_lower_at.is_some_and(|at| at <= now) {
            self.garp_lower_at = None;
            out.push(Action::SendGratuitous {
                repeat: self.cfg.garp_lower_prio_repeat,
                reason: GarpReason::LowerPriorityDelay,
            });
        }
        if self.garp_refresh_at.is_some_and(|at| at <= now) {
            // keepalived checks the refresh when it sends an advert; a timer
            // of its own makes the period exact.
            self.garp_refresh_at = Some(now + self.cfg.garp_master_refresh);
            out.push(Action::SendGratuitous {
                repeat: self.cfg.garp_master_refresh_repeat,
                reason: GarpReason::Refresh,
            });
        }
    }

    fn master_down(&mut self, now: Instant, out: &mut Vec<Action>) {
        if self.sync_member {
            // keepalived's vrrp_sync_can_goto_master: wait for the group,
            // checking again a Master_Down_Interval later.
            self.wants_master = true;
            self.timer = Some(now + self.master_down_interval());
            return;
        }
        let reason = self.master_down_reason(now);
        self.become_master(now, reason, out);
    }

    fn master_down_reason(&self, now: Instant) -> Reason {
        if self.resigned {
            Reason::MasterResigned {
                after: self.skew_time(),
            }
        } else if let Some((_, over, from)) = self.last_ignored {
            Reason::Preempt {
                over,
                from,
                silent_for: now.saturating_since(self.last_heard),
            }
        } else {
            Reason::MasterDown {
                silent_for: now.saturating_since(self.last_heard),
            }
        }
    }

    fn group(&mut self, now: Instant, cmd: GroupCommand, out: &mut Vec<Action>) {
        match cmd {
            GroupCommand::Master => {
                if self.state == State::Backup {
                    let reason = if self.wants_master {
                        self.master_down_reason(now)
                    } else {
                        Reason::SyncGroup
                    };
                    self.become_master(now, reason, out);
                }
            }
            GroupCommand::Backup => {
                if self.state == State::Master {
                    self.leave_master(now, State::Backup, Reason::SyncGroup, out);
                }
            }
            GroupCommand::Fault { active } => {
                if self.group_fault != active {
                    self.group_fault = active;
                    self.fault_changed(now, Reason::SyncGroup, out);
                }
            }
        }
    }

    fn tracks_changed(&mut self, now: Instant, name: &TrackName, out: &mut Vec<Action>) {
        self.update_priority(out);
        let failed = self
            .tracks
            .iter()
            .any(|t| &t.track.name == name && t.faulty());
        let reason = if failed {
            Reason::TrackFailed { name: name.clone() }
        } else {
            Reason::TrackRecovered { name: name.clone() }
        };
        self.fault_changed(now, reason, out);
    }

    /// Enters or leaves FAULT if the fault condition changed.
    fn fault_changed(&mut self, now: Instant, reason: Reason, out: &mut Vec<Action>) {
        match (self.state, self.faulty()) {
            (State::Initialize, _) => {}
            (State::Fault, false) => {
                // keepalived: leaving FAULT goes to BACKUP (the owner, which
                // wants MASTER, goes straight to MASTER).
                self.master_adver_int = self.cfg.adver_int;
                if self.cfg.priority == Priority::OWNER {
                    self.become_master(now, reason, out);
                } else {
                    self.enter_backup(now, reason, out);
                }
            }
            (State::Master, true) => self.leave_master(now, State::Fault, reason, out),
            (State::Backup, true) => {
                self.clear_timers();
                self.transition(State::Fault, reason, out);
                out.push(Action::Notify {
                    state: State::Fault,
                });
            }
            (State::Fault, true) | (State::Backup | State::Master, false) => {}
        }
    }

    fn faulty(&self) -> bool {
        self.own_fault() || self.group_fault
    }

    fn fault_reason(&self) -> Reason {
        if !self.link_up {
            return Reason::LinkDown;
        }
        match self.tracks.iter().find(|t| t.faulty()) {
            Some(t) => Reason::TrackFailed {
                name: t.track.name.clone(),
            },
            None => Reason::SyncGroup,
        }
    }

    fn computed_priority(&self) -> Priority {
        // keepalived: the owner's 255 is never altered; others are clamped
        // to 1..=254.
        if self.cfg.priority == Priority::OWNER {
            return Priority::OWNER;
        }
        let total: i32 = i32::from(self.cfg.priority.get())
            + self.tracks.iter().map(TrackSlot::contribution).sum::<i32>();
        let clamped = total.clamp(1, 254);
        Priority::from_u8(u8::try_from(clamped).unwrap_or(254))
    }

    fn update_priority(&mut self, out: &mut Vec<Action>) {
        let new = self.computed_priority();
        if new == self.effective {
            return;
        }
        let old_mdi = self.master_down_interval();
        let old = std::mem::replace(&mut self.effective, new);
        out.push(Action::PriorityChanged { from: old, to: new });
        // keepalived: a running master-down timer moves by the change in
        // Master_Down_Interval (the skew depends on the priority).
        if self.state == State::Backup
            && let Some(at) = self.timer
        {
            let new_mdi = self.master_down_interval();
            self.timer = Some(if new_mdi >= old_mdi {
                at + (new_mdi - old_mdi)
            } else {
                at - (old_mdi - new_mdi)
            });
        }
    }

    fn send_advert(&mut self, now: Instant, out: &mut Vec<Action>) {
        out.push(Action::SendAdvert {
            priority: self.effective,
            adver_int: self.cfg.adver_int,
        });
        self.timer = Some(now + Duration::from_micros(self.cfg.adver_int.as_micros()));
    }

    fn become_master(&mut self, now: Instant, reason: Reason, out: &mut Vec<Action>) {
        self.transition(State::Master, reason, out);
        self.master_adver_int = self.cfg.adver_int;
        self.wants_master = false;
        self.yielded = false;
        self.handover_until = None;
        self.release_at = None;
        self.resigned = false;
        self.last_ignored = None;
        // keepalived sends the advert before the gratuitous ARPs so the old
        // master drops the addresses first.
        self.send_advert(now, out);
        out.push(Action::AddVips);
        out.push(Action::SendGratuitous {
            repeat: self.cfg.garp_master_repeat,
            reason: GarpReason::BecameMaster,
        });
        self.garp_delay_at =
            (!self.cfg.garp_master_delay.is_zero()).then(|| now + self.cfg.garp_master_delay);
        self.garp_refresh_at =
            (!self.cfg.garp_master_refresh.is_zero()).then(|| now + self.cfg.garp_master_refresh);
        out.push(Action::Notify {
            state: State::Master,
        });
    }

    /// Master no more. The VIPs go at once, but for a handover to another
    /// router (a switchover), which keeps them an advert interval more for
    /// packets sent before the new master's gratuitous ARP arrived.
    fn leave_master(&mut self, now: Instant, to: State, reason: Reason, out: &mut Vec<Action>) {
        self.transition(to, reason, out);
        let handed_over = self.handover_until.take().is_some() && to == State::Backup;
        if to == State::Fault {
            // keepalived resigns when going to FAULT, to speed up takeover.
            out.push(Action::SendAdvert {
                priority: Priority::RESIGN,
                adver_int: self.cfg.adver_int,
            });
        }
        if handed_over {
            self.release_at = Some(now + Duration::from_micros(self.cfg.adver_int.as_micros()));
        } else {
            out.push(Action::RemoveVips);
        }
        self.clear_timers();
        if to == State::Backup {
            self.preempt_until = None;
            self.last_heard = now;
            self.last_ignored = None;
            self.timer = Some(now + self.master_down_interval());
        }
        out.push(Action::Notify { state: to });
    }

    fn enter_backup(&mut self, now: Instant, reason: Reason, out: &mut Vec<Action>) {
        self.transition(State::Backup, reason, out);
        self.clear_timers();
        self.preempt_until = None;
        self.last_heard = now;
        self.last_ignored = None;
        self.resigned = false;
        self.wants_master = false;
        self.timer = Some(now + self.master_down_interval());
        out.push(Action::Notify {
            state: State::Backup,
        });
    }

    fn transition(&mut self, to: State, reason: Reason, out: &mut Vec<Action>) {
        let from = std::mem::replace(&mut self.state, to);
        out.push(Action::StateChanged { from, to, reason });
    }

    fn clear_timers(&mut self) {
        self.timer = None;
        self.garp_delay_at = None;
        self.garp_refresh_at = None;
        self.garp_lower_at = None;
    }
}

/// RFC Skew_Time, floored to the microsecond.
pub fn skew(version: Version, priority: Priority, master_adver_int: Centiseconds) -> Duration {
    let weight = 256 - u64::from(priority.get());
    match version {
        Version::V2 => Duration::from_micros(weight * 1_000_000 / 256),
        // keepalived's `* 625 / 16` is `* 10_000 / 256` without overflow.
        Version::V3 => Duration::from_micros(weight * u64::from(master_adver_int.0) * 625 / 16),
    }
}

/// RFC Master_Down_Interval.
pub fn master_down_interval(
    version: Version,
    priority: Priority,
    master_adver_int: Centiseconds,
) -> Duration {
    Duration::from_micros(3 * master_adver_int.as_micros())
        + skew(version, priority, master_adver_int)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::Ipv4Addr;

    const A: IpAddr = IpAddr::V4(Ipv4Addr::new(10, 0, 0, 1));
    const B: IpAddr = IpAddr::V4(Ipv4Addr::new(10, 0, 0, 2));
    const C: IpAddr = IpAddr::V4(Ipv4Addr::new(10, 0, 0, 3));

    fn us(micros: u64) -> Instant {
        Instant::from_micros(micros)
    }

    fn secs(s: u64) -> Instant {
        Instant::from_micros(s * 1_000_000)
    }

    fn cfg(priority: u8) -> InstanceConfig {
        let vrid = Vrid::new(51).unwrap();
        let mut c = InstanceConfig::new("VI_1", vrid, B);
        c.priority = Priority::from_u8(priority);
        c
    }

    fn started(c: InstanceConfig) -> Machine {
        let mut m = Machine::new(c);
        m.handle(Instant::ZERO, Input::Startup);
        m
    }

    fn advert(from: IpAddr, priority: u8, cs: u16) -> Input {
        Input::Advert(Advert {
            from,
            priority: Priority::from_u8(priority),
            adver_int: Centiseconds(cs),
        })
    }

    fn became(actions: &[Action]) -> Option<State> {
        actions.iter().find_map(|a| match a {
            Action::StateChanged { to, .. } => Some(*to),
            _ => None,
        })
    }

    fn fire(m: &mut Machine) -> (Instant, Vec<Action>) {
        let at = m.poll_timeout().expect("a timer is armed");
        (at, m.handle(at, Input::Timer))
    }

    #[test]
    fn late_wake_ups_do_not_stretch_the_advert_interval() {
        let mut m = started(cfg(255));
        let (at, actions) = fire(&mut m);
        assert_eq!(became(&actions), None);
        assert_eq!(
            m.state(),
            State::Master,
            "the owner starts as master at {at:?}"
        );
        let first = m.poll_timeout().unwrap();
        // Woken 3 ms late, each time: the adverts stay on their 1 s grid.
        for k in 0..5u64 {
            let due = first + Duration::from_secs(k);
            assert_eq!(m.poll_timeout(), Some(due));
            let actions = m.handle(due + Duration::from_millis(3), Input::Timer);
            assert!(
                actions
                    .iter()
                    .any(|a| matches!(a, Action::SendAdvert { .. }))
            );
        }
        // More than an interval late: the next is an interval from now.
        let due = m.poll_timeout().unwrap();
        let late = due + Duration::from_millis(1_500);
        m.handle(late, Input::Timer);
        assert_eq!(m.poll_timeout(), Some(late + Duration::from_secs(1)));
    }

    #[test]
    fn skew_and_master_down_interval_follow_the_rfcs() {
        let p100 = Priority::DEFAULT;
        // v2: (256 - 100) / 256 s = 0.609375 s.
        assert_eq!(
            skew(Version::V2, p100, Centiseconds(100)),
            Duration::from_micros(609_375)
        );
        assert_eq!(
            master_down_interval(Version::V2, p100, Centiseconds(100)),
            Duration::from_micros(3_609_375)
        );
        // v2 skew does not scale with the interval.
        assert_eq!(
            skew(Version::V2, p100, Centiseconds(300)),
            Duration::from_micros(609_375)
        );
        // v3: (256 - 100) * 100 cs / 256 = 60.9375 cs.
        assert_eq!(
            skew(Version::V3, p100, Centiseconds(100)),
            Duration::from_micros(609_375)
        );
        // v3 with 10 cs: 6.09375 cs, floored to the microsecond (keepalived).
        assert_eq!(
            skew(Version::V3, p100, Centiseconds(10)),
            Duration::from_micros(60_937)
        );
        assert_eq!(
            master_down_interval(Version::V3, p100, Centiseconds(10)),
            Duration::from_micros(360_937)
        );
        assert_eq!(
            skew(Version::V2, Priority::OWNER, Centiseconds(100)),
            Duration::from_micros(3_906)
        );
    }

    #[test]
    fn backup_takes_over_after_master_down_interval() {
        let mut m = started(cfg(100));
        assert_eq!(m.state(), State::Backup);
        assert_eq!(m.poll_timeout(), Some(us(3_609_375)));
        m.handle(secs(1), advert(A, 150, 100));
        assert_eq!(m.poll_timeout(), Some(us(4_609_375)));
        let (at, actions) = fire(&mut m);
        assert_eq!(at, us(4_609_375));
        assert_eq!(became(&actions), Some(State::Master));
        assert!(actions.contains(&Action::StateChanged {
            from: State::Backup,
            to: State::Master,
            reason: Reason::MasterDown {
                silent_for: Duration::from_micros(3_609_375)
            },
        }));
        // Advert first, then addresses, then the gratuitous burst and notify.
        assert_eq!(
            actions[1..],
            [
                Action::SendAdvert {
                    priority: Priority::DEFAULT,
                    adver_int: Centiseconds(100)
                },
                Action::AddVips,
                Action::SendGratuitous {
                    repeat: 5,
                    reason: GarpReason::BecameMaster
                },
                Action::Notify {
                    state: State::Master
                },
            ]
        );
        // Next advert one interval later; second gratuitous burst 5 s later.
        assert_eq!(m.poll_timeout(), Some(us(5_609_375)));
    }

    #[test]
    fn master_advertises_every_interval() {
        let mut m = started(cfg(100));
        fire(&mut m);
        let (at, actions) = fire(&mut m);
        assert_eq!(at, us(4_609_375));
        assert_eq!(
            actions,
            vec![Action::SendAdvert {
                priority: Priority::DEFAULT,
                adver_int: Centiseconds(100)
            }]
        );
    }

    #[test]
    fn garp_master_delay_and_refresh_are_timers() {
        let mut c = cfg(100);
        c.garp_master_refresh = Duration::from_secs(2);
        c.garp_master_refresh_repeat = 2;
        let mut m = started(c);
        let (became_at, _) = fire(&mut m);
        let mut garps = Vec::new();
        while let Some(at) = m
            .poll_timeout()
            .filter(|t| *t <= became_at + Duration::from_secs(6))
        {
            for a in m.handle(at, Input::Timer) {
                if let Action::SendGratuitous { repeat, reason } = a {
                    garps.push((at, repeat, reason));
                }
            }
        }
        assert_eq!(
            garps,
            vec![
                (became_at + Duration::from_secs(2), 2, GarpReason::Refresh),
                (became_at + Duration::from_secs(4), 2, GarpReason::Refresh),
                (
                    became_at + Duration::from_secs(5),
                    5,
                    GarpReason::MasterDelay
                ),
                (became_at + Duration::from_secs(6), 2, GarpReason::Refresh),
            ]
        );
    }

    #[test]
    fn v3_backup_learns_master_adver_interval() {
        let mut c = cfg(100);
        c.version = Version::V3;
        let mut m = started(c);
        m.handle(secs(1), advert(A, 150, 10));
        assert_eq!(m.master_adver_int(), Centiseconds(10));
        // 3 * 100 ms + 60.937 ms.
        assert_eq!(
            m.poll_timeout(),
            Some(secs(1) + Duration::from_micros(360_937))
        );
        // Becoming master goes back to our own interval.
        let (at, actions) = fire(&mut m);
        assert!(actions.contains(&Action::SendAdvert {
            priority: Priority::DEFAULT,
            adver_int: Centiseconds(100)
        }));
        assert_eq!(m.poll_timeout(), Some(at + Duration::from_secs(1)));
    }

    #[test]
    fn v2_discards_adverts_with_another_interval() {
        let mut m = started(cfg(100));
        m.handle(secs(1), advert(A, 150, 200));
        assert_eq!(m.poll_timeout(), Some(us(3_609_375)));
    }

    #[test]
    fn backup_receiving_priority_zero_waits_only_skew_time() {
        let mut m = started(cfg(100));
        m.handle(secs(1), advert(A, 150, 100));
        m.handle(secs(2), advert(A, 0, 100));
        assert_eq!(
            m.poll_timeout(),
            Some(secs(2) + Duration::from_micros(609_375))
        );
        let (_, actions) = fire(&mut m);
        assert!(actions.iter().any(|a| matches!(
            a,
            Action::StateChanged {
                reason: Reason::MasterResigned { .. },
                to: State::Master,
                ..
            }
        )));
    }

    #[test]
    fn master_receiving_priority_zero_advertises_at_once() {
        let mut m = started(cfg(100));
        let (at, _) = fire(&mut m);
        let now = at + Duration::from_millis(300);
        let actions = m.handle(now, advert(A, 0, 100));
        assert_eq!(
            actions,
            vec![Action::SendAdvert {
                priority: Priority::DEFAULT,
                adver_int: Centiseconds(100)
            }]
        );
        assert_eq!(m.poll_timeout(), Some(now + Duration::from_secs(1)));
        assert_eq!(m.state(), State::Master);
    }

    #[test]
    fn master_yields_to_higher_priority() {
        let mut m = started(cfg(100));
        let (at, _) = fire(&mut m);
        let now = at + Duration::from_millis(10);
        let actions = m.handle(now, advert(A, 150, 100));
        assert_eq!(
            actions,
            vec![
                Action::StateChanged {
                    from: State::Master,
                    to: State::Backup,
                    reason: Reason::HigherPriority {
                        from: A,
                        priority: Priority::from_u8(150)
                    },
                },
                Action::RemoveVips,
                Action::Notify {
                    state: State::Backup
                },
            ]
        );
        assert_eq!(
            m.poll_timeout(),
            Some(now + Duration::from_micros(3_609_375))
        );
    }

    #[test]
    fn equal_priority_tie_breaks_on_higher_primary_address() {
        // We are 10.0.0.2: 10.0.0.3 wins, 10.0.0.1 loses.
        let mut m = started(cfg(100));
        fire(&mut m);
        let actions = m.handle(secs(5), advert(A, 100, 100));
        assert_eq!(m.state(), State::Master);
        // keepalived answers the loser with an advert and gratuitous ARPs
        // at once.
        assert_eq!(
            actions,
            [
                Action::HeardLowerPriority {
                    from: A,
                    priority: Priority::from_u8(100),
                },
                Action::SendAdvert {
                    priority: Priority::from_u8(100),
                    adver_int: Centiseconds(100),
                },
                Action::SendGratuitous {
                    repeat: 5,
                    reason: GarpReason::LowerPriority,
                },
            ]
        );
        let actions = m.handle(secs(6), advert(C, 100, 100));
        assert_eq!(m.state(), State::Backup);
        assert!(matches!(
            actions.first(),
            Some(Action::StateChanged {
                reason: Reason::HigherAddress { .. },
                ..
            })
        ));
    }

    #[test]
    fn a_flood_of_lower_priority_adverts_gets_one_answer_per_interval() {
        let mut c = cfg(100);
        c.garp_lower_prio_delay = Duration::ZERO;
        let mut m = started(c);
        fire(&mut m);
        let next = m.poll_timeout();
        let answers = (0..1000)
            .map(|i| m.handle(secs(5) + Duration::from_millis(i), advert(A, 50, 100)))
            .filter(|a| !a.is_empty())
            .count();
        assert_eq!(answers, 1);
        assert_eq!(
            m.poll_timeout(),
            next,
            "answers leave the advert timer alone"
        );
        let again = m.handle(secs(6), advert(A, 50, 100));
        assert_eq!(again.len(), 3, "{again:?}");
        assert_eq!(
            again[0],
            Action::HeardLowerPriority {
                from: A,
                priority: Priority::from_u8(50),
            }
        );
    }

    /// A partition heals: the master hears the other side's master, of
    /// lower priority, and announces the VIPs again at once and
    /// `garp_lower_prio_delay` later, as keepalived.
    #[test]
    fn a_lower_priority_master_heard_gets_gratuitous_bursts_now_and_after_the_delay() {
        let mut c = cfg(100);
        c.lower_prio_no_advert = true;
        c.garp_lower_prio_repeat = 3;
        c.garp_lower_prio_delay = Duration::from_secs(2);
        let mut m = started(c);
        fire(&mut m);
        let heard = secs(5) + Duration::from_millis(500);
        assert_eq!(
            m.handle(heard, advert(A, 50, 100)),
            [
                Action::HeardLowerPriority {
                    from: A,
                    priority: Priority::from_u8(50),
                },
                Action::SendGratuitous {
                    repeat: 3,
                    reason: GarpReason::LowerPriority,
                }
            ]
        );
        let at = heard + Duration::from_secs(2);
        let actions = m.handle(at, Input::Timer);
        assert!(
            actions.contains(&Action::SendGratuitous {
                repeat: 3,
                reason: GarpReason::LowerPriorityDelay,
            }),
            "{actions:?}"
        );
        // Stepping down cancels a pending burst.
        m.handle(at + Duration::from_secs(1), advert(A, 50, 100));
        m.handle(at + Duration::from_secs(2), advert(C, 200, 100));
        assert_eq!(m.state(), State::Backup);
        let later: Vec<Action> = (3..10)
            .flat_map(|s| m.handle(at + Duration::from_secs(s), Input::Timer))
            .filter(|a| {
                matches!(
                    a,
                    Action::SendGratuitous {
                        reason: GarpReason::LowerPriorityDelay,
                        ..
                    }
                )
            })
            .collect();
        assert!(later.is_empty(), "{later:?}");
    }

    /// Nothing goes on the wire; the lower priority is still reported
    /// (keepalived's `notify_master_rx_lower_pri`).
    #[test]
    fn lower_prio_no_advert_and_no_garp_keep_quiet() {
        let mut c = cfg(100);
        c.lower_prio_no_advert = true;
        c.garp_lower_prio_repeat = 0;
        let mut m = started(c);
        fire(&mut m);
        assert_eq!(
            m.handle(secs(5), advert(A, 50, 100)),
            [Action::HeardLowerPriority {
                from: A,
                priority: Priority::from_u8(50),
            }]
        );
    }

    #[test]
    fn preempt_discards_lower_priority_adverts() {
        let mut m = started(cfg(100));
        m.handle(secs(1), advert(A, 50, 100));
        assert_eq!(m.poll_timeout(), Some(us(3_609_375)));
        let (_, actions) = fire(&mut m);
        assert!(actions.iter().any(|a| matches!(
            a,
            Action::StateChanged {
                reason: Reason::Preempt { .. },
                to: State::Master,
                ..
            }
        )));
    }

    #[test]
    fn nopreempt_accepts_lower_priority_adverts() {
        let mut c = cfg(100);
        c.preempt = false;
        let mut m = started(c);
        m.handle(secs(1), advert(A, 50, 100));
        assert_eq!(m.poll_timeout(), Some(us(4_609_375)));
    }

    #[test]
    fn preempt_delay_holds_off_preemption() {
        let mut c = cfg(100);
        c.preempt_delay = Duration::from_secs(5);
        let mut m = started(c);
        // First lower-priority advert at 1 s starts the delay (until 6 s).
        for s in 1..=6 {
            m.handle(secs(s), advert(A, 50, 100));
        }
        // The advert at exactly 6 s is no longer accepted: timer from 5 s.
        assert_eq!(
            m.poll_timeout(),
            Some(secs(5) + Duration::from_micros(3_609_375))
        );
        m.handle(secs(7), advert(A, 50, 100));
        let (at, actions) = fire(&mut m);
        assert_eq!(at, us(8_609_375));
        assert_eq!(became(&actions), Some(State::Master));
    }

    #[test]
    fn state_master_clears_nopreempt_and_preempt_delay_but_starts_as_backup() {
        let mut c = cfg(100);
        c.initial_state = InitialState::Master;
        c.preempt = false;
        c.preempt_delay = Duration::from_secs(5);
        let m = started(c);
        assert!(m.config().preempt);
        assert_eq!(m.config().preempt_delay, Duration::ZERO);
        assert_eq!(m.state(), State::Backup);
        assert_eq!(m.poll_timeout(), Some(us(3_609_375)));
    }

    #[test]
    fn address_owner_goes_master_at_once_and_keeps_255() {
        let mut c = cfg(255);
        c.preempt = false;
        c.tracks.push(Track {
            name: TrackName("chk".into()),
            kind: TrackKind::Script { rise: 1, fall: 1 },
            weight: Weight::new(-50).unwrap(),
        });
        let mut m = Machine::new(c);
        assert!(m.config().preempt);
        let actions = m.handle(Instant::ZERO, Input::Startup);
        assert_eq!(
            actions.first(),
            Some(&Action::StateChanged {
                from: State::Initialize,
                to: State::Master,
                reason: Reason::AddressOwner
            })
        );
        m.handle(
            secs(1),
            Input::Script {
                name: TrackName("chk".into()),
                success: false,
            },
        );
        assert_eq!(m.priority(), Priority::OWNER);
    }

    #[test]
    fn a_master_back_from_a_restart_resumes_at_once_and_yields_to_a_better_one() {
        let mut c = cfg(100);
        c.resume_master = true;
        let mut m = Machine::new(c);
        let actions = m.handle(Instant::ZERO, Input::Startup);
        assert_eq!(
            actions.first(),
            Some(&Action::StateChanged {
                from: State::Initialize,
                to: State::Master,
                reason: Reason::Resumed
            })
        );
        assert!(
            actions
                .iter()
                .any(|a| matches!(a, Action::SendAdvert { .. }))
        );
        m.handle(secs(1), advert(A, 150, 100));
        assert_eq!(m.state(), State::Backup);
    }

    /// A master of priority 150 (our address is B), after its first
    /// advert; no second gratuitous burst to time.
    fn master_150() -> Machine {
        let mut c = cfg(150);
        c.garp_master_delay = Duration::ZERO;
        let mut m = started(c);
        let (_, actions) = fire(&mut m);
        assert_eq!(became(&actions), Some(State::Master));
        m
    }

    #[test]
    fn a_switchover_keeps_the_vips_until_the_new_master_advertises() {
        let mut m = master_150();
        let t = secs(10);
        let actions = m.handle(t, Input::Switchover { to: None });
        assert_eq!(
            actions,
            [Action::SendAdvert {
                priority: Priority::RESIGN,
                adver_int: Centiseconds(100)
            }]
        );
        assert_eq!(m.state(), State::Master);
        assert!(m.handing_over());
        // Asked again while under way: nothing more.
        assert!(m.handle(t, Input::Switchover { to: None }).is_empty());
        // The backup's own adverts (lower priority) are its claim.
        let actions = m.handle(t + Duration::from_millis(610), advert(A, 100, 100));
        assert_eq!(
            actions.first(),
            Some(&Action::StateChanged {
                from: State::Master,
                to: State::Backup,
                reason: Reason::Switchover { to: A }
            })
        );
        // The VIPs stay an advert interval more, for packets sent before
        // the new master's gratuitous ARP arrived.
        assert!(!actions.contains(&Action::RemoveVips));
        let (at, actions) = fire(&mut m);
        assert_eq!(at, t + Duration::from_millis(1610));
        assert_eq!(actions, [Action::RemoveVips]);
        // Handed over, it lets the lower-priority master be.
        for n in 1..=10 {
            m.handle(t + Duration::from_secs(n), advert(A, 100, 100));
            assert_eq!(m.state(), State::Backup);
            assert!(m.poll_timeout().unwrap() > t + Duration::from_secs(n + 3));
        }
        // ...but takes over if that one goes silent, and is itself again.
        let (_, actions) = fire(&mut m);
        assert_eq!(became(&actions), Some(State::Master));
        m.handle(secs(40), advert(A, 100, 100));
        assert_eq!(m.state(), State::Master, "no longer yielding");
    }

    #[test]
    fn a_switchover_to_a_chosen_peer_resigns_to_it_alone_and_then_again() {
        let mut m = master_150();
        let t = secs(10);
        let to_a = Action::ResignTo {
            adver_int: Centiseconds(100),
            to: A,
        };
        assert_eq!(
            m.handle(t, Input::Switchover { to: Some(A) }),
            std::slice::from_ref(&to_a)
        );
        // Resent each interval while under way, to the same peer.
        let (_, actions) = fire(&mut m);
        assert_eq!(actions, [to_a]);
        let actions = m.handle(t + Duration::from_millis(1610), advert(A, 100, 100));
        assert_eq!(
            actions.first(),
            Some(&Action::StateChanged {
                from: State::Master,
                to: State::Backup,
                reason: Reason::Switchover { to: A }
            })
        );
        let (_, actions) = fire(&mut m);
        assert_eq!(actions, [Action::RemoveVips]);
        // With no peer chosen, a master resigns to every router.
        let mut m = master_150();
        assert_eq!(
            m.handle(secs(40), Input::Switchover { to: None }),
            [Action::SendAdvert {
                priority: Priority::RESIGN,
                adver_int: Centiseconds(100)
            }]
        );
    }

    #[test]
    fn a_switchover_no_one_takes_resumes_as_master() {
        let mut m = master_150();
        let t = secs(10);
        m.handle(t, Input::Switchover { to: None });
        // Resigning again each interval, as long as it is under way.
        let (at, actions) = fire(&mut m);
        assert_eq!(at, t + Duration::from_secs(1));
        assert_eq!(
            actions,
            [Action::SendAdvert {
                priority: Priority::RESIGN,
                adver_int: Centiseconds(100)
            }]
        );
        fire(&mut m);
        let (at, actions) = fire(&mut m);
        assert_eq!(at, t + Duration::from_secs(3));
        assert_eq!(
            actions,
            [Action::SendAdvert {
                priority: Priority::from_u8(150),
                adver_int: Centiseconds(100)
            }]
        );
        assert_eq!(m.state(), State::Master);
        assert!(!m.handing_over());
    }

    #[test]
    fn a_backup_ignores_a_switchover() {
        let mut m = started(cfg(100));
        assert!(m.handle(secs(1), Input::Switchover { to: None }).is_empty());
    }

    #[test]
    fn shutdown_sends_priority_zero() {
        let mut m = started(cfg(100));
        fire(&mut m);
        let actions = m.handle(secs(10), Input::Shutdown);
        assert_eq!(
            actions[..2],
            [
                Action::SendAdvert {
                    priority: Priority::RESIGN,
                    adver_int: Centiseconds(100)
                },
                Action::RemoveVips,
            ]
        );
        assert_eq!(m.state(), State::Initialize);
        assert_eq!(m.poll_timeout(), None);
        // A backup shuts down silently.
        let mut b = started(cfg(100));
        assert!(
            !b.handle(secs(1), Input::Shutdown)
                .iter()
                .any(|a| matches!(a, Action::SendAdvert { .. }))
        );
    }

    fn tracked(weight: i32, rise: u32, fall: u32) -> InstanceConfig {
        let mut c = cfg(100);
        c.tracks.push(Track {
            name: TrackName("chk".into()),
            kind: TrackKind::Script { rise, fall },
            weight: Weight::new(weight).unwrap(),
        });
        c
    }

    fn script(m: &mut Machine, at: Instant, success: bool) -> Vec<Action> {
        m.handle(
            at,
            Input::Script {
                name: TrackName("chk".into()),
                success,
            },
        )
    }

    #[test]
    fn positive_weight_adds_while_script_succeeds() {
        let mut m = started(tracked(20, 1, 1));
        assert_eq!(
            m.priority(),
            Priority::DEFAULT,
            "unknown scripts count for nothing"
        );
        let actions = script(&mut m, secs(1), true);
        assert_eq!(
            actions,
            vec![Action::PriorityChanged {
                from: Priority::DEFAULT,
                to: Priority::from_u8(120)
            }]
        );
        script(&mut m, secs(2), false);
        assert_eq!(m.priority(), Priority::DEFAULT);
    }

    #[test]
    fn negative_weight_subtracts_while_script_fails() {
        let mut m = started(tracked(-30, 1, 1));
        script(&mut m, secs(1), true);
        assert_eq!(m.priority(), Priority::DEFAULT);
        script(&mut m, secs(2), false);
        assert_eq!(m.priority(), Priority::from_u8(70));
    }

    #[test]
    fn effective_priority_is_clamped_to_1_and_254() {
        let mut c = tracked(-200, 1, 1);
        c.priority = Priority::from_u8(150);
        c.tracks.push(Track {
            name: TrackName("up".into()),
            kind: TrackKind::Interface,
            weight: Weight::new(200).unwrap(),
        });
        let mut m = started(c);
        m.handle(
            secs(1),
            Input::Interface {
                name: TrackName("up".into()),
                up: true,
            },
        );
        assert_eq!(m.priority(), Priority::from_u8(254));
        m.handle(
            secs(1),
            Input::Interface {
                name: TrackName("up".into()),
                up: false,
            },
        );
        script(&mut m, secs(1), false);
        assert_eq!(m.priority(), Priority::from_u8(1));
    }

    #[test]
    fn rise_and_fall_count_consecutive_results() {
        let mut m = started(tracked(-30, 2, 3));
        // The first result counts at once ("one success is enough").
        script(&mut m, secs(1), true);
        assert_eq!(m.priority(), Priority::DEFAULT);
        // Two failures are not enough with fall 3.
        script(&mut m, secs(2), false);
        script(&mut m, secs(3), false);
        assert_eq!(m.priority(), Priority::DEFAULT);
        // A success in between resets the count.
        script(&mut m, secs(4), true);
        script(&mut m, secs(5), false);
        script(&mut m, secs(6), false);
        assert_eq!(m.priority(), Priority::DEFAULT);
        script(&mut m, secs(7), false);
        assert_eq!(m.priority(), Priority::from_u8(70));
        // Rise 2: one success is not enough to recover.
        script(&mut m, secs(8), true);
        assert_eq!(m.priority(), Priority::from_u8(70));
        script(&mut m, secs(9), true);
        assert_eq!(m.priority(), Priority::DEFAULT);
    }

    #[test]
    fn weight_zero_failure_means_fault_and_recovery_means_backup() {
        let mut m = started(tracked(0, 1, 1));
        fire(&mut m);
        assert_eq!(m.state(), State::Master);
        let actions = script(&mut m, secs(5), false);
        assert_eq!(
            actions,
            vec![
                Action::StateChanged {
                    from: State::Master,
                    to: State::Fault,
                    reason: Reason::TrackFailed {
                        name: TrackName("chk".into())
                    },
                },
                Action::SendAdvert {
                    priority: Priority::RESIGN,
                    adver_int: Centiseconds(100)
                },
                Action::RemoveVips,
                Action::Notify {
                    state: State::Fault
                },
            ]
        );
        assert_eq!(m.poll_timeout(), None);
        // Adverts are ignored in FAULT.
        assert!(m.handle(secs(6), advert(A, 150, 100)).is_empty());
        let actions = script(&mut m, secs(7), true);
        assert_eq!(became(&actions), Some(State::Backup));
        assert_eq!(
            m.poll_timeout(),
            Some(secs(7) + Duration::from_micros(3_609_375))
        );
    }

    #[test]
    fn link_down_means_fault() {
        let mut m = started(cfg(100));
        let actions = m.handle(secs(1), Input::Link { up: false });
        assert_eq!(became(&actions), Some(State::Fault));
        let actions = m.handle(secs(2), Input::Link { up: true });
        assert_eq!(became(&actions), Some(State::Backup));
        // Starting with the link down starts in FAULT.
        let mut m = Machine::new(cfg(100));
        m.handle(Instant::ZERO, Input::Link { up: false });
        let actions = m.handle(Instant::ZERO, Input::Startup);
        assert_eq!(became(&actions), Some(State::Fault));
    }

    #[test]
    fn priority_change_moves_the_backup_timer() {
        let mut m = started(cfg(100));
        m.handle(secs(1), advert(A, 150, 100));
        assert_eq!(m.poll_timeout(), Some(us(4_609_375)));
        // Priority 200: skew (56/256 s = 0.21875 s) shrinks by 0.390625 s.
        m.handle(secs(2), Input::SetPriority(Priority::from_u8(200)));
        assert_eq!(m.priority(), Priority::from_u8(200));
        assert_eq!(m.poll_timeout(), Some(us(4_218_750)));
    }

    #[test]
    fn sync_member_only_wants_master() {
        let mut m = started(cfg(100));
        m.set_sync_member(true);
        let (at, actions) = fire(&mut m);
        assert!(actions.is_empty());
        assert!(m.wants_master());
        assert_eq!(
            m.poll_timeout(),
            Some(at + Duration::from_micros(3_609_375))
        );
        // An accepted advert clears the wish.
        m.handle(at, advert(A, 150, 100));
        assert!(!m.wants_master());
    }

    #[test]
    fn weights_are_range_checked() {
        assert!(Weight::new(253).is_ok());
        assert!(Weight::new(-253).is_ok());
        assert_eq!(
            Weight::new(254).unwrap_err().to_string(),
            "weight 254 is out of range -253..=253"
        );
        assert!(Weight::for_file(-254).is_ok());
        assert_eq!(
            Weight::for_file(255).unwrap_err().to_string(),
            "weight 255 is out of range -254..=254"
        );
    }

    fn file_tracked(priority: u8, weight: i32, reverse: bool) -> InstanceConfig {
        let mut c = cfg(priority);
        c.tracks.push(Track {
            name: TrackName("f".into()),
            kind: TrackKind::File { reverse },
            weight: Weight::for_file(weight).unwrap(),
        });
        c
    }

    fn file(m: &mut Machine, at: Instant, value: i64) -> Vec<Action> {
        m.handle(
            at,
            Input::File {
                name: TrackName("f".into()),
                value,
            },
        )
    }

    #[test]
    fn a_tracked_files_value_times_its_weight_moves_the_priority() {
        let mut m = started(file_tracked(150, -10, false));
        assert_eq!(m.priority(), Priority::from_u8(150), "not read yet");
        assert_eq!(
            file(&mut m, secs(1), 6),
            vec![Action::PriorityChanged {
                from: Priority::from_u8(150),
                to: Priority::from_u8(90)
            }]
        );
        // Negative values raise it; the same value again changes nothing.
        file(&mut m, secs(2), -3);
        assert_eq!(m.priority(), Priority::from_u8(180));
        assert!(file(&mut m, secs(3), -3).is_empty());
        // `reverse` negates the product; it is capped at 253, and the
        // priority at 254.
        let mut r = started(file_tracked(100, 10, true));
        file(&mut r, secs(1), 3);
        assert_eq!(r.priority(), Priority::from_u8(70));
        file(&mut r, secs(2), -1000);
        assert_eq!(r.priority(), Priority::from_u8(254));
        file(&mut r, secs(3), 0);
        assert_eq!(r.priority(), Priority::from_u8(100));
    }

    #[test]
    fn a_product_of_minus_254_or_less_faults_until_it_is_not() {
        let mut m = started(file_tracked(100, -254, false));
        file(&mut m, secs(1), 1);
        assert_eq!(m.state(), State::Fault);
        // Leaving FAULT, the product counts again.
        let mut m = started(file_tracked(200, -2, false));
        file(&mut m, secs(1), 127);
        assert_eq!(
            (m.state(), m.priority()),
            (State::Fault, Priority::from_u8(200))
        );
        file(&mut m, secs(2), 50);
        assert_eq!(
            (m.state(), m.priority()),
            (State::Backup, Priority::from_u8(100))
        );
    }

    #[test]
    fn weight_zero_faults_on_a_non_zero_value_or_with_reverse_on_zero() {
        let mut m = started(file_tracked(100, 0, false));
        file(&mut m, secs(1), 0);
        assert_eq!(m.state(), State::Backup);
        let actions = file(&mut m, secs(2), 7);
        assert!(actions.contains(&Action::StateChanged {
            from: State::Backup,
            to: State::Fault,
            reason: Reason::TrackFailed {
                name: TrackName("f".into())
            }
        }));
        assert_eq!(m.priority(), Priority::from_u8(100));
        file(&mut m, secs(3), 0);
        assert_eq!(m.state(), State::Backup);
        let mut r = started(file_tracked(100, 0, true));
        file(&mut r, secs(1), 0);
        assert_eq!(r.state(), State::Fault);
        file(&mut r, secs(2), -1);
        assert_eq!(r.state(), State::Backup);
    }

    #[test]
    fn a_value_read_before_startup_decides_the_first_state() {
        let mut c = file_tracked(255, 0, false);
        c.initial_state = InitialState::Master;
        let mut m = Machine::new(c);
        file(&mut m, Instant::ZERO, 1);
        let actions = m.handle(Instant::ZERO, Input::Startup);
        assert_eq!(m.state(), State::Fault, "{actions:?}");
        assert!(!actions.iter().any(|a| matches!(a, Action::AddVips)));
    }
    fn process_tracked(priority: u8, weight: i32, reverse: bool) -> InstanceConfig {
        let mut c = cfg(priority);
        c.tracks.push(Track {
            name: TrackName("p".into()),
            kind: TrackKind::Process { reverse },
            weight: Weight::for_file(weight).unwrap(),
        });
        c
    }

    fn quorum(m: &mut Machine, at: Instant, up: bool) -> Vec<Action> {
        m.handle(
            at,
            Input::Process {
                name: TrackName("p".into()),
                up,
            },
        )
    }

    #[test]
    fn a_process_quorum_adds_a_positive_weight_or_a_lost_one_a_negative_one() {
        let mut m = started(process_tracked(100, 20, false));
        quorum(&mut m, secs(1), true);
        assert_eq!(m.priority(), Priority::from_u8(120));
        quorum(&mut m, secs(2), false);
        assert_eq!(m.priority(), Priority::from_u8(100));
        let mut n = started(process_tracked(100, -30, false));
        quorum(&mut n, secs(1), true);
        assert_eq!(n.priority(), Priority::from_u8(100));
        quorum(&mut n, secs(2), false);
        assert_eq!(n.priority(), Priority::from_u8(70));
        // `reverse` negates what is added (keepalived's weight_multiplier).
        let mut r = started(process_tracked(100, 20, true));
        quorum(&mut r, secs(1), true);
        assert_eq!(r.priority(), Priority::from_u8(80));
        let mut r = started(process_tracked(100, -254, true));
        quorum(&mut r, secs(1), false);
        assert_eq!(
            (r.state(), r.priority()),
            (State::Backup, Priority::from_u8(254))
        );
    }

    #[test]
    fn weight_zero_faults_without_the_quorum_or_with_reverse_with_it() {
        let mut m = started(process_tracked(100, 0, false));
        quorum(&mut m, secs(1), true);
        assert_eq!(m.state(), State::Backup);
        let actions = quorum(&mut m, secs(2), false);
        assert!(actions.contains(&Action::StateChanged {
            from: State::Backup,
            to: State::Fault,
            reason: Reason::TrackFailed {
                name: TrackName("p".into())
            }
        }));
        quorum(&mut m, secs(3), true);
        assert_eq!(m.state(), State::Backup);
        let mut r = started(process_tracked(100, 0, true));
        quorum(&mut r, secs(1), true);
        assert_eq!(r.state(), State::Fault);
        quorum(&mut r, secs(2), false);
        assert_eq!(r.state(), State::Backup);
    }
}
