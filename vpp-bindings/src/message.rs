//! The `Message` trait every generated message implements, the message header, and the
//! message table (`name_crc` ↔ id) that a VPP connection negotiates.
//! Header fields (`_vl_msg_id`, `client_index`, `context`) live here, never in user structs.

use std::collections::HashMap;

use crate::codec::{Decode, DecodeError, Encode, EncodeError, Reader, Writer};

/// Which header fields precede a message's body on the wire (after the u16 `_vl_msg_id`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum HeaderKind {
    /// `client_index`, `context`: requests (and `sockclnt_create_reply`).
    Request,
    /// `context`: replies and details.
    Reply,
    /// `client_index` only: events such as `sw_interface_event`.
    Event,
    /// Nothing but the message id.
    Bare,
}

impl HeaderKind {
    /// Bytes taken by the header, message id included.
    pub const fn wire_len(self) -> usize {
        match self {
            HeaderKind::Request => 10,
            HeaderKind::Reply => 6,
            HeaderKind::Event => 6,
            HeaderKind::Bare => 2,
        }
    }

    /// Offset of the `context` field, when the kind has one.
    pub const fn context_offset(self) -> Option<usize> {
        match self {
            HeaderKind::Request => Some(6),
            HeaderKind::Reply => Some(2),
            HeaderKind::Event | HeaderKind::Bare => None,
        }
    }
}

/// The decoded header of one message. Fields the kind lacks are 0.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Header {
    pub msg_id: u16,
    pub client_index: u32,
    pub context: u32,
}

/// Static facts about one generated message: enough for a server to build its message table
/// and for the compatibility check.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct MessageInfo {
    /// e.g. `npol_rule_create`
    pub name: &'static str,
    /// e.g. `0xf113de45`
    pub crc: &'static str,
    /// e.g. `npol_rule_create_f113de45`, the key of VPP's message table.
    pub name_crc: &'static str,
    /// API file the message comes from, e.g. `npol`.
    pub module: &'static str,
    pub header: HeaderKind,
}

/// One VPP API message: its name, CRC, header layout and body codec.
///
/// `Encode`/`Decode` handle the body only (fields after the header); use [`encode_message`]
/// and [`decode_message`] for whole messages.
pub trait Message:
    Encode + Decode + Default + Clone + std::fmt::Debug + PartialEq + Send + Sync + 'static
{
    const NAME: &'static str;
    const CRC: &'static str;
    const NAME_CRC: &'static str;
    const MODULE: &'static str;
    const HEADER: HeaderKind;
    const INFO: MessageInfo = MessageInfo {
        name: Self::NAME,
        crc: Self::CRC,
        name_crc: Self::NAME_CRC,
        module: Self::MODULE,
        header: Self::HEADER,
    };

    /// The `retval` of a reply, for messages that carry one right after the header.
    fn retval(&self) -> Option<i32> {
        None
    }
}

/// A decoded message of a type known only at run time (see [`MessageCodec`]); downcast with
/// `as_any().downcast_ref::<NpolRuleCreate>()`.
pub trait DynMessage: std::fmt::Debug + Send + Sync + 'static {
    fn info(&self) -> MessageInfo;
    fn as_any(&self) -> &dyn std::any::Any;
    /// Encodes the body (no header).
    fn encode_body(&self, w: &mut Writer) -> Result<(), EncodeError>;
}

impl<M: Message> DynMessage for M {
    fn info(&self) -> MessageInfo {
        M::INFO
    }
    fn as_any(&self) -> &dyn std::any::Any {
        self
    }
    fn encode_body(&self, w: &mut Writer) -> Result<(), EncodeError> {
        self.encode(w)
    }
}

/// Decodes a whole message of one type into a boxed [`DynMessage`].
pub type DynDecoder = fn(&[u8]) -> Result<(Header, Box<dyn DynMessage>), DecodeError>;

/// Run-time handle on one generated message type: its facts, a decoder, and an encoder of
/// its `Default` value (`msg_id`, `client_index`, `context`). Generated modules list them
/// in `CODECS`; [`crate::codec_for`] finds one by `name_crc`.
#[derive(Clone, Copy)]
pub struct MessageCodec {
    pub info: MessageInfo,
    pub decode: DynDecoder,
    pub encode_default: fn(u16, u32, u32) -> Result<Vec<u8>, EncodeError>,
}

impl std::fmt::Debug for MessageCodec {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MessageCodec")
            .field("info", &self.info)
            .finish()
    }
}

fn decode_dyn<M: Message>(b: &[u8]) -> Result<(Header, Box<dyn DynMessage>), DecodeError> {
    let (h, m) = decode_message::<M>(b)?;
    Ok((h, Box::new(m)))
}

