use super::*;

#[test]
fn positions_are_one_based_and_point_at_keys() {
    let (tree, problems) = parse("a:\n  b: 1\n  c: [x, y]\n").expect("parses");
    assert!(problems.is_empty());
    assert_eq!(tree.position(&Path::parse("a.b")), Position::new(2, 3));
    assert_eq!(tree.position(&Path::parse("a.c[1]")), Position::new(3, 10));
    // A missing path gives its deepest existing ancestor.
    assert_eq!(tree.position(&Path::parse("a.zzz.q")), Position::new(1, 1));
}

#[test]
fn core_schema_scalars() {
    let (tree, _) =
        parse("i: 42\nf: 2.5\nb: true\nn: ~\ns: '42'\nh: 0x1F\nt: yes\n").expect("parses");
    assert_eq!(tree.get("i").map(|v| &v.kind), Some(&Kind::Int(42)));
    assert_eq!(tree.get("f").map(|v| &v.kind), Some(&Kind::Float(2.5)));
    assert_eq!(tree.get("b").map(|v| &v.kind), Some(&Kind::Bool(true)));
    assert_eq!(tree.get("n").map(|v| &v.kind), Some(&Kind::Null));
    assert_eq!(tree.get("s").map(|v| &v.kind), Some(&Kind::Str("42".into())));
    assert_eq!(tree.get("h").map(|v| &v.kind), Some(&Kind::Int(31)));
    assert_eq!(
        tree.get("t").map(|v| &v.kind),
        Some(&Kind::Str("yes".into())),
        "YAML 1.2: yes is a string"
    );
}

#[test]
fn duplicate_keys_are_reported_and_the_first_kept() {
    let (tree, problems) = parse("a: 1\nb: 2\na: 3\n").expect("parses");
    assert_eq!(tree.get("a").map(|v| &v.kind), Some(&Kind::Int(1)));
    assert_eq!(problems.len(), 1);
    assert_eq!(problems[0].position, Position::new(3, 1));
    assert!(problems[0].message.contains("duplicate key"));
}

#[test]
fn anchors_aliases_and_merge_keys() {
    let (tree, _) = parse("base: &b {x: 1, y: 2}\nother:\n  <<: *b\n  y: 3\n").expect("parses");
    let other = tree.get("other").expect("other");
    assert_eq!(other.get("x").map(|v| &v.kind), Some(&Kind::Int(1)));
    assert_eq!(other.get("y").map(|v| &v.kind), Some(&Kind::Int(3)), "explicit keys win");
}

#[test]
fn hostile_input_is_bounded() {
    let deep = "[".repeat(MAX_DEPTH + 5);
    assert!(parse(&deep).is_err());
    let mut laughs = String::from("a: &a [x, x, x, x, x, x, x, x, x, x]\n");
    for i in 0..8 {
        laughs.push_str(&format!(
            "b{i}: &b{i} [{}]\n",
            vec![if i == 0 { "*a".to_string() } else { format!("*b{}", i - 1) }; 10].join(", ")
        ));
    }
    let error = parse(&laughs).expect_err("billion laughs is refused");
    assert!(error.message.contains("more than"), "{}", error.message);
}

#[test]
fn empty_and_multi_document_files() {
    assert!(parse("").expect_err("empty").message.contains("empty"));
    assert!(parse("a: 1\n---\nb: 2\n").expect_err("two docs").message.contains("2 documents"));
    let (docs, _) = parse_documents("a: 1\n---\nb: 2\n").expect("stream");
    assert_eq!(docs.len(), 2);
}
