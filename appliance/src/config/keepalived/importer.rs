//! Turns parsed keepalived.conf statements into the native model, recording
//! where each part came from. Every keyword is either mapped into the model
//! or reported as an error naming it; nothing is dropped or ignored.

use super::keywords;
use super::lexer::split_command;
use super::parser::{Statement, Word};
use crate::config::diag::{Diagnostic, Position, SourceMap};
use crate::config::model::*;
use crate::vrrp::{Priority, Version, Vrid};
use std::net::{IpAddr, SocketAddr};
use std::str::FromStr;
use std::time::Duration;

/// A virtual server's or real server's defaults for its checks, each with
/// the line that set it.
#[derive(Default)]
struct CheckDefaults {
    retry: Option<(u32, Position)>,
    delay_before_retry: Option<(Duration, Position)>,
    warmup: Option<(Duration, Position)>,
    connect_timeout: Option<(Duration, Position)>,
}

/// The timing a check inherits.
#[derive(Default)]
struct Timing {
    retry: Option<u32>,
    delay_before_retry: Option<Duration>,
    warmup: Option<Duration>,
    connect_timeout: Option<Duration>,
}

impl Timing {
    fn apply(self, check: &mut Check) {
        macro_rules! give {
            ($c:expr, $dbr:expr) => {{
                let c = $c;
                if let Some(v) = self.retry {
                    c.retry = v;
                }
                if let Some(v) = self.delay_before_retry {
                    $dbr(&mut c.delay_before_retry, v);
                }
                if self.warmup.is_some() {
                    c.warmup = self.warmup;
                }
                c
            }};
        }
        let fixed = |slot: &mut Duration, v| *slot = v;
        match check {
            Check::Tcp(c) => {
                let c = give!(c, fixed);
                if let Some(v) = self.connect_timeout {
                    c.connect_timeout = v;
                }
            }
            Check::HttpGet(c) | Check::SslGet(c) => {
                let c = give!(c, fixed);
                if let Some(v) = self.connect_timeout {
                    c.connect_timeout = v;
                }
            }
            Check::Misc(c) => {
                give!(c, fixed);
            }
            Check::Ping(c) => {
                let c = give!(c, fixed);
                if let Some(v) = self.connect_timeout {
                    c.connect_timeout = v;
                }
            }
            Check::Udp(c) => {
                let c = give!(c, fixed);
                if let Some(v) = self.connect_timeout {
                    c.connect_timeout = v;
                }
            }
            Check::Dns(c) => {
                let c = give!(c, |slot: &mut Option<Duration>, v| *slot = Some(v));
                if let Some(v) = self.connect_timeout {
                    c.connect_timeout = v;
                }
            }
            Check::Smtp(c) => {
                let c = give!(c, fixed);
                if let Some(v) = self.connect_timeout {
                    c.connect_timeout = v;
                }
            }
        }
    }
}

/// keepalived's `persistence_timeout` when the keyword has no value: 6 min.
fn default_persistence_timeout() -> Duration {
    Duration::from_secs(360)
}

/// Builds the model from `statements`; problems go to the returned list.
pub(crate) fn import(statements: &[Statement], map: &mut SourceMap) -> (Config, Vec<Diagnostic>) {
    let mut im = Importer {
        config: Config::default(),
        map,
        errors: Vec::new(),
        strict: Strict::default(),
        unset_protocol: Vec::new(),
        sync_tracks: Vec::new(),
    };
    for st in statements {
        match st.keyword.text.as_str() {
            "global_defs" => im.global_defs(st),
            "vrrp_script" => im.vrrp_script(st),
            "track_file" | "vrrp_track_file" => im.tracked_file(st),
            "vrrp_track_process" => im.tracked_process(st),
            "vrrp_sync_group" => im.sync_group(st),
            "vrrp_instance" => im.vrrp_instance(st),
            "virtual_server_group" => im.virtual_server_group(st),
            "virtual_server" => im.virtual_server(st),
            _ => im.unknown(st, ""),
        }
    }
    keywords::warn_no_ops(statements, "", im.map);
    im.finish_instances();
    im.finish_sync_tracking();
    im.finish_groups();
    (im.config, im.errors)
}

/// global_defs' notify FIFOs as read so far: `notify_fifo`,
/// `vrrp_notify_fifo`, `lvs_notify_fifo`, each with its script (and where
/// that was given), which may come first.
#[derive(Default)]
struct Fifos([FifoSlot; 3]);

#[derive(Default)]
struct FifoSlot {
    fifo: Option<NotifyFifo>,
    script: Option<(Command, Position)>,
}

impl Fifos {
    /// The slot of `keyword` (one of the three FIFO keywords).
    fn slot(&mut self, keyword: &str) -> &mut FifoSlot {
        let [global, vrrp, lvs] = &mut self.0;
        match keyword {
            "vrrp_notify_fifo" => vrrp,
            "lvs_notify_fifo" => lvs,
            _ => global,
        }
    }
}

/// The settings that apply to instances only once the whole file is read
/// (global_defs may follow them).
#[derive(Default)]
struct Strict {
    /// `vrrp_strict` in global_defs.
    global: bool,
    /// `vrrp_skip_check_adv_addr` in global_defs.
    skip_check_adv_addr: bool,
    /// Per instance, in order: its own `strict_mode`.
    instances: Vec<Option<bool>>,
    /// Per instance: its own `skip_check_adv_addr`.
    skips: Vec<Option<bool>>,
}

struct Importer<'m> {
    config: Config,
    map: &'m mut SourceMap,
    errors: Vec<Diagnostic>,
    strict: Strict,
    /// `virtual_server group NAME` blocks without `protocol`, by index:
    /// their default depends on the group, which may come later.
    unset_protocol: Vec<(usize, Position)>,
    /// Each `vrrp_sync_group`'s own tracked objects, by group index:
    /// given to its members once every instance is read.
    sync_tracks: Vec<Tracks>,
}

/// The `track_script`, `track_interface`, `track_file` and
/// `track_process` entries of a `vrrp_instance` or of a
/// `vrrp_sync_group` (which hands its own to its members).
#[derive(Default)]
struct Tracks {
    scripts: Vec<TrackScript>,
    interfaces: Vec<TrackInterface>,
    files: Vec<TrackFile>,
    processes: Vec<TrackProcess>,
}

