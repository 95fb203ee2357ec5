use crate::Position;
use crate::error::Error;
use crate::model::{GpuVendor, HealthCheckKind};
use crate::translate::{Options, Source, Translation, translate_with};

fn nomad_with(text: &str, environment: &[(&str, &str)]) -> Result<Translation, Error> {
    let options = Options {
        from: Some(Source::Nomad),
        environment: environment.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect(),
        dot_env: None,
    };
    translate_with(text, "job.nomad", &options)
}

fn nomad(text: &str) -> Translation {
    nomad_with(text, &[]).expect("translates")
}

/// A job with one group `g` holding one docker task `t` with `task_body` (plus image), and
/// `group_body` in the group.
fn job(group_body: &str, task_body: &str) -> String {
    format!(
        "job \"j\" {{\n  group \"g\" {{\n{group_body}\n    task \"t\" {{\n      driver = \"docker\"\n{task_body}\n    }}\n  }}\n}}\n"
    )
}

fn warning<'t>(t: &'t Translation, path: &str) -> &'t crate::Diagnostic {
    t.warnings
        .iter()
        .find(|w| w.path == path)
        .unwrap_or_else(|| panic!("no warning at {path}: {:#?}", t.warnings))
}

#[test]
fn command_is_the_containers_command_not_its_entrypoint() {
    let t = nomad(&job(
        "",
        "      config {\n        image = \"redis:7\"\n        command = \"redis-server\"\n        args = [\"--port\", \"6380\"]\n      }\n      resources {\n        cpu = 500\n        memory = 256\n      }",
    ));
    let e = &t.ensemble.allocations["g"].execution;
    assert_eq!(e.command, ["redis-server", "--port", "6380"]);
    assert!(e.entrypoint.is_empty(), "Nomad keeps the image's entrypoint");
}

#[test]
fn hcl_syntax_errors_are_placed_where_the_parser_stopped() {
    let error = nomad_with("job \"x\" {\n  group \"g\" {\n    count = = 2\n  }\n}\n", &[])
        .expect_err("invalid");
    let Error::Syntax(d) = error else { panic!("a syntax error") };
    assert_eq!(d.position.line, 3);
    assert!(d.position.column > 1, "{}", d.position);
}

#[test]
fn warnings_carry_the_line_of_the_hcl_source() {
    let t = nomad(&job(
        "",
        "      config {\n        image = \"a:1\"\n      }\n      kill_timeout = \"20s\"",
    ));
    assert_eq!(warning(&t, "job.j.group.g.task.t.kill_timeout").position, Position::new(9, 22));
}

#[test]
fn missing_resources_are_nomads_defaults_with_a_warning() {
    let t = nomad(&job(
        "",
        "      config {\n        image = \"trainer:1\"\n      }\n      resources {\n        device \"nvidia/gpu\" {\n          count = 8\n        }\n      }",
    ));
    let r = &t.ensemble.allocations["g"].resources;
    assert_eq!((r.gpus[0].count, r.gpus[0].vendor), (8, Some(GpuVendor::Nvidia)));
    assert_eq!((r.cpu.cores, r.ram), (0.1, crate::units::ByteSize::mib(300)));
    let w = warning(&t, "job.j.group.g.task.t");
    assert!(
        w.message.starts_with("no resources given; assumed 0.1 cores and 300MiB"),
        "{}",
        w.message
    );
}

#[test]
fn devices_other_than_gpus_are_warnings() {
    let t = nomad(&job(
        "",
        "      config {\n        image = \"a:1\"\n      }\n      resources {\n        cpu = 100\n        memory = 64\n        device \"xilinx/fpga\" {}\n      }",
    ));
    assert!(t.ensemble.allocations["g"].resources.gpus.is_empty());
    assert!(
        warning(&t, "job.j.group.g.task.t.resources.device.xilinx/fpga")
            .message
            .contains("only GPUs")
    );
}

#[test]
fn counts_are_kept_and_too_many_refused() {
    let t = nomad(&job("    count = 250", "      config {\n        image = \"a:1\"\n      }"));
    assert_eq!(t.ensemble.nodes.len(), 250);
    let t = nomad(&job("    count = 2000", "      config {\n        image = \"a:1\"\n      }"));
    let error = t.errors.iter().find(|e| e.path == "job.j.group.g.count").expect("refused");
    assert_eq!(error.position, Position::new(3, 13));
}

