use super::*;

fn vars() -> BTreeMap<String, String> {
    [("TAG", "1.27"), ("EMPTY", ""), ("PORT", "8080"), ("name", "lower")]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

fn run(text: &str) -> (String, Vec<Problem>) {
    let vars = vars();
    interpolate(text, &|name| vars.get(name).cloned())
}

fn ok(text: &str) -> String {
    let (out, problems) = run(text);
    assert_eq!(problems, [], "{text}");
    out
}

#[test]
fn plain_and_braced_variables() {
    assert_eq!(ok("nginx:$TAG"), "nginx:1.27");
    assert_eq!(ok("nginx:${TAG}-alpine"), "nginx:1.27-alpine");
    assert_eq!(ok("${PORT}:80"), "8080:80");
    assert_eq!(ok("$name"), "lower");
    assert_eq!(ok("no variables"), "no variables");
}

#[test]
fn dollar_dollar_is_a_literal_dollar() {
    assert_eq!(ok("pg_isready -U $${POSTGRES_USER}"), "pg_isready -U ${POSTGRES_USER}");
    assert_eq!(ok("cost: $$5"), "cost: $5");
    assert_eq!(ok("a $ alone and $1"), "a $ alone and $1");
}

#[test]
fn defaults_with_and_without_colon() {
    assert_eq!(ok("${MISSING:-fallback}"), "fallback");
    assert_eq!(ok("${MISSING-fallback}"), "fallback");
    assert_eq!(ok("${EMPTY:-fallback}"), "fallback");
    assert_eq!(ok("${EMPTY-fallback}"), "");
    assert_eq!(ok("${TAG:-fallback}"), "1.27");
    assert_eq!(ok("${MISSING:-}"), "");
    assert_eq!(ok("${MISSING:-a:b}"), "a:b");
}

#[test]
fn alternatives_with_and_without_colon() {
    assert_eq!(ok("${TAG:+set}"), "set");
    assert_eq!(ok("${EMPTY:+set}"), "");
    assert_eq!(ok("${EMPTY+set}"), "set");
    assert_eq!(ok("${MISSING+set}"), "");
}

#[test]
fn nested_defaults() {
    assert_eq!(ok("${MISSING:-${TAG}}"), "1.27");
    assert_eq!(ok("${MISSING:-${ALSO_MISSING:-deep}}"), "deep");
    assert_eq!(ok("${A:-${B:-${PORT}}}/x"), "8080/x");
    assert_eq!(ok("${MISSING:-$$literal}"), "$literal");
}

#[test]
fn required_variables_name_the_variable_and_the_message() {
    let (out, problems) = run("${DB_PASSWORD:?set a password}");
    assert_eq!(out, "");
    assert_eq!(
        problems,
        [Problem::Required { name: "DB_PASSWORD".into(), message: "set a password".into() }]
    );
    assert_eq!(
        describe(&problems[0]),
        "required variable `DB_PASSWORD` is not set: set a password"
    );
    assert_eq!(run("${EMPTY:?}").1.len(), 1);
    assert_eq!(run("${EMPTY?}").1, []);
    assert_eq!(ok("${TAG:?never}"), "1.27");
}

#[test]
fn unset_variables_are_empty_with_a_problem() {
    assert_eq!(run("a${MISSING}b"), ("ab".to_string(), vec![Problem::Unset("MISSING".into())]));
    assert_eq!(run("$MISSING").1, [Problem::Unset("MISSING".into())]);
}

#[test]
fn invalid_substitutions_are_kept_and_reported() {
    assert_eq!(run("${}").0, "${}");
    assert!(matches!(run("${}").1[..], [Problem::Invalid(_)]));
    assert_eq!(run("${TAG/x/y}").0, "${TAG/x/y}");
    let (out, problems) = run("${UNCLOSED");
    assert_eq!(out, "${UNCLOSED");
    assert_eq!(problems.len(), 1);
}

#[test]
fn dotenv_lines_quotes_comments_and_interpolation() {
    let env: BTreeMap<String, String> = [("HOME".to_string(), "/home/u".to_string())].into();
    let text = "# comment\n\nexport A=1\nB = two words # comment\nC='literal ${A} $$'\nD=\"quoted\\nline ${A}\"\nE=${A}-${HOME}\nF=\"multi\nline\"\nG=\n";
    let (pairs, problems) = dotenv(text, &env);
    assert_eq!(problems, []);
    let got: BTreeMap<_, _> = pairs.into_iter().collect();
    assert_eq!(got["A"], "1");
    assert_eq!(got["B"], "two words");
    assert_eq!(got["C"], "literal ${A} $$");
    assert_eq!(got["D"], "quoted\nline 1");
    assert_eq!(got["E"], "1-/home/u");
    assert_eq!(got["F"], "multi\nline");
    assert_eq!(got["G"], "");
}

#[test]
fn dotenv_problems_name_their_line() {
    let (pairs, problems) = dotenv("GOOD=1\nno equals sign\nBAD='open\n", &BTreeMap::new());
    assert_eq!(pairs, [("GOOD".to_string(), "1".to_string())]);
    assert_eq!(problems.iter().map(|(line, _)| *line).collect::<Vec<_>>(), [2, 3]);
}

#[test]
fn the_environment_wins_over_the_dotenv_file() {
    let options = Options {
        from: None,
        environment: [("TAG".to_string(), "from-env".to_string())].into(),
        dot_env: Some("TAG=from-file\nOTHER=file\n".into()),
    };
    let mut warnings = Vec::new();
    let variables = variables(&options, &mut warnings);
    assert_eq!(variables["TAG"], "from-env");
    assert_eq!(variables["OTHER"], "file");
    assert!(warnings.is_empty());
}
