//! Reading answers off the wire without interpreting them.
//!
//! An answer is split into [`Frame`]s — a line and, where the line
//! announces one, its data block — knowing only the answer's [`Framing`]:
//! how the dialect ends it. What the frames mean for the request is decided
//! afterwards by the dialect's `interpret`, which has the [`Op`](super::Op).
//! Of a meta line this module reads only the block length and the `O`
//! token, through the line parser in `meta_header.rs`; it does not depend
//! on the dialect modules, which depend on it for [`Frame`].
//!
//! Why two steps: a multiplexed connection (`crate::mux`) reads answers in
//! a task of its own, which cannot borrow the caller's request; it needs
//! only the framing, and hands the frames to the caller, who interprets
//! them with its request in hand. A pooled connection does the same two
//! steps in a row, so both modes share one parser.

use tokio::io::AsyncRead;

use super::meta_header::{self, Status};
use super::{is_error_line, parse_num};
use crate::connection::Reader;
use crate::error::{Error, Result};

/// One answer line (without CRLF) and the data block it announced.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Frame {
    /// The line.
    pub(crate) line: Vec<u8>,
    /// The data block (`VA <len>` in meta, `VALUE ... <len>` in classic).
    pub(crate) data: Option<Vec<u8>>,
}

impl Frame {
    /// True when the line is one of the error lines both dialects share.
    pub(crate) fn is_error_line(&self) -> bool {
        super::is_error_line(&self.line)
    }

    /// True when the connection can still be trusted after this frame:
    /// memcached answers `SERVER_ERROR` (out of memory, too large) with one
    /// line and carries on, while `ERROR` or `CLIENT_ERROR` say it did not
    /// understand the stream, so what it reads next is anyone's guess.
    pub(crate) fn keeps_stream_in_sync(&self) -> bool {
        !self.is_error_line() || self.line.starts_with(b"SERVER_ERROR")
    }
}

/// How the answers to one request are delimited.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Framing {
    /// This many meta answers, each one line plus a block after `VA`, each
    /// carrying this `O` token (`protocol::meta` explains why).
    Meta { answers: usize, opaque: u32 },
    /// One classic answer line (`STORED`, `DELETED`, ...).
    ClassicLine,
    /// This many classic retrieval answers: `VALUE` lines with their blocks
    /// up to `END` (or one error line).
    ClassicValues(usize),
}

/// Reads the frames of one request's answers. The classic `END` lines are
/// not returned (they carry nothing); an error line is returned as a frame
/// and ends its answer.
pub(crate) async fn read_frames<R: AsyncRead + Unpin>(
    reader: &mut Reader<R>,
    framing: Framing,
    operation: &'static str,
) -> Result<Vec<Frame>> {
    match framing {
        Framing::Meta { answers, opaque } => {
            let mut frames = Vec::with_capacity(answers);
            for _ in 0..answers {
                let line = reader.read_line(operation).await?;
                let data = match meta_header::parse_header(&line) {
                    Some(header) if header.opaque != Some(opaque) => {
                        return Err(Error::Protocol {
                            server: reader.server().to_owned(),
                            message: format!(
                                "answer to {operation} carries token {:?} where O{opaque} was \
                                 sent: answers are out of step with requests",
                                header.opaque
                            ),
                        });
                    }
                    Some(header) => match header.status {
                        Status::Value(len) => Some(reader.read_block(operation, len).await?),
                        _ => None,
                    },
                    None if is_error_line(&line) => None,
                    None => return Err(not_an_answer(reader.server(), operation, &line)),
                };
                frames.push(Frame { line, data });
            }
            Ok(frames)
        }
        Framing::ClassicLine => {
            let line = reader.read_line(operation).await?;
            Ok(vec![Frame { line, data: None }])
        }
        Framing::ClassicValues(answers) => {
            let mut frames = Vec::new();
            for _ in 0..answers {
                loop {
                    let line = reader.read_line(operation).await?;
                    if line == b"END" {
                        break;
                    }
                    let frame = match value_len(&line) {
                        Some(len) => Frame {
                            data: Some(reader.read_block(operation, len).await?),
                            line,
                        },
                        None if is_error_line(&line) => {
                            frames.push(Frame { line, data: None });
                            break;
                        }
                        None => return Err(not_an_answer(reader.server(), operation, &line)),
                    };
                    frames.push(frame);
                }
            }
            Ok(frames)
        }
    }
}

