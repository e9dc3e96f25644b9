//! VPP's binary API: generated message types, codec, transports and an async client.
//! Knows nothing of Calico.
