//! The one seam to VPP: the `Dataplane` trait, its VPP implementation and an in-memory fake.
