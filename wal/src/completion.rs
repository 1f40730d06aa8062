//! A one-shot result slot that a thread can block on or a task can await.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, Wake, Waker};
use std::thread::Thread;

use parking_lot::Mutex;

use crate::error::Result;

#[derive(Debug, Default)]
struct Slot {
    result: Option<Result<u64>>,
    waker: Option<Waker>,
}

/// Set once by the writer, read once by the appender. A blocked thread waits
/// in `park` and is woken by `unpark`: one futex call, which matters when
/// one fdatasync completes dozens of appends at once.
#[derive(Debug, Default)]
pub(crate) struct Completion {
    slot: Mutex<Slot>,
}

/// Wakes a parked thread.
struct Unpark(Thread);

impl Wake for Unpark {
    fn wake(self: Arc<Self>) {
        self.0.unpark();
    }

    fn wake_by_ref(self: &Arc<Self>) {
        self.0.unpark();
    }
}

impl Completion {
    pub(crate) fn new() -> Arc<Completion> {
        Arc::new(Completion::default())
    }

    pub(crate) fn complete(&self, result: Result<u64>) {
        let waker = {
            let mut slot = self.slot.lock();
            debug_assert!(slot.result.is_none(), "completed twice");
            slot.result = Some(result);
            slot.waker.take()
        };
        if let Some(w) = waker {
            w.wake();
        }
    }

    pub(crate) fn wait(&self) -> Result<u64> {
        {
            let mut slot = self.slot.lock();
            if let Some(r) = slot.result.take() {
                return r;
            }
            slot.waker = Some(Waker::from(Arc::new(Unpark(std::thread::current()))));
        }
        loop {
            // Spurious unparks are allowed: check, then park again.
            if let Some(r) = self.slot.lock().result.take() {
                return r;
            }
            std::thread::park();
        }
    }

    pub(crate) fn poll(&self, cx: &mut Context<'_>) -> Poll<Result<u64>> {
        let mut slot = self.slot.lock();
        match slot.result.take() {
            Some(r) => Poll::Ready(r),
            None => {
                slot.waker = Some(cx.waker().clone());
                Poll::Pending
            }
        }
    }
}

/// Awaits one completion.
#[derive(Debug)]
pub(crate) struct CompletionFuture(pub(crate) Arc<Completion>);

impl Future for CompletionFuture {
    type Output = Result<u64>;
    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<u64>> {
        self.0.poll(cx)
    }
}
