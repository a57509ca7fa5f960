//! Streaming decoder for the `chunked` transfer coding (RFC 9112 §7.1).
//!
//! It runs byte by byte over framing and in bulk over chunk data, keeps no
//! buffer, and so gives the same result however the input is split. Chunk
//! extensions and trailer fields are skipped unread, within limits.

use crate::error::{ChunkError, HttpError};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// In `chunk-size`; `digits` hex digits seen so far.
    Size {
        value: u64,
        digits: u32,
    },
    /// After the size: BWS and `chunk-ext`, up to CR.
    Extension {
        value: u64,
    },
    /// CR of the size line seen; LF must follow.
    SizeLf {
        value: u64,
    },
    /// Inside `chunk-data`, this many bytes left.
    Data {
        remaining: u64,
    },
    /// After the data: CR, then LF.
    DataCr,
    DataLf,
    /// At the start of a trailer-section line (or the final empty line).
    TrailerLineStart,
    /// Inside a trailer field line, skipping to CR.
    TrailerLine,
    /// CR of a trailer field line seen; LF must follow.
    TrailerLineLf,
    /// CR of the final empty line seen; LF must follow.
    LastLf,
    Done,
}

/// How far one call to [`ChunkedDecoder::feed`] got.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Progress {
    /// Input bytes used (framing and data).
    pub consumed: usize,
    /// Of those, chunk-data bytes.
    pub data: u64,
    /// The last chunk and trailer section have been read.
    pub done: bool,
}

#[derive(Debug, Clone)]
pub(crate) struct ChunkedDecoder {
    state: State,
    /// Bytes of the current size line, against `limit`.
    line_len: usize,
    /// Bytes of the trailer section, against `limit`.
    trailer_len: usize,
    limit: usize,
}

const CR: u8 = b'\r';
const LF: u8 = b'\n';

impl ChunkedDecoder {
    /// `limit` bounds one chunk-size line and the whole trailer section.
    pub(crate) fn new(limit: usize) -> Self {
        ChunkedDecoder {
            state: State::Size {
                value: 0,
                digits: 0,
            },
            line_len: 0,
            trailer_len: 0,
            limit,
        }
    }

    pub(crate) fn feed(&mut self, input: &[u8]) -> Result<Progress, HttpError> {
        let mut progress = Progress {
            consumed: 0,
            data: 0,
            done: false,
        };
        while progress.consumed < input.len() {
            let rest = &input[progress.consumed..];
            if let State::Data { remaining } = self.state {
                let n = remaining.min(rest.len() as u64);
                progress.consumed += n as usize;
                progress.data += n;
                self.state = if n == remaining {
                    State::DataCr
                } else {
                    State::Data {
                        remaining: remaining - n,
                    }
                };
                continue;
            }
            if self.state == State::Done {
                break;
            }
            self.step(rest[0])?;
            progress.consumed += 1;
        }
        progress.done = self.state == State::Done;
        Ok(progress)
    }

    fn step(&mut self, byte: u8) -> Result<(), HttpError> {
        let err = |e| Err(HttpError::Chunked(e));
        self.state = match self.state {
            State::Size { value, digits } => {
                self.count_line_byte()?;
                if let Some(d) = hex_value(byte) {
                    if value > u64::MAX >> 4 {
                        return err(ChunkError::SizeOverflow);
                    }
                    State::Size {
                        value: value << 4 | d,
                        digits: digits + 1,
                    }
                } else if digits == 0 {
                    return err(ChunkError::MissingSize);
                } else {
                    match byte {
                        CR => State::SizeLf { value },
                        b';' | b' ' | b'\t' => State::Extension { value },
                        _ => return err(ChunkError::InvalidSizeByte(byte)),
                    }
                }
            }
            State::Extension { value } => {
                self.count_line_byte()?;
                match byte {
                    CR => State::SizeLf { value },
                    LF => return err(ChunkError::InvalidSizeByte(byte)),
                    _ => State::Extension { value },
                }
            }
            State::SizeLf { value } => {
                if byte != LF {
                    return err(ChunkError::ExpectedCrlf(byte));
                }
                self.line_len = 0;
                if value == 0 {
                    State::TrailerLineStart
                } else {
                    State::Data { remaining: value }
                }
            }
            State::DataCr => expect(byte, CR, State::DataLf)?,
            State::DataLf => expect(
                byte,
                LF,
                State::Size {
                    value: 0,
                    digits: 0,
                },
            )?,
            State::TrailerLineStart => {
                self.count_trailer_byte()?;
                match byte {
                    CR => State::LastLf,
                    LF => return err(ChunkError::ExpectedCrlf(byte)),
                    _ => State::TrailerLine,
                }
            }
            State::TrailerLine => {
                self.count_trailer_byte()?;
                match byte {
                    CR => State::TrailerLineLf,
                    LF => return err(ChunkError::ExpectedCrlf(byte)),
                    _ => State::TrailerLine,
                }
            }
            State::TrailerLineLf => {
                self.count_trailer_byte()?;
                expect(byte, LF, State::TrailerLineStart)?
            }
            State::LastLf => expect(byte, LF, State::Done)?,
            // `feed` handles these two without calling `step`.
            State::Data { remaining } => State::Data { remaining },
            State::Done => State::Done,
        };
        Ok(())
    }

    fn count_line_byte(&mut self) -> Result<(), HttpError> {
        self.line_len += 1;
        if self.line_len > self.limit {
            return Err(HttpError::Chunked(ChunkError::LineTooLong {
                limit: self.limit,
            }));
        }
        Ok(())
    }

    fn count_trailer_byte(&mut self) -> Result<(), HttpError> {
        self.trailer_len += 1;
        if self.trailer_len > self.limit {
            return Err(HttpError::TrailersTooLarge { limit: self.limit });
        }
        Ok(())
    }
}

fn expect(byte: u8, wanted: u8, next: State) -> Result<State, HttpError> {
    if byte == wanted {
        Ok(next)
    } else {
        Err(HttpError::Chunked(ChunkError::ExpectedCrlf(byte)))
    }
}

fn hex_value(byte: u8) -> Option<u64> {
    match byte {
        b'0'..=b'9' => Some(u64::from(byte - b'0')),
        b'a'..=b'f' => Some(u64::from(byte - b'a' + 10)),
        b'A'..=b'F' => Some(u64::from(byte - b'A' + 10)),
        _ => None,
    }
}
