//! A plain-TCP connection is served by the request thread whose I/O driver watches it.
//!
//! pingora's accept loop runs on one request thread and hands each accepted connection to a
//! random thread (`pingora_runtime::current_handle`), but tokio registered the socket with the
//! accepting thread's driver. Every readiness event of a connection placed elsewhere then went
//! through that one thread's `epoll_wait`, which woke the serving thread with an `eventfd`
//! write: a cache hit cost two threads' wake-ups, and the accepting thread's share of the work
//! capped the rest (`strace` on a repeated URL at 64 connections: 0.76 cross-thread `write`s per
//! request, all from one thread). [`Rehome`] re-registers the socket with the serving thread's driver before the
//! first request is read: the descriptor is duplicated, pingora's stream (and its registration)
//! dropped, and the duplicate wrapped in [`Local`]. TLS connections are left as they are (their
//! state is above the socket).

use std::io;
use std::os::fd::{AsRawFd, BorrowedFd};
use std::pin::Pin;
use std::sync::Arc;
use std::task::{ready, Context, Poll};
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
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt, ReadBuf};
use tokio::net::TcpStream;

/// Writes shorter than this (a response head, chunk framing) wait in the connection's buffer for
/// the next write or the flush; longer ones (a body) go out at once, in one `writev` with what
/// waits, so a response leaves in one `send` and a body is never copied into the buffer.
const SMALL_WRITE: usize = 2048;

/// The most that waits unsent (a stream of small chunks is sent in pieces of about this).
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
        // Every connection is served here, on the thread that serves it.
        super::slice::short_for_this_thread();
        // pingora serves every request of the connection (keep-alive included) in this call.
        self.0.process_new(moved(stream).await, shutdown).await
    }

    async fn cleanup(&self) {
        self.0.cleanup().await
    }
}

/// [`rehome`], then one turn of this thread's driver before pingora reads. A socket just
/// registered reads as not ready until the driver has polled it, even with the request already
/// there; pingora's first read would then wait, and a shutdown starting in that instant drops
/// the connection with its request unread (the client sees a reset). The deferred wake of
/// `yield_now` runs after the driver's poll, so a request that has arrived is seen as ready.
async fn moved(stream: pingora::protocols::Stream) -> pingora::protocols::Stream {
    let stream = rehome(stream);
    if stream.as_any().is::<Local>() {
        tokio::task::yield_now().await;
    }
    stream
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
    let copy = unsafe { BorrowedFd::borrow_raw(l4.as_raw_fd()) }.try_clone_to_owned();
    let moved = copy.map(std::net::TcpStream::from).and_then(|std| {
        std.set_nonblocking(true)?;
        TcpStream::from_std(std)
    });
    let tcp = match moved {
        Ok(tcp) => tcp,
        Err(e) => {
            tracing::debug!(error = %e, "connection kept on the accepting thread");
            return l4;
        }
    };
    let accepted = l4.get_timing_digest().into_iter().flatten().next();
    // Nothing has been read or written yet (the plain-TCP handshake does neither), so no
    // buffered bytes are lost; tokio deregisters the socket from the accepting thread's
    // driver before it closes that descriptor, and the copy keeps the connection open.
    drop(l4);
    Box::new(Local::new(tcp, accepted))
}

/// A TCP connection registered with the thread that serves it. Small writes are gathered
/// ([`SMALL_WRITE`]): pingora writes a response head, then its body, then flushes.
#[derive(Debug)]
pub struct Local {
    tcp: TcpStream,
    /// Written by pingora, not yet sent.
    pending: Vec<u8>,
    digest: Arc<SocketDigest>,
    timing: TimingDigest,
}

impl Local {
    /// `accepted`: when the listener took the connection (pingora's stream knew it).
    fn new(tcp: TcpStream, accepted: Option<TimingDigest>) -> Self {
        let digest = Arc::new(SocketDigest::from_raw_fd(tcp.as_raw_fd()));
        Local {
            tcp,
            pending: Vec::new(),
            digest,
            timing: accepted.unwrap_or_else(|| TimingDigest {
                established_ts: std::time::SystemTime::now(),
                ..Default::default()
            }),
        }
    }
}

impl Drop for Local {
    /// What pingora's own stream does: a response still in the buffer goes out if the socket
    /// takes it now (a drop cannot wait).
    fn drop(&mut self) {
        let mut cx = Context::from_waker(std::task::Waker::noop());
        let _ = Pin::new(self).poll_flush(&mut cx);
    }
}

impl AsyncRead for Local {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.tcp).poll_read(cx, buf)
    }
}