impl Importer<'_> {
    fn err(&mut self, pos: &Position, message: impl Into<String>) {
        self.errors.push(Diagnostic::new(pos.clone(), message));
    }

    /// A keyword that no `match` arm of `block` took: a documented no-op
    /// passes (its warning comes from [`warn_no_ops`]), anything else is an
    /// error saying what to do instead, or which keyword was meant.
    fn unknown(&mut self, st: &Statement, block: &str) {
        if let Some(message) = keywords::refusal(block, &st.keyword.text) {
            self.err(&st.keyword.pos, message);
        }
    }

    fn record(&mut self, path: String, pos: &Position) {
        self.map.insert(path, pos.clone());
    }

    /// The block of `st`, or an error if it has none.
    fn block<'s>(&mut self, st: &'s Statement) -> &'s [Statement] {
        match &st.block {
            Some(items) => items,
            None => {
                self.err(
                    &st.keyword.pos,
                    format!("'{}' needs a {{ }} block", st.keyword.text),
                );
                &[]
            }
        }
    }

    /// Reports a block given to a keyword that takes none.
    fn no_block(&mut self, st: &Statement) {
        if st.block.is_some() {
            self.err(
                &st.keyword.pos,
                format!("'{}' does not take a {{ }} block", st.keyword.text),
            );
        }
    }

    /// Reports words after the first `max` arguments.
    fn at_most(&mut self, st: &Statement, max: usize) {
        if let Some(extra) = st.args.get(max) {
            self.err(
                &extra.pos,
                format!("unexpected '{}' after '{}'", extra.text, st.keyword.text),
            );
        }
    }

    /// The single value of a `keyword VALUE` statement.
    fn value<'s>(&mut self, st: &'s Statement) -> Option<&'s Word> {
        self.no_block(st);
        self.at_most(st, 1);
        let v = st.args.first();
        if v.is_none() {
            self.err(
                &st.keyword.pos,
                format!("'{}' needs a value", st.keyword.text),
            );
        }
        v
    }

    fn bad(&mut self, st: &Statement, word: &Word, expected: &str) {
        self.err(
            &word.pos,
            format!(
                "bad value '{}' for '{}': expected {expected}",
                word.text, st.keyword.text
            ),
        );
    }

    fn parse_word<T: FromStr>(&mut self, st: &Statement, word: &Word, expected: &str) -> Option<T> {
        let v = word.text.parse().ok();
        if v.is_none() {
            self.bad(st, word, expected);
        }
        v
    }

    fn parse_value<T: FromStr>(&mut self, st: &Statement, expected: &str) -> Option<T> {
        let word = self.value(st)?;
        self.parse_word(st, word, expected)
    }

    fn string(&mut self, st: &Statement) -> Option<String> {
        self.value(st).map(|w| w.text.clone())
    }

    fn u32_in(&mut self, st: &Statement, min: u32, max: u32) -> Option<u32> {
        let word = self.value(st)?;
        match word.text.parse::<u32>() {
            Ok(v) if (min..=max).contains(&v) => Some(v),
            _ => {
                self.bad(st, word, &format!("an integer in {min}..={max}"));
                None
            }
        }
    }

    fn count(&mut self, st: &Statement) -> Option<u32> {
        self.u32_in(st, 0, u32::MAX)
    }

    /// Whole seconds, as keepalived's read_unsigned keywords take them.
    fn whole_secs(&mut self, st: &Statement) -> Option<Duration> {
        let word = self.value(st)?;
        match word.text.parse::<u64>() {
            Ok(v) => Some(Duration::from_secs(v)),
            Err(_) => {
                self.bad(st, word, "a whole number of seconds");
                None
            }
        }
    }

    /// Seconds with an optional fraction (`0.92`), as keepalived's
    /// read_decimal keywords take them; resolution 1 µs.
    fn decimal_secs(&mut self, st: &Statement, max_secs: u64) -> Option<Duration> {
        let word = self.value(st)?;
        match parse_decimal_secs(&word.text) {
            Some(d) if d <= Duration::from_secs(max_secs) => Some(d),
            _ => {
                self.bad(
                    st,
                    word,
                    &format!("seconds (decimals allowed) in 0..={max_secs}"),
                );
                None
            }
        }
    }

    /// `keyword [BOOL]`: no value means true.
    fn flag(&mut self, st: &Statement) -> Option<bool> {
        self.no_block(st);
        self.at_most(st, 1);
        let Some(word) = st.args.first() else {
            return Some(true);
        };
        match word.text.to_ascii_lowercase().as_str() {
            "on" | "true" | "yes" => Some(true),
            "off" | "false" | "no" => Some(false),
            _ => {
                self.bad(st, word, "one of on|off|true|false|yes|no");
                None
            }
        }
    }

    /// `use_vmac [NAME] [MAC]`: the interface's name if given. A word
    /// with a ':' is keepalived's own MAC address for the interface, which
    /// is refused: the interface takes the RFC's virtual MAC.
    fn use_vmac(&mut self, st: &Statement) -> Option<String> {
        self.no_block(st);
        self.at_most(st, 2);
        let mut name = None;
        for word in st.args.iter().take(2) {
            if word.text.contains(':') {
                self.err(
                    &word.pos,
                    format!("a MAC address for 'use_vmac' ('{}') is not supported: the interface takes the VRRP virtual MAC 00:00:5e:00:01:<VRID>", word.text),
                );
            } else if name.is_some() {
                self.err(&word.pos, "'use_vmac' names its interface twice");
            } else {
                name = Some(word.text.clone());
            }
        }
        name
    }

    /// A bare keyword with neither value nor block.
    fn bare(&mut self, st: &Statement) -> bool {
        self.no_block(st);
        self.at_most(st, 0);
        true
    }

    /// `keyword SCRIPT [USER [GROUP]]`, SCRIPT split into words.
    fn command(&mut self, st: &Statement, with_user: bool) -> Option<Command> {
        self.no_block(st);
        self.at_most(st, if with_user { 3 } else { 1 });
        let Some(script) = st.args.first() else {
            self.err(
                &st.keyword.pos,
                format!("'{}' needs a script", st.keyword.text),
            );
            return None;
        };
        let words = match split_command(&script.text) {
            Ok(words) => words,
            Err(e) => {
                self.bad(st, script, &format!("a script ({e})"));
                return None;
            }
        };
        let mut words = words.into_iter();
        let Some(program) = words.next() else {
            self.bad(st, script, "a script");
            return None;
        };
        Some(Command {
            program,
            args: words.collect(),
            user: st.args.get(1).map(|w| w.text.clone()),
            group: st.args.get(2).map(|w| w.text.clone()),
        })
    }

    /// `user USER [GROUP]` for a command defined by another keyword.
    fn command_user(&mut self, st: &Statement, cmd: &mut Option<Command>, owner: &str) {
        self.no_block(st);
        self.at_most(st, 2);
        let Some(user) = st.args.first() else {
            self.err(&st.keyword.pos, "'user' needs a user name");
            return;
        };
        match cmd {
            Some(c) => {
                c.user = Some(user.text.clone());
                c.group = st.args.get(1).map(|w| w.text.clone());
            }
            None => self.err(&st.keyword.pos, format!("'user' must follow '{owner}'")),
        }
    }

    /// The name of a named block (`vrrp_instance NAME {`).
    fn block_name(&mut self, st: &Statement) -> String {
        self.at_most(st, 1);
        match st.args.first() {
            Some(w) => w.text.clone(),
            None => {
                self.err(
                    &st.keyword.pos,
                    format!("'{}' needs a name", st.keyword.text),
                );
                String::new()
            }
        }
    }

    fn global_defs(&mut self, st: &Statement) {
        self.at_most(st, 0);
        self.record("global".into(), &st.keyword.pos);
        let mut global = std::mem::take(&mut self.config.global);
        let g = &mut global;
        let mut fifos = Fifos::default();
        for item in self.block(st) {
            let path = format!("global.{}", item.keyword.text);
            self.record(path, &item.keyword.pos);
            match item.keyword.text.as_str() {
                "router_id" => g.router_id = self.string(item),
                "notification_email" => {
                    self.at_most(item, 0);
                    let mut emails = Vec::new();
                    for (i, entry) in self.block(item).iter().enumerate() {
                        self.no_block(entry);
                        self.at_most(entry, 0);
                        self.record(
                            format!("global.notification_email[{i}]"),
                            &entry.keyword.pos,
                        );
                        emails.push(entry.keyword.text.clone());
                    }
                    g.notification_email = emails;
                }
                "notification_email_from" => g.notification_email_from = self.string(item),
                "smtp_server" => {
                    self.no_block(item);
                    self.at_most(item, 2);
                    let Some(host) = item.args.first() else {
                        self.err(&item.keyword.pos, "'smtp_server' needs a host");
                        continue;
                    };
                    let port = match item.args.get(1) {
                        Some(w) => self.parse_word(item, w, "a port number"),
                        None => Some(default_smtp_port()),
                    };
                    if let Some(port) = port {
                        g.smtp_server = Some(SmtpServer {
                            host: host.text.clone(),
                            port,
                        });
                    }
                }
                "smtp_connect_timeout" => set(&mut g.smtp_connect_timeout, self.whole_secs(item)),
                "smtp_helo_name" => g.smtp_helo_name = self.string(item),
                "smtp_alert" => set(&mut g.smtp_alert, self.flag(item).map(Some)),
                "smtp_alert_vrrp" => set(&mut g.smtp_alert_vrrp, self.flag(item).map(Some)),
                "smtp_alert_checker" => set(&mut g.smtp_alert_checker, self.flag(item).map(Some)),
                "no_email_faults" => g.no_email_faults = self.bare(item),
                "vrrp_version" => set(&mut g.vrrp_version, self.version(item)),
                "vrrp_garp_master_delay" => {
                    set(&mut g.vrrp_garp_master_delay, self.whole_secs(item))
                }
                "vrrp_garp_master_repeat" => set(&mut g.vrrp_garp_master_repeat, self.count(item)),
                "vrrp_garp_master_refresh" => {
                    set(&mut g.vrrp_garp_master_refresh, self.whole_secs(item))
                }
                "vrrp_garp_master_refresh_repeat" => {
                    set(&mut g.vrrp_garp_master_refresh_repeat, self.count(item))
                }
                "vrrp_garp_lower_prio_delay" => {
                    g.vrrp_garp_lower_prio_delay = self.whole_secs(item)
                }
                "vrrp_garp_lower_prio_repeat" => g.vrrp_garp_lower_prio_repeat = self.count(item),
                "vrrp_garp_interval" => set(&mut g.vrrp_garp_interval, self.decimal_secs(item, 1)),
                "vrrp_gna_interval" => set(&mut g.vrrp_gna_interval, self.decimal_secs(item, 1)),
                "lvs_sync_daemon" => {
                    if g.lvs_sync_daemon.is_some() {
                        // keepalived keeps the first and ignores the rest.
                        self.err(&item.keyword.pos, "'lvs_sync_daemon' is given twice");
                    } else {
                        g.lvs_sync_daemon = self.lvs_sync_daemon(item);
                    }
                }
                "lvs_timeouts" => self.lvs_timeouts(item, &mut g.lvs_timeouts),
                "script_user" => g.script_user = self.script_user(item),
                "enable_script_security" => g.enable_script_security = self.bare(item),
                "vrrp_mcast_group4" => {
                    g.vrrp_mcast_group4 = self.parse_value(item, "an IPv4 multicast address")
                }
                "vrrp_mcast_group6" => {
                    g.vrrp_mcast_group6 = self.parse_value(item, "an IPv6 multicast address")
                }
                "vmac_prefix" => g.vmac_prefix = self.string(item),
                "vrrp_strict" => self.strict.global = self.bare(item),
                "vrrp_skip_check_adv_addr" => self.strict.skip_check_adv_addr = self.bare(item),
                "notify_fifo" | "vrrp_notify_fifo" | "lvs_notify_fifo" => {
                    self.notify_fifo(item, &mut fifos)
                }
                "notify_fifo_script" | "vrrp_notify_fifo_script" | "lvs_notify_fifo_script" => {
                    self.notify_fifo_script(item, &mut fifos)
                }
                "fifo_write_vrrp_states_on_reload" => {
                    g.fifo_write_vrrp_states_on_reload = self.bare(item)
                }
                "vrrp_notify_priority_changes" => {
                    if let Some(on) = self.flag(item) {
                        g.vrrp_notify_priority_changes = on;
                    }
                }
                _ => self.unknown(item, "global_defs"),
            }
        }
        let [global_fifo, vrrp_fifo, lvs_fifo] = fifos.0;
        g.notify_fifo = self.finish_fifo("notify_fifo", global_fifo);
        g.vrrp_notify_fifo = self.finish_fifo("vrrp_notify_fifo", vrrp_fifo);
        g.lvs_notify_fifo = self.finish_fifo("lvs_notify_fifo", lvs_fifo);
        self.config.global = global;
    }

    /// `[vrrp_|lvs_]notify_fifo PATH [USER [GROUP]]`.
    fn notify_fifo(&mut self, st: &Statement, fifos: &mut Fifos) {
        self.no_block(st);
        self.at_most(st, 3);
        let keyword = st.keyword.text.as_str();
        let Some(path) = st.args.first() else {
            self.err(&st.keyword.pos, format!("'{keyword}' needs a FIFO path"));
            return;
        };
        let slot = fifos.slot(keyword);
        if slot.fifo.is_some() {
            // keepalived keeps the first and ignores the rest.
            self.err(&st.keyword.pos, format!("'{keyword}' is given twice"));
            return;
        }
        if let Some(user) = st.args.get(1) {
            self.record(format!("global.{keyword}.user"), &user.pos);
        }
        slot.fifo = Some(NotifyFifo {
            path: path.text.clone().into(),
            user: st.args.get(1).map(|w| w.text.clone()),
            group: st.args.get(2).map(|w| w.text.clone()),
            script: None,
        });
    }

    /// `[vrrp_|lvs_]notify_fifo_script SCRIPT [USER [GROUP]]`.
    fn notify_fifo_script(&mut self, st: &Statement, fifos: &mut Fifos) {
        let keyword = st.keyword.text.as_str();
        let fifo = keyword.trim_end_matches("_script");
        if fifos.slot(fifo).script.is_some() {
            self.err(&st.keyword.pos, format!("'{keyword}' is given twice"));
            return;
        }
        self.record(format!("global.{fifo}.script"), &st.keyword.pos);
        let command = self.command(st, true);
        fifos.slot(fifo).script = command.map(|c| (c, st.keyword.pos.clone()));
    }

    /// A FIFO and its script, read in either order; a script without its
    /// FIFO is an error (keepalived runs none then, silently).
    fn finish_fifo(&mut self, keyword: &str, slot: FifoSlot) -> Option<NotifyFifo> {
        match (slot.fifo, slot.script) {
            (Some(mut fifo), script) => {
                fifo.script = script.map(|(command, _)| command);
                Some(fifo)
            }
            (None, Some((_, pos))) => {
                self.err(
                    &pos,
                    format!("'{keyword}_script' needs '{keyword}': the FIFO it reads"),
                );
                None
            }
            (None, None) => None,
        }
    }

    /// The value after an option word of a one-line keyword
    /// (`lvs_sync_daemon ... id 5`), parsed as an integer in `min..=max`.
    fn option_u32(
        &mut self,
        st: &Statement,
        option: &Word,
        value: Option<&Word>,
        min: u32,
        max: u32,
    ) -> Option<u32> {
        let Some(value) = value else {
            self.err(
                &option.pos,
                format!("'{} {}' needs a value", st.keyword.text, option.text),
            );
            return None;
        };
        match value.text.parse::<u32>() {
            Ok(v) if (min..=max).contains(&v) => Some(v),
            _ => {
                self.err(
                    &value.pos,
                    format!(
                        "bad value '{}' for '{} {}': expected an integer in {min}..={max}",
                        value.text, st.keyword.text, option.text
                    ),
                );
                None
            }
        }
    }

    /// `lvs_sync_daemon IF [inst] INSTANCE [id N] [maxlen N] [port N]
    /// [ttl N] [group IP]`, and the older `lvs_sync_daemon IF INSTANCE
    /// [SYNCID]`.
    fn lvs_sync_daemon(&mut self, st: &Statement) -> Option<LvsSyncDaemon> {
        self.no_block(st);
        let Some(interface) = st.args.first() else {
            self.err(
                &st.keyword.pos,
                "'lvs_sync_daemon' needs an interface and a VRRP instance",
            );
            return None;
        };
        let mut sync = LvsSyncDaemon {
            interface: interface.text.clone(),
            vrrp_instance: String::new(),
            id: None,
            maxlen: None,
            port: None,
            ttl: None,
            group: None,
        };
        let mut instance: Option<&Word> = None;
        let rest = st.args.get(1..).unwrap_or_default();
        let mut k = 0;
        while let Some(word) = rest.get(k) {
            let value = rest.get(k + 1);
            let option = word.text.as_str();
            match option {
                "inst" | "group" if value.is_none() => self.err(
                    &word.pos,
                    format!("'lvs_sync_daemon {option}' needs a value"),
                ),
                "inst" => instance = value,
                "id" => {
                    sync.id = self
                        .option_u32(st, word, value, 0, 255)
                        .and_then(|v| v.try_into().ok())
                }
                // At most an IPv4 datagram's payload: 65535 - 20 - 8.
                "maxlen" => {
                    sync.maxlen = self
                        .option_u32(st, word, value, 1, 65507)
                        .and_then(|v| v.try_into().ok())
                }
                "port" => {
                    sync.port = self
                        .option_u32(st, word, value, 1, 65535)
                        .and_then(|v| v.try_into().ok())
                }
                "ttl" => {
                    sync.ttl = self
                        .option_u32(st, word, value, 1, 255)
                        .and_then(|v| v.try_into().ok())
                }
                "group" => sync.group = value.and_then(|v| self.parse_word(st, v, "an IP address")),
                // The older positional form: `IF INSTANCE [SYNCID]`.
                _ if k == 0 => instance = Some(word),
                _ if k == 1 && instance.is_some() && word.text.parse::<u32>().is_ok() => {
                    match word.text.parse::<u8>() {
                        Ok(id) => sync.id = Some(id),
                        Err(_) => self.bad(st, word, "a sync id in 0..=255"),
                    }
                }
                _ => {
                    // What follows an unknown option cannot be read.
                    self.err(
                        &word.pos,
                        format!("unknown option '{option}' for 'lvs_sync_daemon'"),
                    );
                    break;
                }
            }
            let positional = !matches!(option, "inst" | "id" | "maxlen" | "port" | "ttl" | "group");
            k += if positional { 1 } else { 2 };
        }
        let Some(instance) = instance else {
            // keepalived without an instance runs both roles at once; the
            // appliance only runs the role a VRRP instance picks.
            self.err(
                &st.keyword.pos,
                "'lvs_sync_daemon' needs a VRRP instance (running both roles without one is not supported)",
            );
            return None;
        };
        self.record("global.lvs_sync_daemon.vrrp_instance".into(), &instance.pos);
        sync.vrrp_instance = instance.text.clone();
        Some(sync)
    }

    /// `script_user USER [GROUP]`.
    fn script_user(&mut self, st: &Statement) -> Option<ScriptUser> {
        self.no_block(st);
        self.at_most(st, 2);
        let Some(user) = st.args.first() else {
            self.err(&st.keyword.pos, "'script_user' needs a user name");
            return None;
        };
        Some(ScriptUser {
            user: user.text.clone(),
            group: st.args.get(1).map(|w| w.text.clone()),
        })
    }

    /// `lvs_timeouts [tcp N] [tcpfin N] [udp N]`, whole seconds.
    fn lvs_timeouts(&mut self, st: &Statement, timeouts: &mut LvsTimeouts) {
        self.no_block(st);
        if st.args.is_empty() {
            self.err(&st.keyword.pos, "'lvs_timeouts' needs tcp, tcpfin or udp");
        }
        let max = u32::try_from(LvsTimeouts::MAX.as_secs()).unwrap_or(u32::MAX);
        for pair in st.args.chunks(2) {
            let [option, value @ ..] = pair else {
                continue;
            };
            let slot = match option.text.as_str() {
                "tcp" => &mut timeouts.tcp,
                "tcpfin" => &mut timeouts.tcpfin,
                "udp" => &mut timeouts.udp,
                _ => {
                    self.err(
                        &option.pos,
                        format!("unknown option '{}' for 'lvs_timeouts'", option.text),
                    );
                    continue;
                }
            };
            if let Some(secs) = self.option_u32(st, option, value.first(), 0, max) {
                *slot = Some(Duration::from_secs(u64::from(secs)));
            }
        }
    }

    fn version(&mut self, st: &Statement) -> Option<Version> {
        self.u32_in(st, 2, 3)
            .and_then(|v| Version::try_from(v).ok())
    }

    fn vrrp_script(&mut self, st: &Statement) {
        let name = self.block_name(st);
        let index = self.config.vrrp_script.len();
        let base = format!("vrrp_script[{index}]");
        self.record(base.clone(), &st.keyword.pos);
        let mut script = VrrpScript {
            name,
            script: Command {
                program: String::new(),
                args: Vec::new(),
                user: None,
                group: None,
            },
            interval: default_script_interval(),
            timeout: None,
            weight: TrackWeight::default(),
            rise: default_rise_fall(),
            fall: default_rise_fall(),
        };
        let mut command = None;
        let mut user = None;
        for item in self.block(st) {
            self.record(format!("{base}.{}", item.keyword.text), &item.keyword.pos);
            match item.keyword.text.as_str() {
                "script" => command = self.command(item, false),
                "user" => user = Some(item),
                "interval" => set(&mut script.interval, self.secs_at_least_one(item)),
                "timeout" => script.timeout = self.secs_at_least_one(item),
                "weight" => set(&mut script.weight, self.track_weight_value(item)),
                "rise" => set(&mut script.rise, self.u32_in(item, 1, u32::MAX)),
                "fall" => set(&mut script.fall, self.u32_in(item, 1, u32::MAX)),
                _ => self.unknown(item, "vrrp_script"),
            }
        }
        if let Some(user) = user {
            self.command_user(user, &mut command, "script");
        }
        match command {
            Some(c) => script.script = c,
            None if st.block.is_some() => self.err(
                &st.keyword.pos,
                format!("vrrp_script '{}' has no 'script'", script.name),
            ),
            None => {}
        }
        self.config.vrrp_script.push(script);
    }

    /// `track_file NAME { file PATH; weight W [reverse]; init_file [V]
    /// [overwrite] }`, or its older name `vrrp_track_file`.
    fn tracked_file(&mut self, st: &Statement) {
        let name = self.block_name(st);
        let index = self.config.track_file.len();
        let base = format!("track_file[{index}]");
        self.record(base.clone(), &st.keyword.pos);
        let mut tracked = TrackedFile {
            name,
            file: Default::default(),
            weight: default_file_weight(),
            reverse: false,
            init_file: None,
        };
        let mut file = None;
        for item in self.block(st) {
            self.record(format!("{base}.{}", item.keyword.text), &item.keyword.pos);
            match item.keyword.text.as_str() {
                "file" => file = self.string(item),
                "weight" => {
                    if let Some((weight, reverse)) = self.tracker_weight(item) {
                        tracked.weight = weight;
                        tracked.reverse |= reverse;
                    }
                }
                "init_file" => tracked.init_file = Some(self.init_file(item)),
                _ => self.unknown(item, &st.keyword.text),
            }
        }
        match file {
            Some(f) => tracked.file = f.into(),
            None if st.block.is_some() => self.err(
                &st.keyword.pos,
                format!("track_file '{}' has no 'file'", tracked.name),
            ),
            None => {}
        }
        self.config.track_file.push(tracked);
    }

    /// `init_file [VALUE] [overwrite]`, in either order.
    fn init_file(&mut self, st: &Statement) -> InitFile {
        self.no_block(st);
        let mut init = InitFile::default();
        for word in &st.args {
            if word.text == "overwrite" {
                init.overwrite = true;
            } else if let Some(v) = self.parse_word(st, word, "an integer or 'overwrite'") {
                init.value = v;
            }
        }
        init
    }

    /// A tracker block's `weight W [reverse]` (track_file,
    /// vrrp_track_process): the weight, and whether `reverse` follows.
    fn tracker_weight(&mut self, item: &Statement) -> Option<(FileWeight, bool)> {
        self.no_block(item);
        self.at_most(item, 2);
        let Some(word) = item.args.first() else {
            self.err(&item.keyword.pos, "'weight' needs a value");
            return None;
        };
        let weight = self.file_weight(item, word)?;
        match item.args.get(1) {
            None => Some((weight, false)),
            Some(r) if r.text == "reverse" => Some((weight, true)),
            Some(r) => {
                self.bad(item, r, "'reverse' after the weight");
                Some((weight, false))
            }
        }
    }

    fn file_weight(&mut self, st: &Statement, word: &Word) -> Option<FileWeight> {
        let w = word
            .text
            .parse::<i32>()
            .ok()
            .and_then(|v| FileWeight::try_from(v).ok());
        if w.is_none() {
            self.bad(st, word, "an integer in -254..=254");
        }
        w
    }

    /// An instance's `track_file` or `track_process` block: `NAME [weight W
    /// [reverse|noreverse]]` each, made into a `T` by `make`.
    fn weighted_tracks<T>(
        &mut self,
        st: &Statement,
        base: &str,
        make: impl Fn(String, Option<FileWeight>, Option<bool>) -> T,
    ) -> Vec<T> {
        self.at_most(st, 0);
        let mut out = Vec::new();
        for entry in self.block(st) {
            self.no_block(entry);
            // Paths count the entries read, as validation does.
            let i = out.len();
            self.record(format!("{base}[{i}]"), &entry.keyword.pos);
            let (mut weight, mut reverse) = (None, None);
            match entry.args.as_slice() {
                [] => {}
                [kw, value, rest @ ..] if kw.text == "weight" && rest.len() <= 1 => {
                    self.record(format!("{base}[{i}].weight"), &kw.pos);
                    let Some(w) = self.file_weight(entry, value) else {
                        continue;
                    };
                    weight = Some(w);
                    if let Some(word) = rest.first() {
                        match word.text.as_str() {
                            "reverse" => reverse = Some(true),
                            "noreverse" => reverse = Some(false),
                            _ => {
                                self.bad(entry, word, "'reverse' or 'noreverse' after the weight");
                                continue;
                            }
                        }
                    }
                }
                [first, ..] => {
                    self.err(
                        &first.pos,
                        format!(
                            "unexpected '{}' after '{}': expected 'weight N [reverse|noreverse]'",
                            first.text, entry.keyword.text
                        ),
                    );
                    continue;
                }
            }
            out.push(make(entry.keyword.text.clone(), weight, reverse));
        }
        out
    }

    /// `vrrp_track_process NAME { process NAME [PARAM…]; param_match
    /// [initial|partial]; weight W [reverse]; quorum N; quorum_max N; delay
    /// S; terminate_delay S; fork_delay S; full_command }`.
    fn tracked_process(&mut self, st: &Statement) {
        let name = self.block_name(st);
        let index = self.config.vrrp_track_process.len();
        let base = format!("vrrp_track_process[{index}]");
        self.record(base.clone(), &st.keyword.pos);
        let mut tracked = TrackedProcess {
            name,
            process: String::new(),
            params: Vec::new(),
            param_match: None,
            full_command: false,
            weight: default_process_weight(),
            reverse: false,
            quorum: default_quorum(),
            quorum_max: None,
            fork_delay: zero(),
            terminate_delay: zero(),
        };
        // A block without `process` keeps it empty, which validation
        // reports (as it does for the TOML form).
        let mut process = false;
        for item in self.block(st) {
            self.record(format!("{base}.{}", item.keyword.text), &item.keyword.pos);
            match item.keyword.text.as_str() {
                "process" => {
                    self.no_block(item);
                    let Some((first, params)) = item.args.split_first() else {
                        self.err(&item.keyword.pos, "'process' needs a process name");
                        continue;
                    };
                    if process {
                        self.err(&item.keyword.pos, "'process' is given twice");
                        continue;
                    }
                    process = true;
                    tracked.process = first.text.clone();
                    tracked.params = params.iter().map(|w| w.text.clone()).collect();
                }
                "param_match" => {
                    self.no_block(item);
                    self.at_most(item, 1);
                    tracked.param_match = match item.args.first() {
                        None => Some(ParamMatch::Exact),
                        Some(w) if w.text == "initial" => Some(ParamMatch::Initial),
                        Some(w) if w.text == "partial" => Some(ParamMatch::Partial),
                        Some(w) => {
                            self.bad(item, w, "'initial' or 'partial' (or nothing: exact)");
                            continue;
                        }
                    };
                }
                "weight" => {
                    if let Some((weight, reverse)) = self.tracker_weight(item) {
                        tracked.weight = weight;
                        tracked.reverse |= reverse;
                    }
                }
                "quorum" => set(&mut tracked.quorum, self.u32_in(item, 1, 65535)),
                "quorum_max" => {
                    if let Some(max) = self.u32_in(item, 0, 65535) {
                        tracked.quorum_max = Some(max);
                    }
                }
                "delay" => {
                    if let Some(d) = self.decimal_secs(item, 3600) {
                        tracked.fork_delay = d;
                        tracked.terminate_delay = d;
                    }
                }
                "terminate_delay" => {
                    set(&mut tracked.terminate_delay, self.decimal_secs(item, 3600))
                }
                "fork_delay" => set(&mut tracked.fork_delay, self.decimal_secs(item, 3600)),
                "full_command" => tracked.full_command = self.bare(item),
                _ => self.unknown(item, &st.keyword.text),
            }
        }
        self.config.vrrp_track_process.push(tracked);
    }

    fn secs_at_least_one(&mut self, st: &Statement) -> Option<Duration> {
        self.u32_in(st, 1, u32::MAX)
            .map(|v| Duration::from_secs(u64::from(v)))
    }

    fn track_weight_value(&mut self, st: &Statement) -> Option<TrackWeight> {
        let word = self.value(st)?;
        self.track_weight(st, word)
    }

    fn track_weight(&mut self, st: &Statement, word: &Word) -> Option<TrackWeight> {
        let w = word
            .text
            .parse::<i32>()
            .ok()
            .and_then(|v| TrackWeight::new(v).ok());
        if w.is_none() {
            self.bad(st, word, "an integer in -253..=253");
        }
        w
    }

    /// Reads `item` into `tracks` if it is one of the four tracking
    /// keywords (of the block recorded at `base`); whether it was.
    fn track(&mut self, item: &Statement, base: &str, tracks: &mut Tracks) -> bool {
        let field = item.keyword.text.as_str();
        let at = format!("{base}.{field}");
        match field {
            "track_script" => {
                tracks.scripts = self
                    .tracked(item, &at)
                    .into_iter()
                    .map(|(name, weight)| TrackScript { name, weight })
                    .collect();
            }
            "track_interface" => {
                tracks.interfaces = self
                    .tracked(item, &at)
                    .into_iter()
                    .map(|(name, weight)| TrackInterface { name, weight })
                    .collect();
            }
            "track_file" => {
                tracks.files = self.weighted_tracks(item, &at, |name, weight, reverse| TrackFile {
                    name,
                    weight,
                    reverse,
                });
            }
            "track_process" => {
                tracks.processes =
                    self.weighted_tracks(item, &at, |name, weight, reverse| TrackProcess {
                        name,
                        weight,
                        reverse,
                    });
            }
            _ => return false,
        }
        true
    }

    fn sync_group(&mut self, st: &Statement) {
        let name = self.block_name(st);
        let index = self.config.vrrp_sync_group.len();
        let base = format!("vrrp_sync_group[{index}]");
        self.record(base.clone(), &st.keyword.pos);
        let mut group = SyncGroup {
            name,
            group: Vec::new(),
            notify_master: None,
            notify_backup: None,
            notify_fault: None,
            notify_stop: None,
            notify: None,
            notify_priority_changes: None,
            smtp_alert: None,
        };
        let mut tracks = Tracks::default();
        for item in self.block(st) {
            self.record(format!("{base}.{}", item.keyword.text), &item.keyword.pos);
            if self.track(item, &base, &mut tracks) {
                continue;
            }
            match item.keyword.text.as_str() {
                "group" => {
                    self.at_most(item, 0);
                    let mut members = Vec::new();
                    for (i, entry) in self.block(item).iter().enumerate() {
                        self.no_block(entry);
                        self.at_most(entry, 0);
                        self.record(format!("{base}.group[{i}]"), &entry.keyword.pos);
                        members.push(entry.keyword.text.clone());
                    }
                    group.group = members;
                }
                "notify_master" => group.notify_master = self.command(item, true),
                "notify_backup" => group.notify_backup = self.command(item, true),
                "notify_fault" => group.notify_fault = self.command(item, true),
                "notify_stop" => group.notify_stop = self.command(item, true),
                "notify" => group.notify = self.command(item, true),
                "smtp_alert" => set(&mut group.smtp_alert, self.flag(item).map(Some)),
                "notify_priority_changes" => set(
                    &mut group.notify_priority_changes,
                    self.flag(item).map(Some),
                ),
                _ => self.unknown(item, "vrrp_sync_group"),
            }
        }
        self.config.vrrp_sync_group.push(group);
        self.sync_tracks.push(tracks);
    }

    /// A sync group's own tracked objects go to each of its members, as
    /// keepalived's `sync_group_tracking_init` adds them: with the
    /// group's weights, cleared to 0 (a failure faults) if a member is
    /// the address owner. An object the member tracks itself keeps the
    /// member's entry if that is unweighted, and takes the group's
    /// otherwise; either way a warning says to track it in one place.
    fn finish_sync_tracking(&mut self) {
        for (g, mut tracks) in std::mem::take(&mut self.sync_tracks)
            .into_iter()
            .enumerate()
        {
            let group = &self.config.vrrp_sync_group[g];
            let group_name = group.name.clone();
            let members: Vec<usize> = group
                .group
                .iter()
                .filter_map(|m| self.config.vrrp_instance.iter().position(|i| &i.name == m))
                .collect();
            let gbase = format!("vrrp_sync_group[{g}]");
            let mut notes = Vec::new();
            if members
                .iter()
                .any(|&i| self.config.vrrp_instance[i].priority == Priority::OWNER)
            {
                let (config, notes) = (&self.config, &mut notes);
                zero_for_owner(&mut tracks.scripts, config, &gbase, &group_name, notes);
                zero_for_owner(&mut tracks.interfaces, config, &gbase, &group_name, notes);
                zero_for_owner(&mut tracks.files, config, &gbase, &group_name, notes);
                zero_for_owner(&mut tracks.processes, config, &gbase, &group_name, notes);
            }
            let mut records = Vec::new();
            for &i in &members {
                let ibase = format!("vrrp_instance[{i}]");
                let config = &self.config;
                let inst = &config.vrrp_instance[i];
                let mut merged = inst.clone();
                let mut both = Vec::new();
                let at = (ibase.as_str(), gbase.as_str());
                let (r, b) = (&mut records, &mut both);
                merge(&mut merged.track_script, &tracks.scripts, config, at, r, b);
                merge(
                    &mut merged.track_interface,
                    &tracks.interfaces,
                    config,
                    at,
                    r,
                    b,
                );
                merge(&mut merged.track_file, &tracks.files, config, at, r, b);
                merge(
                    &mut merged.track_process,
                    &tracks.processes,
                    config,
                    at,
                    r,
                    b,
                );
                for (field, name) in both {
                    notes.push((
                        format!("{gbase}.{field}"),
                        format!(
                            "'{name}' is in the {field} of vrrp_instance '{}' and of its vrrp_sync_group '{group_name}': the group's weight is used unless the instance's is 0, as in keepalived; track it in one place",
                            inst.name
                        ),
                    ));
                }
                self.config.vrrp_instance[i] = merged;
            }
            for (path, from) in records {
                let pos = self.map.lookup(&from);
                self.record(path, &pos);
            }
            for (path, message) in notes {
                let pos = self.map.lookup(&path);
                self.map.warn(Diagnostic::new(pos, message));
            }
        }
    }

    fn vrrp_instance(&mut self, st: &Statement) {
        let name = self.block_name(st);
        let index = self.config.vrrp_instance.len();
        let base = format!("vrrp_instance[{index}]");
        self.record(base.clone(), &st.keyword.pos);
        let mut interface = None;
        let mut vrid = None;
        let mut strict = None;
        let mut skip = None;
        let mut inst = VrrpInstance {
            name,
            state: InitialState::default(),
            interface: String::new(),
            // Placeholder until `virtual_router_id` is read; its absence is
            // reported below.
            virtual_router_id: Vrid::MIN,
            priority: default_priority(),
            advert_int: default_advert_int(),
            version: None,
            authentication: None,
            virtual_ipaddress: Vec::new(),
            virtual_ipaddress_excluded: Vec::new(),
            track_script: Vec::new(),
            track_interface: Vec::new(),
            track_file: Vec::new(),
            track_process: Vec::new(),
            nopreempt: false,
            preempt_delay: zero(),
            unicast_src_ip: None,
            unicast_peer: Vec::new(),
            mcast_dst_ip: None,
            native_ipv6: false,
            dont_track_primary: false,
            skip_check_adv_addr: false,
            use_vmac: false,
            vmac_interface: None,
            vmac_xmit_base: false,
            promote_secondaries: false,
            garp_master_delay: None,
            garp_master_repeat: None,
            garp_master_refresh: None,
            garp_master_refresh_repeat: None,
            garp_lower_prio_delay: None,
            garp_lower_prio_repeat: None,
            notify_master: None,
            notify_backup: None,
            notify_fault: None,
            notify_stop: None,
            notify: None,
            notify_master_rx_lower_pri: None,
            notify_priority_changes: None,
            smtp_alert: None,
        };
        let mut tracks = Tracks::default();
        for item in self.block(st) {
            let kw = item.keyword.text.as_str();
            self.record(format!("{base}.{kw}"), &item.keyword.pos);
            if self.track(item, &base, &mut tracks) {
                continue;
            }
            match kw {
                "state" => {
                    let Some(word) = self.value(item) else {
                        continue;
                    };
                    match word.text.as_str() {
                        "MASTER" => inst.state = InitialState::Master,
                        "BACKUP" => inst.state = InitialState::Backup,
                        _ => self.bad(item, word, "MASTER or BACKUP"),
                    }
                }
                "interface" => interface = self.string(item),
                "virtual_router_id" => {
                    vrid = self.u32_in(item, 1, 255).and_then(|v| Vrid::new(v).ok());
                }
                "priority" => {
                    let Some(word) = self.value(item) else {
                        continue;
                    };
                    match word
                        .text
                        .parse::<u32>()
                        .ok()
                        .and_then(|v| Priority::new(v).ok())
                    {
                        Some(p) => inst.priority = p,
                        None => self.bad(item, word, "an integer in 1..=255"),
                    }
                }
                "advert_int" => set(&mut inst.advert_int, self.decimal_secs(item, 255)),
                "version" => inst.version = self.version(item),
                "authentication" => inst.authentication = self.authentication(item),
                "virtual_ipaddress" => {
                    inst.virtual_ipaddress =
                        self.addresses(item, &format!("{base}.virtual_ipaddress"));
                }
                "virtual_ipaddress_excluded" => {
                    inst.virtual_ipaddress_excluded =
                        self.addresses(item, &format!("{base}.virtual_ipaddress_excluded"));
                }
                "nopreempt" => inst.nopreempt = self.bare(item),
                "preempt" => inst.nopreempt = !self.bare(item),
                "preempt_delay" => set(&mut inst.preempt_delay, self.decimal_secs(item, 1000)),
                // keepalived keeps one source address for both deliveries.
                "unicast_src_ip" | "mcast_src_ip" => {
                    inst.unicast_src_ip = self.parse_value(item, "an IP address")
                }
                "mcast_dst_ip" => inst.mcast_dst_ip = self.parse_value(item, "an IP address"),
                "unicast_peer" => {
                    self.at_most(item, 0);
                    let mut peers = Vec::new();
                    for (i, entry) in self.block(item).iter().enumerate() {
                        self.no_block(entry);
                        self.at_most(entry, 0);
                        self.record(format!("{base}.unicast_peer[{i}]"), &entry.keyword.pos);
                        match entry.keyword.text.parse::<IpAddr>() {
                            Ok(ip) => peers.push(ip),
                            Err(_) => self.err(
                                &entry.keyword.pos,
                                format!(
                                    "bad value '{}' in unicast_peer: expected an IP address",
                                    entry.keyword.text
                                ),
                            ),
                        }
                    }
                    inst.unicast_peer = peers;
                }
                "native_ipv6" => inst.native_ipv6 = self.bare(item),
                "use_vmac" => {
                    inst.use_vmac = true;
                    inst.vmac_interface = self.use_vmac(item);
                    if let Some(word) = item.args.iter().find(|w| !w.text.contains(':')) {
                        self.record(format!("{base}.vmac_interface"), &word.pos);
                    }
                }
                "vmac_xmit_base" => inst.vmac_xmit_base = self.bare(item),
                "promote_secondaries" => inst.promote_secondaries = self.bare(item),
                "dont_track_primary" => inst.dont_track_primary = self.bare(item),
                "strict_mode" => strict = self.flag(item),
                "skip_check_adv_addr" => skip = self.flag(item),
                "garp_master_delay" => inst.garp_master_delay = self.whole_secs(item),
                "garp_master_repeat" => inst.garp_master_repeat = self.count(item),
                "garp_master_refresh" => inst.garp_master_refresh = self.whole_secs(item),
                "garp_master_refresh_repeat" => inst.garp_master_refresh_repeat = self.count(item),
                "garp_lower_prio_delay" => inst.garp_lower_prio_delay = self.whole_secs(item),
                "garp_lower_prio_repeat" => inst.garp_lower_prio_repeat = self.count(item),
                "notify_master" => inst.notify_master = self.command(item, true),
                "notify_backup" => inst.notify_backup = self.command(item, true),
                "notify_fault" => inst.notify_fault = self.command(item, true),
                "notify_stop" => inst.notify_stop = self.command(item, true),
                "notify" => inst.notify = self.command(item, true),
                "smtp_alert" => set(&mut inst.smtp_alert, self.flag(item).map(Some)),
                "notify_master_rx_lower_pri" => {
                    inst.notify_master_rx_lower_pri = self.command(item, true)
                }
                "notify_priority_changes" => {
                    set(&mut inst.notify_priority_changes, self.flag(item).map(Some))
                }
                _ => self.unknown(item, "vrrp_instance"),
            }
        }
        // A missing interface stays empty: validation reports it, as it
        // does for TOML.
        if let Some(i) = interface {
            inst.interface = i;
        }
        // keepalived's defaults (vrrp_complete_instance): without a
        // priority, state MASTER is the address owner (255); without a
        // state, priority 255 starts as MASTER.
        let has = |keyword: &str| {
            st.block
                .as_ref()
                .is_some_and(|b| b.iter().any(|s| s.keyword.text == keyword))
        };
        if !has("priority") && inst.state == InitialState::Master {
            inst.priority = Priority::OWNER;
        }
        if !has("state") && inst.priority == Priority::OWNER {
            inst.state = InitialState::Master;
        }
        match vrid {
            Some(v) => inst.virtual_router_id = v,
            None if !st
                .block
                .as_ref()
                .is_some_and(|b| b.iter().any(|s| s.keyword.text == "virtual_router_id")) =>
            {
                self.err(
                    &st.keyword.pos,
                    format!("vrrp_instance '{}' has no virtual_router_id", inst.name),
                )
            }
            None => {}
        }
        self.strict.instances.push(strict);
        self.strict.skips.push(skip);
        inst.track_script = tracks.scripts;
        inst.track_interface = tracks.interfaces;
        inst.track_file = tracks.files;
        inst.track_process = tracks.processes;
        self.config.vrrp_instance.push(inst);
    }

    /// keepalived's `vrrp_complete_instance` for the settings global_defs
    /// gives every instance: `vrrp_skip_check_adv_addr`, and `vrrp_strict`
    /// (or an instance's `strict_mode`), which enforces RFC 3768/5798 where
    /// keepalived is lax. As keepalived does, strict mode refuses unicast
    /// peers, an instance without VIPs and a first IPv6 VIP that is not
    /// link-local; it drops authentication, `preempt_delay` and a `state
    /// MASTER` of a non-owner (starting as BACKUP), and runs IPv6 over
    /// version 3, each with a warning.
    fn finish_instances(&mut self) {
        let global_version = self.config.global.vrrp_version;
        let mut instances = std::mem::take(&mut self.config.vrrp_instance);
        for (i, inst) in instances.iter_mut().enumerate() {
            let base = format!("vrrp_instance[{i}]");
            inst.skip_check_adv_addr = self
                .strict
                .skips
                .get(i)
                .copied()
                .flatten()
                .unwrap_or(self.strict.skip_check_adv_addr);
            let strict = self
                .strict
                .instances
                .get(i)
                .copied()
                .flatten()
                .unwrap_or(self.strict.global);
            let name = inst.name.clone();
            let at = |im: &Self, field: &str| im.map.lookup(&format!("{base}.{field}"));
            let warn = |im: &mut Self, field: &str, message: String| {
                let pos = at(im, field);
                im.map.warn(Diagnostic::new(pos, message));
            };
            // keepalived's vrrp_end_handler: unicast adverts cannot go out
            // of the virtual MAC interface, they go out of the base one.
            if inst.use_vmac && !inst.unicast_peer.is_empty() && !inst.vmac_xmit_base {
                inst.vmac_xmit_base = true;
                warn(
                    self,
                    "use_vmac",
                    format!(
                        "vrrp_instance '{name}': unicast with use_vmac requires vmac_xmit_base; it is set, as keepalived does"
                    ),
                );
            }
            if inst.use_vmac && std::mem::take(&mut inst.promote_secondaries) {
                warn(
                    self,
                    "promote_secondaries",
                    format!(
                        "vrrp_instance '{name}': promote_secondaries is set on the virtual MAC interface already, as keepalived does"
                    ),
                );
            }
            if !strict {
                continue;
            }
            if std::mem::take(&mut inst.vmac_xmit_base) {
                warn(
                    self,
                    "vmac_xmit_base",
                    format!(
                        "vrrp_instance '{name}': vmac_xmit_base is incompatible with strict mode; it is ignored, as keepalived does"
                    ),
                );
            }
            if !inst.unicast_peer.is_empty() {
                let pos = at(self, "unicast_peer");
                self.err(
                    &pos,
                    format!("vrrp_instance '{name}': strict mode does not allow unicast peers (RFC 5798 sends to the multicast group)"),
                );
            }
            if inst.virtual_ipaddress.is_empty() {
                let pos = at(self, "virtual_ipaddress");
                self.err(
                    &pos,
                    format!("vrrp_instance '{name}': strict mode needs at least one VIP"),
                );
            }
            let ipv6 = inst
                .virtual_ipaddress
                .first()
                .map(|a| a.address.addr())
                .and_then(|a| match a {
                    IpAddr::V6(v6) => Some(v6),
                    IpAddr::V4(_) => None,
                });
            if let Some(first) = ipv6 {
                if inst.unicast_peer.is_empty() && !first.is_unicast_link_local() {
                    let pos = at(self, "virtual_ipaddress");
                    self.err(
                        &pos,
                        format!("vrrp_instance '{name}': in strict mode the first IPv6 VIP must be link-local (RFC 5798 §5.2.9), not {first}"),
                    );
                }
                if inst.version.unwrap_or(global_version) == Version::V2 {
                    inst.version = Some(Version::V3);
                    warn(
                        self,
                        "version",
                        format!(
                            "vrrp_instance '{name}': strict mode runs IPv6 over VRRP version 3"
                        ),
                    );
                }
            }
            if inst.authentication.take().is_some() {
                warn(
                    self,
                    "authentication",
                    format!(
                        "vrrp_instance '{name}': strict mode has no authentication (RFC 5798); it is ignored, as keepalived does"
                    ),
                );
            }
            if inst.preempt_delay != Duration::ZERO {
                inst.preempt_delay = Duration::ZERO;
                warn(
                    self,
                    "preempt_delay",
                    format!(
                        "vrrp_instance '{name}': strict mode has no preempt_delay; it is ignored, as keepalived does"
                    ),
                );
            }
            // keepalived's strict mode sends no gratuitous messages on a
            // lower-priority advert, and says so only when one was asked for.
            if inst.garp_lower_prio_repeat.is_some_and(|r| r > 0) {
                warn(
                    self,
                    "garp_lower_prio_repeat",
                    format!(
                        "vrrp_instance '{name}': strict mode has no garp_lower_prio_repeat; it is ignored, as keepalived does"
                    ),
                );
            }
            inst.garp_lower_prio_repeat = Some(0);
            if inst.state == InitialState::Master && inst.priority != Priority::OWNER {
                inst.state = InitialState::Backup;
                warn(
                    self,
                    "state",
                    format!(
                        "vrrp_instance '{name}': in strict mode only the address owner (priority 255) starts as MASTER; it starts as BACKUP, as keepalived does"
                    ),
                );
            }
        }
        self.config.vrrp_instance = instances;
    }

    /// `status_code 200-299 404`: codes and ranges, as many as given.
    fn status_codes(&mut self, st: &Statement) -> Option<StatusCodes> {
        self.no_block(st);
        if st.args.is_empty() {
            self.err(&st.keyword.pos, "'status_code' needs a value");
            return None;
        }
        let mut codes: Option<StatusCodes> = None;
        for word in &st.args {
            match word.text.parse::<StatusCodes>() {
                Ok(more) => match &mut codes {
                    Some(codes) => codes.merge(more),
                    None => codes = Some(more),
                },
                Err(_) => self.bad(
                    st,
                    word,
                    "an HTTP status or range within 100..=599 (200-299)",
                ),
            }
        }
        codes
    }

    fn authentication(&mut self, st: &Statement) -> Option<Authentication> {
        self.at_most(st, 0);
        let mut auth_type = None;
        let mut auth_pass = None;
        let mut ok = true;
        for item in self.block(st) {
            match item.keyword.text.as_str() {
                "auth_type" => {
                    let Some(word) = self.value(item) else {
                        continue;
                    };
                    match word.text.as_str() {
                        "PASS" => auth_type = Some(AuthType::Pass),
                        "AH" => {
                            ok = false;
                            self.err(&word.pos, "auth_type AH (IPsec) is not supported: use PASS or no authentication");
                        }
                        _ => {
                            ok = false;
                            self.bad(item, word, "PASS");
                        }
                    }
                }
                "auth_pass" => auth_pass = self.string(item),
                _ => self.unknown(item, "vrrp_instance > authentication"),
            }
        }
        match (auth_type, auth_pass) {
            (Some(auth_type), Some(auth_pass)) => Some(Authentication {
                auth_type,
                auth_pass,
            }),
            (None, _) if ok => {
                self.err(&st.keyword.pos, "authentication needs auth_type");
                None
            }
            (Some(_), None) => {
                self.err(&st.keyword.pos, "authentication needs auth_pass");
                None
            }
            _ => None,
        }
    }

    /// A `virtual_ipaddress`-style block.
    fn addresses(&mut self, st: &Statement, base: &str) -> Vec<VirtualAddress> {
        self.at_most(st, 0);
        let mut out = Vec::new();
        for (i, entry) in self.block(st).iter().enumerate() {
            self.no_block(entry);
            self.record(format!("{base}[{i}]"), &entry.keyword.pos);
            if let Some(address) = self.virtual_address(entry) {
                out.push(address);
            }
        }
        out
    }

    fn virtual_address(&mut self, entry: &Statement) -> Option<VirtualAddress> {
        let word = &entry.keyword;
        let Some(address) = parse_prefixed(&word.text) else {
            self.err(
                &word.pos,
                format!("bad address '{}': expected IP[/PREFIX]", word.text),
            );
            return None;
        };
        let mut vip = VirtualAddress {
            address,
            dev: None,
            label: None,
            scope: None,
        };
        let mut args = entry.args.iter();
        let mut ok = true;
        while let Some(option) = args.next() {
            if !matches!(option.text.as_str(), "dev" | "label" | "scope") {
                self.err(
                    &option.pos,
                    format!(
                        "unsupported virtual address option '{}' (supported: dev, label, scope)",
                        option.text
                    ),
                );
                // Its arity is unknown, so the rest of the line cannot be read.
                ok = false;
                break;
            }
            let Some(value) = args.next() else {
                self.err(&option.pos, format!("'{}' needs a value", option.text));
                ok = false;
                break;
            };
            match option.text.as_str() {
                "dev" => vip.dev = Some(value.text.clone()),
                "label" => vip.label = Some(value.text.clone()),
                _ => match Scope::parse(&value.text) {
                    Some(s) => vip.scope = Some(s),
                    None => {
                        ok = false;
                        self.err(
                            &value.pos,
                            format!(
                                "bad value '{}' for 'scope': expected global, site, link, host or nowhere",
                                value.text
                            ),
                        );
                    }
                },
            }
        }
        ok.then_some(vip)
    }

    /// A `track_script`/`track_interface` block: `NAME [weight W]` lines.
    fn tracked(&mut self, st: &Statement, base: &str) -> Vec<(String, Option<TrackWeight>)> {
        self.at_most(st, 0);
        let mut out = Vec::new();
        for (i, entry) in self.block(st).iter().enumerate() {
            self.no_block(entry);
            self.record(format!("{base}[{i}]"), &entry.keyword.pos);
            let weight = match entry.args.as_slice() {
                [] => None,
                [kw, value] if kw.text == "weight" => {
                    self.record(format!("{base}[{i}].weight"), &kw.pos);
                    match self.track_weight(entry, value) {
                        Some(w) => Some(w),
                        None => continue,
                    }
                }
                [first, ..] => {
                    self.err(
                        &first.pos,
                        format!(
                            "unexpected '{}' after '{}': expected 'weight N'",
                            first.text, entry.keyword.text
                        ),
                    );
                    continue;
                }
            };
            out.push((entry.keyword.text.clone(), weight));
        }
        out
    }

    /// `virtual_server_group NAME { IP[-END|/PREFIX] [PORT] ... fwmark N
    /// [inet|inet6] ... }`, read as keepalived v2.2.7's check_data.c
    /// `alloc_vsg_entry` reads it: a port of 0 or none is port 0, `IP-N`
    /// ends at N in the last octet (decimal) or the last IPv6 group (hex).
    fn virtual_server_group(&mut self, st: &Statement) {
        let name = self.block_name(st);
        let index = self.config.virtual_server_group.len();
        let base = format!("virtual_server_group[{index}]");
        self.record(base.clone(), &st.keyword.pos);
        let mut entries = Vec::new();
        for item in self.block(st) {
            self.no_block(item);
            let path = format!("{base}.entries[{}]", entries.len());
            let entry = if item.keyword.text == "fwmark" {
                self.group_fwmark(item)
            } else {
                self.group_range(item).map(GroupEntry::Range)
            };
            if let Some(entry) = entry {
                self.record(path, &item.keyword.pos);
                entries.push(entry);
            }
        }
        self.config
            .virtual_server_group
            .push(VirtualServerGroup { name, entries });
    }

    fn group_fwmark(&mut self, st: &Statement) -> Option<GroupEntry> {
        self.at_most(st, 2);
        let Some(mark) = st.args.first() else {
            self.err(&st.keyword.pos, "'fwmark' needs a firewall mark");
            return None;
        };
        let fwmark = self.parse_word(st, mark, "a firewall mark")?;
        let family = match st.args.get(1).map(|w| w.text.as_str()) {
            None => None,
            Some("inet") => Some(MarkFamily::Inet),
            Some("inet6") => Some(MarkFamily::Inet6),
            Some(_) => {
                self.bad(st, &st.args[1], "'inet' or 'inet6'");
                return None;
            }
        };
        Some(GroupEntry::Fwmark(GroupFwmark { fwmark, family }))
    }

    fn group_range(&mut self, st: &Statement) -> Option<GroupRange> {
        self.at_most(st, 1);
        let port = match st.args.first() {
            None => 0,
            Some(word) => self.parse_word(st, word, "a port number")?,
        };
        let text = st.keyword.text.as_str();
        let bad = |im: &mut Self, why: &str| {
            im.err(
                &st.keyword.pos,
                format!("virtual_server_group entry '{text}': {why}"),
            );
            None
        };
        if let Some((ip, prefix)) = text.split_once('/') {
            let Ok(ip) = ip.parse::<IpAddr>() else {
                return bad(self, "expected an IP address before '/'");
            };
            let bits: u32 = if ip.is_ipv4() { 32 } else { 128 };
            let prefix = match prefix.parse::<u32>() {
                Ok(p) if (1..=bits).contains(&p) => p,
                _ => return bad(self, &format!("the prefix length is not 1..={bits}")),
            };
            // keepalived steps through a range in the last IPv6 group only.
            if ip.is_ipv6() && prefix < 112 {
                return bad(
                    self,
                    "an IPv6 prefix must be /112 or longer (keepalived ranges over the last group only)",
                );
            }
            let host = if prefix == bits {
                0
            } else {
                u128::MAX >> (128 - (bits - prefix))
            };
            let (first, last) = match ip {
                IpAddr::V4(a) => {
                    let n = u128::from(u32::from(a));
                    (n, n | host)
                }
                IpAddr::V6(a) => {
                    let n = u128::from(a);
                    (n, n | host)
                }
            };
            if first & host != 0 {
                return bad(self, "the address has bits set past the prefix");
            }
            let at = |n: u128| match ip {
                IpAddr::V4(_) => IpAddr::V4(std::net::Ipv4Addr::from(n as u32)),
                IpAddr::V6(_) => IpAddr::V6(std::net::Ipv6Addr::from(n)),
            };
            return Some(GroupRange {
                address: ip,
                last: (first != last).then(|| at(last)),
                port,
            });
        }
        let Some((start, end)) = text.split_once('-') else {
            let Ok(address) = text.parse::<IpAddr>() else {
                return bad(
                    self,
                    "expected an IP address, a range IP-END or IP/PREFIX, or 'fwmark'",
                );
            };
            return Some(GroupRange {
                address,
                last: None,
                port,
            });
        };
        let Ok(address) = start.parse::<IpAddr>() else {
            return bad(self, "expected an IP address before '-'");
        };
        let full = if address.is_ipv4() {
            end.contains('.')
        } else {
            end.contains(':')
        };
        let last = if full {
            match end.parse::<IpAddr>() {
                Ok(last) if last.is_ipv4() == address.is_ipv4() => last,
                Ok(_) => return bad(self, "the range's ends are of different families"),
                Err(_) => return bad(self, "the range's end is not an IP address"),
            }
        } else {
            match address {
                IpAddr::V4(a) => match end.parse::<u8>() {
                    Ok(n) => {
                        let [a1, a2, a3, _] = a.octets();
                        IpAddr::V4(std::net::Ipv4Addr::new(a1, a2, a3, n))
                    }
                    Err(_) => return bad(self, "the range's end is not a last octet 0..=255"),
                },
                IpAddr::V6(a) => match u16::from_str_radix(end, 16) {
                    Ok(n) => {
                        let mut groups = a.segments();
                        groups[7] = n;
                        IpAddr::V6(std::net::Ipv6Addr::from(groups))
                    }
                    Err(_) => {
                        return bad(self, "the range's end is not a last group 0..=ffff (hex)");
                    }
                },
            }
        };
        let reversed = match (address, last) {
            (IpAddr::V4(a), IpAddr::V4(b)) => a > b,
            (IpAddr::V6(a), IpAddr::V6(b)) => a > b,
            _ => false,
        };
        // keepalived: "Address range end is not greater than address range
        // start" for the short form, "less than" for the long one.
        if reversed || (!full && address == last) {
            return bad(self, "the range's end is not after its start");
        }
        Some(GroupRange {
            address,
            last: Some(last),
            port,
        })
    }

    /// A `virtual_server group` without `protocol` is UDP, as keepalived's
    /// check_data.c makes it, when its group has addresses (a group of
    /// marks only has no protocol).
    fn finish_groups(&mut self) {
        for (index, pos) in std::mem::take(&mut self.unset_protocol) {
            let vs = &mut self.config.virtual_server[index];
            let Service::Group(name) = &vs.service else {
                continue;
            };
            let has_addresses = self.config.virtual_server_group.iter().any(|g| {
                &g.name == name && g.entries.iter().any(|e| matches!(e, GroupEntry::Range(_)))
            });
            if has_addresses {
                vs.protocol = Protocol::Udp;
                self.map.warn(Diagnostic::new(
                    pos,
                    "virtual_server without 'protocol' is UDP, as in keepalived: \
                     write 'protocol TCP' for TCP",
                ));
            }
        }
    }

    fn virtual_server(&mut self, st: &Statement) {
        let index = self.config.virtual_server.len();
        let base = format!("virtual_server[{index}]");
        self.record(base.clone(), &st.keyword.pos);
        let service = match st.args.as_slice() {
            [kw, mark] if kw.text == "fwmark" => self
                .parse_word(st, mark, "a firewall mark")
                .map(Service::Fwmark),
            [kw, name] if kw.text == "group" => Some(Service::Group(name.text.clone())),
            [ip, port] => self.socket(st, ip, port).map(Service::Address),
            _ => {
                self.err(
                    &st.keyword.pos,
                    "'virtual_server' needs 'IP PORT', 'fwmark MARK' or 'group NAME'",
                );
                None
            }
        };
        let mut vs = VirtualServer {
            service: service.unwrap_or(Service::Fwmark(0)),
            delay_loop: default_delay_loop(),
            lb_algo: default_lb_algo(),
            lb_kind: LbKind::default(),
            persistence_timeout: None,
            persistence_granularity: None,
            protocol: Protocol::default(),
            sorry_server: None,
            quorum: default_quorum(),
            hysteresis: 0,
            quorum_up: None,
            quorum_down: None,
            alpha: false,
            omega: false,
            virtualhost: None,
            ha_suspend: false,
            ops: false,
            sched_flags: Default::default(),
            masquerade: false,
            only_when_master: None,
            smtp_alert: None,
            real_server: Vec::new(),
        };
        let mut protocol_set = false;
        let mut default_weight = None;
        let mut sched_flags: Vec<&Statement> = Vec::new();
        let mut defaults = CheckDefaults::default();
        let mut inhibit = None;
        for item in self.block(st) {
            let kw = item.keyword.text.as_str();
            let field = match kw {
                "lvs_sched" => "lb_algo",
                "lvs_method" => "lb_kind",
                other => other,
            };
            if kw != "real_server" {
                self.record(format!("{base}.{field}"), &item.keyword.pos);
            }
            match kw {
                "delay_loop" => set(
                    &mut vs.delay_loop,
                    self.decimal_secs(item, u64::from(u32::MAX)),
                ),
                "lb_algo" | "lvs_sched" => {
                    let Some(word) = self.value(item) else {
                        continue;
                    };
                    match Scheduler::parse(&word.text) {
                        Some(a) => vs.lb_algo = a,
                        None => self.bad(
                            item,
                            word,
                            "one of rr wrr lc wlc lblc lblcr dh sh sed nq mh fo ovf twos",
                        ),
                    }
                }
                "lb_kind" | "lvs_method" => {
                    let Some(word) = self.value(item) else {
                        continue;
                    };
                    match LbKind::parse(&word.text) {
                        Some(k) => vs.lb_kind = k,
                        None => self.bad(item, word, "NAT, DR or TUN"),
                    }
                }
                "persistence_timeout" => {
                    self.no_block(item);
                    self.at_most(item, 1);
                    vs.persistence_timeout = match item.args.first() {
                        None => Some(default_persistence_timeout()),
                        Some(_) => self.whole_secs(item),
                    };
                }
                "persistence_granularity" => {
                    let Some(word) = self.value(item) else {
                        continue;
                    };
                    match parse_granularity(&word.text) {
                        Some(p) => vs.persistence_granularity = Some(p),
                        None => {
                            self.bad(item, word, "a netmask (255.255.255.0) or a prefix length")
                        }
                    }
                }
                "protocol" => {
                    let Some(word) = self.value(item) else {
                        continue;
                    };
                    protocol_set = true;
                    match Protocol::parse(&word.text) {
                        Some(p) => vs.protocol = p,
                        None => self.bad(item, word, "TCP, UDP or SCTP"),
                    }
                }
                "sorry_server" => {
                    self.no_block(item);
                    match item.args.as_slice() {
                        [ip, port] => vs.sorry_server = self.socket(item, ip, port),
                        _ => self.err(&item.keyword.pos, "'sorry_server' needs 'IP PORT'"),
                    }
                }
                "quorum" => set(&mut vs.quorum, self.u32_in(item, 1, u32::MAX)),
                "hysteresis" => set(&mut vs.hysteresis, self.count(item)),
                // keepalived's vs_weight_handler: 1..=IPVS_WEIGHT_LIMIT.
                "weight" => {
                    if let Some(word) = self.value(item) {
                        match word
                            .text
                            .parse::<u32>()
                            .ok()
                            .filter(|w| *w >= 1)
                            .map(Weight::new)
                        {
                            Some(Ok(w)) => default_weight = Some(w),
                            _ => self.bad(item, word, "an integer in 1..=65535"),
                        }
                    }
                }
                "retry" | "delay_before_retry" | "warmup" | "connect_timeout" => {
                    self.check_default(item, &mut defaults)
                }
                "inhibit_on_failure" => {
                    inhibit = self.flag(item).map(|on| (on, item.keyword.pos.clone()))
                }
                "quorum_up" => vs.quorum_up = self.command(item, true),
                "quorum_down" => vs.quorum_down = self.command(item, true),
                "alpha" => set(&mut vs.alpha, self.flag(item)),
                "omega" => set(&mut vs.omega, self.flag(item)),
                "virtualhost" => vs.virtualhost = self.string(item),
                "ha_suspend" => vs.ha_suspend = self.bare(item),
                "ops" => vs.ops = self.bare(item),
                "flag-1" | "flag-2" | "sh-port" | "sh-fallback" | "mh-port" | "mh-fallback" => {
                    if self.bare(item) {
                        let name = item.keyword.text.as_str();
                        if name.ends_with("port") || name == "flag-2" {
                            vs.sched_flags.port = true;
                        } else {
                            vs.sched_flags.fallback = true;
                        }
                        sched_flags.push(item);
                    }
                }
                "smtp_alert" => set(&mut vs.smtp_alert, self.flag(item).map(Some)),
                "real_server" => {
                    let rs_base = format!("{base}.real_server[{}]", vs.real_server.len());
                    if let Some(rs) = self.real_server(item, &rs_base) {
                        vs.real_server.push(rs);
                    }
                }
                _ => self.unknown(item, "virtual_server"),
            }
        }
        // keepalived's check_parser.c takes `sh-*` for the sh scheduler
        // only and `mh-*` for mh (and ignores them otherwise, with an
        // error): here the error stops the load, wherever the keyword.
        for item in sched_flags {
            let name = item.keyword.text.as_str();
            let (wants, other) = match name.split_once('-') {
                Some(("sh", _)) => (Scheduler::Sh, "sh"),
                Some(("mh", _)) => (Scheduler::Mh, "mh"),
                _ => continue,
            };
            if vs.lb_algo != wants {
                self.err(
                    &item.keyword.pos,
                    format!(
                        "'{name}' applies to the {other} scheduler only (lb_algo is {}); \
                         flag-1/flag-2 set the flag for any scheduler",
                        vs.lb_algo.name()
                    ),
                );
            }
        }
        // keepalived's check_data.c: a real server without its own
        // `inhibit_on_failure`, and a check without its own timing, take
        // the block's, wherever in the block they stand.
        for (i, rs) in vs.real_server.iter_mut().enumerate() {
            let rs_base = format!("{base}.real_server[{i}]");
            if let Some((on, pos)) = &inhibit
                && !self.map.has(&format!("{rs_base}.inhibit_on_failure"))
            {
                rs.inhibit_on_failure = *on;
                self.record(format!("{rs_base}.inhibit_on_failure"), pos);
            }
            self.inherit(&mut rs.check, &rs_base, &defaults);
        }
        // keepalived's check_data.c: a real server without its own
        // `weight` takes the block's, wherever in the block it stands.
        if let Some(weight) = default_weight {
            for (i, rs) in vs.real_server.iter_mut().enumerate() {
                if !self.map.has(&format!("{base}.real_server[{i}].weight")) {
                    rs.weight = weight;
                }
            }
        }
        // keepalived v2.2.7 (check_data.c) gives an address without a
        // protocol UDP, the kernel's own default, and says so.
        if !protocol_set && matches!(vs.service, Service::Group(_)) {
            self.unset_protocol.push((index, st.keyword.pos.clone()));
        }
        if !protocol_set && matches!(vs.service, Service::Address(_)) {
            vs.protocol = Protocol::Udp;
            self.map.warn(Diagnostic::new(
                st.keyword.pos.clone(),
                "virtual_server without 'protocol' is UDP, as in keepalived: \
                 write 'protocol TCP' for TCP",
            ));
        }
        self.config.virtual_server.push(vs);
    }

    fn socket(&mut self, st: &Statement, ip: &Word, port: &Word) -> Option<SocketAddr> {
        let ip: Option<IpAddr> = self.parse_word(st, ip, "an IP address");
        let port: Option<u16> = self.parse_word(st, port, "a port number");
        Some(SocketAddr::new(ip?, port?))
    }

    fn real_server(&mut self, st: &Statement, base: &str) -> Option<RealServer> {
        self.record(base.to_string(), &st.keyword.pos);
        let address = match st.args.as_slice() {
            [ip, port] => self.socket(st, ip, port),
            _ => {
                self.err(&st.keyword.pos, "'real_server' needs 'IP PORT'");
                None
            }
        };
        let mut rs = RealServer {
            address: address.unwrap_or(SocketAddr::from(([0, 0, 0, 0], 0))),
            weight: Weight::default(),
            inhibit_on_failure: false,
            uthreshold: None,
            lthreshold: None,
            notify_up: None,
            notify_down: None,
            check: Vec::new(),
            file_check: Vec::new(),
            smtp_alert: None,
        };
        let mut defaults = CheckDefaults::default();
        for item in st.block.as_deref().unwrap_or_default() {
            let kw = item.keyword.text.as_str();
            if !CHECKS.contains(&kw) && kw != "FILE_CHECK" {
                self.record(format!("{base}.{kw}"), &item.keyword.pos);
            }
            match kw {
                "weight" => {
                    let Some(word) = self.value(item) else {
                        continue;
                    };
                    match word
                        .text
                        .parse::<u32>()
                        .ok()
                        .and_then(|v| Weight::new(v).ok())
                    {
                        Some(w) => rs.weight = w,
                        None => self.bad(item, word, "an integer in 0..=65535"),
                    }
                }
                "inhibit_on_failure" => set(&mut rs.inhibit_on_failure, self.flag(item)),
                "retry" | "delay_before_retry" | "warmup" | "connect_timeout" => {
                    self.check_default(item, &mut defaults)
                }
                "uthreshold" => rs.uthreshold = self.count(item),
                "lthreshold" => rs.lthreshold = self.count(item),
                "notify_up" => rs.notify_up = self.command(item, true),
                "notify_down" => rs.notify_down = self.command(item, true),
                "smtp_alert" => set(&mut rs.smtp_alert, self.flag(item).map(Some)),
                "SMTP_CHECK" => {
                    for check in self.smtp_check(item, base, rs.check.len()) {
                        rs.check.push(check);
                    }
                }
                kw if CHECKS.contains(&kw) => {
                    let path = format!("{base}.check[{}]", rs.check.len());
                    self.record(path.clone(), &item.keyword.pos);
                    if let Some(check) = self.check(item, &path) {
                        rs.check.push(check);
                    }
                }
                "FILE_CHECK" => {
                    let path = format!("{base}.file_check[{}]", rs.file_check.len());
                    self.record(path.clone(), &item.keyword.pos);
                    if let Some(check) = self.file_check(item, &path) {
                        rs.file_check.push(check);
                    }
                }
                _ => self.unknown(item, "virtual_server > real_server"),
            }
        }
        self.inherit(&mut rs.check, base, &defaults);
        address.map(|_| rs)
    }

    /// A virtual server's or real server's `retry`, `delay_before_retry`,
    /// `warmup` or `connect_timeout`: a default for its checks.
    fn check_default(&mut self, st: &Statement, defaults: &mut CheckDefaults) {
        let pos = st.keyword.pos.clone();
        match st.keyword.text.as_str() {
            // keepalived's vs/rs retry handlers: 1..
            "retry" => defaults.retry = self.u32_in(st, 1, u32::MAX).map(|v| (v, pos)),
            "delay_before_retry" => {
                defaults.delay_before_retry =
                    self.decimal_secs(st, u64::from(u32::MAX)).map(|v| (v, pos))
            }
            "warmup" => {
                defaults.warmup = self.decimal_secs(st, u64::from(u32::MAX)).map(|v| (v, pos))
            }
            _ => {
                defaults.connect_timeout = self
                    .decimal_secs(st, u64::from(u32::MAX))
                    .filter(|t| !t.is_zero())
                    .map(|v| (v, pos))
            }
        }
    }

    /// Gives each of `checks` (of the real server at `rs_base`) the
    /// `defaults` it does not set itself, as keepalived's check_data.c
    /// does (a check's own keyword, then its real server's, then its
    /// virtual server's, then the check type's default); each inherited
    /// value is recorded at the line that set it.
    fn inherit(&mut self, checks: &mut [Check], rs_base: &str, defaults: &CheckDefaults) {
        for (k, check) in checks.iter_mut().enumerate() {
            let path = format!("{rs_base}.check[{k}]");
            let mut given = Timing::default();
            let mut take = |field: &str, pos: &Position| {
                let at = format!("{path}.{field}");
                if self.map.has(&at) {
                    return false;
                }
                self.map.insert(at, pos.clone());
                true
            };
            if let Some((v, pos)) = &defaults.retry
                && take("retry", pos)
            {
                given.retry = Some(*v);
            }
            if let Some((v, pos)) = &defaults.delay_before_retry
                && take("delay_before_retry", pos)
            {
                given.delay_before_retry = Some(*v);
            }
            if let Some((v, pos)) = &defaults.warmup
                && take("warmup", pos)
            {
                given.warmup = Some(*v);
            }
            // A MISC_CHECK opens no connection: keepalived has no timeout
            // to give it.
            if let Some((v, pos)) = &defaults.connect_timeout
                && !matches!(check, Check::Misc(_))
                && take("connect_timeout", pos)
            {
                given.connect_timeout = Some(*v);
            }
            given.apply(check);
        }
    }

    /// `FILE_CHECK { track_file NAME; weight W [reverse|noreverse] }`.
    fn file_check(&mut self, st: &Statement, base: &str) -> Option<FileCheck> {
        self.at_most(st, 0);
        let mut name = None;
        let mut weight = None;
        let mut reverse = false;
        for item in self.block(st) {
            self.record(format!("{base}.{}", item.keyword.text), &item.keyword.pos);
            match item.keyword.text.as_str() {
                "track_file" => name = self.string(item),
                "weight" => {
                    self.no_block(item);
                    self.at_most(item, 2);
                    let Some(word) = item.args.first() else {
                        self.err(&item.keyword.pos, "'weight' needs a value");
                        continue;
                    };
                    match word.text.parse::<i32>() {
                        Ok(w) if w != i32::MIN => weight = Some(w),
                        _ => self.bad(item, word, "an integer in -2147483647..=2147483647"),
                    }
                    match item.args.get(1).map(|w| (w, w.text.as_str())) {
                        None => {}
                        Some((_, "reverse")) => reverse = true,
                        Some((_, "noreverse")) => reverse = false,
                        Some((w, _)) => {
                            self.bad(item, w, "'reverse' or 'noreverse' after the weight")
                        }
                    }
                }
                _ => self.unknown(item, "virtual_server > real_server > FILE_CHECK"),
            }
        }
        let Some(track_file) = name else {
            if st.block.is_some() {
                self.err(&st.keyword.pos, "FILE_CHECK needs track_file");
            }
            return None;
        };
        Some(FileCheck {
            track_file,
            weight,
            reverse: reverse && weight.is_some(),
        })
    }

    fn check(&mut self, st: &Statement, base: &str) -> Option<Check> {
        self.at_most(st, 0);
        let kind = st.keyword.text.as_str();
        let mut tcp = TcpCheck {
            connect_ip: None,
            connect_port: None,
            bindto: None,
            connect_timeout: default_connect_timeout(),
            retry: match kind {
                "MISC_CHECK" => default_misc_retry(),
                "DNS_CHECK" => default_dns_retry(),
                _ => default_retry(),
            },
            delay_before_retry: match kind {
                "HTTP_GET" | "SSL_GET" => default_http_delay_before_retry(),
                _ => default_delay_before_retry(),
            },
            warmup: None,
            // Not a keepalived keyword: TOML only.
            half_open: false,
        };
        let mut urls = Vec::new();
        let mut misc_path = None;
        let mut misc_user = None;
        let mut misc_timeout = None;
        let mut misc_dynamic = false;
        // DNS_CHECK's unset delay_before_retry is the delay_loop.
        let mut delay_set = None;
        let mut payload = None;
        let mut require_reply = None;
        let mut min_reply_length = 0;
        let mut max_reply_length = default_max_reply_length();
        let mut dns_type = DnsType::default();
        let mut dns_name = DnsName::default();
        for item in self.block(st) {
            let kw = item.keyword.text.as_str();
            let field = if kw == "nb_get_retry" { "retry" } else { kw };
            if kw != "url" {
                self.record(format!("{base}.{field}"), &item.keyword.pos);
            }
            let connection = kind != "MISC_CHECK";
            let http = matches!(kind, "HTTP_GET" | "SSL_GET");
            let udp = kind == "UDP_CHECK";
            let dns = kind == "DNS_CHECK";
            match kw {
                "connect_ip" if connection => {
                    tcp.connect_ip = self.parse_value(item, "an IP address")
                }
                // ICMP has no port: keepalived takes the keyword and
                // ignores it, as the table's no-op says.
                "connect_port" if connection && kind != "PING_CHECK" => {
                    tcp.connect_port = self.parse_value(item, "a port number")
                }
                "bindto" if connection => tcp.bindto = self.parse_value(item, "an IP address"),
                "connect_timeout" if connection => set(
                    &mut tcp.connect_timeout,
                    self.decimal_secs(item, u64::from(u32::MAX)),
                ),
                "retry" | "nb_get_retry" => set(&mut tcp.retry, self.count(item)),
                "delay_before_retry" => {
                    delay_set = self.decimal_secs(item, u64::from(u32::MAX));
                    set(&mut tcp.delay_before_retry, delay_set);
                }
                "warmup" => tcp.warmup = self.decimal_secs(item, u64::from(u32::MAX)),
                "url" if http => {
                    let path = format!("{base}.url[{}]", urls.len());
                    self.record(path.clone(), &item.keyword.pos);
                    if let Some(url) = self.url(item, &path, kind) {
                        urls.push(url);
                    }
                }
                "misc_path" if !connection => misc_path = self.command(item, false),
                "misc_timeout" if !connection => misc_timeout = self.whole_secs(item),
                "misc_dynamic" if !connection => misc_dynamic = self.bare(item),
                "user" if !connection => misc_user = Some(item),
                "payload" if udp => {
                    payload = self.hex_words(item, true).and_then(|text| {
                        text.parse::<Hex>()
                            .map_err(|e| self.err(&item.keyword.pos, format!("payload: {e}")))
                            .ok()
                    })
                }
                // Bare, it requires any reply.
                "require_reply" if udp => {
                    require_reply = self.hex_words(item, false).and_then(|text| {
                        text.parse::<ReplyPattern>()
                            .map_err(|e| self.err(&item.keyword.pos, format!("require_reply: {e}")))
                            .ok()
                    })
                }
                "min_reply_length" if udp => set(
                    &mut min_reply_length,
                    self.u32_in(item, 0, 65535)
                        .and_then(|v| u16::try_from(v).ok()),
                ),
                "max_reply_length" if udp => set(
                    &mut max_reply_length,
                    self.u32_in(item, 0, 65535)
                        .and_then(|v| u16::try_from(v).ok()),
                ),
                "type" if dns => {
                    if let Some(word) = self.value(item) {
                        match DnsType::from_name(&word.text) {
                            Some(t) => dns_type = t,
                            None => self.bad(
                                item,
                                word,
                                "a DNS type: A, NS, CNAME, SOA, MX, TXT, AAAA, RRSIG or DNSKEY",
                            ),
                        }
                    }
                }
                "name" if dns => {
                    if let Some(word) = self.value(item) {
                        match DnsName::try_from(word.text.clone()) {
                            Ok(name) => dns_name = name,
                            Err(e) => self.err(&word.pos, e.to_string()),
                        }
                    }
                }
                _ => self.unknown(item, &format!("virtual_server > real_server > {kind}")),
            }
        }
        let TcpCheck {
            connect_ip,
            connect_port,
            bindto,
            connect_timeout,
            retry,
            delay_before_retry,
            warmup,
            half_open: _,
        } = tcp;
        let http = |url| HttpCheck {
            connect_ip,
            connect_port,
            bindto,
            connect_timeout,
            retry,
            delay_before_retry,
            warmup,
            url,
        };
        match kind {
            "TCP_CHECK" => Some(Check::Tcp(tcp)),
            "HTTP_GET" => Some(Check::HttpGet(http(urls))),
            "SSL_GET" => Some(Check::SslGet(http(urls))),
            "PING_CHECK" => Some(Check::Ping(PingCheck {
                connect_ip,
                bindto,
                connect_timeout,
                retry,
                delay_before_retry,
                warmup,
            })),
            "UDP_CHECK" => Some(Check::Udp(UdpCheck {
                connect_ip,
                connect_port,
                bindto,
                connect_timeout,
                retry,
                delay_before_retry,
                warmup,
                payload,
                require_reply,
                min_reply_length,
                max_reply_length,
            })),
            "DNS_CHECK" => Some(Check::Dns(DnsCheck {
                connect_ip,
                connect_port,
                bindto,
                connect_timeout,
                retry,
                delay_before_retry: delay_set,
                warmup,
                record_type: dns_type,
                name: dns_name,
            })),
            _ => {
                if let Some(user) = misc_user {
                    self.command_user(user, &mut misc_path, "misc_path");
                }
                let Some(misc_path) = misc_path else {
                    self.err(&st.keyword.pos, "MISC_CHECK needs misc_path");
                    return None;
                };
                Some(Check::Misc(MiscCheck {
                    misc_path,
                    misc_timeout,
                    misc_dynamic,
                    retry,
                    delay_before_retry,
                    warmup,
                }))
            }
        }
    }

    /// `SMTP_CHECK { ... }`: one check, or with keepalived's deprecated
    /// `host { }` blocks one per host, and one more for the block's own
    /// connection when any of its connection keywords is given
    /// (check_smtp.c's `smtp_check_end_handler`). The hosts take the
    /// block's `helo_name`, `retry`, `delay_before_retry` and `warmup`
    /// (wherever written, as keepalived's shared checker does) and their
    /// own connection, which starts from the real server's address and
    /// port. `first` is the index of the real server's next check.
    fn smtp_check(&mut self, st: &Statement, rs_base: &str, first: usize) -> Vec<Check> {
        self.at_most(st, 0);
        let base = format!("{rs_base}.check[{first}]");
        self.record(base.clone(), &st.keyword.pos);
        let mut check = SmtpCheck {
            connect_ip: None,
            connect_port: None,
            bindto: None,
            bind_port: None,
            connect_timeout: default_connect_timeout(),
            retry: default_retry(),
            delay_before_retry: default_delay_before_retry(),
            warmup: None,
            helo_name: default_smtp_helo(),
        };
        let mut own_connection = false;
        // Each host with its statement and the connection keywords it
        // writes (recorded at its own check's path once that is known).
        let mut hosts: Vec<(SmtpCheck, &Statement, Vec<&Statement>)> = Vec::new();
        for item in self.block(st) {
            let kw = item.keyword.text.as_str();
            let field = if kw == "nb_get_retry" { "retry" } else { kw };
            if kw != "host" {
                self.record(format!("{base}.{field}"), &item.keyword.pos);
            }
            if self.smtp_connection(item, &mut check) {
                own_connection = true;
                continue;
            }
            match kw {
                "helo_name" => {
                    if let Some(name) = self.string(item) {
                        check.helo_name = name;
                    }
                }
                "host" => {
                    self.at_most(item, 0);
                    let mut host = check.clone();
                    host.connect_ip = None;
                    host.connect_port = None;
                    host.bindto = None;
                    host.bind_port = None;
                    host.connect_timeout = default_connect_timeout();
                    let mut written = Vec::new();
                    for entry in self.block(item) {
                        if self.smtp_connection(entry, &mut host) {
                            written.push(entry);
                        } else if self.smtp_timing(entry, &mut check) {
                            // Shared with the block: the block's own.
                            let kw = entry.keyword.text.as_str();
                            let field = if kw == "nb_get_retry" { "retry" } else { kw };
                            self.record(format!("{base}.{field}"), &entry.keyword.pos);
                        } else {
                            self.unknown(entry, "virtual_server > real_server > SMTP_CHECK > host");
                        }
                    }
                    hosts.push((host, item, written));
                }
                _ => {
                    if !self.smtp_timing(item, &mut check) {
                        self.unknown(item, "virtual_server > real_server > SMTP_CHECK");
                    }
                }
            }
        }
        let mut checks = Vec::new();
        if own_connection || hosts.is_empty() {
            checks.push(check.clone());
        }
        for (mut host, item, written) in hosts {
            let path = format!("{rs_base}.check[{}]", first + checks.len());
            self.record(path.clone(), &item.keyword.pos);
            for entry in written {
                self.record(format!("{path}.{}", entry.keyword.text), &entry.keyword.pos);
            }
            // The block's timing is the host's own too (not inherited).
            for field in ["retry", "delay_before_retry", "warmup"] {
                let shared = self.map.has(&format!("{base}.{field}"));
                if shared {
                    let pos = self.map.lookup(&format!("{base}.{field}"));
                    self.record(format!("{path}.{field}"), &pos);
                }
            }
            host.helo_name = check.helo_name.clone();
            host.retry = check.retry;
            host.delay_before_retry = check.delay_before_retry;
            host.warmup = check.warmup;
            checks.push(host);
        }
        checks.into_iter().map(Check::Smtp).collect()
    }

    /// A connection keyword of an SMTP_CHECK or of one of its hosts, read
    /// into `check`; false if `st` is none.
    fn smtp_connection(&mut self, st: &Statement, check: &mut SmtpCheck) -> bool {
        match st.keyword.text.as_str() {
            "connect_ip" => check.connect_ip = self.parse_value(st, "an IP address"),
            "connect_port" => check.connect_port = self.parse_value(st, "a port number"),
            "bindto" => check.bindto = self.parse_value(st, "an IP address"),
            "bind_port" => check.bind_port = self.parse_value(st, "a port number"),
            "connect_timeout" => set(
                &mut check.connect_timeout,
                self.decimal_secs(st, u64::from(u32::MAX)),
            ),
            _ => return false,
        }
        true
    }

    /// A timing keyword of an SMTP_CHECK (also taken in its hosts), read
    /// into `check`; false if `st` is none.
    fn smtp_timing(&mut self, st: &Statement, check: &mut SmtpCheck) -> bool {
        match st.keyword.text.as_str() {
            "retry" => set(&mut check.retry, self.count(st)),
            "delay_before_retry" => set(
                &mut check.delay_before_retry,
                self.decimal_secs(st, u64::from(u32::MAX)),
            ),
            "warmup" => check.warmup = self.decimal_secs(st, u64::from(u32::MAX)),
            _ => return false,
        }
        true
    }

    /// The words after the keyword joined by spaces, as keepalived reads
    /// its hex strings (`payload 01 02 0304`); `None` if `required` and
    /// there are none.
    fn hex_words(&mut self, st: &Statement, required: bool) -> Option<String> {
        self.no_block(st);
        if required && st.args.is_empty() {
            self.err(
                &st.keyword.pos,
                format!("'{}' needs a value", st.keyword.text),
            );
            return None;
        }
        let words: Vec<&str> = st.args.iter().map(|w| w.text.as_str()).collect();
        Some(words.join(" "))
    }

    fn url(&mut self, st: &Statement, base: &str, kind: &str) -> Option<Url> {
        self.at_most(st, 0);
        let mut path = None;
        let mut url = Url {
            path: String::new(),
            status_code: None,
            digest: None,
            regex: None,
            regex_no_match: false,
            virtualhost: None,
        };
        for item in self.block(st) {
            self.record(format!("{base}.{}", item.keyword.text), &item.keyword.pos);
            match item.keyword.text.as_str() {
                "path" => path = self.string(item),
                "status_code" => url.status_code = self.status_codes(item),
                "digest" => {
                    let Some(word) = self.value(item) else {
                        continue;
                    };
                    if word.text.len() == 32 && word.text.chars().all(|c| c.is_ascii_hexdigit()) {
                        url.digest = Some(word.text.to_ascii_lowercase());
                    } else {
                        self.bad(item, word, "an MD5 digest (32 hex digits)");
                    }
                }
                "regex" => url.regex = self.string(item),
                "regex_no_match" => {
                    self.at_most(item, 0);
                    url.regex_no_match = true;
                }
                "virtualhost" => url.virtualhost = self.string(item),
                _ => self.unknown(
                    item,
                    &format!("virtual_server > real_server > {kind} > url"),
                ),
            }
        }
        match path {
            Some(p) => {
                url.path = p;
                Some(url)
            }
            None => {
                self.err(&st.keyword.pos, "url needs a path");
                None
            }
        }
    }
}

