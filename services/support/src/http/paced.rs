//! A request body that hands over one piece per poll. axum's multipart reader (multer) takes
//! every piece that is ready before it parses any: fed by a fast sender (the gateway in the
//! same process, or over a fast network) it would gather a whole file in memory, however
//! slowly the file is sealed and written. Answering `Pending` after each piece (with a wake,
//! so nothing stalls) makes it parse as it reads, holding a piece or two.

use std::pin::Pin;
use std::task::{Context, Poll};

use axum::body::{Body, BodyDataStream, Bytes};
use axum::extract::Request;
use futures_util::Stream;

/// The request with its body paced.
pub(super) async fn pace(request: Request) -> Request {
    request.map(|body| Body::from_stream(Paced { pieces: body.into_data_stream(), handed_one: false }))
}

struct Paced {
    pieces: BodyDataStream,
    handed_one: bool,
}

impl Stream for Paced {
    type Item = Result<Bytes, axum::Error>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        if self.handed_one {
            self.handed_one = false;
            cx.waker().wake_by_ref();
            return Poll::Pending;
        }
        let next = Pin::new(&mut self.pieces).poll_next(cx);
        if matches!(next, Poll::Ready(Some(_))) {
            self.handed_one = true;
        }
        next
    }
}

#[cfg(test)]
mod tests {
    use std::convert::Infallible;

    use super::*;

    #[test]
    fn a_body_whose_pieces_are_all_ready_is_handed_over_one_per_poll() {
        let ready = futures_util::stream::iter(["a", "b"].map(|p| Ok::<_, Infallible>(Bytes::from(p))));
        let mut paced = Paced { pieces: Body::from_stream(ready).into_data_stream(), handed_one: false };
        let mut cx = Context::from_waker(futures_util::task::noop_waker_ref());
        let mut poll = || match Pin::new(&mut paced).poll_next(&mut cx) {
            Poll::Ready(Some(Ok(piece))) => Some(String::from_utf8_lossy(&piece).into_owned()),
            Poll::Ready(Some(Err(error))) => panic!("{error}"),
            Poll::Ready(None) => Some("end".to_owned()),
            Poll::Pending => None,
        };
        let polls: Vec<_> = std::iter::from_fn(|| Some(poll())).take(5).collect();
        assert_eq!(polls, [Some("a".into()), None, Some("b".into()), None, Some("end".into())]);
    }
}