/// The block length of a classic `VALUE <key> <flags> <bytes> [<cas>]`.
fn value_len(line: &[u8]) -> Option<usize> {
    let mut fields = line.split(|&b| b == b' ').filter(|f| !f.is_empty());
    if fields.next()? != b"VALUE" {
        return None;
    }
    parse_num(fields.nth(2)?)
}

/// A line that is no answer of the dialect at all: the stream is confused.
fn not_an_answer(server: &str, operation: &str, line: &[u8]) -> Error {
    Error::Protocol {
        server: server.to_owned(),
        message: format!(
            "unexpected answer to {operation}: {:?}",
            String::from_utf8_lossy(&line[..line.len().min(100)])
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn frames(input: &'static [u8], framing: Framing) -> Result<Vec<Frame>> {
        let mut reader = Reader::new(input, "test".to_owned());
        read_frames(&mut reader, framing, "get").await
    }

    fn meta_framing(answers: usize) -> Framing {
        Framing::Meta { answers, opaque: 4 }
    }

    #[tokio::test]
    async fn an_answer_with_another_token_is_refused() {
        // Another request's answer (a lost or duplicated one before it)
        // must never be handed to this caller.
        for input in [&b"EN O5\r\n"[..], b"EN\r\n", b"HD c1 O44\r\n"] {
            let mut reader = Reader::new(input, "test".to_owned());
            let err = read_frames(&mut reader, meta_framing(1), "get")
                .await
                .unwrap_err();
            assert!(
                matches!(&err, Error::Protocol { message, .. } if message.contains("out of step")),
                "{err:?}"
            );
        }
    }

    fn frame(line: &[u8], data: Option<&[u8]>) -> Frame {
        Frame {
            line: line.to_vec(),
            data: data.map(<[u8]>::to_vec),
        }
    }

    #[tokio::test]
    async fn meta_answers_with_and_without_blocks() {
        let got = frames(
            b"VA 2 f1 c3 O4\r\nab\r\nEN O4\r\nHD c9 O4\r\n",
            meta_framing(3),
        )
        .await
        .unwrap();
        assert_eq!(
            got,
            vec![
                frame(b"VA 2 f1 c3 O4", Some(b"ab")),
                frame(b"EN O4", None),
                frame(b"HD c9 O4", None)
            ]
        );
    }

    #[tokio::test]
    async fn an_error_line_is_a_frame_and_a_stranger_line_an_error() {
        let got = frames(b"SERVER_ERROR out of memory\r\n", meta_framing(1))
            .await
            .unwrap();
        assert!(got[0].is_error_line() && got[0].keeps_stream_in_sync());
        let got = frames(b"CLIENT_ERROR bad\r\n", meta_framing(1))
            .await
            .unwrap();
        assert!(!got[0].keeps_stream_in_sync());
        let err = frames(b"STORED\r\n", meta_framing(1)).await.unwrap_err();
        assert!(matches!(err, Error::Protocol { .. }), "{err:?}");
    }

    #[tokio::test]
    async fn classic_values_up_to_end_for_each_answer() {
        let got = frames(
            b"VALUE a 0 1 5\r\nx\r\nEND\r\nEND\r\nVALUE b 2 0 6\r\n\r\nEND\r\n",
            Framing::ClassicValues(3),
        )
        .await
        .unwrap();
        assert_eq!(
            got,
            vec![
                frame(b"VALUE a 0 1 5", Some(b"x")),
                frame(b"VALUE b 2 0 6", Some(b""))
            ]
        );
        let got = frames(b"SERVER_ERROR busy\r\n", Framing::ClassicValues(1))
            .await
            .unwrap();
        assert_eq!(got, vec![frame(b"SERVER_ERROR busy", None)]);
    }

    #[tokio::test]
    async fn a_stream_that_ends_early_is_an_io_error() {
        let err = frames(b"VA 5 f0 c1 O4\r\nab", meta_framing(1))
            .await
            .unwrap_err();
        assert!(matches!(err, Error::Io { sent: true, .. }), "{err:?}");
    }
}