/// keepalived's check blocks in a real_server.
const CHECKS: [&str; 8] = [
    "SMTP_CHECK",
    "TCP_CHECK",
    "HTTP_GET",
    "SSL_GET",
    "MISC_CHECK",
    "PING_CHECK",
    "UDP_CHECK",
    "DNS_CHECK",
];

/// Stores a successfully parsed value; a failed parse was already reported
/// and leaves the default.
fn set<T>(slot: &mut T, value: Option<T>) {
    if let Some(v) = value {
        *slot = v;
    }
}

/// `255.255.255.0` or `24` (IPv6 granularity is written as a length).
fn parse_granularity(text: &str) -> Option<u8> {
    if let Ok(len) = text.parse::<u8>() {
        return (len <= 128).then_some(len);
    }
    let mask: std::net::Ipv4Addr = text.parse().ok()?;
    let bits = u32::from(mask);
    let len = bits.leading_ones();
    (bits.checked_shl(len).unwrap_or(0) == 0).then(|| u8::try_from(len).unwrap_or(32))
}

/// Decimal seconds with up to 6 fractional digits.
fn parse_decimal_secs(text: &str) -> Option<Duration> {
    let (whole, frac) = text.split_once('.').unwrap_or((text, ""));
    if whole.is_empty() && frac.is_empty()
        || !whole.chars().all(|c| c.is_ascii_digit())
        || !frac.chars().all(|c| c.is_ascii_digit())
        || frac.len() > 6
    {
        return None;
    }
    let secs: u64 = if whole.is_empty() {
        0
    } else {
        whole.parse().ok()?
    };
    let micros: u32 = if frac.is_empty() {
        0
    } else {
        format!("{frac:0<6}").parse().ok()?
    };
    Some(Duration::from_secs(secs) + Duration::from_micros(u64::from(micros)))
}

