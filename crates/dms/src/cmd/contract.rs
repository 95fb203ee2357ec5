//! `dms contract ...` and `dms deployments usage|receipt`: contracts between this node
//! and others, and what a deployment's receipts owe — through the node's
//! `/dms/node/contract/*` and `/dms/node/deployment/{usage,receipt}` behaviors. The node
//! signs contracts with its own key (they bind the node); documents move between the
//! parties as files in their text form.

use std::path::Path;

use anyhow::{Context as _, bail};
use dms_contracts::models::{
    FixedRental, PayPerAllocation, PayPerDeployment, PayPerResourceUtilization,
    PayPerTimeUtilization, Periodic,
};
use dms_contracts::{Amount, Model};
use dms_protocol::contract::{
    ContractView, DeploymentUsage, ImportReceipt, ListContracts, NewContract, ReceiptAnswer,
    RevokeContract, ShowContract, SignContract, UsageReport,
};

use super::Ctx;
use super::actor::request;
use crate::cli::{ActorTarget, ContractCommand, ModelName, Output};
use crate::output;

/// `dms contract ...`
pub async fn contract(ctx: &Ctx, command: ContractCommand) -> anyhow::Result<()> {
    match command {
        ContractCommand::New {
            provider,
            model,
            price,
            per_core_hour,
            per_gib_hour,
            per_gpu_hour,
            period,
            currency,
            max_total,
            max_allocations,
            valid_for,
            host,
            out,
            target,
        } => {
            let prices = Prices { price, per_core_hour, per_gib_hour, per_gpu_hour };
            let model = model_of(model, &prices, period.as_deref())?;
            let valid = dms_types::units::parse_duration(&valid_for)
                .with_context(|| format!("--valid-for {valid_for:?}"))?;
            let new = NewContract {
                provider,
                model,
                max_total: max_total.map(|m| units(m, "--max-total")).transpose()?,
                currency,
                max_allocations,
                valid_secs: valid.as_secs(),
                host,
            };
            let view = request(ctx, &target, &new).await?;
            deliver(ctx, &view, out.as_deref(), Next::Provider)
        }
        ContractCommand::Sign { file, out, target } => {
            let text = read(&file)?;
            let view = request(ctx, &target, &SignContract { contract: text }).await?;
            let next = if view.complete { Next::Done } else { Next::Provider };
            deliver(ctx, &view, out.as_deref(), next)
        }
        ContractCommand::List { target } => {
            let all = request(ctx, &target, &ListContracts {}).await?;
            if ctx.output == Output::Json {
                return output::json(&all);
            }
            let rows: Vec<Vec<String>> = all.iter().map(row).collect();
            output::table(&["ID", "SIDE", "OTHER PARTY", "MODEL", "STATE", "BOOKED"], &rows);
            Ok(())
        }
        ContractCommand::Show { id, target } => {
            let view = request(ctx, &target, &ShowContract { id }).await?;
            if ctx.output == Output::Json {
                return output::json(&view);
            }
            show(&view);
            Ok(())
        }
        ContractCommand::Revoke { id, reason, target } => {
            let revoked = request(ctx, &target, &RevokeContract { id: id.clone(), reason }).await?;
            if ctx.output == Output::Json {
                return output::json(&revoked);
            }
            let spread = if revoked.broadcast {
                "spread to the network"
            } else {
                "not spread (no peer reached): the other party learns of it when it next \
                 hears from this node's network"
            };
            println!("contract {id} revoked; {spread}");
            Ok(())
        }
    }
}

struct Prices {
    price: f64,
    per_core_hour: f64,
    per_gib_hour: f64,
    per_gpu_hour: f64,
}

fn units(value: f64, flag: &str) -> anyhow::Result<u64> {
    if !value.is_finite() || value < 0.0 {
        bail!("{flag} {value}: an amount is a number, 0 or more");
    }
    Ok(Amount::of_units(value, "").micros)
}

