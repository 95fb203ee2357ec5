use std::collections::BTreeMap;

use crate::Position;
use crate::translate::{Options, Source, Translation, translate_with};

fn compose(text: &str, environment: &[(&str, &str)], dot_env: Option<&str>) -> Translation {
    let options = Options {
        from: Some(Source::Compose),
        environment: environment.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect(),
        dot_env: dot_env.map(str::to_string),
    };
    translate_with(text, "compose.yml", &options).expect("translates")
}

fn warning<'t>(t: &'t Translation, path: &str) -> &'t crate::Diagnostic {
    t.warnings
        .iter()
        .find(|w| w.path == path)
        .unwrap_or_else(|| panic!("no warning at {path}: {:#?}", t.warnings))
}

#[test]
fn variables_come_from_the_environment_over_the_dotenv_file() {
    let text = "services:\n  web:\n    image: nginx:${TAG}\n    ports:\n      - \"${HOST_PORT:-8080}:80\"\n    environment:\n      MODE: ${MODE-dev}\n";
    let t = compose(text, &[("TAG", "1.27")], Some("TAG=1.25\nHOST_PORT=9090\n"));
    assert_eq!(t.errors, []);
    let web = &t.ensemble.allocations["web"];
    assert_eq!(web.execution.image.as_deref(), Some("nginx:1.27"));
    assert_eq!(web.environment["MODE"], "dev");
    // `a:b` is split after interpolation, never inside `${…}`.
    let map = &t.ensemble.nodes["main"].ports[0];
    assert_eq!((map.public, map.private), (Some(9090), 80));
}

#[test]
fn a_missing_required_variable_is_an_error_naming_it_and_its_line() {
    let text = "services:\n  db:\n    image: postgres:16\n    environment:\n      POSTGRES_PASSWORD: ${DB_PASSWORD:?set the database password}\n";
    let t = compose(text, &[], None);
    let error = t.errors.iter().find(|e| e.path == "services.db.environment.POSTGRES_PASSWORD");
    let error = error.unwrap_or_else(|| panic!("refused: {:#?}", t.errors));
    assert_eq!(error.position, Position::new(5, 26));
    assert_eq!(
        error.message,
        "required variable `DB_PASSWORD` is not set: set the database password"
    );
    let t = compose(text, &[("DB_PASSWORD", "s3cret")], None);
    assert_eq!(t.errors, []);
    assert_eq!(t.ensemble.allocations["db"].environment["POSTGRES_PASSWORD"], "s3cret");
}

#[test]
fn unset_variables_warn_and_dollar_dollar_stays_a_dollar() {
    let text = "services:\n  db:\n    image: postgres:${PG_VERSION}16\n    healthcheck:\n      test: [\"CMD-SHELL\", \"pg_isready -U $${POSTGRES_USER}\"]\n";
    let t = compose(text, &[], None);
    let w = warning(&t, "services.db.image");
    assert_eq!(w.position, Position::new(3, 12));
    assert!(w.message.contains("`PG_VERSION` is not set"), "{}", w.message);
    let check = t.ensemble.allocations["db"].healthcheck.as_ref().expect("check");
    assert_eq!(check.command[2], "pg_isready -U ${POSTGRES_USER}");
}

#[test]
fn environment_entries_without_a_value_take_it_from_the_variables() {
    let text =
        "services:\n  app:\n    image: app:1\n    environment:\n      - API_KEY\n      - MISSING\n";
    let t = compose(text, &[], Some("API_KEY=from-dotenv\n"));
    assert_eq!(t.ensemble.allocations["app"].environment["API_KEY"], "from-dotenv");
    assert!(!t.ensemble.allocations["app"].environment.contains_key("MISSING"));
    assert!(warning(&t, "services.app.environment.MISSING").message.starts_with("not translated"));
}

