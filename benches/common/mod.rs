//! Shared by the benches.

use calico_vpp_driver::dataplane::vpp::VppDataplane;
use calico_vpp_driver::dataplane::{
    Dataplane, DataplaneError, InterfaceEvent, InterfaceInfo, Op, OpResult, VppIdentity,
};

/// Sends every operation in its own round trip: what a client without pipelining does.
pub struct OneAtATime(pub VppDataplane);

impl Dataplane for OneAtATime {
    async fn connect(&mut self) -> Result<VppIdentity, DataplaneError> {
        self.0.connect().await
    }
    async fn execute(&mut self, ops: Vec<Op>) -> Result<Vec<OpResult>, DataplaneError> {
        let mut out = Vec::with_capacity(ops.len());
        for op in ops {
            out.extend(self.0.execute(vec![op]).await?);
        }
        Ok(out)
    }
    async fn interfaces(&mut self) -> Result<Vec<InterfaceInfo>, DataplaneError> {
        self.0.interfaces().await
    }
    async fn next_interface_event(&mut self) -> Result<InterfaceEvent, DataplaneError> {
        self.0.next_interface_event().await
    }
}