fn encode_default<M: Message>(
    id: u16,
    client_index: u32,
    context: u32,
) -> Result<Vec<u8>, EncodeError> {
    encode_message(&M::default(), id, client_index, context)
}

impl MessageCodec {
    pub const fn of<M: Message>() -> Self {
        MessageCodec {
            info: M::INFO,
            decode: decode_dyn::<M>,
            encode_default: encode_default::<M>,
        }
    }
}

/// A request answered by exactly one reply.
pub trait Request: Message {
    type Reply: Message;
}

/// A dump whose answers are a stream of details closed by `control_ping_reply`.
pub trait Dump: Message {
    type Details: Message;
}

/// A request that, besides its reply, subscribes to events.
pub trait Subscribe: Request {
    type Event: Message;
}

/// Writes a whole message: id, the header fields its kind has, then the body.
pub fn encode_message<M: Message>(
    msg: &M,
    msg_id: u16,
    client_index: u32,
    context: u32,
) -> Result<Vec<u8>, EncodeError> {
    let mut w = Writer::with_capacity(64);
    w.put_u16(msg_id);
    match M::HEADER {
        HeaderKind::Request => {
            w.put_u32(client_index);
            w.put_u32(context);
        }
        HeaderKind::Reply => w.put_u32(context),
        HeaderKind::Event => w.put_u32(client_index),
        HeaderKind::Bare => {}
    }
    msg.encode(&mut w)?;
    Ok(w.into_inner())
}

/// Reads a whole message, checking nothing is left over. The message id is returned in the
/// header, unchecked: see [`MessageTable::decode`] to check it.
pub fn decode_message<M: Message>(bytes: &[u8]) -> Result<(Header, M), DecodeError> {
    let mut r = Reader::new(bytes);
    let header = read_header(&mut r, M::HEADER)?;
    let msg = M::decode(&mut r)?;
    r.finish()?;
    Ok((header, msg))
}

/// Reads the header of a message of the given kind.
pub fn read_header(r: &mut Reader<'_>, kind: HeaderKind) -> Result<Header, DecodeError> {
    let mut h = Header {
        msg_id: r.u16()?,
        ..Header::default()
    };
    match kind {
        HeaderKind::Request => {
            h.client_index = r.u32()?;
            h.context = r.u32()?;
        }
        HeaderKind::Reply => h.context = r.u32()?,
        HeaderKind::Event => h.client_index = r.u32()?,
        HeaderKind::Bare => {}
    }
    Ok(h)
}

/// The message id of any message: its first two bytes.
pub fn peek_msg_id(bytes: &[u8]) -> Result<u16, DecodeError> {
    Reader::new(bytes).u16()
}

/// The `context` of a message of the given kind, if the kind has one.
pub fn peek_context(bytes: &[u8], kind: HeaderKind) -> Result<Option<u32>, DecodeError> {
    let mut r = Reader::new(bytes);
    Ok(Some(read_header(&mut r, kind)?.context).filter(|_| kind.context_offset().is_some()))
}

/// The `sockclnt_create` request always travels with this id: the table is not known yet.
pub const SOCKCLNT_CREATE_MSG_ID: u16 = 15;
/// ... and its reply with this one.
pub const SOCKCLNT_CREATE_REPLY_MSG_ID: u16 = 16;

/// VPP's message table: `name_crc` ↔ message id, as `sockclnt_create_reply` carries it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MessageTable {
    by_name_crc: HashMap<String, u16>,
    by_id: HashMap<u16, String>,
}

impl MessageTable {
    pub fn new() -> Self {
        Self::default()
    }

    /// Builds a table from `(id, name_crc)` pairs, as received from VPP.
    pub fn from_entries<I, S>(entries: I) -> Self
    where
        I: IntoIterator<Item = (u16, S)>,
        S: Into<String>,
    {
        let mut t = Self::new();
        for (id, name) in entries {
            t.insert(id, name);
        }
        t
    }

    /// Numbers messages from 1 in the given order, as VPP does (memclnt first, so
    /// `sockclnt_create` gets 15). Meant for servers and simulators.
    pub fn sequential<'a, I>(infos: I) -> Self
    where
        I: IntoIterator<Item = &'a MessageInfo>,
    {
        let mut t = Self::new();
        let mut id: u16 = 1;
        for info in infos {
            if t.by_name_crc.contains_key(info.name_crc) {
                continue;
            }
            t.insert(id, info.name_crc);
            id = id.wrapping_add(1);
        }
        t
    }

    pub fn insert(&mut self, id: u16, name_crc: impl Into<String>) {
        let name_crc = name_crc.into();
        self.by_id.insert(id, name_crc.clone());
        self.by_name_crc.insert(name_crc, id);
    }