#[test]
fn replicas_are_kept_and_too_many_refused() {
    let t = compose("services:\n  w:\n    image: w:1\n    deploy:\n      replicas: 3\n", &[], None);
    let names: Vec<&String> = t.ensemble.allocations.keys().collect();
    assert_eq!(names, ["w-1", "w-2", "w-3"]);
    let text = "services:\n  w:\n    image: w:1\n    deploy:\n      replicas: ${N}\n";
    assert_eq!(compose(text, &[("N", "150")], None).ensemble.allocations.len(), 150);
    let t = compose(text, &[("N", "5000")], None);
    let error = t.errors.iter().find(|e| e.path == "services.w.deploy.replicas").expect("refused");
    assert_eq!(error.position, Position::new(5, 17));
    assert!(error.message.starts_with("5000 replicas: a translated ensemble holds at most 1000"));
}

#[test]
fn partial_resources_name_what_was_assumed() {
    let text = "services:\n  gpu:\n    image: trainer:1\n    deploy:\n      resources:\n        reservations:\n          devices:\n            - driver: nvidia\n              count: 8\n              capabilities: [gpu]\n";
    let t = compose(text, &[], None);
    assert_eq!(t.ensemble.allocations["gpu"].resources.gpus[0].count, 8);
    let w = warning(&t, "services.gpu");
    assert_eq!(w.position, Position::new(3, 5));
    assert_eq!(
        w.message,
        "no resources given; assumed 1 core and 512MiB (set deploy.resources.limits to choose)"
    );
    let text = "services:\n  m:\n    image: m:1\n    mem_limit: 2g\n";
    assert!(
        warning(&compose(text, &[], None), "services.m")
            .message
            .starts_with("no cpu given; assumed 1 core")
    );
}

#[test]
fn devices_other_than_gpus_and_unreadable_counts_are_warnings() {
    let text = "services:\n  a:\n    image: a:1\n    cpus: 2\n    mem_limit: 1g\n    deploy:\n      resources:\n        reservations:\n          devices:\n            - capabilities: [tpu]\n            - capabilities: [gpu]\n              count: all\n";
    let t = compose(text, &[], None);
    let a = &t.ensemble.allocations["a"];
    assert_eq!(a.resources.gpus.len(), 1);
    assert!(
        warning(&t, "services.a.deploy.resources.reservations.devices[0]")
            .message
            .contains("only GPUs")
    );
    assert!(
        warning(&t, "services.a.deploy.resources.reservations.devices[1].count")
            .message
            .starts_with("`all` GPUs translated as 1")
    );
}

#[test]
fn a_dependency_outside_the_file_is_dropped_with_a_warning() {
    let text = "services:\n  beat:\n    image: beat:1\n    depends_on:\n      - elasticsearch\n";
    let t = compose(text, &[], None);
    assert_eq!(t.errors, []);
    assert!(t.ensemble.allocations["beat"].depends_on.is_empty());
    let w = warning(&t, "services.beat.depends_on.elasticsearch");
    assert_eq!(w.position, Position::new(5, 9));
}

#[test]
fn a_file_without_services_names_what_it_has() {
    let options =
        Options { from: Some(Source::Compose), environment: BTreeMap::new(), dot_env: None };
    let error = translate_with("volumes:\n  data: {}\n", "c.yml", &options).expect_err("refused");
    assert!(error.to_string().contains("found top-level keys volumes"), "{error}");
}

#[test]
fn replicas_past_the_allocation_limit_of_the_whole_file_are_refused() {
    let service = |n: u32| format!("  s{n}:\n    image: s:1\n    deploy:\n      replicas: 400\n");
    let text = format!("services:\n{}{}{}", service(1), service(2), service(3));
    let t = compose(&text, &[], None);
    assert_eq!(t.ensemble.allocations.len(), 801);
    let refused: Vec<&str> = t.errors.iter().map(|e| e.path.as_str()).collect();
    assert_eq!(refused, ["services.s3.deploy.replicas"]);
}
