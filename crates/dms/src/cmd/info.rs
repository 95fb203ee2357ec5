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
    // The token must not ride on a browser's command line, which every local user can
    // read (/proc/*/cmdline): open an owner-only page in the 0700 home that forwards to
    // it instead (Jupyter's way).
    let page = ctx.home.root().join("dashboard.html");
    write_forwarder(&page, &url)?;
    match opener::open_browser(&page) {
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

/// Writes `page` (0600) forwarding the browser to `url`.
fn write_forwarder(page: &std::path::Path, url: &str) -> anyhow::Result<()> {
    use std::io::Write as _;
    use std::os::unix::fs::OpenOptionsExt as _;
    let _ = std::fs::remove_file(page);
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(page)
        .with_context(|| format!("cannot write {}", page.display()))?;
    writeln!(
        file,
        "<!doctype html><meta charset=\"utf-8\"><meta http-equiv=\"refresh\" content=\"0;url={url}\">\
         <title>dms dashboard</title><p><a href=\"{url}\">Open the dms dashboard</a></p>"
    )
    .with_context(|| format!("cannot write {}", page.display()))
}