    pub fn id(&self, name_crc: &str) -> Option<u16> {
        self.by_name_crc.get(name_crc).copied()
    }

    /// The id VPP gave message `M`, if it knows `M` with the same CRC.
    pub fn id_of<M: Message>(&self) -> Option<u16> {
        self.id(M::NAME_CRC)
    }

    pub fn name_crc(&self, id: u16) -> Option<&str> {
        self.by_id.get(&id).map(String::as_str)
    }

    pub fn len(&self) -> usize {
        self.by_id.len()
    }

    pub fn is_empty(&self) -> bool {
        self.by_id.is_empty()
    }

    /// Every `(id, name_crc)` pair, sorted by id.
    pub fn entries(&self) -> Vec<(u16, &str)> {
        let mut v: Vec<_> = self.by_id.iter().map(|(i, n)| (*i, n.as_str())).collect();
        v.sort_unstable_by_key(|(i, _)| *i);
        v
    }

    /// Finds a message by bare name whatever its CRC: `(id, name_crc)`.
    pub fn find_by_name(&self, name: &str) -> Option<(u16, &str)> {
        self.by_name_crc.iter().find_map(|(nc, id)| {
            let (n, crc) = nc.rsplit_once('_')?;
            (n == name && crc.len() == 8).then_some((*id, nc.as_str()))
        })
    }

    /// Encodes `msg` with the id this table gives it.
    pub fn encode<M: Message>(
        &self,
        msg: &M,
        client_index: u32,
        context: u32,
    ) -> Result<Vec<u8>, TableError> {
        let id = self
            .id_of::<M>()
            .ok_or(TableError::NotInTable(M::NAME_CRC))?;
        Ok(encode_message(msg, id, client_index, context)?)
    }

    /// Decodes bytes as message `M`, checking the id is the one this table gives `M`.
    pub fn decode<M: Message>(&self, bytes: &[u8]) -> Result<(Header, M), TableError> {
        let expected = self
            .id_of::<M>()
            .ok_or(TableError::NotInTable(M::NAME_CRC))?;
        let got = peek_msg_id(bytes)?;
        if got != expected {
            return Err(DecodeError::UnexpectedMessageId {
                name: M::NAME,
                expected,
                got,
            }
            .into());
        }
        Ok(decode_message(bytes)?)
    }

    /// The `name_crc` of the message in `bytes`, for dispatching with a `match` on
    /// `M::NAME_CRC` constants.
    pub fn name_crc_of(&self, bytes: &[u8]) -> Result<&str, TableError> {
        let id = peek_msg_id(bytes)?;
        self.name_crc(id).ok_or(TableError::UnknownId(id))
    }
}

/// Errors of encoding or decoding through a [`MessageTable`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TableError {
    #[error("message {0} is not in the message table")]
    NotInTable(&'static str),
    #[error("message id {0} is not in the message table")]
    UnknownId(u16),
    #[error(transparent)]
    Encode(#[from] EncodeError),
    #[error(transparent)]
    Decode(#[from] DecodeError),
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::gen::memclnt::{ControlPing, ControlPingReply, SockclntCreate, SockclntCreateReply};

    #[test]
    fn sequential_table_gives_sockclnt_create_vpp_ids() {
        let t = MessageTable::sequential(crate::all_messages());
        assert_eq!(t.id_of::<SockclntCreate>(), Some(SOCKCLNT_CREATE_MSG_ID));
        assert_eq!(
            t.id_of::<SockclntCreateReply>(),
            Some(SOCKCLNT_CREATE_REPLY_MSG_ID)
        );
    }

    #[test]
    fn request_header_carries_client_index_and_context() {
        let b = encode_message(&ControlPing {}, 7, 0x01020304, 0x0a0b0c0d).unwrap();
        assert_eq!(b, vec![0, 7, 1, 2, 3, 4, 0x0a, 0x0b, 0x0c, 0x0d]);
        let (h, _) = decode_message::<ControlPing>(&b).unwrap();
        assert_eq!(
            (h.msg_id, h.client_index, h.context),
            (7, 0x01020304, 0x0a0b0c0d)
        );
    }

    #[test]
    fn table_decode_refuses_a_different_message_id() {
        let t = MessageTable::sequential(crate::all_messages());
        let reply = ControlPingReply {
            retval: 0,
            client_index: 1,
            vpe_pid: 2,
        };
        let b = t.encode(&reply, 0, 9).unwrap();
        assert!(t.decode::<ControlPingReply>(&b).is_ok());
        assert!(matches!(
            t.decode::<ControlPing>(&b),
            Err(TableError::Decode(DecodeError::UnexpectedMessageId { .. }))
        ));
        assert_eq!(t.name_crc_of(&b).unwrap(), ControlPingReply::NAME_CRC);
    }
}
