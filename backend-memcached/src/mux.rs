//! One multiplexed connection: many requests in flight on one socket,
//! written in batches and answered in order.
//!
//! memcached answers the requests of one connection in the order they
//! arrived, in both dialects, so a connection needs no per-request tokens to
//! match answers: a queue of what was written, in order, is enough. Two
//! tasks share the socket:
//!
//! - the **writer** takes submissions from a bounded channel, as many as are
//!   waiting (up to [`WRITE_CHUNK`] bytes), appends each one's request to
//!   one buffer, records it at the back of the *waiting* queue, and writes
//!   the buffer with one syscall — under load, dozens of requests per
//!   write;
//! - the **reader** reads answers as they come (one `read` brings many),
//!   pops the front of the waiting queue for each, cuts the answer into
//!   frames by the framing that entry names, and hands the frames to the
//!   caller, who interprets them with its request in hand
//!   (`protocol::interpret`).
//!
//! **Nothing unbounded.** The channel holds [`QUEUE`] submissions, and the
//! requests not yet written hold at most [`QUEUED_BYTES`] between them (a
//! thousand 1 MiB values must not queue a gigabyte); a caller waits for
//! room within its deadline. The waiting queue holds only what was
//! written, which those bounds and the callers' deadlines limit.
//!
//! **Cancellation.** A caller that gives up (deadline) or is dropped leaves
//! its submission behind; the writer skips a submission whose caller is
//! gone, and an answer nobody waits for is read and thrown away, so the
//! stream stays in step whatever callers do. Whether a given-up request was
//! written is settled by one flag both sides swap (`taken`): the writer
//! takes a submission only if the caller has not abandoned it, and the
//! caller reports "not sent" only if the writer has not taken it.
//!
//! **Failure.** Anything that leaves the stream's position in doubt closes
//! the connection: a write or read error, the end of the stream, a line
//! that is no answer, an `ERROR`/`CLIENT_ERROR` line, bytes nobody asked
//! for, and a request whose deadline passed after it was written (the
//! answers behind it are late, and a late answer is never waited for).
//! Closing fails every written request at once as "outcome unknown" and
//! every unwritten one as "not sent"; the server's next request opens a new
//! connection (`server/multiplexed.rs`).

use std::collections::VecDeque;
use std::io;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::io::AsyncWriteExt;
use tokio::sync::{OwnedSemaphorePermit, Semaphore, mpsc, oneshot};
use tokio::task::AbortHandle;
use tokio::time::Instant;

use crate::connection::Reader;
use crate::error::{Error, Result};
use crate::protocol::frame::{self, Frame, Framing};
use crate::transport::{ReadHalf, Stream, WriteHalf};

/// Submissions a connection's channel holds before callers wait for room.
pub(crate) const QUEUE: usize = 1024;

/// Bytes of requests a connection holds unwritten before callers wait for
/// room (a larger request waits until it is alone).
const QUEUED_BYTES: usize = 4 * 1024 * 1024;

/// The writer stops gathering submissions into one write at this many
/// bytes (a large value may overshoot it once).
const WRITE_CHUNK: usize = 64 * 1024;

/// The answer a caller waits for: the frames, or why there are none.
type Answer = Result<Vec<Frame>>;

/// A request handed to the writer.
struct Submission {
    request: Vec<u8>,
    /// The request's share of [`QUEUED_BYTES`], given back once written.
    room: OwnedSemaphorePermit,
    framing: Framing,
    operation: &'static str,
    /// Swapped to true by whichever of writer and caller gets there first.
    taken: Arc<AtomicBool>,
    reply: oneshot::Sender<Answer>,
}

/// A written request whose answer has not been read yet.
struct Waiting {
    framing: Framing,
    operation: &'static str,
    reply: oneshot::Sender<Answer>,
}

/// What the caller side, the writer and the reader share.
#[derive(Debug)]
struct Shared {
    server: String,
    /// Written requests, oldest first. Also holds `closed`'s meaning
    /// steady: both are changed under this lock.
    waiting: Mutex<VecDeque<Waiting>>,
    closed: AtomicBool,
    /// True once the server sent any byte on this connection.
    ever_read: AtomicBool,
    tasks: Mutex<Vec<AbortHandle>>,
}

impl std::fmt::Debug for Waiting {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Waiting")
            .field("operation", &self.operation)
            .finish_non_exhaustive()
    }
}

/// Why a connection is closed, which decides what its written requests
/// are told.
#[derive(Debug)]
pub(crate) enum Closing {
    /// A written request's deadline passed: every request behind it is
    /// stuck behind the same silence, so each is told it timed out.
    TimedOut(Duration),
    /// The stream broke or went out of step, for this reason.
    Broken(String),
}

