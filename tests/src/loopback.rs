//! Many TCP servers on loopback for the checker's tests and benchmark:
//! listeners on 127.0.0.0/8 addresses that accept and close every
//! connection, stopped (connections refused) and restarted at will, and a
//! raised open-files limit so thousands of them fit.

use std::io;
use std::net::{Ipv4Addr, SocketAddr};
use tokio::net::TcpListener;
use tokio::task::JoinHandle;

/// Raises this process's soft open-files limit to its hard limit; returns
/// the new soft limit.
pub fn raise_nofile_limit() -> io::Result<u64> {
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit/setrlimit only read and write the struct passed.
    if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) } != 0 {
        return Err(io::Error::last_os_error());
    }
    limit.rlim_cur = limit.rlim_max;
    // SAFETY: as above.
    if unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &limit) } != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(limit.rlim_cur)
}

/// The `i`th loopback address of a block: 127.<block>.<i / 250>.<i % 250 + 1>.
pub fn address(block: u8, i: usize) -> Ipv4Addr {
    let hi = u8::try_from(i / 250).expect("at most 64,000 addresses per block");
    let lo = u8::try_from(i % 250 + 1).expect("i % 250 + 1 fits");
    Ipv4Addr::new(127, block, hi, lo)
}

/// A listener that accepts and closes every connection, on the current
/// tokio runtime.
pub struct Server {
    pub addr: SocketAddr,
    task: JoinHandle<()>,
}

impl Server {
    pub async fn start(addr: SocketAddr) -> io::Result<Self> {
        let listener = TcpListener::bind(addr).await?;
        let addr = listener.local_addr()?;
        let task = tokio::spawn(async move {
            while let Ok((conn, _)) = listener.accept().await {
                drop(conn);
            }
        });
        Ok(Self { addr, task })
    }

    /// Closes the listener: connections are refused from now on.
    pub async fn stop(self) {
        self.task.abort();
        let _ = self.task.await;
    }
}