/// A tracked-object entry of an instance or a sync group.
trait Tracked: Clone {
    /// The keyword its list is under.
    const FIELD: &'static str;
    fn name(&self) -> &String;
    /// The weight it counts with: its own, else its object's (a
    /// script's, a file's, a process's), else 0.
    fn weight_in(&self, config: &Config) -> i16;
    /// Weight 0: a failure faults the instance.
    fn set_zero(&mut self);
}

impl Tracked for TrackScript {
    const FIELD: &'static str = "track_script";
    fn name(&self) -> &String {
        &self.name
    }
    fn weight_in(&self, config: &Config) -> i16 {
        self.weight
            .or_else(|| {
                config
                    .vrrp_script
                    .iter()
                    .find(|s| s.name == self.name)
                    .map(|s| s.weight)
            })
            .unwrap_or_default()
            .get()
    }
    fn set_zero(&mut self) {
        self.weight = Some(TrackWeight::default());
    }
}

impl Tracked for TrackInterface {
    const FIELD: &'static str = "track_interface";
    fn name(&self) -> &String {
        &self.name
    }
    fn weight_in(&self, _: &Config) -> i16 {
        self.weight.unwrap_or_default().get()
    }
    fn set_zero(&mut self) {
        self.weight = Some(TrackWeight::default());
    }
}

