//! The shipped Elasticsearch index template and Kibana saved objects agree: every
//! object the dashboard references is in the file, every field a visualization groups
//! by is mapped by the template as a keyword (or the time field).

use serde_json::Value;

const DASHBOARD: &str = include_str!("../assets/kibana-dashboard.ndjson");

fn objects() -> Vec<Value> {
    DASHBOARD.lines().map(|l| serde_json::from_str(l).expect("one JSON object per line")).collect()
}

#[test]
fn every_reference_resolves() {
    let objects = objects();
    let ids: Vec<(String, String)> = objects
        .iter()
        .map(|o| (o["type"].as_str().unwrap_or("").into(), o["id"].as_str().unwrap_or("").into()))
        .collect();
    assert!(ids.contains(&("dashboard".into(), "dms-deployments".into())), "{ids:?}");
    for object in &objects {
        for reference in object["references"].as_array().expect("references") {
            let wanted = (
                reference["type"].as_str().expect("type").to_string(),
                reference["id"].as_str().expect("id").to_string(),
            );
            assert!(ids.contains(&wanted), "{} refers to missing {wanted:?}", object["id"]);
        }
    }
}

#[test]
fn grouped_fields_are_mapped_keywords() {
    let template = dms_telemetry::elastic::template_for("dms-events").expect("template");
    let properties = &template["template"]["mappings"]["properties"];
    let index =
        objects().into_iter().find(|o| o["type"] == "index-pattern").expect("index pattern");
    assert_eq!(index["attributes"]["title"], "dms-events*");
    assert_eq!(
        properties[index["attributes"]["timeFieldName"].as_str().expect("time")]["type"],
        "date"
    );
    for object in objects().iter().filter(|o| o["type"] == "visualization") {
        let state: Value =
            serde_json::from_str(object["attributes"]["visState"].as_str().expect("visState"))
                .expect("JSON");
        for agg in state["aggs"].as_array().expect("aggs") {
            if let Some(field) = agg["params"]["field"].as_str() {
                let mapped = properties[field]["type"].as_str().unwrap_or("unmapped");
                assert!(
                    matches!(mapped, "keyword" | "date"),
                    "{field} is {mapped} in {}",
                    object["id"]
                );
            }
        }
    }
}
