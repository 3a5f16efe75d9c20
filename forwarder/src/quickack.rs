//! Local connections that acknowledge every segment at once.
//!
//! Many local services write an answer's head and body in two writes with
//! Nagle on (Python's `http.server`, most small dev servers). On a
//! keep-alive connection Linux delays the ACK of the head by up to 40 ms
//! (the "ping-pong" heuristic expects a reply to piggyback on), and Nagle
//! holds the body back until that ACK: +43 ms per request, measured.
//! `TCP_NODELAY` on our side cannot help (the waiting is in the peer's
//! Nagle), so every read re-arms `TCP_QUICKACK`, which also sends an ACK
//! that is pending. One `setsockopt` per read; Linux only (elsewhere a
//! plain connection).

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};

use hyper::Uri;
use hyper_util::client::legacy::connect::{Connected, Connection, HttpConnector};
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;
use tower_service::Service;

/// `HttpConnector` (nodelay, timeouts as configured) whose connections
/// acknowledge at once.
#[derive(Clone)]
pub struct QuickAckConnector(pub HttpConnector);

/// One local connection (see the module header).
pub struct QuickAck(TokioIo<TcpStream>);

impl QuickAck {
    fn rearm(&self) {
        #[cfg(target_os = "linux")]
        {
            // Best effort: without it the connection still works, slower.
            let _ = socket2::SockRef::from(self.0.inner()).set_tcp_quickack(true);
        }
    }
}

type Connecting = Pin<Box<dyn Future<Output = Result<QuickAck, io::Error>> + Send>>;

impl Service<Uri> for QuickAckConnector {
    type Response = QuickAck;
    type Error = io::Error;
    type Future = Connecting;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.0.poll_ready(cx).map_err(io::Error::other)
    }

    fn call(&mut self, uri: Uri) -> Self::Future {
        let connecting = self.0.call(uri);
        Box::pin(async move {
            let io = connecting.await.map_err(io::Error::other)?;
            let conn = QuickAck(io);
            conn.rearm();
            Ok(conn)
        })
    }
}

impl hyper::rt::Read for QuickAck {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: hyper::rt::ReadBufCursor<'_>,
    ) -> Poll<io::Result<()>> {
        let polled = Pin::new(&mut self.0).poll_read(cx, buf);
        if let Poll::Ready(Ok(())) = polled {
            self.rearm();
        }
        polled
    }
}

impl hyper::rt::Write for QuickAck {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.0).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.0).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.0).poll_shutdown(cx)
    }

    fn is_write_vectored(&self) -> bool {
        self.0.is_write_vectored()
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.0).poll_write_vectored(cx, bufs)
    }
}

impl Connection for QuickAck {
    fn connected(&self) -> Connected {
        self.0.inner().connected()
    }
}