impl Shared {
    /// Closes the connection (once): stops both tasks and fails every
    /// written request as "outcome unknown". Unwritten submissions are
    /// dropped with the writer's channel, which their callers read as "not
    /// sent".
    fn close(&self, why: Closing) {
        let drained: Vec<Waiting> = match self.waiting.lock() {
            Ok(mut waiting) => {
                if self.closed.swap(true, Ordering::AcqRel) {
                    return;
                }
                waiting.drain(..).collect()
            }
            Err(_) => {
                self.closed.store(true, Ordering::Release);
                Vec::new()
            }
        };
        if let Ok(tasks) = self.tasks.lock() {
            for task in tasks.iter() {
                task.abort();
            }
        }
        if !drained.is_empty() {
            tracing::debug!(
                server = %self.server,
                requests = drained.len(),
                ?why,
                "multiplexed memcached connection closed with requests in flight"
            );
        }
        for w in drained {
            let error = match &why {
                Closing::TimedOut(after) => Error::Timeout {
                    operation: w.operation,
                    server: self.server.clone(),
                    after: *after,
                    sent: true,
                },
                Closing::Broken(why) => Error::Io {
                    operation: w.operation,
                    server: self.server.clone(),
                    source: io::Error::new(
                        io::ErrorKind::ConnectionAborted,
                        format!("connection closed before the answer: {why}"),
                    ),
                    sent: true,
                },
            };
            let _ = w.reply.send(Err(error));
        }
    }

    /// True while written requests wait for their answers.
    fn in_flight(&self) -> bool {
        self.waiting.lock().is_ok_and(|w| !w.is_empty())
    }

    fn broken(&self, why: impl Into<String>) {
        self.close(Closing::Broken(why.into()));
    }
}

/// A multiplexed connection; cheap to share (`Arc`) among callers.
#[derive(Debug)]
pub(crate) struct MuxConn {
    submit: mpsc::Sender<Submission>,
    /// Room for unwritten request bytes ([`QUEUED_BYTES`]).
    room: Arc<Semaphore>,
    shared: Arc<Shared>,
}

impl Drop for MuxConn {
    fn drop(&mut self) {
        // The tasks hold the socket; without this they would outlive the
        // store that no longer uses them.
        self.shared.broken("connection dropped");
    }
}

impl MuxConn {
    /// Starts the writer and reader tasks on a freshly connected `stream`
    /// (nothing read or written on it yet). `max_block` bounds the data
    /// blocks its reader accepts.
    pub(crate) fn start(stream: Stream, server: String, max_block: usize) -> MuxConn {
        let (read_half, write_half) = stream.split();
        let (submit, submissions) = mpsc::channel(QUEUE);
        let shared = Arc::new(Shared {
            server: server.clone(),
            waiting: Mutex::new(VecDeque::new()),
            closed: AtomicBool::new(false),
            ever_read: AtomicBool::new(false),
            tasks: Mutex::new(Vec::with_capacity(2)),
        });
        let mut reader = Reader::new(read_half, server);
        reader.set_max_block(max_block);
        let writer = tokio::spawn(write_loop(submissions, write_half, shared.clone()));
        let reading = tokio::spawn(read_loop(reader, shared.clone()));
        if let Ok(mut tasks) = shared.tasks.lock() {
            tasks.push(writer.abort_handle());
            tasks.push(reading.abort_handle());
        }
        MuxConn {
            submit,
            room: Arc::new(Semaphore::new(QUEUED_BYTES)),
            shared,
        }
    }

    /// False once the connection was closed for any reason.
    pub(crate) fn is_open(&self) -> bool {
        !self.shared.closed.load(Ordering::Acquire)
    }

    /// True once the server sent any byte on this connection.
    pub(crate) fn ever_read(&self) -> bool {
        self.shared.ever_read.load(Ordering::Acquire)
    }

