//! A small SMTP client (RFC 5321), shared by SMTP_CHECK and the alert
//! mail: the reply decoder and the command and message texts as pure
//! functions ([`Replies`], [`helo`], [`message`]...), and [`Client`], the
//! conversation over any stream with every step bounded in time and every
//! reply line in length, so a hostile or stuck server (garbage, endless
//! lines, a byte a minute) costs one timeout and never a hang or a panic.

use std::time::{Duration, SystemTime, UNIX_EPOCH};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

/// The longest reply line taken, CRLF included: RFC 5321's limit
/// (4.5.3.1.5), and keepalived's checker buffer (`SMTP_BUFF_MAX`).
pub const MAX_LINE: usize = 512;

/// Why a conversation failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Error {
    #[error("reply line longer than {MAX_LINE} bytes")]
    LineTooLong,
    #[error("not an SMTP reply line")]
    NotReply,
    #[error("the server closed the connection")]
    Closed,
    #[error("no reply in time")]
    Timeout,
    #[error("{0}")]
    Io(std::io::ErrorKind),
    /// More came after the reply to STARTTLS, before TLS (RFC 3207 5).
    #[error("the server said more after its STARTTLS reply")]
    Injected,
    /// The server answered `step` with `code` where `expected` was due.
    #[error("{step} answered {code}, expected {expected}")]
    Unexpected {
        step: &'static str,
        code: u16,
        expected: u16,
    },
}

impl From<std::io::Error> for Error {
    fn from(error: std::io::Error) -> Self {
        Error::Io(error.kind())
    }
}

/// One reply line: its code, and whether more lines of the same reply
/// follow (`250-`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReplyLine {
    pub code: u16,
    pub more: bool,
}

/// Parses one reply line (without its line end): three digits, the first
/// 2 to 5, then a space, a `-` or nothing (RFC 5321 4.2).
pub fn reply_line(line: &[u8]) -> Result<ReplyLine, Error> {
    let digits = line.get(..3).ok_or(Error::NotReply)?;
    if !digits.iter().all(u8::is_ascii_digit) || !(b'2'..=b'5').contains(&digits[0]) {
        return Err(Error::NotReply);
    }
    let code = digits
        .iter()
        .fold(0u16, |code, d| code * 10 + u16::from(d - b'0'));
    match line.get(3) {
        None | Some(b' ') => Ok(ReplyLine { code, more: false }),
        Some(b'-') => Ok(ReplyLine { code, more: true }),
        Some(_) => Err(Error::NotReply),
    }
}

/// Decodes replies from the bytes received: lines end with LF (a CR
/// before it is dropped; keepalived's checker also takes a bare LF), a
/// multi-line reply counts once, with its last line's code. Holds at most
/// [`MAX_LINE`] bytes of an unfinished line.
#[derive(Debug, Default)]
pub struct Replies {
    pending: Vec<u8>,
}

impl Replies {
    /// Takes received bytes; more than a line's worth without a line end
    /// is an error.
    pub fn feed(&mut self, bytes: &[u8]) -> Result<(), Error> {
        self.pending.extend_from_slice(bytes);
        if self.longest_line() > MAX_LINE {
            return Err(Error::LineTooLong);
        }
        Ok(())
    }

    /// The longest line held, its LF counted (an unfinished one, as if
    /// it had it).
    fn longest_line(&self) -> usize {
        self.pending
            .split(|&b| b == b'\n')
            .map(|l| l.len() + 1)
            .max()
            .unwrap_or(0)
    }

    /// The next complete reply's code, if the bytes so far hold one.
    pub fn take(&mut self) -> Result<Option<u16>, Error> {
        loop {
            let Some(end) = self.pending.iter().position(|&b| b == b'\n') else {
                return Ok(None);
            };
            let line: Vec<u8> = self.pending.drain(..=end).collect();
            let line = line.strip_suffix(b"\n").unwrap_or(&line);
            let line = line.strip_suffix(b"\r").unwrap_or(line);
            let parsed = reply_line(line)?;
            if !parsed.more {
                return Ok(Some(parsed.code));
            }
        }
    }
}