#[test]
fn checks_beyond_the_first_and_connect_are_named() {
    let group = "    network {\n      port \"http\" {\n        to = 8080\n      }\n    }\n    service {\n      name = \"web\"\n      port = \"http\"\n      connect {\n        sidecar_service {}\n      }\n      check {\n        type = \"http\"\n        path = \"/health\"\n        interval = \"10s\"\n        timeout = \"2s\"\n      }\n      check {\n        type = \"tcp\"\n        interval = \"10s\"\n        timeout = \"2s\"\n      }\n    }";
    let t = nomad(&job(
        group,
        "      config {\n        image = \"a:1\"\n        ports = [\"http\"]\n      }",
    ));
    let check = t.ensemble.allocations["g"].healthcheck.as_ref().expect("first check");
    assert_eq!(
        (check.kind, check.port, check.path.as_deref()),
        (HealthCheckKind::Http, Some(8080), Some("/health"))
    );
    assert!(warning(&t, "job.j.group.g.service.check[1]").message.contains("only the first check"));
    assert!(warning(&t, "job.j.group.g.service.connect").message.contains("Consul Connect"));
    assert!(warning(&t, "job.j.group.g.service").message.starts_with("service registration `web`"));
}

#[test]
fn group_ports_outside_the_tasks_list_and_dynamic_ports() {
    let group = "    network {\n      port \"http\" {}\n      port \"metrics\" {\n        static = 9100\n      }\n    }";
    let t = nomad(&job(
        group,
        "      config {\n        image = \"a:1\"\n        args = [\"--listen=:${NOMAD_PORT_http}\"]\n        ports = [\"http\"]\n      }",
    ));
    let a = &t.ensemble.allocations["g"];
    assert_eq!(a.execution.command, ["--listen=:20000"]);
    assert_eq!(a.environment["NOMAD_PORT_http"], "20000");
    assert!(a.ports.iter().any(|p| p.port == 9100), "{:?}", a.ports);
    assert!(
        warning(&t, "job.j.group.g.network.port.http").message.starts_with("dynamic port `http`")
    );
    assert!(
        warning(&t, "job.j.group.g.network.port.metrics").message.contains("in no task's `ports`")
    );
}

#[test]
fn runtime_variables_are_filled_in_where_known_and_named_where_not() {
    let t = nomad(&job(
        "",
        "      config {\n        image = \"a:1\"\n        args = [\"${NOMAD_TASK_DIR}/conf\", \"${NOMAD_TASK_NAME}\", \"${attr.unique.hostname}\"]\n      }",
    ));
    assert_eq!(
        t.ensemble.allocations["g"].execution.command,
        ["/local/conf", "t", "${attr.unique.hostname}"]
    );
    let w = t.warnings.iter().find(|w| w.message.contains("attr.unique.hostname")).expect("named");
    assert_eq!(w.path, "job.j.group.g.task.t");
    assert_eq!(
        w.message,
        "`${attr.unique.hostname}` is filled in by Nomad at run time; kept as written"
    );
}

#[test]
fn variables_take_their_default_or_the_callers_nomad_var() {
    let text = format!(
        "variable \"tag\" {{\n  default = \"1.0\"\n}}\nvariable \"registry\" {{}}\n{}",
        job("", "      config {\n        image = \"${var.registry}/app:${var.tag}\"\n      }")
    );
    let t = nomad_with(&text, &[("NOMAD_VAR_registry", "ghcr.io/acme")]).expect("translates");
    assert_eq!(
        t.ensemble.allocations["g"].execution.image.as_deref(),
        Some("ghcr.io/acme/app:1.0")
    );
    let t = nomad_with(&text, &[]).expect("translates");
    assert!(
        t.warnings.iter().any(|w| w.message.starts_with(
            "variable `var.registry` has no default and NOMAD_VAR_registry is not set"
        ))
    );
}

#[test]
fn a_task_straight_under_the_job_is_a_group_of_its_own() {
    let t = nomad(
        "job \"backup\" {\n  type = \"batch\"\n  task \"dump\" {\n    driver = \"docker\"\n    config {\n      image = \"pg-backup:15\"\n    }\n  }\n}\n",
    );
    assert_eq!(t.ensemble.nodes["dump"].allocations, ["dump"]);
}

#[test]
fn errors_name_what_was_found() {
    let error = nomad_with("job \"x\" {\n  group \"g\" {\n    task \"t\" {\n      driver = \"raw_exec\"\n    }\n  }\n}\n", &[]).expect_err("nothing to run");
    assert!(error.to_string().contains("found: task t (driver \"raw_exec\")"), "{error}");
    let error = nomad_with("id = \"vol\"\ntype = \"csi\"\n", &[]).expect_err("not a job");
    assert!(error.to_string().contains("found: id, type"), "{error}");
}

#[test]
fn json_jobs_keep_their_positions() {
    let text = "{\n  \"job\": {\n    \"j\": {\n      \"priority\": 50,\n      \"group\": {\n        \"g\": {\n          \"task\": {\n            \"t\": {\"driver\": \"docker\", \"config\": {\"image\": \"a:1\"}}\n          }\n        }\n      }\n    }\n  }\n}\n";
    let t = nomad(text);
    assert_eq!(warning(&t, "job.j.priority").position.line, 4);
}
