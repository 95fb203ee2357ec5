//! `dms docs-gen OUT` (hidden): the docs site's generated reference pages, from the
//! sources of truth in code, so that they cannot drift: the CLI (clap), the behaviors
//! and the capability each needs (`dms_protocol::catalog`), the configuration keys
//! (`dms_node::config::KEYS`), the ensemble JSON Schema and the API's OpenAPI document.

use std::fmt::Write as _;
use std::path::Path;

use anyhow::Context as _;
use clap::CommandFactory as _;

use crate::cli::Cli;

/// Writes `cli.md`, `behaviors.md`, `config.md`, `ensemble-schema.md`, `openapi.md`
/// and `openapi.json` into `out`.
pub fn docs_gen(out: &Path) -> anyhow::Result<()> {
    std::fs::create_dir_all(out).with_context(|| format!("creating {}", out.display()))?;
    let openapi = dms_api::routes::openapi();
    let openapi_json = openapi.to_pretty_json().context("serializing the OpenAPI document")?;
    let pages = [
        ("cli.md", cli()),
        ("behaviors.md", behaviors()),
        ("config.md", config()),
        ("ensemble-schema.md", ensemble_schema()),
        ("openapi.md", openapi_page(&serde_json::from_str(&openapi_json)?)),
        ("openapi.json", openapi_json),
    ];
    for (name, text) in pages {
        let path = out.join(name);
        std::fs::write(&path, text).with_context(|| format!("writing {}", path.display()))?;
        println!("{}", path.display());
    }
    Ok(())
}

/// A Markdown table cell: one line; pipes and angle brackets (`<FLAG>` in help text is
/// not an HTML tag) escaped.
fn cell(text: &str) -> String {
    text.replace('|', "\\|").replace('<', "&lt;").replace('>', "&gt;").replace('\n', " ")
}

fn cli() -> String {
    let mut root = Cli::command();
    root.build();
    let mut page = String::from(
        "# CLI reference\n\nGenerated from the `dms` binary's own help (`dms docs-gen`); \
         every command also answers `--help`.\n",
    );
    fn walk(cmd: &mut clap::Command, path: &str, page: &mut String) {
        let _ = write!(page, "\n## `{path}`\n\n```text\n{}\n```\n", cmd.render_long_help());
        for sub in cmd.get_subcommands_mut().filter(|s| !s.is_hide_set() && s.get_name() != "help")
        {
            let name = format!("{path} {}", sub.get_name());
            walk(sub, &name, page);
        }
    }
    walk(&mut root, "dms", &mut page);
    page
}

/// A Rust type name without module paths (`alloc::vec::Vec<dms_types::peers::PeerInfo>`
/// → `Vec<PeerInfo>`), as inline HTML code: inside a Markdown code span `<` could not be
/// escaped, and outside one it would be taken for a tag.
fn type_cell(name: &str) -> String {
    let mut short = String::new();
    let mut segment = String::new();
    let mut chars = name.chars().peekable();
    while let Some(c) = chars.next() {
        if c == ':' && chars.peek() == Some(&':') {
            chars.next();
            segment.clear(); // a module: dropped, its item follows
        } else if c.is_alphanumeric() || c == '_' {
            segment.push(c);
        } else {
            short.push_str(&segment);
            segment.clear();
            short.push(c);
        }
    }
    short.push_str(&segment);
    format!("<code>{}</code>", cell(&short))
}

fn behaviors() -> String {
    let mut page = String::from(
        "# Behaviors\n\nEvery typed behavior an actor answers, generated from \
         `dms_protocol::catalog` (`dms docs-gen`). A call to a behavior that is not \
         `/public/...` carries a capability chain rooted in a DID the receiving actor \
         trusts (see `dms cap`); a grant of a path covers every behavior under it. \
         `dms actor cmd PATH` sends any of them by hand.\n\n\
         | Behavior | Version | Capability needed | Request | Answer |\n|---|---|---|---|---|\n",
    );
    let mut module = "";
    for b in dms_protocol::catalog::catalog() {
        if b.module != module {
            module = b.module;
            let _ = writeln!(page, "| **{module}** | | | | |");
        }
        let _ = writeln!(
            page,
            "| `{}` | {} | {} | {} | {} |",
            b.behavior,
            b.version,
            cell(&b.capability()),
            type_cell(b.request),
            type_cell(b.response)
        );
    }
    page
}

fn config() -> String {
    let mut page = String::from(
        "# Configuration keys\n\nEvery key of `$DMS_HOME/config.toml`, generated from \
         `dms_node::config::KEYS` (`dms docs-gen`). `dms config set KEY VALUE` checks a value \
         against its form; each key can also be set by its environment variable.\n\n\
         | Key | Environment variable | Value | What it does |\n|---|---|---|---|\n",
    );
    for k in dms_node::config::KEYS {
        let _ = writeln!(
            page,
            "| `{}` | `{}` | {} | {} |",
            k.key,
            dms_node::config::env_var(k.key),
            cell(k.expected),
            cell(k.doc)
        );
    }
    page
}

fn ensemble_schema() -> String {
    format!(
        "# Ensemble JSON Schema\n\nGenerated from the ensemble model's types (`dms docs-gen`); \
         the same document is committed as `docs/ensemble.schema.json`, and the \
         [ensemble guide](../ensemble.md) explains each field.\n\n```json\n{}\n```\n",
        dms_ensemble::schema::json_schema_text().trim_end()
    )
}

fn openapi_page(doc: &serde_json::Value) -> String {
    let mut page = String::from(
        "# HTTP API (OpenAPI)\n\nThe node's local API, generated from its handlers \
         (`dms docs-gen`); the document itself is [openapi.json](openapi.json), and a running \
         node serves it at `/openapi.json`.\n\n| Method | Path | Summary |\n|---|---|---|\n",
    );
    let paths = doc.get("paths").and_then(|p| p.as_object()).into_iter().flatten();
    for (path, item) in paths {
        for (method, op) in item.as_object().into_iter().flatten() {
            let summary =
                op.get("summary").or_else(|| op.get("description")).and_then(|s| s.as_str());
            let _ = writeln!(
                page,
                "| {} | `{}` | {} |",
                method.to_uppercase(),
                path,
                cell(summary.unwrap_or(""))
            );
        }
    }
    page
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_page_names_what_it_documents() {
        let dir = tempfile::tempdir().expect("tempdir");
        docs_gen(dir.path()).expect("docs-gen");
        let read = |n: &str| std::fs::read_to_string(dir.path().join(n)).expect(n);
        assert!(read("cli.md").contains("## `dms devnet up`"));
        assert!(read("behaviors.md").contains("`/dms/node/deployment/new`"));
        assert!(read("behaviors.md").contains("| `/public/hello` | 1 | none (public)"));
        assert!(
            read("behaviors.md").contains("<code>Vec&lt;PeerInfo&gt;</code>"),
            "{}",
            read("behaviors.md")
        );
        assert!(read("config.md").contains("`deployment.shortlist`"));
        assert!(read("ensemble-schema.md").contains("\"$schema\""));
        assert!(read("openapi.md").contains("| GET | `/health`"), "{}", read("openapi.md"));
        let _: serde_json::Value = serde_json::from_str(&read("openapi.json")).expect("JSON");
    }
}
