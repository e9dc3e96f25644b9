//! A small synchronous rtnetlink client: one request, its replies, its ack.
//! A netlink socket stays bound to the network namespace of the thread that
//! opened it, which is how the rest of the crate reaches into a pod's
//! namespace. This module knows message layouts, not pods.

use std::{fmt, io, net::IpAddr, os::fd::RawFd};

use ipnet::IpNet;
use netlink_packet_core::{
    NetlinkBuffer, NetlinkHeader, NetlinkMessage, NetlinkPayload, NlasIterator, NLM_F_ACK,
    NLM_F_ACK_TLVS, NLM_F_CAPPED, NLM_F_CREATE, NLM_F_EXCL, NLM_F_REPLACE, NLM_F_REQUEST,
};
use netlink_packet_route::{
    address::{AddressAttribute, AddressFlags, AddressHeaderFlags, AddressMessage},
    link::{InfoData, InfoKind, InfoVeth, LinkAttribute, LinkFlags, LinkInfo, LinkMessage},
    neighbour::{NeighbourAddress, NeighbourAttribute, NeighbourMessage, NeighbourState},
    nsid::{NsidAttribute, NsidMessage},
    route::{RouteAddress, RouteAttribute, RouteMessage, RouteProtocol, RouteScope, RouteType},
    AddressFamily, RouteNetlinkMessage,
};
use netlink_sys::{protocols::NETLINK_ROUTE, Socket, SocketAddr};

/// The main routing table (`RT_TABLE_MAIN`).
const RT_TABLE_MAIN: u8 = 254;

/// Why a request failed.
#[derive(Debug)]
pub(crate) enum NlError {
    /// The kernel answered with this errno, and perhaps an explanation
    /// (netlink extended ack).
    Kernel { errno: i32, message: Option<String> },
    /// The socket itself failed.
    Io(io::Error),
    /// The kernel's reply could not be parsed.
    Decode(String),
}

impl NlError {
    pub(crate) fn is(&self, errno: i32) -> bool {
        matches!(self, Self::Kernel { errno: e, .. } if *e == errno)
    }
}

impl fmt::Display for NlError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Kernel { errno, message } => {
                write!(
                    f,
                    "the kernel answered: {}",
                    io::Error::from_raw_os_error(*errno)
                )?;
                match message {
                    Some(message) => write!(f, " ({message})"),
                    None => Ok(()),
                }
            }
            Self::Io(e) => write!(f, "netlink socket error: {e}"),
            Self::Decode(e) => write!(f, "unreadable netlink reply: {e}"),
        }
    }
}

/// What the crate needs to know about a link.
#[derive(Debug, Clone)]
pub(crate) struct Link {
    pub index: u32,
    pub kind: Option<InfoKind>,
    /// `IFLA_LINK`: for a veth, the peer's ifindex (in the peer's namespace).
    pub peer_index: Option<u32>,
    /// `IFLA_LINK_NETNSID`: present when the peer lives in another namespace.
    pub peer_netnsid: Option<i32>,
    pub mac: Option<[u8; 6]>,
}

impl Link {
    fn from_message(msg: LinkMessage) -> Self {
        let mut link = Link {
            index: msg.header.index,
            kind: None,
            peer_index: None,
            peer_netnsid: None,
            mac: None,
        };
        for attr in msg.attributes {
            match attr {
                LinkAttribute::LinkInfo(infos) => {
                    link.kind = infos.into_iter().find_map(|info| match info {
                        LinkInfo::Kind(kind) => Some(kind),
                        _ => None,
                    });
                }
                LinkAttribute::Link(index) => link.peer_index = Some(index),
                LinkAttribute::LinkNetNsId(id) => link.peer_netnsid = Some(id),
                LinkAttribute::Address(bytes) => link.mac = <[u8; 6]>::try_from(bytes).ok(),
                _ => {}
            }
        }
        link
    }

    pub(crate) fn is_veth(&self) -> bool {
        self.kind == Some(InfoKind::Veth)
    }

    pub(crate) fn kind_name(&self) -> String {
        self.kind.as_ref().map_or_else(
            || "a physical or loopback device".to_string(),
            |kind| format!("a {kind} device"),
        )
    }
}