impl AsyncWrite for Local {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        data: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = &mut *self;
        if data.len() < SMALL_WRITE && this.pending.len() + data.len() <= WRITE_BUFFER {
            this.pending.extend_from_slice(data);
            return Poll::Ready(Ok(data.len()));
        }
        while !this.pending.is_empty() {
            let both = [io::IoSlice::new(&this.pending), io::IoSlice::new(data)];
            let sent = ready!(Pin::new(&mut this.tcp).poll_write_vectored(cx, &both))?;
            if sent == 0 {
                return Poll::Ready(Err(io::ErrorKind::WriteZero.into()));
            }
            if sent >= this.pending.len() {
                let of_data = sent - this.pending.len();
                this.pending.clear();
                if of_data > 0 {
                    return Poll::Ready(Ok(of_data));
                }
            } else {
                this.pending.drain(..sent);
            }
        }
        Pin::new(&mut this.tcp).poll_write(cx, data)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = &mut *self;
        while !this.pending.is_empty() {
            let sent = ready!(Pin::new(&mut this.tcp).poll_write(cx, &this.pending))?;
            if sent == 0 {
                return Poll::Ready(Err(io::ErrorKind::WriteZero.into()));
            }
            this.pending.drain(..sent);
        }
        Poll::Ready(Ok(()))
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        ready!(self.as_mut().poll_flush(cx))?;
        Pin::new(&mut self.tcp).poll_shutdown(cx)
    }
}

#[async_trait]
impl Shutdown for Local {
    async fn shutdown(&mut self) {
        let _ = AsyncWriteExt::shutdown(self).await;
    }
}

impl UniqueID for Local {
    fn id(&self) -> UniqueIDType {
        self.tcp.as_raw_fd()
    }
}

impl Ssl for Local {}

/// No peeking: pingora only peeks to detect HTTP/2 without TLS (h2c), which imgedge does not
/// offer.
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

            let accepted_at = moved.get_timing_digest()[0]
                .as_ref()
                .unwrap()
                .established_ts;
            let mut moved = rehome(moved);
            assert!(moved.as_any().is::<Local>());
            // When the connection was accepted, not when it moved.
            let timing = moved.get_timing_digest();
            assert_eq!(timing[0].as_ref().unwrap().established_ts, accepted_at);
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
    fn small_and_large_writes_arrive_in_order_and_small_ones_wait_within_the_buffer() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let rt = runtime();
        let (stream, mut client) = accepted(&listener, &rt);
        // Small socket buffers, so that writes (the gathered ones too) are
        // taken in parts.
        let small: libc::c_int = 4096;
        for fd in [stream.id(), client.as_raw_fd()] {
            for option in [libc::SO_SNDBUF, libc::SO_RCVBUF] {
                // SAFETY: a valid socket and an option value of the size given.
                let set = unsafe {
                    libc::setsockopt(
                        fd,
                        libc::SOL_SOCKET,
                        option,
                        (&small as *const libc::c_int).cast(),
                        std::mem::size_of::<libc::c_int>() as libc::socklen_t,
                    )
                };
                assert_eq!(set, 0);
            }
        }
        let body: Vec<u8> = (0..64 << 10).map(|i: u32| (i % 251) as u8).collect();
        let mut expected = b"HTTP/1.1 200 OK\r\n\r\n".to_vec();
        expected.extend_from_slice(&body);
        for i in 0..4_000u32 {
            expected.extend_from_slice(format!("chunk {i}\r\n").as_bytes());
        }
        let reader = std::thread::spawn(move || {
            let (mut got, mut chunk) = (Vec::new(), [0; 4096]);
            loop {
                match client.read(&mut chunk).unwrap() {
                    0 => return got,
                    n => got.extend_from_slice(&chunk[..n]),
                }
            }
        });
        rt.block_on(async {
            let mut stream = rehome(stream);
            stream.write_all(b"HTTP/1.1 200 OK\r\n\r\n").await.unwrap();
            stream.write_all(&body).await.unwrap();
            for i in 0..4_000u32 {
                stream
                    .write_all(format!("chunk {i}\r\n").as_bytes())
                    .await
                    .unwrap();
                let local = stream.as_any().downcast_ref::<Local>().unwrap();
                assert!(local.pending.len() <= WRITE_BUFFER);
            }
            stream.flush().await.unwrap();
        });
        assert!(reader.join().unwrap() == expected);
    }

    /// A request already sent when the connection moves is readable at pingora's first read,
    /// so a shutdown starting right then does not drop it unread.
    #[test]
    fn a_request_that_already_arrived_is_ready_at_the_first_read() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let rt = runtime();
        let (stream, mut client) = accepted(&listener, &rt);
        client.write_all(b"GET / HTTP/1.1\r\n\r\n").unwrap();
        std::thread::sleep(Duration::from_millis(50)); // the bytes are in the socket
        rt.block_on(async {
            let mut stream = moved(stream).await;
            let mut buf = [0; 64];
            let mut read = ReadBuf::new(&mut buf);
            let mut cx = Context::from_waker(std::task::Waker::noop());
            let first = Pin::new(&mut stream).poll_read(&mut cx, &mut read);
            assert!(matches!(first, Poll::Ready(Ok(()))), "{first:?}");
            assert_eq!(read.filled(), b"GET / HTTP/1.1\r\n\r\n");
        });
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
