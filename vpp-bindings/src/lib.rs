//! VPP's binary API: generated message types, codec, transports and an async client.
//! Knows nothing of Calico.
//!
//! # Using the bindings
//!
//! Every VPP API file is a module of [`gen`], every message a struct named in CamelCase:
//! `npol_rule_create` is [`gen::npol::NpolRuleCreate`], type `vl_api_npol_rule_t` is
//! `gen::npol::NpolRule`. Structs implement `Default` (with the JSON's defaults, e.g.
//! `sw_if_index = ~0`), `Clone`, `Debug`, `PartialEq`.
//!
//! - Header fields (`_vl_msg_id`, `client_index`, `context`) are not struct fields: the codec
//!   and client handle them. Count fields of variable arrays are not struct fields either: a
//!   `Vec` carries the elements and its length is written as the count.
//! - Enums are Rust enums (`AddressFamily::AddressIp4`, `to_raw`/`from_raw`/`api_name`);
//!   decoding an unknown value is an error. Flag sets (`enumflag`, and VPP enums named
//!   `*_flags`) are newtypes with the upstream names as constants
//!   (`IfStatusFlags::IF_STATUS_API_FLAG_ADMIN_UP | ...`); unknown bits are an error.
//! - Unions are byte arrays with typed accessors: `AddressUnion::from_ip4(&ip4)?`,
//!   `union.ip4()?`. [`ext`] converts `Address`/`Prefix` to and from `std::net`/`ipnet`.
//! - Strings are `String`: `string x[N]` holds at most N-1 bytes; `string x[]` any length.
//! - `f64` travels in host (little-endian) order, as VPP sends it.
//!
//! Every message implements [`Message`] (`NAME`, `CRC`, `NAME_CRC`, `HEADER`, `INFO`).
//! Requests implement [`message::Request`] (`type Reply`), dumps [`message::Dump`]
//! (`type Details`), event subscriptions [`message::Subscribe`] (`type Event`).
//!
//! # Whole messages, server side
//!
//! - [`encode_message`]`(&msg, msg_id, client_index, context)` / [`decode_message`]`::<M>(&bytes)`.
//! - [`MessageTable`]: `name_crc` ↔ id. `MessageTable::sequential(all_messages())`
//!   numbers every generated message like VPP does (memclnt first: `sockclnt_create` = 15);
//!   `table.name_crc_of(&bytes)` then `match` on `M::NAME_CRC` dispatches a request,
//!   `table.decode::<M>(&bytes)` decodes it, `table.encode(&reply, 0, context)` answers.
//! - [`all_messages`] lists `(name, crc, name_crc, module, header)` of every message.
//! - [`codec_for`]`(name_crc)` gives a [`MessageCodec`] to decode any generated message at
//!   run time into a `Box<dyn DynMessage>` (downcast with `as_any().downcast_ref::<M>()`).
//! - Generated types implement `serde::Deserialize` in the shape VPP's Python client takes
//!   (unions as `{"member": value}`, enums as numbers), handy for test fixtures.
//!
//! # Client
//!
//! [`client::Client`] over any [`transport::Transport`] (AF_UNIX socket, shared memory,
//! in-memory pair):
//! - `Client::connect(path, ClientConfig { required, .. })` runs `sockclnt_create` and refuses
//!   a VPP whose table lacks any `required` message with our CRC (`ClientError::Incompatible`).
//! - `Client::connect_shm(prefix, config)` reaches VPP over shared memory through
//!   `libvppapiclient.so`, loaded at run time (no build or run dependency on VPP otherwise):
//!   ids come from `vac_get_msg_index`, then the same check. One such connection per process
//!   ([`transport::shm::ShmError::AlreadyConnected`]); a missing library or API segment is a
//!   typed error. VPP polls shared memory from its main loop and sleeps up to 10 ms when
//!   idle, so single requests are much slower than on the socket; pipelined batches are not.
//! - `request(&req) -> R::Reply`, `dump(&req) -> Vec<D::Details>`,
//!   `request_batch(&[req]) -> Vec<Result<Reply>>` and `batch()` (mixed kinds) pipeline many
//!   requests behind one `control_ping`; `subscribe(&want_..)` gives an event stream.
//! - A negative `retval` is `ClientError::Vpp { msg, code, name }` (names from [`errno`]); a
//!   missing reply times out and marks the connection broken.
//!
//! [`compat::check`]`(&client, &required).await` returns a printable [`compat::CompatReport`]
//! with VPP's version (connect with an empty `required` to report instead of refusing).

pub mod apigen;
pub mod client;
pub mod codec;
pub mod compat;
pub mod errno;
pub mod ext;
pub mod message;
pub mod serde_support;
pub mod transport;

#[allow(
    unused_imports,
    dead_code,
    non_camel_case_types,
    clippy::all,
    clippy::pedantic
)]
#[rustfmt::skip]
pub mod gen;

pub use codec::{Decode, DecodeError, Encode, EncodeError, Reader, Writer};
pub use message::{
    decode_message, encode_message, Dump, DynMessage, Header, HeaderKind, Message, MessageCodec,
    MessageInfo, MessageTable, Request, Subscribe,
};

/// Run-time codec of a generated message by `name_crc` (e.g. to decode whatever a peer sent
/// after looking its id up in a [`MessageTable`]).
pub fn codec_for(name_crc: &str) -> Option<&'static message::MessageCodec> {
    static INDEX: std::sync::OnceLock<
        std::collections::HashMap<&'static str, &'static message::MessageCodec>,
    > = std::sync::OnceLock::new();
    INDEX
        .get_or_init(|| all_codecs().map(|c| (c.info.name_crc, c)).collect())
        .get(name_crc)
        .copied()
}

/// Every generated message's run-time codec, memclnt first.
pub fn all_codecs() -> impl Iterator<Item = &'static message::MessageCodec> {
    gen::CODEC_MODULES.iter().flat_map(|m| m.iter())
}

/// Every generated message, memclnt first.
pub fn all_messages() -> impl Iterator<Item = &'static MessageInfo> {
    gen::MODULES.iter().flat_map(|(_, msgs)| msgs.iter())
}