/// A route to install; `gateway` None means straight out of `oif`.
pub(crate) struct Route {
    pub dst: IpNet,
    pub gateway: Option<IpAddr>,
    pub oif: u32,
    pub scope: RouteScope,
}

pub(crate) struct Rtnl {
    socket: Socket,
    seq: u32,
}

impl Rtnl {
    /// Opens a socket in the calling thread's network namespace.
    pub(crate) fn open() -> io::Result<Self> {
        let mut socket = Socket::new(NETLINK_ROUTE)?;
        socket.bind_auto()?;
        socket.connect(&SocketAddr::new(0, 0))?;
        // Ask for the kernel's explanation with each error, and not for a
        // copy of our request. Both are niceties an old kernel may lack.
        let _ = socket.set_ext_ack(true);
        let _ = socket.set_cap_ack(true);
        Ok(Self { socket, seq: 0 })
    }

    /// Sends one request with `NLM_F_ACK` and collects the replies that
    /// precede the ack.
    fn request(
        &mut self,
        msg: RouteNetlinkMessage,
        flags: u16,
    ) -> Result<Vec<RouteNetlinkMessage>, NlError> {
        self.seq = self.seq.wrapping_add(1);
        let seq = self.seq;
        let mut header = NetlinkHeader::default();
        header.flags = NLM_F_REQUEST | NLM_F_ACK | flags;
        header.sequence_number = seq;
        let mut packet = NetlinkMessage::new(header, NetlinkPayload::InnerMessage(msg));
        packet.finalize();
        let mut buf = vec![0; packet.buffer_len()];
        packet.serialize(&mut buf);
        self.socket.send(&buf, 0).map_err(NlError::Io)?;

        let mut replies = Vec::new();
        loop {
            let datagram = match self.socket.recv_from_full() {
                Ok((data, _)) => data,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(NlError::Io(e)),
            };
            let mut rest = &datagram[..];
            while !rest.is_empty() {
                let len = NetlinkBuffer::new_checked(rest)
                    .map_err(|e| NlError::Decode(e.to_string()))?
                    .length() as usize;
                let msg = NetlinkMessage::<RouteNetlinkMessage>::deserialize(rest)
                    .map_err(|e| NlError::Decode(e.to_string()))?;
                // Messages are padded to 4 bytes; the last one may not be.
                rest = rest.get(len.next_multiple_of(4)..).unwrap_or_default();
                if msg.header.sequence_number != seq {
                    continue;
                }
                match msg.payload {
                    NetlinkPayload::Error(e) => {
                        return match e.code {
                            None => Ok(replies),
                            Some(code) => Err(NlError::Kernel {
                                errno: -code.get(),
                                message: ext_ack_message(msg.header.flags, &e.header),
                            }),
                        }
                    }
                    NetlinkPayload::Done(_) => return Ok(replies),
                    NetlinkPayload::InnerMessage(inner) => replies.push(inner),
                    _ => {}
                }
            }
        }
    }

    /// The link called `name`, None when there is none.
    pub(crate) fn link_by_name(&mut self, name: &str) -> Result<Option<Link>, NlError> {
        let mut msg = LinkMessage::default();
        msg.attributes.push(LinkAttribute::IfName(name.to_string()));
        self.get_link(msg)
    }