impl Tracked for TrackFile {
    const FIELD: &'static str = "track_file";
    fn name(&self) -> &String {
        &self.name
    }
    fn weight_in(&self, config: &Config) -> i16 {
        self.weight
            .or_else(|| {
                config
                    .track_file
                    .iter()
                    .find(|f| f.name == self.name)
                    .map(|f| f.weight)
            })
            .map_or(0, |w| w.0.get())
    }
    fn set_zero(&mut self) {
        self.weight = Some(FileWeight(TrackWeight::default()));
    }
}

impl Tracked for TrackProcess {
    const FIELD: &'static str = "track_process";
    fn name(&self) -> &String {
        &self.name
    }
    fn weight_in(&self, config: &Config) -> i16 {
        self.weight
            .or_else(|| {
                config
                    .vrrp_track_process
                    .iter()
                    .find(|p| p.name == self.name)
                    .map(|p| p.weight)
            })
            .map_or(0, |w| w.0.get())
    }
    fn set_zero(&mut self) {
        self.weight = Some(FileWeight(TrackWeight::default()));
    }
}

/// A sync group whose member is the address owner: each of its entries
/// that counts with a weight gets 0 (a failure faults the group), with a
/// note for each.
fn zero_for_owner<T: Tracked>(
    entries: &mut [T],
    config: &Config,
    gbase: &str,
    group_name: &str,
    notes: &mut Vec<(String, String)>,
) {
    for t in entries {
        if t.weight_in(config) != 0 {
            notes.push((
                format!("{gbase}.{}", T::FIELD),
                format!(
                    "vrrp_sync_group '{group_name}': a member is the address owner (priority 255), so its {} '{}' has weight 0 (a failure faults the group), as in keepalived",
                    T::FIELD,
                    t.name()
                ),
            ));
            t.set_zero();
        }
    }
}