/// `HELO name`.
pub fn helo(name: &str) -> String {
    format!("HELO {}\r\n", one_line(name))
}

/// `MAIL FROM:<address>`.
pub fn mail_from(address: &str) -> String {
    format!("MAIL FROM:<{}>\r\n", one_line(address))
}

/// `RCPT TO:<address>`.
pub fn rcpt_to(address: &str) -> String {
    format!("RCPT TO:<{}>\r\n", one_line(address))
}

/// `EHLO name`, the extended greeting STARTTLS needs.
pub fn ehlo(name: &str) -> String {
    format!("EHLO {}\r\n", one_line(name))
}

pub const STARTTLS: &str = "STARTTLS\r\n";
pub const DATA: &str = "DATA\r\n";
pub const QUIT: &str = "QUIT\r\n";

/// The text sent after DATA, as keepalived's `body_cmd` lays it out
/// (Date, From, Subject, X-Mailer, To, a blank line, the body) and ended by
/// the lone dot. Header values lose any line break (no header can be
/// injected through a name in the config) and body lines starting with a
/// dot get another (RFC 5321 4.5.2), which keepalived leaves out.
pub fn message(date: &str, from: &str, subject: &str, to: &[String], body: &str) -> String {
    let to: Vec<String> = to.iter().map(|a| one_line(a)).collect();
    let mut text = format!(
        "Date: {}\r\nFrom: {}\r\nSubject: {}\r\nX-Mailer: Keepalived\r\nTo: {}\r\n\r\n",
        one_line(date),
        one_line(from),
        one_line(subject),
        to.join(", ")
    );
    for line in body.lines() {
        if line.starts_with('.') {
            text.push('.');
        }
        text.push_str(line);
        text.push_str("\r\n");
    }
    text.push_str("\r\n.\r\n");
    text
}

/// `text` with CR and LF replaced by spaces.
fn one_line(text: &str) -> String {
    text.replace(['\r', '\n'], " ")
}