    fn get_link(&mut self, msg: LinkMessage) -> Result<Option<Link>, NlError> {
        match self.request(RouteNetlinkMessage::GetLink(msg), 0) {
            Ok(replies) => Ok(replies.into_iter().find_map(|reply| match reply {
                RouteNetlinkMessage::NewLink(link) => Some(Link::from_message(link)),
                _ => None,
            })),
            Err(e) if e.is(libc::ENODEV) => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// Creates `host` here and its peer directly inside the namespace open
    /// at `peer_netns`, already named `peer`: the kernel does it in one step,
    /// so no half-moved peer can be left behind.
    pub(crate) fn create_veth(
        &mut self,
        host: &str,
        peer: &str,
        peer_netns: RawFd,
        mtu: u32,
    ) -> Result<(), NlError> {
        let mut peer_msg = LinkMessage::default();
        peer_msg
            .attributes
            .push(LinkAttribute::IfName(peer.to_string()));
        peer_msg.attributes.push(LinkAttribute::NetNsFd(peer_netns));
        let mut msg = LinkMessage::default();
        msg.attributes.push(LinkAttribute::IfName(host.to_string()));
        if mtu != 0 {
            peer_msg.attributes.push(LinkAttribute::Mtu(mtu));
            msg.attributes.push(LinkAttribute::Mtu(mtu));
        }
        msg.attributes.push(LinkAttribute::LinkInfo(vec![
            LinkInfo::Kind(InfoKind::Veth),
            LinkInfo::Data(InfoData::Veth(InfoVeth::Peer(peer_msg))),
        ]));
        self.request(RouteNetlinkMessage::NewLink(msg), NLM_F_CREATE | NLM_F_EXCL)
            .map(drop)
    }

    /// Sets the MTU (0 leaves it) and brings the link up.
    pub(crate) fn set_up(&mut self, index: u32, mtu: u32) -> Result<(), NlError> {
        let mut msg = LinkMessage::default();
        msg.header.index = index;
        msg.header.flags = LinkFlags::Up;
        msg.header.change_mask = LinkFlags::Up;
        if mtu != 0 {
            msg.attributes.push(LinkAttribute::Mtu(mtu));
        }
        self.request(RouteNetlinkMessage::SetLink(msg), 0).map(drop)
    }

    /// Deletes a link; one already gone is not an error.
    pub(crate) fn delete_link(&mut self, index: u32) -> Result<(), NlError> {
        let mut msg = LinkMessage::default();
        msg.header.index = index;
        match self.request(RouteNetlinkMessage::DelLink(msg), 0) {
            Err(e) if e.is(libc::ENODEV) => Ok(()),
            other => other.map(drop),
        }
    }

    /// The id under which this namespace knows the namespace open at `fd`,
    /// None when it has assigned none.
    pub(crate) fn nsid_of(&mut self, fd: RawFd) -> Result<Option<i32>, NlError> {
        let fd = u32::try_from(fd)
            .map_err(|_| NlError::Io(io::Error::from_raw_os_error(libc::EBADF)))?;
        let mut msg = NsidMessage::default();
        msg.attributes.push(NsidAttribute::Fd(fd));
        let replies = self.request(RouteNetlinkMessage::GetNsId(msg), 0)?;
        Ok(replies
            .into_iter()
            .find_map(|reply| match reply {
                RouteNetlinkMessage::NewNsId(msg) => {
                    msg.attributes.into_iter().find_map(|a| match a {
                        NsidAttribute::Id(id) => Some(id),
                        _ => None,
                    })
                }
                _ => None,
            })
            .filter(|id| *id >= 0))
    }

    /// Adds (or updates) an address; IPv6 ones skip duplicate address
    /// detection so they are usable at once.
    pub(crate) fn replace_address(&mut self, index: u32, net: IpNet) -> Result<(), NlError> {
        let mut msg = AddressMessage::default();
        msg.header.family = family(net.addr());
        msg.header.prefix_len = net.prefix_len();
        msg.header.index = index;
        msg.attributes.push(AddressAttribute::Local(net.addr()));
        msg.attributes.push(AddressAttribute::Address(net.addr()));
        if net.addr().is_ipv6() {
            msg.header.flags = AddressHeaderFlags::Nodad;
            msg.attributes
                .push(AddressAttribute::Flags(AddressFlags::Nodad));
        }
        self.request(
            RouteNetlinkMessage::NewAddress(msg),
            NLM_F_CREATE | NLM_F_REPLACE,
        )
        .map(drop)
    }

    /// Adds (or corrects) a permanent neighbour entry.
    pub(crate) fn replace_permanent_neighbour(
        &mut self,
        index: u32,
        ip: IpAddr,
        mac: [u8; 6],
    ) -> Result<(), NlError> {
        let mut msg = NeighbourMessage::default();
        msg.header.family = family(ip);
        msg.header.ifindex = index;
        msg.header.state = NeighbourState::Permanent;
        msg.attributes
            .push(NeighbourAttribute::Destination(match ip {
                IpAddr::V4(v4) => NeighbourAddress::Inet(v4),
                IpAddr::V6(v6) => NeighbourAddress::Inet6(v6),
            }));
        msg.attributes
            .push(NeighbourAttribute::LinkLayerAddress(mac.to_vec()));
        self.request(
            RouteNetlinkMessage::NewNeighbour(msg),
            NLM_F_CREATE | NLM_F_REPLACE,
        )
        .map(drop)
    }

    /// Adds (or corrects) a route in the main table.
    pub(crate) fn replace_route(&mut self, route: &Route) -> Result<(), NlError> {
        let mut msg = RouteMessage::default();
        msg.header.address_family = family(route.dst.addr());
        msg.header.destination_prefix_length = route.dst.prefix_len();
        msg.header.table = RT_TABLE_MAIN;
        msg.header.protocol = RouteProtocol::Boot;
        msg.header.scope = route.scope;
        msg.header.kind = RouteType::Unicast;
        if route.dst.prefix_len() != 0 {
            msg.attributes
                .push(RouteAttribute::Destination(route_address(route.dst.addr())));
        }
        if let Some(gateway) = route.gateway {
            msg.attributes
                .push(RouteAttribute::Gateway(route_address(gateway)));
        }
        msg.attributes.push(RouteAttribute::Oif(route.oif));
        self.request(
            RouteNetlinkMessage::NewRoute(msg),
            NLM_F_CREATE | NLM_F_REPLACE,
        )
        .map(drop)
    }
}

/// `NLMSGERR_ATTR_MSG`: the human-readable explanation of an error.
const NLMSGERR_ATTR_MSG: u16 = 1;
/// The length of a netlink message header, which an error always echoes.
const NLMSG_HDRLEN: usize = 16;

/// The explanation the kernel attached to an error (extended ack), if any.
/// `payload` is what follows the error code: the echoed request (only its
/// header when the error is capped), then the attributes.
fn ext_ack_message(flags: u16, payload: &[u8]) -> Option<String> {
    if flags & NLM_F_ACK_TLVS == 0 {
        return None;
    }
    let echoed = if flags & NLM_F_CAPPED != 0 {
        NLMSG_HDRLEN
    } else {
        let len = payload.get(..4)?;
        u32::from_ne_bytes(len.try_into().ok()?) as usize
    };
    let attrs = payload.get(echoed.next_multiple_of(4)..)?;
    NlasIterator::new(attrs)
        .filter_map(Result::ok)
        .find(|nla| nla.kind() == NLMSGERR_ATTR_MSG)
        .map(|nla| {
            let text = nla.value();
            let text = text.split(|b| *b == 0).next().unwrap_or(text);
            String::from_utf8_lossy(text).into_owned()
        })
        .filter(|text| !text.is_empty())
}

fn family(ip: IpAddr) -> AddressFamily {
    match ip {
        IpAddr::V4(_) => AddressFamily::Inet,
        IpAddr::V6(_) => AddressFamily::Inet6,
    }
}

fn route_address(ip: IpAddr) -> RouteAddress {
    match ip {
        IpAddr::V4(v4) => RouteAddress::Inet(v4),
        IpAddr::V6(v6) => RouteAddress::Inet6(v6),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An error payload as the kernel sends it with a capped ack: the
    /// echoed request header, then `NLMSGERR_ATTR_MSG`.
    fn capped_error_payload(text: &str) -> Vec<u8> {
        let mut payload = vec![0u8; NLMSG_HDRLEN];
        let value = [text.as_bytes(), b"\0"].concat();
        let nla_len = u16::try_from(4 + value.len()).expect("short text");
        payload.extend_from_slice(&nla_len.to_ne_bytes());
        payload.extend_from_slice(&NLMSGERR_ATTR_MSG.to_ne_bytes());
        payload.extend_from_slice(&value);
        payload.resize(payload.len().next_multiple_of(4), 0);
        payload
    }

    #[test]
    fn extended_ack_explains_the_error() {
        let payload = capped_error_payload("Invalid prefix for given prefix length");
        assert_eq!(
            ext_ack_message(NLM_F_ACK_TLVS | NLM_F_CAPPED, &payload).as_deref(),
            Some("Invalid prefix for given prefix length")
        );
    }

    #[test]
    fn no_explanation_without_the_tlv_flag_or_with_a_short_payload() {
        let payload = capped_error_payload("ignored");
        assert_eq!(ext_ack_message(NLM_F_CAPPED, &payload), None);
        assert_eq!(ext_ack_message(NLM_F_ACK_TLVS, &[1, 2]), None);
        assert_eq!(ext_ack_message(NLM_F_ACK_TLVS | NLM_F_CAPPED, &[]), None);
    }
}