fn model_of(name: ModelName, p: &Prices, period: Option<&str>) -> anyhow::Result<Model> {
    let price = units(p.price, "--price")?;
    Ok(match name {
        ModelName::FixedRental => Model::FixedRental(FixedRental { amount: price }),
        ModelName::PayPerAllocation => {
            Model::PayPerAllocation(PayPerAllocation { per_allocation: price })
        }
        ModelName::PayPerDeployment => {
            Model::PayPerDeployment(PayPerDeployment { per_deployment: price })
        }
        ModelName::PayPerTimeUtilization => {
            Model::PayPerTimeUtilization(PayPerTimeUtilization { per_hour: price })
        }
        ModelName::PayPerResourceUtilization => {
            Model::PayPerResourceUtilization(PayPerResourceUtilization {
                per_core_hour: units(p.per_core_hour, "--per-core-hour")?,
                per_gib_hour: units(p.per_gib_hour, "--per-gib-hour")?,
                per_gpu_hour: units(p.per_gpu_hour, "--per-gpu-hour")?,
            })
        }
        ModelName::Periodic => {
            let Some(period) = period else {
                bail!("a periodic contract needs --period, e.g. --period 1h");
            };
            let secs = dms_types::units::parse_duration(period)
                .with_context(|| format!("--period {period:?}"))?
                .as_secs();
            if secs == 0 {
                bail!("--period {period}: at least one second");
            }
            Model::Periodic(Periodic { per_period: price, period_secs: secs })
        }
    })
}

fn read(file: &Path) -> anyhow::Result<String> {
    let text = if file == Path::new("-") {
        std::io::read_to_string(std::io::stdin()).context("reading standard input")?
    } else {
        std::fs::read_to_string(file).with_context(|| format!("reading {}", file.display()))?
    };
    Ok(text.trim().to_string())
}

/// Who acts next on a contract.
enum Next {
    /// The provider signs (or, for the requester, signs the provider's copy here).
    Provider,
    /// Both signed.
    Done,
}

fn deliver(ctx: &Ctx, view: &ContractView, out: Option<&Path>, next: Next) -> anyhow::Result<()> {
    if let Some(out) = out {
        std::fs::write(out, format!("{}\n", view.text))
            .with_context(|| format!("writing {}", out.display()))?;
    }
    if ctx.output == Output::Json {
        return output::json(view);
    }
    if out.is_none() {
        println!("{}", view.text);
        return Ok(());
    }
    let file = out.map(|p| p.display().to_string()).unwrap_or_default();
    println!("contract {} written to {file}", view.id);
    match next {
        Next::Done if view.side == "provider" => println!(
            "signed by both parties; give {file} back to the requester {}, who keeps it with \
             `dms contract sign {file}`",
            view.requester
        ),
        Next::Done => println!(
            "signed by both parties: it binds; name it in an ensemble's `contracts` by this id"
        ),
        Next::Provider if view.side == "requester" => println!(
            "next: the provider {} signs it (`dms contract sign {file} --out signed.txt`), then \
             sign the copy it returns here (`dms contract sign signed.txt`)",
            view.provider
        ),
        Next::Provider => println!(
            "next: give {file} back to the requester {}, who signs it too (`dms contract sign {file}`)",
            view.requester
        ),
    }
    Ok(())
}

fn state(view: &ContractView) -> String {
    match (&view.revoked, view.complete) {
        (Some(_), _) => "revoked".into(),
        (None, true) if view.valid_until < dms_ucan::now() => "expired".into(),
        (None, true) => "binding".into(),
        (None, false) => format!("{} of 2 signatures", view.signed_by.len()),
    }
}

fn row(view: &ContractView) -> Vec<String> {
    let other = if view.side == "provider" { &view.requester } else { &view.provider };
    vec![
        view.id.clone(),
        view.side.clone(),
        other.clone(),
        view.model.name().into(),
        state(view),
        view.accrued.as_ref().map_or_else(|| "-".into(), ToString::to_string),
    ]
}