/// `at` as an RFC 5322 date, in UTC (keepalived writes local time; the
/// instant is the same).
pub fn date(at: SystemTime) -> String {
    let secs = at.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs());
    let days = secs / 86400;
    let rem = secs % 86400;
    // 1970-01-01 was a Thursday.
    let weekday = ["Thu", "Fri", "Sat", "Sun", "Mon", "Tue", "Wed"][(days % 7) as usize];
    let (year, month, day) = civil(days);
    let months = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ];
    format!(
        "{weekday}, {day:02} {} {year} {:02}:{:02}:{:02} +0000",
        months[(month - 1) as usize],
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

/// The civil date of a day count since 1970-01-01 (Howard Hinnant's
/// `civil_from_days`).
fn civil(days: u64) -> (u64, u64, u64) {
    let z = days + 719_468;
    let era = z / 146_097;
    let doe = z % 146_097;
    let yoe = (doe - doe / 1460 + doe / 36524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + u64::from(month <= 2);
    (year, month, day)
}

/// One SMTP conversation over `stream`: each reply awaited at most `step`.
pub struct Client<S> {
    stream: S,
    replies: Replies,
    step: Duration,
}

impl<S: AsyncRead + AsyncWrite + Unpin> Client<S> {
    pub fn new(stream: S, step: Duration) -> Self {
        Self {
            stream,
            replies: Replies::default(),
            step,
        }
    }

    /// The next reply's code.
    pub async fn reply(&mut self) -> Result<u16, Error> {
        let read = async {
            let mut buf = [0u8; MAX_LINE];
            loop {
                if let Some(code) = self.replies.take()? {
                    return Ok(code);
                }
                let len = self.stream.read(&mut buf).await?;
                if len == 0 {
                    return Err(Error::Closed);
                }
                self.replies.feed(buf.get(..len).unwrap_or_default())?;
            }
        };
        tokio::time::timeout(self.step, read)
            .await
            .map_err(|_| Error::Timeout)?
    }

    /// The next reply, which must be `expected` (`step` names it).
    pub async fn expect(&mut self, step: &'static str, expected: u16) -> Result<(), Error> {
        match self.reply().await? {
            code if code == expected => Ok(()),
            code => Err(Error::Unexpected {
                step,
                code,
                expected,
            }),
        }
    }

    /// Sends `text`.
    pub async fn send(&mut self, text: &str) -> Result<(), Error> {
        tokio::time::timeout(self.step, self.stream.write_all(text.as_bytes()))
            .await
            .map_err(|_| Error::Timeout)??;
        Ok(())
    }

    /// The stream, for a TLS handshake after STARTTLS's 220; an error if
    /// the server sent more after that reply (RFC 3207 5: it would be
    /// taken as said inside TLS).
    pub fn into_inner(self) -> Result<S, Error> {
        if self.replies.pending.is_empty() {
            Ok(self.stream)
        } else {
            Err(Error::Injected)
        }
    }

    /// Sends a command and awaits its reply, which must be `expected`.
    pub async fn command(
        &mut self,
        step: &'static str,
        text: &str,
        expected: u16,
    ) -> Result<(), Error> {
        self.send(text).await?;
        self.expect(step, expected).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reply_lines_are_three_digits_then_space_dash_or_end() {
        assert_eq!(
            reply_line(b"220 mx.example.org ESMTP"),
            Ok(ReplyLine {
                code: 220,
                more: false
            })
        );
        assert_eq!(
            reply_line(b"250-PIPELINING"),
            Ok(ReplyLine {
                code: 250,
                more: true
            })
        );
        assert_eq!(
            reply_line(b"221"),
            Ok(ReplyLine {
                code: 221,
                more: false
            })
        );
        for bad in [
            &b""[..],
            b"22",
            b"2200 x",
            b"abc def",
            b"120 x",
            b"620 x",
            b"22x ",
            b"\xff\xfe\xfd",
        ] {
            assert_eq!(reply_line(bad), Err(Error::NotReply), "{bad:?}");
        }
    }

    #[test]
    fn multi_line_replies_count_once_with_their_last_code() {
        let mut replies = Replies::default();
        replies
            .feed(b"250-mx.example.org\r\n250-SIZE 10\r\n250 HELP\r\n354 go")
            .unwrap();
        assert_eq!(replies.take(), Ok(Some(250)));
        assert_eq!(replies.take(), Ok(None), "354 has no line end yet");
        replies.feed(b" ahead\n").unwrap();
        assert_eq!(replies.take(), Ok(Some(354)), "a bare LF ends a line");
        assert_eq!(replies.take(), Ok(None));
        // Split anywhere, byte by byte.
        let mut replies = Replies::default();
        for b in b"220-a\r\n220 b\r\n" {
            replies.feed(&[*b]).unwrap();
        }
        assert_eq!(replies.take(), Ok(Some(220)));
    }

    #[test]
    fn garbage_and_endless_lines_are_errors() {
        let mut replies = Replies::default();
        replies.feed(b"HTTP/1.1 400 Bad Request\r\n").unwrap();
        assert_eq!(replies.take(), Err(Error::NotReply));
        let mut replies = Replies::default();
        assert_eq!(replies.feed(&[b'2'; MAX_LINE + 1]), Err(Error::LineTooLong));
        let mut replies = Replies::default();
        let mut long = vec![b'x'; MAX_LINE + 5];
        long.extend_from_slice(b"\r\n");
        assert_eq!(replies.feed(&long), Err(Error::LineTooLong));
        // Exactly the limit, CRLF included, is taken.
        let mut replies = Replies::default();
        let mut line = b"250 ".to_vec();
        line.resize(MAX_LINE - 2, b'y');
        line.extend_from_slice(b"\r\n");
        replies.feed(&line).unwrap();
        assert_eq!(replies.take(), Ok(Some(250)));
    }

    #[test]
    fn commands_and_message_are_keepalived_s() {
        assert_eq!(helo("lb1"), "HELO lb1\r\n");
        assert_eq!(mail_from("lb@x"), "MAIL FROM:<lb@x>\r\n");
        assert_eq!(rcpt_to("ops@x\r\nRSET"), "RCPT TO:<ops@x  RSET>\r\n");
        let text = message(
            "Sun, 06 Dec 2026 20:00:00 +0000",
            "lb@x",
            "[lb1] VRRP Instance VI_1 - Entering MASTER state",
            &["a@x".into(), "b@x".into()],
            "=> VRRP Instance is now owning VRRP VIPs <=",
        );
        assert_eq!(
            text,
            "Date: Sun, 06 Dec 2026 20:00:00 +0000\r\nFrom: lb@x\r\n\
             Subject: [lb1] VRRP Instance VI_1 - Entering MASTER state\r\n\
             X-Mailer: Keepalived\r\nTo: a@x, b@x\r\n\r\n\
             => VRRP Instance is now owning VRRP VIPs <=\r\n\r\n.\r\n"
        );
        let stuffed = message("d", "f", "s\r\nBcc: evil@x", &[], ".\nx");
        assert!(stuffed.contains("Subject: s  Bcc: evil@x\r\n"), "{stuffed}");
        assert!(
            stuffed.ends_with("\r\n\r\n..\r\nx\r\n\r\n.\r\n"),
            "{stuffed}"
        );
    }

    #[test]
    fn dates_are_rfc_5322() {
        assert_eq!(date(UNIX_EPOCH), "Thu, 01 Jan 1970 00:00:00 +0000");
        let at = UNIX_EPOCH + Duration::from_secs(1_614_591_848);
        assert_eq!(date(at), "Mon, 01 Mar 2021 09:44:08 +0000");
        let leap = UNIX_EPOCH + Duration::from_secs(951_825_600);
        assert_eq!(date(leap), "Tue, 29 Feb 2000 12:00:00 +0000");
    }

    /// A server that says whatever it likes: the client's steps end, in
    /// time, with an error and no panic.
    #[test]
    fn hostile_servers_never_hang_the_client() {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async {
            let step = Duration::from_millis(200);
            let cases: [(&[u8], Error); 4] = [
                (b"garbage\r\n", Error::NotReply),
                (&[b'2'; 4096], Error::LineTooLong),
                (b"220 ok\r\n", Error::Closed),
                (b"22", Error::Timeout),
            ];
            for (said, expected) in cases {
                let (ours, mut theirs) = tokio::io::duplex(8192);
                theirs.write_all(said).await.unwrap();
                // The peer stays open (silent) unless it "closed".
                let keep = (expected != Error::Closed).then_some(theirs);
                let mut client = Client::new(ours, step);
                let started = std::time::Instant::now();
                let mut result = client.reply().await;
                if expected == Error::Closed {
                    assert_eq!(result, Ok(220));
                    result = client.reply().await;
                }
                assert_eq!(result, Err(expected.clone()));
                assert!(started.elapsed() < step * 3, "{expected:?} took too long");
                drop(keep);
            }
            // A slow drip of one valid reply line by line: each step in time.
            let (ours, mut theirs) = tokio::io::duplex(64);
            let mut client = Client::new(ours, step);
            let drip = tokio::spawn(async move {
                for b in b"220-x\r\n220 y\r\n" {
                    theirs.write_all(&[*b]).await.unwrap();
                    tokio::time::sleep(Duration::from_millis(5)).await;
                }
                theirs
            });
            assert_eq!(client.reply().await, Ok(220));
            drop(drip.await.unwrap());
        });
    }
}
