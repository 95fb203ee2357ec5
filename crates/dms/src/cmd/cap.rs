//! `dms cap ...`: capability contexts.
//!
//! Contexts live in the node's store. When the daemon is running it holds the store, so
//! this command reads and writes them through the daemon's API instead; either way a
//! save names the version it started from, so concurrent edits are refused, not lost.
//! Signing happens here, with the context owner's key from the keystore.

use anyhow::{Context as _, anyhow, bail};
use dms_crypto::{Did, KeyPair, Keystore};
use dms_node::caps::StoreContexts;
use dms_store::Store;
use dms_ucan::{
    Authorization, CapContext, Chain, Command, ContextStore, Kind, Request, Spec, Verifier,
};

use super::Ctx;
use crate::cli::{CapCommand, GrantArgs, Output};
use crate::client::ApiClient;
use crate::{output, passphrase};

/// Where contexts are read and written.
pub(super) enum Backend {
    /// The store directly (no daemon running on this home).
    Store(StoreContexts),
    /// The running daemon's API.
    Api(ApiClient),
}

impl Backend {
    /// The daemon's API when the daemon of this home runs, else the store, waited for
    /// while another command holds it (up to [`STORE_PATIENCE`]).
    pub(super) async fn open(ctx: &Ctx) -> anyhow::Result<Backend> {
        ctx.init_home()?;
        let config = ctx.config()?;
        let path = config.store.resolve(ctx.home.root());
        let started = std::time::Instant::now();
        let mut pause = std::time::Duration::from_millis(10);
        loop {
            if let Some(daemon) = ctx.home.daemon() {
                return Ok(Backend::Api(ctx.api_client_at(daemon.api)?));
            }
            let error = match Store::open(&path) {
                Ok(store) => return Ok(Backend::Store(StoreContexts(store))),
                Err(error) if error.is_locked() => error,
                Err(error) => return Err(error.into()),
            };
            if started.elapsed() >= STORE_PATIENCE {
                return Err(anyhow!(error).context(format!(
                    "the store {} stayed busy for {STORE_PATIENCE:?}: another process holds it \
                     and no daemon of this home is recorded in {} (a daemon started by an \
                     older dms, or a long-running command); stop it or try again",
                    path.display(),
                    ctx.home.daemon_path().display()
                )));
            }
            tokio::time::sleep(pause).await;
            pause = (pause * 2).min(std::time::Duration::from_millis(200));
        }
    }

    pub(super) async fn load(&self, name: &str) -> anyhow::Result<Option<CapContext>> {
        match self {
            Backend::Store(store) => Ok(store.load(name)?),
            Backend::Api(api) => api.get_optional(&format!("/api/v1/cap/contexts/{name}")).await,
        }
    }

    async fn require(&self, name: &str) -> anyhow::Result<CapContext> {
        self.load(name).await?.ok_or_else(|| {
            anyhow!("no capability context '{name}': create it with `dms cap new {name}`")
        })
    }

    async fn save(&self, context: &CapContext, expected: Option<u64>) -> anyhow::Result<()> {
        match self {
            Backend::Store(store) => Ok(store.save(context, expected)?),
            Backend::Api(api) => {
                let query = expected.map(|v| format!("?expected_version={v}")).unwrap_or_default();
                api.put(&format!("/api/v1/cap/contexts/{}{query}", context.name), context).await
            }
        }
    }

    async fn list(&self) -> anyhow::Result<Vec<CapContext>> {
        match self {
            Backend::Store(store) => Ok(store.list()?),
            Backend::Api(api) => api.get("/api/v1/cap/contexts").await,
        }
    }

    async fn remove(&self, name: &str) -> anyhow::Result<bool> {
        match self {
            Backend::Store(store) => Ok(store.remove(name)?),
            Backend::Api(api) => api.delete(&format!("/api/v1/cap/contexts/{name}")).await,
        }
    }
}

/// How long a command waits for a store that another command holds.
const STORE_PATIENCE: std::time::Duration = std::time::Duration::from_secs(30);

fn check_name(name: &str) -> anyhow::Result<()> {
    let ok = !name.is_empty()
        && name.len() <= 64
        && name.bytes().all(|b| b.is_ascii_alphanumeric() || b"._-".contains(&b));
    if ok {
        Ok(())
    } else {
        bail!("invalid context name {name:?}: use 1-64 letters, digits, '.', '_' or '-'")
    }
}

fn parse_did(text: &str) -> anyhow::Result<Did> {
    text.parse().with_context(|| format!("{text:?} is not a did:key DID"))
}

fn parse_chain(text: &str) -> anyhow::Result<Chain> {
    text.parse().context("cannot read the capability token")
}

/// Unlocks the keystore key whose DID owns `context`.
pub(super) fn key_of(ctx: &Ctx, context: &CapContext) -> anyhow::Result<KeyPair> {
    let keystore = Keystore::open(ctx.home.keys_dir())?;
    let info = keystore.list()?.into_iter().find(|k| k.did == context.did).ok_or_else(|| {
        anyhow!(
            "no key in {} belongs to context '{}' ({})",
            keystore.dir().display(),
            context.name,
            context.did
        )
    })?;
    let passphrase = passphrase::read(&info.name, false)?;
    Ok(keystore.load(&info.name, &passphrase)?)
}

