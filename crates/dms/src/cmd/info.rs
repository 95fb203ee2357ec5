//! `dms info`: the running daemon's identity and uptime, through the local API.

use dms_api::routes::Info;

use super::Ctx;
use crate::cli::Output;
use crate::output;

pub async fn info(ctx: &Ctx) -> anyhow::Result<()> {
    let client = ctx.api_client()?;
    let info: Info = client.get("/api/v1/info").await?;
    match ctx.output {
        Output::Json => output::json(&info),
        Output::Table => {
            output::fields(&[
                ("DID", info.did),
                ("Version", info.version),
                ("Uptime", format!("{}s", info.uptime_secs)),
                ("API", info.api_addr),
            ]);
            Ok(())
        }
    }
}
