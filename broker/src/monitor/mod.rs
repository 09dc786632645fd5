//! HTTP monitoring endpoints (placeholder until the monitoring module lands).

use std::sync::Arc;

use anyhow::Result;
use tokio::net::TcpListener;

use crate::server::Server;

pub async fn serve(_server: Arc<Server>, _listener: TcpListener) -> Result<()> {
    Ok(())
}
