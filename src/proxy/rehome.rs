//! A plain-TCP connection is served by the request thread whose I/O driver watches it.
//!
//! pingora's accept loop runs on one request thread and hands each accepted connection to a
//! random thread (`pingora_runtime::current_handle`), but tokio registered the socket with the
//! accepting thread's driver. Every readiness event of every connection then went through that
//! one thread's `epoll_wait`, which woke the serving thread with an `eventfd` write: a cache hit
//! cost two threads' wake-ups, and the accepting thread's share of the work capped the rest
//! (`strace` on a repeated URL at 64 connections: 0.76 cross-thread `write`s per request, all from
//! one thread). [`Rehome`] re-registers the socket with the serving thread's driver before the
//! first request is read: the descriptor is duplicated, pingora's stream (and its registration)
//! dropped, and the duplicate wrapped in [`Local`]. TLS connections are left as they are (their
//! state is above the socket).

use std::io;
use std::os::fd::{AsRawFd, BorrowedFd};
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
#[cfg(test)]
use std::time::Duration;

use async_trait::async_trait;
use pingora::apps::ServerApp;
use pingora::protocols::l4::stream::Stream as L4Stream;
use pingora::protocols::raw_connect::ProxyDigest;
use pingora::protocols::{
    GetProxyDigest, GetSocketDigest, GetTimingDigest, Peek, Shutdown, SocketDigest, Ssl,
    TimingDigest, UniqueID, UniqueIDType,
};
use pingora::server::ShutdownWatch;
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt, BufWriter, ReadBuf};
use tokio::net::TcpStream;

/// What the listener's l4 write buffer was for: a response head and a typical cached variant
/// leave in one `send` (larger bodies bypass the buffer).
const WRITE_BUFFER: usize = 16 * 1024;

/// Wraps a pingora app (the HTTP proxy): each plain-TCP connection is moved to the serving
/// thread's driver once, then every request on it is handed to the app.
pub struct Rehome<A>(pub Arc<A>);

#[async_trait]
impl<A: ServerApp + Send + Sync + 'static> ServerApp for Rehome<A> {
    async fn process_new(
        self: &Arc<Self>,
        stream: pingora::protocols::Stream,
        shutdown: &ShutdownWatch,
    ) -> Option<pingora::protocols::Stream> {
        let mut stream = rehome(stream);
        // Keep-alive requests are looped here rather than by pingora, which would call this
        // again for each and move an already local connection once more.
        loop {
            stream = self.0.process_new(stream, shutdown).await?;
        }
    }

    async fn cleanup(&self) {
        self.0.cleanup().await
    }
}

/// A plain-TCP stream registered with the current thread's driver; anything else unchanged.
fn rehome(stream: pingora::protocols::Stream) -> pingora::protocols::Stream {
    if !stream.as_any().is::<L4Stream>() {
        return stream;
    }
    let l4 = stream
        .into_any()
        .downcast::<L4Stream>()
        .expect("checked above");
    // SAFETY: the descriptor belongs to `l4`, which is alive for the borrow.
    let copy = match unsafe { BorrowedFd::borrow_raw(l4.as_raw_fd()) }.try_clone_to_owned() {
        Ok(fd) => fd,
        Err(e) => {
            tracing::debug!(error = %e, "connection kept on the accepting thread");
            return l4;
        }
    };
    let std = std::net::TcpStream::from(copy);
    let tcp = match std
        .set_nonblocking(true)
        .and_then(|()| TcpStream::from_std(std))
    {
        Ok(tcp) => tcp,
        Err(e) => {
            tracing::debug!(error = %e, "connection kept on the accepting thread");
            return l4;
        }
    };
    // Nothing has been read or written yet (the plain-TCP handshake does neither), so no
    // buffered bytes are lost; tokio deregisters the socket from the accepting thread's
    // driver before it closes that descriptor, and the copy keeps the connection open.
    drop(l4);
    Box::new(Local::new(tcp))
}

/// A TCP connection registered with the thread that serves it, with a write buffer.
#[derive(Debug)]
pub struct Local {
    io: BufWriter<TcpStream>,
    digest: Arc<SocketDigest>,
    timing: TimingDigest,
}

impl Local {
    fn new(tcp: TcpStream) -> Self {
        let digest = Arc::new(SocketDigest::from_raw_fd(tcp.as_raw_fd()));
        Local {
            io: BufWriter::with_capacity(WRITE_BUFFER, tcp),
            digest,
            timing: TimingDigest {
                established_ts: std::time::SystemTime::now(),
                ..Default::default()
            },
        }
    }
}