fn show(view: &ContractView) {
    let cap = view.max_total.map(|m| Amount::micros(m, view.currency.clone()).to_string());
    output::fields(&[
        ("id", view.id.clone()),
        ("state", state(view)),
        ("this node is", view.side.clone()),
        ("requester", view.requester.clone()),
        ("provider", view.provider.clone()),
        ("model", view.model.describe(&view.currency)),
        ("currency", view.currency.clone()),
        ("max total", cap.unwrap_or_else(|| "-".into())),
        ("valid from", output::rfc3339_secs(view.valid_from)),
        ("valid until", output::rfc3339_secs(view.valid_until)),
        ("host", view.host.clone().unwrap_or_else(|| "-".into())),
        ("signed by", view.signed_by.join(", ")),
        ("revoked", view.revoked.clone().unwrap_or_else(|| "no".into())),
        ("booked", view.accrued.as_ref().map_or_else(|| "-".into(), ToString::to_string)),
    ]);
    if !view.receipts.is_empty() {
        println!();
        let rows: Vec<Vec<String>> = view
            .receipts
            .iter()
            .map(|r| {
                vec![
                    format!("{}.{}", r.deployment, r.allocation),
                    r.seq.to_string(),
                    format!("{} s", r.usage.wall_secs),
                    r.exit.map_or_else(|| "-".into(), |e| e.to_string()),
                ]
            })
            .collect();
        output::table(&["ALLOCATION", "RECEIPT", "TIME", "FINAL EXIT"], &rows);
    }
    if !view.ledger.is_empty() {
        println!("\nledger:");
        for entry in &view.ledger {
            println!("  {entry}");
        }
    }
}

/// `dms deployments usage <id>`
pub async fn usage(ctx: &Ctx, id: &str, target: &ActorTarget) -> anyhow::Result<()> {
    let report: UsageReport = request(ctx, target, &DeploymentUsage { id: id.into() }).await?;
    if ctx.output == Output::Json {
        return output::json(&report);
    }
    if report.contracts.is_empty() {
        println!("deployment {id} runs under no contract: nothing is owed");
        return Ok(());
    }
    let rows: Vec<Vec<String>> = report
        .allocations
        .iter()
        .map(|a| {
            let wall: u64 = a.receipts.iter().map(|r| r.usage.wall_secs).sum();
            let gaps = if a.gaps.is_empty() { "-".into() } else { format!("{:?}", a.gaps) };
            vec![
                a.allocation.clone(),
                a.receipts.len().to_string(),
                format!("{wall} s"),
                gaps,
                if a.finished { "yes" } else { "no" }.into(),
            ]
        })
        .collect();
    output::table(&["ALLOCATION", "RECEIPTS", "TIME", "MISSING", "FINAL"], &rows);
    println!();
    for owed in &report.contracts {
        println!("contract {} ({}): {} owed", owed.contract, owed.model, owed.owed);
    }
    let total: Vec<String> = report.total.iter().map(ToString::to_string).collect();
    let budget = report.budget.as_ref().map(|b| format!(" of a budget of {b}")).unwrap_or_default();
    println!("owed in all: {}{budget}", total.join(" + "));
    Ok(())
}

/// `dms deployments receipt <id> <file>`
pub async fn import_receipt(
    ctx: &Ctx,
    id: &str,
    file: &Path,
    target: &ActorTarget,
) -> anyhow::Result<()> {
    let receipt = read(file)?;
    let answer: ReceiptAnswer =
        request(ctx, target, &ImportReceipt { id: id.into(), receipt }).await?;
    if ctx.output == Output::Json {
        return output::json(&answer);
    }
    let owed =
        answer.owed.as_ref().map(|o| format!("; {o} owed under its contract")).unwrap_or_default();
    match answer.outcome.as_str() {
        "new" => println!("receipt taken{owed}"),
        "repeat" => println!("receipt taken before: not counted again{owed}"),
        _ => bail!(
            "receipt refused ({}): {}",
            answer.code.unwrap_or_default(),
            answer.reason.unwrap_or_default()
        ),
    }
    Ok(())
}