fn spec(args: &GrantArgs, now: u64) -> anyhow::Result<Spec> {
    let commands = args.caps.iter().map(|c| Command::parse(c)).collect::<Result<Vec<_>, _>>()?;
    let topics = args.topics.iter().map(|t| Command::parse(t)).collect::<Result<Vec<_>, _>>()?;
    let expires = match (&args.expiry, &args.duration) {
        (Some(at), _) => {
            let at = humantime::parse_rfc3339_weak(at).with_context(|| {
                format!("--expiry {at:?}: expected an RFC 3339 time such as 2027-01-01T00:00:00Z")
            })?;
            at.duration_since(std::time::UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or_default()
        }
        (None, Some(duration)) => {
            let duration = dms_types::units::parse_duration(duration)
                .with_context(|| format!("--duration {duration:?}"))?;
            now + duration.as_secs()
        }
        (None, None) => bail!("give --duration (e.g. 30d) or --expiry: capabilities always expire"),
    };
    let subject = args.subject.as_deref().map(parse_did).transpose()?;
    Ok(Spec {
        commands,
        topics,
        expires: Some(expires),
        depth: args.depth,
        subject,
        ..Spec::default()
    })
}

pub async fn cap(ctx: &Ctx, command: CapCommand) -> anyhow::Result<()> {
    let backend = Backend::open(ctx).await?;
    let verifier = Verifier::default();
    let now = dms_ucan::now();
    match command {
        CapCommand::New { name, key } => {
            check_name(&name)?;
            let key_name = match key {
                Some(key) => key,
                None if name == "dms" => ctx.config()?.node.key,
                None => name.clone(),
            };
            let keystore = Keystore::open(ctx.home.keys_dir())?;
            let info = keystore.info(&key_name).with_context(|| {
                format!("context '{name}' needs key '{key_name}': create it with `dms key new {key_name}` or pass --key")
            })?;
            if backend.load(&name).await?.is_some() {
                bail!("capability context '{name}' already exists");
            }
            let context = CapContext::new(&name, info.did);
            backend.save(&context, None).await?;
            report(ctx, &context, &format!("Created context '{name}' for {}", context.did))
        }
        CapCommand::Anchor { context, root, require, provide } => {
            let mut cap = backend.require(&context).await?;
            let expected = Some(cap.version);
            let what = if let Some(root) = root {
                cap.add_root(parse_did(&root)?);
                format!("root {root}")
            } else if let Some(token) = require {
                cap.add_require(parse_chain(&token)?, &verifier, now)?;
                "require anchor".to_string()
            } else if let Some(token) = provide {
                cap.add_provide(parse_chain(&token)?, &verifier, now)?;
                "provide anchor".to_string()
            } else {
                bail!("give one of --root DID, --require TOKEN or --provide TOKEN");
            };
            backend.save(&cap, expected).await?;
            report(ctx, &cap, &format!("Added {what} to context '{context}'"))
        }
        CapCommand::Grant(args) => {
            let cap = backend.require(&args.context).await?;
            let key = key_of(ctx, &cap)?;
            let chain = cap.grant(&key, parse_did(&args.audience)?, &spec(&args, now)?)?;
            print_token(ctx, &chain, "Granted")
        }
        CapCommand::Delegate(args) => {
            let cap = backend.require(&args.context).await?;
            let key = key_of(ctx, &cap)?;
            let chain =
                cap.delegate(&key, parse_did(&args.audience)?, &spec(&args, now)?, &verifier, now)?;
            print_token(ctx, &chain, "Delegated")
        }
        CapCommand::Revoke { context, target } => {
            let mut cap = backend.require(&context).await?;
            let expected = Some(cap.version);
            let token = if target.starts_with(dms_ucan::chain::TEXT_PREFIX) {
                let chain = parse_chain(&target)?;
                match chain.leaf() {
                    Some(leaf) if leaf.payload().typ == Kind::Revocation => {
                        cap.import_revocation(chain.clone(), &verifier)?;
                        chain
                    }
                    Some(leaf) => {
                        let cid = leaf.cid().to_string();
                        cap.revoke(&key_of(ctx, &cap)?, &cid, &verifier)?
                    }
                    None => bail!("the token is empty"),
                }
            } else {
                cap.revoke(&key_of(ctx, &cap)?, &target, &verifier)?
            };
            backend.save(&cap, expected).await?;
            print_token(ctx, &token, "Revoked")
        }
        CapCommand::Check { context, invoker, behavior, topic, subject, token } => {
            let cap = backend.require(&context).await?;
            let invoker = parse_did(&invoker)?;
            let behavior = Command::parse(&behavior)?;
            let topic = topic.as_deref().map(Command::parse).transpose()?;
            let subject =
                subject.as_deref().map(parse_did).transpose()?.unwrap_or_else(|| cap.did.clone());
            let chain = token.as_deref().map(parse_chain).transpose()?.unwrap_or_default();
            let request = Request {
                invoker: &invoker,
                subject: &subject,
                behavior: &behavior,
                topic: topic.as_ref(),
                args: None,
                chain: &chain,
            };
            match cap.authorize(&verifier, request, now) {
                Ok(authorization) => {
                    let why = match authorization {
                        Authorization::Root => "the invoker is trusted as a root".to_string(),
                        Authorization::Chain => "a chain from a trusted root grants it".to_string(),
                        Authorization::Required(cid) => format!("admitted by require anchor {cid}"),
                    };
                    match ctx.output {
                        Output::Json => {
                            output::json(&serde_json::json!({ "allowed": true, "reason": why }))
                        }
                        Output::Table => {
                            println!("allowed: {why}");
                            Ok(())
                        }
                    }
                }
                Err(denial) => {
                    if ctx.output == Output::Json {
                        output::json(&serde_json::json!({
                            "allowed": false, "code": denial.code(), "link": denial.link, "reason": denial.to_string()
                        }))?;
                    }
                    bail!("denied: {denial}")
                }
            }
        }
        CapCommand::List { context } => {
            let mut contexts = backend.list().await?;
            if let Some(name) = &context {
                contexts.retain(|c| &c.name == name);
                if contexts.is_empty() {
                    bail!("no capability context '{name}'");
                }
            }
            match ctx.output {
                Output::Json => output::json(&contexts),
                Output::Table => {
                    if contexts.is_empty() {
                        println!("No capability contexts. Create one with `dms cap new <name>`.");
                    }
                    for c in &contexts {
                        print_context(c);
                    }
                    Ok(())
                }
            }
        }
        CapCommand::Remove { context, what, all } => {
            if all {
                if !backend.remove(&context).await? {
                    bail!("no capability context '{context}'");
                }
                println!("Removed context '{context}'");
                return Ok(());
            }
            let what = what.expect("clap requires WHAT without --all");
            let mut cap = backend.require(&context).await?;
            let expected = Some(cap.version);
            if !cap.remove(&what) {
                bail!("context '{context}' has no root or anchor {what}");
            }
            backend.save(&cap, expected).await?;
            report(ctx, &cap, &format!("Removed {what} from context '{context}'"))
        }
    }
}

fn report(ctx: &Ctx, cap: &CapContext, message: &str) -> anyhow::Result<()> {
    match ctx.output {
        Output::Json => output::json(cap),
        Output::Table => {
            println!("{message}");
            Ok(())
        }
    }
}

fn when(exp: Option<u64>) -> String {
    exp.map(crate::output::rfc3339_secs).unwrap_or_else(|| "never".into())
}

fn print_token(ctx: &Ctx, chain: &Chain, verb: &str) -> anyhow::Result<()> {
    let leaf = chain.leaf().expect("issued chains are not empty");
    let p = leaf.payload();
    let commands: Vec<String> = p.cmd.iter().chain(&p.topics).map(ToString::to_string).collect();
    match ctx.output {
        Output::Json => output::json(&serde_json::json!({
            "token": chain.to_text(),
            "cid": leaf.cid().to_string(),
            "issuer": p.iss, "audience": p.aud,
            "commands": p.cmd, "topics": p.topics,
            "expires": p.exp, "revokes": p.rev.map(|c| c.to_string()),
        })),
        Output::Table => {
            let what = match p.rev {
                Some(revoked) => format!("token {revoked}"),
                None => format!("{} to {} until {}", commands.join(", "), p.aud, when(p.exp)),
            };
            eprintln!("{verb} {what} (token {}); pass the line below on:", leaf.cid());
            println!("{}", chain.to_text());
            Ok(())
        }
    }
}

fn print_context(c: &CapContext) {
    println!("context {} ({})", c.name, c.did);
    let roots: Vec<String> = c.roots.iter().map(ToString::to_string).collect();
    println!("  roots:    {}", if roots.is_empty() { "-".into() } else { roots.join(", ") });
    for (label, list) in [("require", &c.require), ("provide", &c.provide)] {
        if list.is_empty() {
            println!("  {label}:  -");
        }
        for chain in list {
            if let Some(leaf) = chain.leaf() {
                let p = leaf.payload();
                let caps: Vec<String> =
                    p.cmd.iter().chain(&p.topics).map(ToString::to_string).collect();
                println!(
                    "  {label}:  {} {} -> {} [{}] until {}",
                    leaf.cid(),
                    chain.root().map(|r| r.payload().iss.to_string()).unwrap_or_default(),
                    p.aud,
                    caps.join(", "),
                    when(p.exp)
                );
            }
        }
    }
    if c.revoked.is_empty() {
        println!("  revoked:  -");
    }
    for r in &c.revoked {
        println!("  revoked:  {} by {}", r.cid, r.by);
    }
}