/// Adds a sync group's `group` entries to a member's `member` list, as
/// keepalived does: one the member tracks already keeps the member's
/// entry if that counts with weight 0, else becomes the group's, and its
/// field and name go to `both`. Each appended entry's path (under
/// `ibase`) goes to `records` with its group entry's (under `gbase`), so
/// an error on it names the group's line.
fn merge<T: Tracked>(
    member: &mut Vec<T>,
    group: &[T],
    config: &Config,
    (ibase, gbase): (&str, &str),
    records: &mut Vec<(String, String)>,
    both: &mut Vec<(&'static str, String)>,
) {
    for (k, entry) in group.iter().enumerate() {
        match member.iter_mut().find(|m| m.name() == entry.name()) {
            Some(own) => {
                both.push((T::FIELD, entry.name().clone()));
                if own.weight_in(config) != 0 {
                    *own = entry.clone();
                }
            }
            None => {
                records.push((
                    format!("{ibase}.{}[{}]", T::FIELD, member.len()),
                    format!("{gbase}.{}[{k}]", T::FIELD),
                ));
                member.push(entry.clone());
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{Format, load_str};
    use std::path::Path;

    fn load(text: &str) -> Result<Config, Vec<String>> {
        load_str(Path::new("k.conf"), text, Format::Keepalived)
            .map_err(|d| d.iter().map(ToString::to_string).collect())
    }

    fn problems(text: &str) -> Vec<String> {
        load(text).err().unwrap_or_default()
    }

    /// The imported model, before validation; panics on import errors.
    fn import_only(text: &str) -> Config {
        let (config, _, diagnostics) = super::super::load_str(Path::new("k.conf"), text);
        assert!(diagnostics.is_empty(), "{diagnostics:?}");
        config
    }

    const INSTANCE: &str = "vrrp_instance VI_1 {\n  interface eth0\n  virtual_router_id 7\n";

    /// keepalived's `status_code` takes codes and ranges, several per line.
    #[test]
    fn status_code_takes_codes_and_ranges() {
        let vs = |codes: &str| {
            format!(
                "virtual_server 10.0.0.1 80 {{\n  protocol TCP\n  real_server 10.0.1.1 80 {{\n    HTTP_GET {{\n      url {{\n        path /\n        status_code {codes}\n      }}\n    }}\n  }}\n}}\n"
            )
        };
        let config = import_only(&vs("200-299 404"));
        let Check::HttpGet(http) = &config.virtual_server[0].real_server[0].check[0] else {
            panic!("an HTTP_GET");
        };
        let codes = http.url[0].status_code.as_ref().expect("codes");
        assert!(codes.contains(250) && codes.contains(404) && !codes.contains(403));
        assert_eq!(
            problems(&vs("200 700 300-200")),
            [
                "k.conf:7:25: bad value '700' for 'status_code': expected an HTTP status or range within 100..=599 (200-299)",
                "k.conf:7:29: bad value '300-200' for 'status_code': expected an HTTP status or range within 100..=599 (200-299)",
            ]
        );
    }

    /// The imported model and its warnings; panics on import errors.
    fn import_warned(text: &str) -> (Config, Vec<String>) {
        let (config, map, diagnostics) = super::super::load_str(Path::new("k.conf"), text);
        assert!(diagnostics.is_empty(), "{diagnostics:?}");
        (
            config,
            map.warnings().iter().map(ToString::to_string).collect(),
        )
    }

    /// A sync group's own `track_*` go to every member with the group's
    /// weights (keepalived's `sync_group_tracking_init`): appended, or,
    /// for an object a member tracks itself, the group's entry replaces a
    /// weighted one and an unweighted one stays, with a warning. With the
    /// address owner among the members every group weight becomes 0.
    /// An unknown name is an error at the group's line.
    #[test]
    fn a_sync_groups_tracked_objects_go_to_its_members() {
        let text = |prio_a: u8| {
            format!(
                "vrrp_script chk_a {{\n  script /bin/true\n  weight -20\n}}\n\
                 vrrp_script chk_b {{\n  script /bin/true\n}}\n\
                 track_file tf {{\n  file /run/tf\n}}\n\
                 vrrp_track_process tp {{\n  process nginx\n}}\n\
                 vrrp_sync_group G {{\n  group {{\n    VI_A\n    VI_B\n  }}\n  \
                 track_script {{\n    chk_a\n    chk_b weight 5\n  }}\n  \
                 track_interface {{\n    eth1 weight -30\n  }}\n  \
                 track_file {{\n    tf weight 2 reverse\n  }}\n  \
                 track_process {{\n    tp\n  }}\n  \
                 sync_group_tracking_weight\n}}\n\
                 vrrp_instance VI_A {{\n  interface eth0\n  virtual_router_id 1\n  priority {prio_a}\n  \
                 track_script {{\n    chk_a weight -5\n  }}\n  track_interface {{\n    eth1\n  }}\n}}\n\
                 vrrp_instance VI_B {{\n  interface eth0\n  virtual_router_id 2\n  priority 100\n}}\n"
            )
        };
        let (config, warnings) = import_warned(&text(100));
        let weight = |w: i32| Some(TrackWeight::new(w).unwrap());
        let a = &config.vrrp_instance[0];
        let b = &config.vrrp_instance[1];
        assert_eq!(
            a.track_script,
            [
                TrackScript {
                    name: "chk_a".into(),
                    weight: None
                },
                TrackScript {
                    name: "chk_b".into(),
                    weight: weight(5)
                },
            ],
            "VI_A's weighted chk_a takes the group's entry (the script's -20)"
        );
        assert_eq!(
            a.track_interface,
            [TrackInterface {
                name: "eth1".into(),
                weight: None
            }],
            "VI_A's unweighted eth1 stays unweighted"
        );
        assert_eq!(
            b.track_script,
            [
                TrackScript {
                    name: "chk_a".into(),
                    weight: None
                },
                TrackScript {
                    name: "chk_b".into(),
                    weight: weight(5)
                },
            ]
        );
        assert_eq!(
            b.track_interface,
            [TrackInterface {
                name: "eth1".into(),
                weight: weight(-30)
            }]
        );
        for inst in [a, b] {
            assert_eq!(
                inst.track_file,
                [TrackFile {
                    name: "tf".into(),
                    weight: Some(FileWeight::try_from(2).unwrap()),
                    reverse: Some(true),
                }]
            );
            assert_eq!(
                inst.track_process,
                [TrackProcess {
                    name: "tp".into(),
                    weight: None,
                    reverse: None
                }]
            );
        }
        assert_eq!(
            warnings,
            [
                "k.conf:19:3: 'chk_a' is in the track_script of vrrp_instance 'VI_A' and of its vrrp_sync_group 'G': the group's weight is used unless the instance's is 0, as in keepalived; track it in one place",
                "k.conf:23:3: 'eth1' is in the track_interface of vrrp_instance 'VI_A' and of its vrrp_sync_group 'G': the group's weight is used unless the instance's is 0, as in keepalived; track it in one place",
                "k.conf:32:3: 'sync_group_tracking_weight' in vrrp_sync_group has no effect: the appliance always keeps the weights of a sync group member's tracked objects, as keepalived does with this option",
            ]
        );

        let (config, warnings) = import_warned(&text(255));
        let zero = Some(TrackWeight::default());
        let b = &config.vrrp_instance[1];
        assert_eq!(
            b.track_script,
            [
                TrackScript {
                    name: "chk_a".into(),
                    weight: zero
                },
                TrackScript {
                    name: "chk_b".into(),
                    weight: zero
                },
            ]
        );
        assert_eq!(
            b.track_interface,
            [TrackInterface {
                name: "eth1".into(),
                weight: zero
            }]
        );
        assert_eq!(
            b.track_file[0].weight,
            Some(FileWeight(TrackWeight::default()))
        );
        assert_eq!(
            b.track_process[0].weight, None,
            "the process's weight is 0 already"
        );
        assert!(
            warnings.iter().any(|w| w == "k.conf:19:3: vrrp_sync_group 'G': a member is the address owner (priority 255), so its track_script 'chk_b' has weight 0 (a failure faults the group), as in keepalived"),
            "{warnings:?}"
        );

        let unknown = text(100).replace("    tp\n", "    tq\n");
        assert_eq!(
            problems(&unknown),
            [
                "k.conf:30:5: vrrp_instance 'VI_A' tracks unknown vrrp_track_process 'tq'",
                "k.conf:30:5: vrrp_instance 'VI_B' tracks unknown vrrp_track_process 'tq'",
            ]
        );
    }

    /// keepalived's `use_vmac [NAME]`, `vmac_xmit_base` and
    /// `vmac_prefix`; unicast peers turn `vmac_xmit_base` on and strict
    /// mode off, each with a warning, as keepalived does.
    #[test]
    fn use_vmac_reads_as_keepalived_does() {
        let vips = "  virtual_ipaddress {\n    10.0.0.100/24\n  }\n";
        let (config, warnings) = import_warned(&format!(
            "global_defs {{\n  vmac_prefix vm\n}}\n{INSTANCE}  use_vmac\n{vips}}}\n\
             vrrp_instance VI_2 {{\n  interface eth0\n  virtual_router_id 8\n  use_vmac lan.8\n  vmac_xmit_base\n}}\n"
        ));
        assert!(warnings.is_empty(), "{warnings:?}");
        assert_eq!(config.global.vmac_prefix.as_deref(), Some("vm"));
        let (a, b) = (&config.vrrp_instance[0], &config.vrrp_instance[1]);
        assert!(a.use_vmac && a.vmac_interface.is_none() && !a.vmac_xmit_base);
        assert!(b.use_vmac && b.vmac_xmit_base);
        assert_eq!(b.vmac_interface.as_deref(), Some("lan.8"));
        assert_eq!(
            crate::config::model::vmac_names(&config),
            [Some("vm.7".to_string()), Some("lan.8".to_string())]
        );

        let (config, warnings) = import_warned(&format!(
            "{INSTANCE}  use_vmac\n  unicast_peer {{\n    10.0.0.2\n  }}\n{vips}}}\n"
        ));
        assert!(config.vrrp_instance[0].vmac_xmit_base);
        assert_eq!(
            warnings,
            [
                "k.conf:4:3: vrrp_instance 'VI_1': unicast with use_vmac requires vmac_xmit_base; it is set, as keepalived does"
            ]
        );
        let (config, warnings) = import_warned(&format!(
            "global_defs {{\n  vrrp_strict\n}}\n{INSTANCE}  use_vmac\n  vmac_xmit_base\n{vips}}}\n"
        ));
        assert!(!config.vrrp_instance[0].vmac_xmit_base);
        assert_eq!(
            warnings,
            [
                "k.conf:8:3: vrrp_instance 'VI_1': vmac_xmit_base is incompatible with strict mode; it is ignored, as keepalived does"
            ]
        );
        let (config, warnings) = import_warned(&format!(
            "{INSTANCE}  use_vmac\n  promote_secondaries\n{vips}}}\n\
             vrrp_instance VI_2 {{\n  interface eth0\n  virtual_router_id 8\n  promote_secondaries\n}}\n"
        ));
        assert!(!config.vrrp_instance[0].promote_secondaries);
        assert!(config.vrrp_instance[1].promote_secondaries);
        assert_eq!(
            warnings,
            [
                "k.conf:5:3: vrrp_instance 'VI_1': promote_secondaries is set on the virtual MAC interface already, as keepalived does"
            ]
        );

        assert_eq!(
            problems(&format!(
                "{INSTANCE}  use_vmac vrrp.7 00:00:5e:00:01:07 other\n{vips}}}\n"
            )),
            [
                "k.conf:4:19: a MAC address for 'use_vmac' ('00:00:5e:00:01:07') is not supported: the interface takes the VRRP virtual MAC 00:00:5e:00:01:<VRID>",
                "k.conf:4:37: unexpected 'other' after 'use_vmac'",
            ]
        );
    }

    /// keepalived v2.2.7's strict mode (`vrrp_complete_instance`): what
    /// it resets is reset with a warning, what it refuses is an error, and
    /// an instance's `strict_mode off` overrides the global setting.
    #[test]
    fn strict_mode_resets_and_refuses_as_keepalived_does() {
        let lax = "  state MASTER\n  priority 100\n  preempt_delay 5\n  authentication {\n    auth_type PASS\n    auth_pass secret\n  }\n  virtual_ipaddress {\n    10.0.0.100/24\n  }\n";
        let text = format!("global_defs {{\n  vrrp_strict\n}}\n{INSTANCE}{lax}}}\n");
        let (config, warnings) = import_warned(&text);
        let inst = &config.vrrp_instance[0];
        assert_eq!(inst.state, InitialState::Backup);
        assert_eq!(inst.authentication, None);
        assert_eq!(inst.preempt_delay, Duration::ZERO);
        assert_eq!(inst.garp_lower_prio_repeat, Some(0));
        assert_eq!(
            warnings,
            [
                "k.conf:7:3: vrrp_instance 'VI_1': in strict mode only the address owner (priority 255) starts as MASTER; it starts as BACKUP, as keepalived does",
                "k.conf:9:3: vrrp_instance 'VI_1': strict mode has no preempt_delay; it is ignored, as keepalived does",
                "k.conf:10:3: vrrp_instance 'VI_1': strict mode has no authentication (RFC 5798); it is ignored, as keepalived does",
            ]
        );

        let own =
            format!("global_defs {{\n  vrrp_strict\n}}\n{INSTANCE}  strict_mode off\n{lax}}}\n");
        let (config, warnings) = import_warned(&own);
        assert_eq!(config.vrrp_instance[0].state, InitialState::Master);
        assert!(config.vrrp_instance[0].authentication.is_some());
        assert!(warnings.is_empty(), "{warnings:?}");

        let refused = format!(
            "{INSTANCE}  strict_mode\n  unicast_peer {{\n    10.0.0.2\n  }}\n}}\n\
             vrrp_instance VI_6 {{\n  interface eth0\n  virtual_router_id 8\n  strict_mode on\n  \
             virtual_ipaddress {{\n    fd00::100/64\n  }}\n}}\n"
        );
        assert_eq!(
            problems(&refused),
            [
                "k.conf:1:1: vrrp_instance 'VI_1': strict mode needs at least one VIP",
                "k.conf:5:3: vrrp_instance 'VI_1': strict mode does not allow unicast peers (RFC 5798 sends to the multicast group)",
                "k.conf:13:3: vrrp_instance 'VI_6': in strict mode the first IPv6 VIP must be link-local (RFC 5798 §5.2.9), not fd00::100",
            ]
        );
    }

    #[test]
    fn skip_check_adv_addr_is_global_with_an_instances_own_word_last() {
        let text = format!(
            "global_defs {{\n  vrrp_skip_check_adv_addr\n}}\n{INSTANCE}}}\n\
             vrrp_instance VI_2 {{\n  interface eth0\n  virtual_router_id 8\n  skip_check_adv_addr off\n}}\n"
        );
        let config = import_only(&text);
        assert!(config.vrrp_instance[0].skip_check_adv_addr);
        assert!(!config.vrrp_instance[1].skip_check_adv_addr);
        let alone = format!("{INSTANCE}  skip_check_adv_addr\n}}\n");
        assert!(import_only(&alone).vrrp_instance[0].skip_check_adv_addr);
        assert!(!import_only(&format!("{INSTANCE}}}\n")).vrrp_instance[0].skip_check_adv_addr);
    }

    /// keepalived v2.2.7's `vrrp_complete_instance`: a missing priority
    /// comes from the state, a missing state from the priority.
    #[test]
    fn priority_and_state_default_from_each_other_as_keepalived_does() {
        let cases = [
            ("  state MASTER\n", Priority::OWNER, InitialState::Master),
            ("  state BACKUP\n", Priority::DEFAULT, InitialState::Backup),
            ("", Priority::DEFAULT, InitialState::Backup),
            ("  priority 255\n", Priority::OWNER, InitialState::Master),
            (
                "  state MASTER\n  priority 150\n",
                Priority::from_u8(150),
                InitialState::Master,
            ),
            (
                "  state BACKUP\n  priority 255\n",
                Priority::OWNER,
                InitialState::Backup,
            ),
        ];
        for (lines, priority, state) in cases {
            let config = import_only(&format!("{INSTANCE}{lines}}}\n"));
            let inst = &config.vrrp_instance[0];
            assert_eq!((inst.priority, inst.state), (priority, state), "{lines:?}");
        }
    }

    #[test]
    fn odd_layouts_of_the_netns_fixtures() {
        let text = "global_defs { router_id m\n  vrrp_garp_master_delay 1\n}\nvrrp_instance VI_A {\n  state MASTER\n  interface eth0\n  virtual_router_id 51\n  priority 150\n  authentication { auth_type PASS\nauth_pass aminglinux }\nvirtual_ipaddress { 10.99.0.100/24 }\n}\n";
        let config = load(text).unwrap();
        assert_eq!(config.global.router_id.as_deref(), Some("m"));
        assert_eq!(config.global.vrrp_garp_master_delay, Duration::from_secs(1));
        let inst = &config.vrrp_instance[0];
        assert_eq!(inst.state, InitialState::Master);
        assert_eq!(inst.priority, Priority::from_u8(150));
        let auth = inst.authentication.as_ref().unwrap();
        assert_eq!(auth.auth_pass, "aminglinux");
        assert_eq!(&auth.wire_password(), b"aminglin");
        assert_eq!(
            inst.virtual_ipaddress[0].address.to_string(),
            "10.99.0.100/24"
        );
    }

    #[test]
    fn lvs_sync_daemon_with_options_and_in_the_older_forms() {
        let full = format!(
            "global_defs {{\n  lvs_sync_daemon eth1 VI_1 id 7 maxlen 1400 port 8849 ttl 2 group 239.1.2.3\n}}\n{INSTANCE}}}\n"
        );
        assert_eq!(
            load(&full).unwrap().global.lvs_sync_daemon,
            Some(LvsSyncDaemon {
                interface: "eth1".into(),
                vrrp_instance: "VI_1".into(),
                id: Some(7),
                maxlen: Some(1400),
                port: Some(8849),
                ttl: Some(2),
                group: Some("239.1.2.3".parse().unwrap()),
            })
        );
        for (line, id) in [
            ("lvs_sync_daemon eth1 VI_1", None),
            ("lvs_sync_daemon eth1 VI_1 9", Some(9)),
            ("lvs_sync_daemon eth1 inst VI_1 id 0", Some(0)),
        ] {
            let text = format!("global_defs {{\n  {line}\n}}\n{INSTANCE}}}\n");
            let sync = load(&text).unwrap().global.lvs_sync_daemon.unwrap();
            assert_eq!(
                (
                    sync.interface.as_str(),
                    sync.vrrp_instance.as_str(),
                    sync.id
                ),
                ("eth1", "VI_1", id),
                "{line}"
            );
        }
    }

    #[test]
    fn lvs_sync_daemon_errors_name_the_option() {
        let cases = [
            (
                "lvs_sync_daemon eth1",
                "k.conf:2:3: 'lvs_sync_daemon' needs a VRRP instance (running both roles without one is not supported)",
            ),
            (
                "lvs_sync_daemon eth1 VI_1 id 256",
                "k.conf:2:32: bad value '256' for 'lvs_sync_daemon id': expected an integer in 0..=255",
            ),
            (
                "lvs_sync_daemon eth1 VI_1 maxlen 65508",
                "k.conf:2:36: bad value '65508' for 'lvs_sync_daemon maxlen': expected an integer in 1..=65507",
            ),
            (
                "lvs_sync_daemon eth1 VI_1 ttl",
                "k.conf:2:29: 'lvs_sync_daemon ttl' needs a value",
            ),
            (
                "lvs_sync_daemon eth1 VI_1 speed 3",
                "k.conf:2:29: unknown option 'speed' for 'lvs_sync_daemon'",
            ),
            (
                "lvs_sync_daemon eth1 VI_1 group nowhere",
                "k.conf:2:35: bad value 'nowhere' for 'lvs_sync_daemon': expected an IP address",
            ),
            (
                "lvs_timeouts tcp 900 fin 3",
                "k.conf:2:24: unknown option 'fin' for 'lvs_timeouts'",
            ),
            (
                "lvs_timeouts udp 2678401",
                "k.conf:2:20: bad value '2678401' for 'lvs_timeouts udp': expected an integer in 0..=2678400",
            ),
        ];
        for (line, expected) in cases {
            let text = format!("global_defs {{\n  {line}\n}}\n{INSTANCE}}}\n");
            assert_eq!(problems(&text), [expected], "{line}");
        }
        let twice = format!(
            "global_defs {{\n  lvs_sync_daemon eth1 VI_1\n  lvs_sync_daemon eth2 VI_1\n}}\n{INSTANCE}}}\n"
        );
        assert_eq!(
            problems(&twice),
            ["k.conf:3:3: 'lvs_sync_daemon' is given twice"]
        );
    }

    #[test]
    fn notify_fifos_are_read_with_their_scripts_in_either_order() {
        let text = "global_defs {\n  notify_fifo_script \"/usr/bin/reader -v\" root\n  notify_fifo /run/ka.fifo root root\n  vrrp_notify_fifo /run/vrrp.fifo\n  lvs_notify_fifo /run/lvs.fifo\n  lvs_notify_fifo_script /usr/bin/lvs-reader\n  fifo_write_vrrp_states_on_reload\n}\n";
        let global = load(text).unwrap().global;
        assert_eq!(
            global.notify_fifo,
            Some(NotifyFifo {
                path: "/run/ka.fifo".into(),
                user: Some("root".into()),
                group: Some("root".into()),
                script: Some(Command {
                    program: "/usr/bin/reader".into(),
                    args: vec!["-v".into()],
                    user: Some("root".into()),
                    group: None,
                }),
            })
        );
        assert_eq!(
            global.vrrp_notify_fifo,
            Some(NotifyFifo {
                path: "/run/vrrp.fifo".into(),
                user: None,
                group: None,
                script: None,
            })
        );
        let lvs = global.lvs_notify_fifo.unwrap();
        assert_eq!(lvs.script.unwrap().program, "/usr/bin/lvs-reader");
        assert!(global.fifo_write_vrrp_states_on_reload);
        assert!(!Global::default().fifo_write_vrrp_states_on_reload);
    }

    #[test]
    fn notify_fifo_mistakes_are_reported_where_they_are() {
        let cases = [
            ("notify_fifo", "k.conf:2:3: 'notify_fifo' needs a FIFO path"),
            (
                "vrrp_notify_fifo_script /bin/cat",
                "k.conf:2:3: 'vrrp_notify_fifo_script' needs 'vrrp_notify_fifo': the FIFO it reads",
            ),
            (
                "lvs_notify_fifo relative.fifo",
                "k.conf:2:3: lvs_notify_fifo 'relative.fifo': give an absolute path",
            ),
            (
                "notify_fifo /run/a.fifo no-such-user-here",
                "k.conf:2:27: notify_fifo: no user 'no-such-user-here' on this host",
            ),
            (
                "notify_fifo /run/a.fifo root no-such-group-here",
                "k.conf:2:27: notify_fifo: no group 'no-such-group-here' on this host",
            ),
            (
                "notify_fifo /run/a.fifo root root extra",
                "k.conf:2:37: unexpected 'extra' after 'notify_fifo'",
            ),
            (
                "fifo_write_vrrp_states_on_reload yes",
                "k.conf:2:36: unexpected 'yes' after 'fifo_write_vrrp_states_on_reload'",
            ),
        ];
        for (line, expected) in cases {
            let text = format!("global_defs {{\n  {line}\n}}\n");
            assert_eq!(problems(&text), [expected], "{line}");
        }
        let twice = "global_defs {\n  notify_fifo /run/a.fifo\n  notify_fifo /run/b.fifo\n  notify_fifo_script /bin/cat\n  notify_fifo_script /bin/cat\n}\n";
        assert_eq!(
            problems(twice),
            [
                "k.conf:3:3: 'notify_fifo' is given twice",
                "k.conf:5:3: 'notify_fifo_script' is given twice"
            ]
        );
    }

    #[test]
    fn lvs_timeouts_are_whole_seconds() {
        let text = "global_defs {\n  lvs_timeouts tcp 900 udp 30\n}\n";
        assert_eq!(
            load(text).unwrap().global.lvs_timeouts,
            LvsTimeouts {
                tcp: Some(Duration::from_secs(900)),
                tcpfin: None,
                udp: Some(Duration::from_secs(30)),
            }
        );
    }

    #[test]
    fn unknown_keywords_are_errors_everywhere() {
        let text = format!(
            "global_defs {{\n  lvs_flush\n}}\nvrrp_instance_typo X {{\n}}\n{INSTANCE}  use_ipvlan\n}}\nvirtual_server 10.0.0.1 80 {{\n  protocol TCP\n  real_server 10.0.1.1 80 {{\n    BFD_CHECK {{\n    }}\n  }}\n}}\n"
        );
        assert_eq!(
            problems(&text),
            [
                "k.conf:2:3: keepalived's 'lvs_flush' in global_defs is not supported: the appliance removes only what it programmed and keeps its table across restarts (see `graceful_remove`)",
                "k.conf:4:1: unknown keyword 'vrrp_instance_typo' at top level; did you mean 'vrrp_instance'?",
                "k.conf:9:3: keepalived's 'use_ipvlan' in vrrp_instance is not supported: not yet; `use_vmac` makes a macvlan with the virtual MAC",
                "k.conf:14:5: keepalived's 'BFD_CHECK' in real_server is not supported: a VRRP instance's advert timeout or a real server's check detects the failure",
            ]
        );
    }

    #[test]
    fn ah_authentication_is_rejected() {
        let text =
            format!("{INSTANCE}  authentication {{\n    auth_type AH\n    auth_pass x\n  }}\n}}\n");
        assert_eq!(
            problems(&text),
            ["k.conf:5:15: auth_type AH (IPsec) is not supported: use PASS or no authentication"]
        );
    }

    #[test]
    fn bad_values_name_keyword_and_value() {
        let text = "virtual_server 10.0.0.1 80 {\n  lb_algo fastest\n  lb_kind NATT\n  delay_loop soon\n  protocol ICMP\n}\n";
        assert_eq!(
            problems(text),
            [
                "k.conf:2:11: bad value 'fastest' for 'lb_algo': expected one of rr wrr lc wlc lblc lblcr dh sh sed nq mh fo ovf twos",
                "k.conf:3:11: bad value 'NATT' for 'lb_kind': expected NAT, DR or TUN",
                "k.conf:4:14: bad value 'soon' for 'delay_loop': expected seconds (decimals allowed) in 0..=4294967295",
                "k.conf:5:12: bad value 'ICMP' for 'protocol': expected TCP, UDP or SCTP",
            ]
        );
    }

    #[test]
    fn unsupported_address_options_are_errors() {
        let text = format!(
            "{INSTANCE}  virtual_ipaddress {{\n    10.0.0.1/24 brd 10.0.0.255 dev eth1\n    10.0.0.2 label eth0:1 scope link\n  }}\n}}\n"
        );
        assert_eq!(
            problems(&text),
            [
                "k.conf:5:17: unsupported virtual address option 'brd' (supported: dev, label, scope)"
            ]
        );
    }

    #[test]
    fn track_files_with_weights_reverse_and_init_file() {
        let config = load(&format!(
            "track_file up {{\n  file /run/up\n  weight -10 reverse\n  init_file overwrite 5\n}}\n\
             vrrp_track_file old {{\n  file \"/run/old file\"\n}}\n\
             {INSTANCE}  track_file {{\n    up weight 254 noreverse\n    old\n    up weight 0\n  }}\n}}\n"
        ));
        let problems = config.unwrap_err();
        assert_eq!(
            problems,
            ["k.conf:15:5: vrrp_instance 'VI_1' tracks track_file 'up' twice"]
        );
        let config = load(&format!(
            "track_file up {{\n  file /run/up\n  weight -10 reverse\n  init_file overwrite 5\n}}\n\
             vrrp_track_file old {{\n  file \"/run/old file\"\n}}\n\
             {INSTANCE}  track_file {{\n    up weight 254 noreverse\n    old\n  }}\n}}\n"
        ))
        .unwrap();
        let [up, old] = config.track_file.as_slice() else {
            panic!("{:?}", config.track_file)
        };
        assert_eq!(
            (up.file.to_str(), i32::from(up.weight), up.reverse),
            (Some("/run/up"), -10, true)
        );
        assert_eq!(
            up.init_file,
            Some(InitFile {
                value: 5,
                overwrite: true
            })
        );
        assert_eq!(
            (
                old.file.to_str(),
                i32::from(old.weight),
                old.reverse,
                old.init_file
            ),
            (Some("/run/old file"), 1, false, None)
        );
        let tracks = &config.vrrp_instance[0].track_file;
        assert_eq!(tracks[0].weight.map(i32::from), Some(254));
        assert_eq!(tracks[0].reverse, Some(false));
        assert_eq!((tracks[1].weight, tracks[1].reverse), (None, None));
    }

    #[test]
    fn file_checks_take_their_own_weight_or_the_files() {
        let text = "track_file f {\n  file /run/f\n  weight 3 reverse\n}\n\
                    virtual_server 10.0.0.1 80 {\n  protocol TCP\n  real_server 10.0.1.1 80 {\n    FILE_CHECK {\n      track_file f\n    }\n    FILE_CHECK {\n      track_file f\n      weight -70000 reverse\n    }\n  }\n}\n";
        let config = load(text).unwrap();
        let rs = &config.virtual_server[0].real_server[0];
        assert_eq!(
            rs.file_check,
            [
                FileCheck {
                    track_file: "f".into(),
                    weight: None,
                    reverse: false
                },
                FileCheck {
                    track_file: "f".into(),
                    weight: Some(-70000),
                    reverse: true
                },
            ]
        );
        assert_eq!(
            problems(&text.replace("track_file f\n    }", "track_file g\n      weight x\n    }")),
            [
                "k.conf:9:7: real_server 10.0.1.1:80: FILE_CHECK tracks unknown track_file 'g'",
                "k.conf:10:14: bad value 'x' for 'weight': expected an integer in -2147483647..=2147483647",
            ]
        );
        assert_eq!(
            problems(&text.replace("      track_file f\n    }", "    }")),
            ["k.conf:8:5: FILE_CHECK needs track_file"]
        );
    }

    #[test]
    fn tracked_processes_with_parameters_quorums_delays_and_weights() {
        let config = load(&format!(
            "vrrp_track_process web {{\n  process nginx\n  weight -20 reverse\n  quorum 2\n  quorum_max 4\n  delay 1.5\n  fork_delay 0.25\n}}\n\
             vrrp_track_process cmd {{\n  process /usr/bin/sleep 300 \"a b\"\n  param_match initial\n}}\n\
             vrrp_track_process none {{\n  process httpd\n  param_match\n  quorum_max 0\n  full_command\n}}\n\
             {INSTANCE}  track_process {{\n    web weight 10 noreverse\n    cmd\n    none weight -3 reverse\n  }}\n}}\n"
        ))
        .unwrap();
        let [web, cmd, none] = config.vrrp_track_process.as_slice() else {
            panic!("{:?}", config.vrrp_track_process)
        };
        assert_eq!(
            (web.process.as_str(), i32::from(web.weight), web.reverse),
            ("nginx", -20, true)
        );
        assert_eq!((web.quorum, web.quorum_max), (2, Some(4)));
        assert_eq!(
            (web.fork_delay, web.terminate_delay),
            (Duration::from_millis(250), Duration::from_millis(1500))
        );
        assert!(!web.full_command && web.params.is_empty() && web.param_match.is_none());
        assert_eq!(cmd.params, ["300", "a b"]);
        assert_eq!(cmd.param_match, Some(ParamMatch::Initial));
        assert_eq!(i32::from(cmd.weight), 0, "keepalived's code defaults to 0");
        assert_eq!(cmd.quorum, 1);
        assert_eq!(none.param_match, Some(ParamMatch::Exact));
        assert!(none.full_command);
        assert_eq!(none.quorum_max, Some(0));
        let tracks = &config.vrrp_instance[0].track_process;
        assert_eq!(
            tracks
                .iter()
                .map(|t| (t.name.as_str(), t.weight.map(i32::from), t.reverse))
                .collect::<Vec<_>>(),
            [
                ("web", Some(10), Some(false)),
                ("cmd", None, None),
                ("none", Some(-3), Some(true)),
            ]
        );
    }

    #[test]
    fn bad_tracked_processes_name_what_is_wrong() {
        assert_eq!(
            problems(&format!(
                "vrrp_track_process p {{\n  weight 300\n  param_match fuzzy\n  quorum 0\n  delay 3601\n}}\n\
                 vrrp_track_process q {{\n  process a_very_long_process_name\n  quorum 3\n  quorum_max 2\n}}\n\
                 {INSTANCE}  track_process {{\n    q\n    r\n    q weight 1\n  }}\n}}\n"
            )),
            [
                "k.conf:1:1: vrrp_track_process 'p' has no 'process'",
                "k.conf:2:10: bad value '300' for 'weight': expected an integer in -254..=254",
                "k.conf:3:15: bad value 'fuzzy' for 'param_match': expected 'initial' or 'partial' (or nothing: exact)",
                "k.conf:4:10: bad value '0' for 'quorum': expected an integer in 1..=65535",
                "k.conf:5:9: bad value '3601' for 'delay': expected seconds (decimals allowed) in 0..=3600",
                "k.conf:8:3: vrrp_track_process 'q': process name 'a_very_long_process_name' is longer than the 15 bytes the kernel keeps of a process name, so it never matches; add 'full_command' to match the command",
                "k.conf:10:3: vrrp_track_process 'q': quorum_max 2 is less than quorum 3",
                "k.conf:17:5: vrrp_instance 'VI_1' tracks unknown vrrp_track_process 'r'",
                "k.conf:18:5: vrrp_instance 'VI_1' tracks vrrp_track_process 'q' twice",
            ]
        );
    }

    #[test]
    fn bad_track_files_name_what_is_wrong() {
        assert_eq!(
            problems(&format!(
                "track_file f {{\n  weight 255\n  init_file 1 twice\n}}\n\
                 {INSTANCE}  track_file {{\n    f weight 3 sideways\n    g\n    f reverse\n  }}\n}}\n"
            )),
            [
                "k.conf:1:1: track_file 'f' has no 'file'",
                "k.conf:2:10: bad value '255' for 'weight': expected an integer in -254..=254",
                "k.conf:3:15: bad value 'twice' for 'init_file': expected an integer or 'overwrite'",
                "k.conf:9:16: bad value 'sideways' for 'f': expected 'reverse' or 'noreverse' after the weight",
                "k.conf:10:5: vrrp_instance 'VI_1' tracks unknown track_file 'g'",
                "k.conf:11:7: unexpected 'reverse' after 'f': expected 'weight N [reverse|noreverse]'",
            ]
        );
        assert_eq!(
            problems(&format!(
                "track_file f {{\n  file /f\n}}\ntrack_file f {{\n  file /g\n}}\n{INSTANCE}  track_file {{\n    g\n  }}\n}}\n"
            )),
            [
                "k.conf:4:1: duplicate track_file name 'f' (first defined at k.conf:1:1)",
                "k.conf:11:5: vrrp_instance 'VI_1' tracks unknown track_file 'g'",
            ]
        );
    }

    #[test]
    fn scripts_become_argv_with_user_and_group() {
        let text = format!(
            "vrrp_script chk {{\n  script \"/bin/check --port 80 'a b'\"\n  user nobody nogroup\n  weight -20\n  timeout 2\n}}\n{INSTANCE}  notify_master \"/usr/bin/notify.sh master\" root\n  track_script {{\n    chk weight 10\n  }}\n}}\n"
        );
        // Imported faithfully; whether they can run as those users is the
        // script check's (script::check).
        let config = import_only(&text);
        let script = &config.vrrp_script[0];
        assert_eq!(script.script.program, "/bin/check");
        assert_eq!(script.script.args, ["--port", "80", "a b"]);
        assert_eq!(script.script.user.as_deref(), Some("nobody"));
        assert_eq!(script.script.group.as_deref(), Some("nogroup"));
        assert_eq!(script.weight.get(), -20);
        assert_eq!(script.timeout, Some(Duration::from_secs(2)));
        let inst = &config.vrrp_instance[0];
        let notify = inst.notify_master.as_ref().unwrap();
        assert_eq!(
            (notify.program.as_str(), notify.args.as_slice()),
            ("/usr/bin/notify.sh", ["master".to_string()].as_slice())
        );
        assert_eq!(notify.user.as_deref(), Some("root"));
        assert_eq!(inst.track_script[0].weight.map(TrackWeight::get), Some(10));
    }

    /// keepalived's check_data.c: a check's own keyword, else its real
    /// server's, else its virtual server's, else the check type's default
    /// (HTTP_GET's and SSL_GET's delay_before_retry is 3 s, others' 1 s),
    /// wherever in the block each stands; a MISC_CHECK takes no timeout.
    #[test]
    fn checks_inherit_their_timing_from_the_real_and_virtual_server() {
        let text = "virtual_server 10.0.0.1 80 {\n  protocol TCP\n  \
            real_server 10.0.1.1 80 {\n    TCP_CHECK {\n      retry 7\n    }\n    \
            HTTP_GET {\n      url {\n        path /\n      }\n    }\n    \
            MISC_CHECK {\n      misc_path /bin/true\n    }\n    retry 4\n    warmup 2\n  }\n  \
            real_server 10.0.1.2 80 {\n    inhibit_on_failure off\n    SMTP_CHECK {\n      \
            delay_before_retry 9\n      host {\n        connect_ip 10.0.2.1\n        \
            connect_timeout 8\n      }\n      host {\n        connect_ip 10.0.2.2\n      }\n    }\n  }\n  \
            real_server 10.0.1.3 80 {\n    HTTP_GET {\n      url {\n        path /\n      }\n    }\n  }\n  \
            retry 3\n  delay_before_retry 5\n  connect_timeout 6\n  inhibit_on_failure\n}\n";
        let config = load(text).unwrap();
        let rs = &config.virtual_server[0].real_server;
        let Check::Tcp(tcp) = &rs[0].check[0] else {
            panic!("{:?}", rs[0].check)
        };
        // Own retry; the real server's warmup; the virtual server's delay
        // and timeout.
        assert_eq!(
            (
                tcp.retry,
                tcp.warmup,
                tcp.delay_before_retry,
                tcp.connect_timeout
            ),
            (
                7,
                Some(Duration::from_secs(2)),
                Duration::from_secs(5),
                Duration::from_secs(6)
            )
        );
        let Check::HttpGet(http) = &rs[0].check[1] else {
            panic!("{:?}", rs[0].check)
        };
        assert_eq!(
            (http.retry, http.delay_before_retry),
            (4, Duration::from_secs(5))
        );
        let Check::Misc(misc) = &rs[0].check[2] else {
            panic!("{:?}", rs[0].check)
        };
        assert_eq!(misc.retry, 4, "the real server's retry, not MISC_CHECK's 0");
        assert!(rs[0].inhibit_on_failure, "the virtual server's");
        assert!(!rs[1].inhibit_on_failure, "its own 'off'");
        // SMTP hosts: the block's delay is theirs; a host's own timeout
        // stands, the other takes the virtual server's.
        let smtp: Vec<&SmtpCheck> = rs[1]
            .check
            .iter()
            .map(|c| match c {
                Check::Smtp(s) => s,
                other => panic!("{other:?}"),
            })
            .collect();
        assert_eq!(smtp.len(), 2);
        assert!(
            smtp.iter()
                .all(|s| s.delay_before_retry == Duration::from_secs(9))
        );
        assert!(smtp.iter().all(|s| s.retry == 3));
        assert_eq!(
            (smtp[0].connect_timeout, smtp[1].connect_timeout),
            (Duration::from_secs(8), Duration::from_secs(6))
        );
        // Without any: the check type's defaults (keepalived's 3 s for
        // HTTP_GET), bar the virtual server's.
        let alone = load(
            "virtual_server 10.0.0.1 80 {\n  protocol TCP\n  real_server 10.0.1.1 80 {\n    \
             HTTP_GET {\n      url {\n        path /\n      }\n    }\n    TCP_CHECK {\n    }\n  }\n}\n",
        )
        .unwrap();
        let checks = &alone.virtual_server[0].real_server[0].check;
        let (Check::HttpGet(http), Check::Tcp(tcp)) = (&checks[0], &checks[1]) else {
            panic!("{checks:?}")
        };
        assert_eq!(
            (http.delay_before_retry, http.retry, tcp.delay_before_retry),
            (Duration::from_secs(3), 1, Duration::from_secs(1))
        );
    }

    /// `sh-*` belongs to sh and `mh-*` to mh (keepalived ignores them
    /// elsewhere, with an error: here the error stops the load).
    #[test]
    fn scheduler_flags_need_their_scheduler() {
        let text = "virtual_server 10.0.0.1 80 {\n  protocol TCP\n  sh-port\n  lb_algo wrr\n  \
                    real_server 10.0.1.1 80 {\n  }\n}\n";
        assert_eq!(
            problems(text),
            [
                "k.conf:3:3: 'sh-port' applies to the sh scheduler only (lb_algo is wrr); \
              flag-1/flag-2 set the flag for any scheduler"
            ]
        );
    }

    #[test]
    fn virtual_server_details() {
        let text = "virtual_server fwmark 5 {\n  persistence_timeout\n  persistence_granularity 255.255.255.0\n  lvs_sched sh\n  lvs_method TUN\n  real_server 10.0.1.1 8080 {\n    weight 0\n    MISC_CHECK {\n      misc_path \"/bin/true x\"\n      misc_dynamic\n    }\n    HTTP_GET {\n      url {\n        path /health\n        status_code 204\n      }\n      nb_get_retry 4\n    }\n  }\n}\n";
        let config = load(text).unwrap();
        let vs = &config.virtual_server[0];
        assert_eq!(vs.service, Service::Fwmark(5));
        assert_eq!(vs.persistence_timeout, Some(Duration::from_secs(360)));
        assert_eq!(vs.persistence_granularity, Some(24));
        assert_eq!((vs.lb_algo, vs.lb_kind), (Scheduler::Sh, LbKind::Tun));
        let rs = &vs.real_server[0];
        assert_eq!(rs.weight.get(), 0);
        let Check::Misc(misc) = &rs.check[0] else {
            panic!("{:?}", rs.check)
        };
        assert_eq!(
            (
                misc.misc_path.program.as_str(),
                misc.retry,
                misc.misc_dynamic
            ),
            ("/bin/true", 0, true)
        );
        let Check::HttpGet(http) = &rs.check[1] else {
            panic!("{:?}", rs.check)
        };
        assert_eq!(
            (http.retry, http.connect_timeout),
            (4, Duration::from_secs(5))
        );
        assert_eq!(http.url[0].status_code, Some(StatusCodes::one(204)));
    }

    /// keepalived v2.2.7's `alloc_vsg_entry` forms: `IP`, `IP-N` (last
    /// octet, or last IPv6 group in hex), `IP-IP`, `IP/PREFIX`, a port of 0
    /// or none, `fwmark N [inet|inet6]`.
    #[test]
    fn virtual_server_group_entries() {
        let text = "virtual_server_group web {\n  10.0.0.1-3 80\n  10.0.0.7-10.0.0.8 443\n  \
            10.0.1.0/30 0\n  10.0.2.1\n  2001:db8::1-a 80\n  fwmark 5\n  fwmark 6 inet6\n}\n\
            virtual_server group web {\n  real_server 10.0.9.1 80\n}\n";
        let (config, warnings) = import_warned(text);
        let range = |address: &str, last: Option<&str>, port| {
            GroupEntry::Range(GroupRange {
                address: address.parse().unwrap(),
                last: last.map(|l| l.parse().unwrap()),
                port,
            })
        };
        assert_eq!(
            config.virtual_server_group,
            [VirtualServerGroup {
                name: "web".into(),
                entries: vec![
                    range("10.0.0.1", Some("10.0.0.3"), 80),
                    range("10.0.0.7", Some("10.0.0.8"), 443),
                    range("10.0.1.0", Some("10.0.1.3"), 0),
                    range("10.0.2.1", None, 0),
                    range("2001:db8::1", Some("2001:db8::a"), 80),
                    GroupEntry::Fwmark(GroupFwmark {
                        fwmark: 5,
                        family: None
                    }),
                    GroupEntry::Fwmark(GroupFwmark {
                        fwmark: 6,
                        family: Some(MarkFamily::Inet6)
                    }),
                ],
            }]
        );
        let vs = &config.virtual_server[0];
        assert_eq!(vs.service, Service::Group("web".into()));
        // A group with addresses defaults to UDP, as keepalived.
        assert_eq!(vs.protocol, Protocol::Udp);
        assert_eq!(
            warnings,
            [
                "k.conf:10:1: virtual_server without 'protocol' is UDP, as in keepalived: write 'protocol TCP' for TCP"
            ]
        );
        // A group of marks only has no protocol to default.
        let (config, warnings) = import_warned(
            "virtual_server group m {\n  real_server 10.0.9.1 80\n}\nvirtual_server_group m {\n  fwmark 1\n}\n",
        );
        assert_eq!(config.virtual_server[0].protocol, Protocol::Tcp);
        assert!(warnings.is_empty(), "{warnings:?}");
    }

    /// keepalived's `virtual_server > weight`: the weight of the block's
    /// real servers that set none, wherever it stands in the block.
    #[test]
    fn a_virtual_servers_weight_is_its_real_servers_default() {
        let config = import_only(
            "virtual_server 10.0.0.1 80 {\n  protocol TCP\n  real_server 10.0.1.1 80 {\n  }\n  \
             real_server 10.0.1.2 80 {\n    weight 0\n  }\n  weight 5\n}\n",
        );
        let weights: Vec<u32> = config.virtual_server[0]
            .real_server
            .iter()
            .map(|rs| rs.weight.get())
            .collect();
        assert_eq!(weights, [5, 0]);
        assert_eq!(
            problems("virtual_server 10.0.0.1 80 {\n  protocol TCP\n  weight 0\n}\n"),
            ["k.conf:3:10: bad value '0' for 'weight': expected an integer in 1..=65535"]
        );
    }

    #[test]
    fn virtual_server_group_bad_entries_say_where() {
        let text = "virtual_server_group web {\n  10.0.0.5-3 80\n  10.0.0.1-300 80\n  10.0.0.1/33 80\n  \
            10.0.0.1/24 80\n  10.0.0.1-2001:db8::1 80\n  fwmark 5 ipx\n  nowhere 80\n  10.0.0.1 80\n}\n";
        assert_eq!(
            problems(text),
            [
                "k.conf:2:3: virtual_server_group entry '10.0.0.5-3': the range's end is not after its start",
                "k.conf:3:3: virtual_server_group entry '10.0.0.1-300': the range's end is not a last octet 0..=255",
                "k.conf:4:3: virtual_server_group entry '10.0.0.1/33': the prefix length is not 1..=32",
                "k.conf:5:3: virtual_server_group entry '10.0.0.1/24': the address has bits set past the prefix",
                "k.conf:6:3: virtual_server_group entry '10.0.0.1-2001:db8::1': the range's end is not a last octet 0..=255",
                "k.conf:7:12: bad value 'ipx' for 'fwmark': expected 'inet' or 'inet6'",
                "k.conf:8:3: virtual_server_group entry 'nowhere': expected an IP address, a range IP-END or IP/PREFIX, or 'fwmark'",
            ]
        );
    }

    #[test]
    fn decimal_seconds() {
        assert_eq!(parse_decimal_secs("1"), Some(Duration::from_secs(1)));
        assert_eq!(parse_decimal_secs("0.92"), Some(Duration::from_millis(920)));
        assert_eq!(
            parse_decimal_secs(".000001"),
            Some(Duration::from_micros(1))
        );
        assert_eq!(parse_decimal_secs("1.0000001"), None);
        assert_eq!(parse_decimal_secs("-1"), None);
        assert_eq!(parse_decimal_secs("."), None);
        assert_eq!(parse_decimal_secs("1s"), None);
    }

    #[test]
    fn granularity_from_netmask_or_length() {
        assert_eq!(parse_granularity("255.255.255.0"), Some(24));
        assert_eq!(parse_granularity("0.0.0.0"), Some(0));
        assert_eq!(parse_granularity("255.0.255.0"), None);
        assert_eq!(parse_granularity("64"), Some(64));
        assert_eq!(parse_granularity("129"), None);
    }

    #[test]
    fn prefixed_addresses() {
        assert_eq!(
            parse_prefixed("10.99.0.100/24")
                .map(|n| n.to_string())
                .as_deref(),
            Some("10.99.0.100/24")
        );
        assert_eq!(
            parse_prefixed("192.168.188.100")
                .map(|n| n.to_string())
                .as_deref(),
            Some("192.168.188.100/32")
        );
        assert_eq!(parse_prefixed("fe80::1").map(|n| n.prefix_len()), Some(128));
        assert_eq!(parse_prefixed("10.0.0.1/33"), None);
    }
}
