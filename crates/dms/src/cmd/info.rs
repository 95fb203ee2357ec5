//! `dms info`: the running daemon's identity and uptime, through the local API;
//! `dms dashboard [--url]`: a one-time login link to its web page.

use dms_api::dashboard::Login;
use dms_api::routes::Info;

use anyhow::Context;

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

/// `dms dashboard [--url]`: asks the daemon for a one-time login and opens (or prints)
/// the page's URL. The token rides in the URL's fragment, which no server sees.
pub async fn dashboard(ctx: &Ctx, only_print: bool) -> anyhow::Result<()> {
    let client = ctx.api_client()?;
    let info: Info = client.get("/api/v1/info").await?;
    let login: Login = client.post("/api/v1/dashboard/login").await?;
    let mut addr: std::net::SocketAddr =
        info.api_addr.parse().context("the daemon reported an unreadable API address")?;
    if addr.ip().is_unspecified() {
        addr.set_ip(std::net::Ipv4Addr::LOCALHOST.into());
    }
    let url = format!("http://{addr}{}", login.path);
    if only_print {
        println!("{url}");
        return Ok(());
    }
    match opener::open_browser(&url) {
        Ok(()) => eprintln!(
            "Opened the dashboard in your browser (the link works once, for {} s).",
            login.expires_in_secs
        ),
        Err(error) => {
            eprintln!(
                "Could not open a browser ({error}); open this link (once, within {} s):",
                login.expires_in_secs
            );
            println!("{url}");
        }
    }
    Ok(())
}