impl Drop for Local {
    /// What pingora's own stream does: a response still in the buffer goes out if the socket
    /// takes it now (a drop cannot wait).
    fn drop(&mut self) {
        let mut cx = Context::from_waker(std::task::Waker::noop());
        let _ = Pin::new(&mut self.io).poll_flush(&mut cx);
    }
}

impl AsyncRead for Local {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.io).poll_read(cx, buf)
    }
}

impl AsyncWrite for Local {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.io).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.io).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.io).poll_shutdown(cx)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.io).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.io.is_write_vectored()
    }
}

#[async_trait]
impl Shutdown for Local {
    async fn shutdown(&mut self) {
        let _ = AsyncWriteExt::shutdown(&mut self.io).await;
    }
}

impl UniqueID for Local {
    fn id(&self) -> UniqueIDType {
        self.io.get_ref().as_raw_fd()
    }
}

impl Ssl for Local {}

impl Peek for Local {}

impl GetTimingDigest for Local {
    fn get_timing_digest(&self) -> Vec<Option<TimingDigest>> {
        vec![Some(self.timing.clone())]
    }
}

impl GetProxyDigest for Local {
    fn get_proxy_digest(&self) -> Option<Arc<ProxyDigest>> {
        None
    }
}

impl GetSocketDigest for Local {
    fn get_socket_digest(&self) -> Option<Arc<SocketDigest>> {
        Some(self.digest.clone())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{Read, Write};
    use tokio::io::AsyncReadExt;
    use tokio::runtime::Runtime;

    fn runtime() -> Runtime {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap()
    }

    /// A connection accepted on one runtime and handed over as pingora's stream, with the client.
    fn accepted(
        listener: &std::net::TcpListener,
        on: &Runtime,
    ) -> (pingora::protocols::Stream, std::net::TcpStream) {
        let client = std::net::TcpStream::connect(listener.local_addr().unwrap()).unwrap();
        let (server, _) = listener.accept().unwrap();
        server.set_nonblocking(true).unwrap();
        let _registered_here = on.enter();
        let tcp = TcpStream::from_std(server).unwrap();
        (Box::new(L4Stream::from(tcp)), client)
    }

    #[test]
    fn a_connection_is_served_by_the_runtime_it_was_moved_to() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let accepting = runtime();
        let (kept, mut kept_client) = accepted(&listener, &accepting);
        let (moved, mut moved_client) = accepted(&listener, &accepting);
        // The accepting runtime stops polling for good: only a connection re-registered with
        // the serving runtime still hears from its client.
        drop(accepting);
        let serving = runtime();
        serving.block_on(async {
            kept_client.write_all(b"ping").unwrap();
            let mut kept = kept;
            let read = tokio::time::timeout(Duration::from_secs(5), kept.read(&mut [0; 4])).await;
            assert!(
                !matches!(read, Ok(Ok(4))),
                "the test's premise: a stream left on the stopped runtime is not served"
            );

            let mut moved = rehome(moved);
            assert!(moved.as_any().is::<Local>());
            moved_client.write_all(b"ping").unwrap();
            let mut buf = [0; 4];
            moved.read_exact(&mut buf).await.unwrap();
            assert_eq!(&buf, b"ping");
            moved.write_all(b"pong").await.unwrap();
            moved.flush().await.unwrap();
            // The client's address (access log, rate limit) comes from the new descriptor.
            let peer = moved.get_socket_digest().unwrap();
            let peer = peer.peer_addr().and_then(|a| a.as_inet()).copied();
            assert_eq!(peer, Some(moved_client.local_addr().unwrap()));
        });
        let mut buf = [0; 4];
        moved_client.read_exact(&mut buf).unwrap();
        assert_eq!(&buf, b"pong");
    }

    #[test]
    fn a_response_left_in_the_buffer_goes_out_when_the_connection_is_dropped() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let rt = runtime();
        let (stream, mut client) = accepted(&listener, &rt);
        client.write_all(b"bye").unwrap();
        rt.block_on(async {
            let mut stream = rehome(stream);
            stream.read_exact(&mut [0; 3]).await.unwrap();
            stream.write_all(b"last words").await.unwrap();
        });
        let mut got = Vec::new();
        client.read_to_end(&mut got).unwrap();
        assert_eq!(got, b"last words");
    }
}
