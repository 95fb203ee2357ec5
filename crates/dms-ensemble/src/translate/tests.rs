use super::*;

#[test]
fn detects_formats() {
    assert_eq!(detect("services:\n  a: {image: x}\n", "docker-compose.yml"), Some(Source::Compose));
    assert_eq!(detect("apiVersion: v1\nkind: Pod\n", "pod.yaml"), Some(Source::Kubernetes));
    assert_eq!(detect("job \"x\" {\n}\n", "x.txt"), Some(Source::Nomad));
    assert_eq!(detect("anything", "job.nomad"), Some(Source::Nomad));
    assert_eq!(detect("hello: world\n", "x.yaml"), None);
}

#[test]
fn shell_words_honour_quotes() {
    assert_eq!(
        shell_words(r#"redis-server --save "" --appendonly no"#),
        ["redis-server", "--save", "", "--appendonly", "no"]
    );
    assert_eq!(shell_words("sh -c 'echo hi there'"), ["sh", "-c", "echo hi there"]);
}

#[test]
fn sizes_in_docker_and_kubernetes_notation() {
    assert_eq!(loose_bytes("512m", true), Some(ByteSize::mib(512)));
    assert_eq!(loose_bytes("512M", false), Some(ByteSize(512_000_000)));
    assert_eq!(loose_bytes("128Mi", false), Some(ByteSize::mib(128)));
    assert_eq!(loose_bytes("1e3", false), Some(ByteSize(1000)));
    assert_eq!(loose_bytes("lots", false), None);
}

#[test]
fn unknown_keys_become_warnings_never_silence() {
    let compose = "services:\n  web:\n    image: nginx\n    frobnicate: true\n";
    let t = translate(compose, Some(Source::Compose), "c.yml").expect("translates");
    let w = t.warnings.iter().find(|w| w.path == "services.web.frobnicate").expect("warned");
    assert_eq!(w.position, Position::new(4, 5));
    assert!(w.message.starts_with("not translated"));
}

#[test]
fn nothing_to_run_is_an_error() {
    assert!(matches!(
        translate("services: {}\n", Some(Source::Compose), "c.yml"),
        Err(Error::Untranslatable(_))
    ));
    assert!(matches!(
        translate("apiVersion: v1\nkind: ConfigMap\n", Some(Source::Kubernetes), "k.yml"),
        Err(Error::Untranslatable(_))
    ));
    assert!(matches!(
        translate(
            "job \"x\" {\n  group \"g\" {\n    task \"t\" {\n      driver = \"exec\"\n    }\n  }\n}\n",
            Some(Source::Nomad),
            "x.hcl"
        ),
        Err(Error::Untranslatable(_))
    ));
}