    /// Sends `request` (whose answers are delimited by `framing`) and waits
    /// for its answer frames until `deadline`; `after` is the budget the
    /// deadline stands for, for the error.
    pub(crate) async fn request(
        &self,
        request: Vec<u8>,
        framing: Framing,
        operation: &'static str,
        deadline: Instant,
        after: Duration,
    ) -> Answer {
        let timeout = |sent| Error::Timeout {
            operation,
            server: self.shared.server.clone(),
            after,
            sent,
        };
        let share = u32::try_from(request.len().min(QUEUED_BYTES)).unwrap_or(u32::MAX);
        let room =
            match tokio::time::timeout_at(deadline, self.room.clone().acquire_many_owned(share))
                .await
            {
                Ok(Ok(room)) => room,
                // The semaphore is never closed; either way nothing was written.
                Ok(Err(_)) => return Err(self.closed_unsent(operation)),
                Err(_) => return Err(timeout(false)),
            };
        let taken = Arc::new(AtomicBool::new(false));
        let (reply, answer) = oneshot::channel();
        let submission = Submission {
            request,
            room,
            framing,
            operation,
            taken: taken.clone(),
            reply,
        };
        match tokio::time::timeout_at(deadline, self.submit.send(submission)).await {
            Ok(Ok(())) => {}
            Ok(Err(_)) => return Err(self.closed_unsent(operation)),
            // No room in the queue all along: nothing of it was written.
            Err(_) => return Err(timeout(false)),
        }
        match tokio::time::timeout_at(deadline, answer).await {
            Ok(Ok(answer)) => answer,
            // The writer went away with the submission: written only if it
            // took it first (and then `close` would have answered it).
            Ok(Err(_)) if !taken.swap(true, Ordering::AcqRel) => Err(self.closed_unsent(operation)),
            Ok(Err(_)) => Err(Error::Io {
                operation,
                server: self.shared.server.clone(),
                source: io::Error::new(io::ErrorKind::ConnectionAborted, "connection closed"),
                sent: true,
            }),
            Err(_) => {
                let sent = taken.swap(true, Ordering::AcqRel);
                if sent {
                    // Its answer, and every answer behind it, is late: a
                    // connection that waited for it would keep failing
                    // the requests behind.
                    self.shared.close(Closing::TimedOut(after));
                }
                Err(timeout(sent))
            }
        }
    }

    fn closed_unsent(&self, operation: &'static str) -> Error {
        Error::Io {
            operation,
            server: self.shared.server.clone(),
            source: io::Error::new(
                io::ErrorKind::ConnectionAborted,
                "connection closed before the request was written",
            ),
            sent: false,
        }
    }
}

/// The writer task: gathers waiting submissions into one write.
async fn write_loop(
    mut submissions: mpsc::Receiver<Submission>,
    mut socket: WriteHalf,
    shared: Arc<Shared>,
) {
    let mut buf = Vec::with_capacity(WRITE_CHUNK);
    // The room of the requests in `buf`, given back once they are written.
    let mut rooms = Vec::new();
    while let Some(first) = submissions.recv().await {
        // With answers still outstanding, this write cannot make its
        // request's answer come sooner than theirs: first let the tasks
        // that are ready to run submit too, so that under load one write
        // carries many requests. An idle connection writes at once (a
        // lone caller pays no extra scheduling round).
        if shared.in_flight() {
            tokio::task::yield_now().await;
        }
        buf.clear();
        {
            let Ok(mut waiting) = shared.waiting.lock() else {
                return;
            };
            if shared.closed.load(Ordering::Acquire) {
                return;
            }
            let mut next = Some(first);
            while let Some(s) = next {
                // A caller that is gone or gave up is not written for.
                if !s.reply.is_closed() && !s.taken.swap(true, Ordering::AcqRel) {
                    buf.extend_from_slice(&s.request);
                    waiting.push_back(Waiting {
                        framing: s.framing,
                        operation: s.operation,
                        reply: s.reply,
                    });
                    rooms.push(s.room);
                }
                if buf.len() >= WRITE_CHUNK {
                    break;
                }
                next = submissions.try_recv().ok();
            }
        }
        if buf.is_empty() {
            continue;
        }
        // The flush matters for TLS only: a record rustls could not write
        // whole stays in its buffer until flushed (TCP's flush does nothing).
        if let Err(e) = async {
            socket.write_all(&buf).await?;
            socket.flush().await
        }
        .await
        {
            shared.broken(format!("write failed: {e}"));
            return;
        }
        rooms.clear();
    }
    // Every sender is gone (the connection was dropped): dropping the write
    // half tells the server, whose close then ends the reader.
}

/// The reader task: matches answers to the waiting queue, in order.
async fn read_loop(mut reader: Reader<ReadHalf>, shared: Arc<Shared>) {
    loop {
        match reader.wait_readable().await {
            Ok(true) => shared.ever_read.store(true, Ordering::Release),
            Ok(false) => return shared.broken("the server closed the connection"),
            Err(e) => return shared.broken(format!("read failed: {e}")),
        }
        let next = match shared.waiting.lock() {
            Ok(mut waiting) => waiting.pop_front(),
            Err(_) => None,
        };
        let Some(waiting) = next else {
            tracing::warn!(
                server = %shared.server,
                "memcached server sent bytes no request asked for; connection closed"
            );
            return shared.broken("the server sent bytes no request asked for");
        };
        let answer = frame::read_frames(&mut reader, waiting.framing, waiting.operation).await;
        let broken = match &answer {
            Ok(frames) if frames.iter().all(Frame::keeps_stream_in_sync) => None,
            Ok(_) => Some("the server answered with an error line".to_owned()),
            Err(e) => Some(format!("reading an answer failed: {e}")),
        };
        // Nobody waiting any more (deadline, cancellation) is fine: the
        // answer was read, so the stream is still in step.
        let _ = waiting.reply.send(answer);
        if let Some(why) = broken {
            return shared.broken(why);
        }
    }
}
