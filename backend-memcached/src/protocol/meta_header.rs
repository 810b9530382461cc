//! One meta answer line (`VA 3 f5 c2 t99 O12`), parsed: its status and
//! the flags we ask for.
//!
//! A leaf of its own because two modules read it: `frame.rs`, which needs a
//! line's block length (`VA <len>`) and its `O` token to cut an answer off
//! the wire, and `meta.rs`, which turns the parsed lines into a reply. Each
//! depends on this module, neither on the other for it.

use super::parse_num;

/// The status of a meta answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Status {
    /// `VA <len>`: a value of this many bytes follows.
    Value(usize),
    /// `HD`: success without a value.
    Done,
    /// `EN`: miss.
    Miss,
    /// `NS`: not stored (add on an existing key).
    NotStored,
    /// `EX`: CAS mismatch.
    Exists,
    /// `NF`: not found (cas, delete).
    NotFound,
}

/// One parsed meta answer line.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Header {
    pub(crate) status: Status,
    pub(crate) cas: Option<u64>,
    pub(crate) flags: Option<u32>,
    pub(crate) ttl: Option<i64>,
    /// The `O` token the request carried, echoed back.
    pub(crate) opaque: Option<u32>,
}

/// Parses a meta answer line (without CRLF); `None` if it is not one.
pub(crate) fn parse_header(line: &[u8]) -> Option<Header> {
    let mut fields = line.split(|&b| b == b' ').filter(|f| !f.is_empty());
    let status = match fields.next()? {
        b"VA" => Status::Value(parse_num(fields.next()?)?),
        b"HD" => Status::Done,
        b"EN" => Status::Miss,
        b"NS" => Status::NotStored,
        b"EX" => Status::Exists,
        b"NF" => Status::NotFound,
        _ => return None,
    };
    let mut header = Header {
        status,
        cas: None,
        flags: None,
        ttl: None,
        opaque: None,
    };
    for field in fields {
        let (&letter, value) = field.split_first()?;
        match letter {
            b'c' => header.cas = Some(parse_num(value)?),
            b'f' => header.flags = Some(parse_num(value)?),
            b't' => header.ttl = Some(parse_num(value)?),
            b'O' => header.opaque = Some(parse_num(value)?),
            // Flags we did not ask for carry nothing we need.
            _ => {}
        }
    }
    Some(header)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_headers() {
        assert_eq!(
            parse_header(b"VA 3 f5 c2 t99"),
            Some(Header {
                status: Status::Value(3),
                cas: Some(2),
                flags: Some(5),
                ttl: Some(99),
                opaque: None
            })
        );
        let h = parse_header(b"HD c7").unwrap();
        assert_eq!((h.status, h.cas), (Status::Done, Some(7)));
        assert_eq!(parse_header(b"EN").unwrap().status, Status::Miss);
        assert_eq!(parse_header(b"NS c0").unwrap().status, Status::NotStored);
        assert_eq!(parse_header(b"EX c0").unwrap().status, Status::Exists);
        assert_eq!(parse_header(b"NF").unwrap().status, Status::NotFound);
        assert_eq!(parse_header(b"HD t-1").unwrap().ttl, Some(-1));
        let h = parse_header(b"VA 3 kfoo O12").unwrap();
        assert_eq!((h.status, h.opaque), (Status::Value(3), Some(12)));
        // We send only numeric tokens: another one is not our answer.
        assert!(parse_header(b"EN Oabc").is_none());
        assert!(parse_header(b"SERVER_ERROR object too large for cache").is_none());
        assert!(parse_header(b"VA x").is_none());
        assert!(parse_header(b"HD cX").is_none());
        assert!(parse_header(b"").is_none());
    }
}
