//! An SMTP server's replies, as SMTP_CHECK and the alert mail read them
//! (`appliance::smtp::Replies`): lines of any length and content, cut
//! into reads of any size. The input's first byte sets the read size, the
//! rest is what the server sent. Bad input is an error, never a panic;
//! when neither way of reading fails, the replies must not depend on how
//! the bytes were cut.

use appliance::smtp::{Error, Replies};

pub fn smtp_reply(data: &[u8]) {
    let Some((&chunk, said)) = data.split_first() else {
        return;
    };
    let cut = decode(said, usize::from(chunk) + 1);
    let whole = decode(said, usize::MAX);
    if let (Ok(cut), Ok(whole)) = (&cut, &whole) {
        assert_eq!(cut, whole, "reads of {} bytes", usize::from(chunk) + 1);
    }
}

/// Every reply code in `said`, read `chunk` bytes at a time and each
/// reply taken as soon as it is whole, as the client does.
fn decode(said: &[u8], chunk: usize) -> Result<Vec<u16>, Error> {
    let mut replies = Replies::default();
    let mut codes = Vec::new();
    for piece in said.chunks(chunk.min(said.len().max(1))) {
        replies.feed(piece)?;
        while let Some(code) = replies.take()? {
            codes.push(code);
        }
    }
    Ok(codes)
}
