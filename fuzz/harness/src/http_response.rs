//! HTTP_GET's answer: status line, headers, body to its end, judged
//! against a `url` block (status, digest, regex), from a server that sends
//! it in chunks of any size and may end it with an error. The input's
//! first byte sets the chunk size, the second the `url` block's options
//! and how the stream ends; the rest is the answer. The verdict must not
//! depend on how the answer was cut into reads.

use appliance::check::decision::Failure;
use appliance::check::http::{BodyRegex, UrlCheck, exchange};
use appliance::config::model::StatusCodes;
use std::io::ErrorKind;
use std::pin::Pin;
use std::sync::LazyLock;
use std::task::{Context, Poll};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

/// Past this the check may refuse headers that it would accept in larger
/// reads (it checks the limit, 16 KiB, between reads): the verdicts of
/// different cuts are compared only below it.
const SAME_VERDICT_BELOW: usize = 16 * 1024;

static OK: LazyLock<regex::bytes::Regex> =
    LazyLock::new(|| regex::bytes::Regex::new("ok").expect("the pattern compiles"));

pub fn http_response(data: &[u8]) {
    let Some((&[chunk, options], answer)) = data.split_first_chunk::<2>() else {
        return;
    };
    let url = UrlCheck {
        path: "/".into(),
        host: "fuzz".into(),
        status: match options & 3 {
            0 => None,
            1 => Some(StatusCodes::one(200)),
            2 => Some(StatusCodes::one(404)),
            _ => "200-299 404".parse().ok(),
        },
        // The MD5 of an empty body.
        digest: (options & 4 != 0).then(|| "d41d8cd98f00b204e9800998ecf8427e".into()),
        regex: (options & 8 != 0).then(|| BodyRegex {
            regex: OK.clone(),
            no_match: options & 16 != 0,
        }),
    };
    let end = match options >> 5 {
        // A TLS peer closing without close_notify.
        1 => Some(ErrorKind::UnexpectedEof),
        2 => Some(ErrorKind::ConnectionReset),
        _ => None,
    };
    let cut = verdict(answer, usize::from(chunk) + 1, end, &url);
    let whole = verdict(answer, usize::MAX, end, &url);
    if answer.len() < SAME_VERDICT_BELOW {
        assert_eq!(cut, whole, "reads of {} bytes", usize::from(chunk) + 1);
    }
}

fn verdict(
    answer: &[u8],
    chunk: usize,
    end: Option<ErrorKind>,
    url: &UrlCheck,
) -> Result<(), Failure> {
    let server = Server { answer, chunk, end };
    futures::executor::block_on(exchange(server, url))
}

/// A server whose answer is ready at once, `chunk` bytes a read at most,
/// then ends (`end`: with that error) and keeps ending.
struct Server<'a> {
    answer: &'a [u8],
    chunk: usize,
    end: Option<ErrorKind>,
}

impl AsyncRead for Server<'_> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        _: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        if self.answer.is_empty() {
            return Poll::Ready(self.end.take().map_or(Ok(()), |kind| Err(kind.into())));
        }
        let len = self.chunk.min(buf.remaining()).min(self.answer.len());
        let (read, rest) = self.answer.split_at(len);
        buf.put_slice(read);
        self.answer = rest;
        Poll::Ready(Ok(()))
    }
}

impl AsyncWrite for Server<'_> {
    fn poll_write(
        self: Pin<&mut Self>,
        _: &mut Context<'_>,
        request: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        Poll::Ready(Ok(request.len()))
    }

    fn poll_flush(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    fn poll_shutdown(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Poll::Ready(Ok(()))
    }
}
