//! The served OpenAPI document is true of the running routes: every documented operation
//! exists and answers only statuses it documents, and every path's `405` names exactly
//! the methods the document lists for it.

mod support;

use std::collections::BTreeSet;

use reqwest::{Method, StatusCode};
use serde_json::{json, Value};
use support::TestApp;

const METHODS: [&str; 6] = ["get", "post", "put", "patch", "delete", "head"];

#[tokio::test]
async fn every_documented_operation_answers_as_documented_and_nothing_else_is_allowed() {
    let app = TestApp::single().await;
    let spec: Value = app
        .request(Method::GET, "/api/v1/openapi.json")
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(spec["openapi"], "3.1.0");
    let link = app
        .shorten_ok(json!({"url": "https://example.com/spec"}))
        .await;
    let code = link["code"].as_str().unwrap();

    let paths = spec["paths"].as_object().unwrap();
    assert!(paths.len() >= 8, "{:?}", paths.keys());
    for (template, item) in paths {
        let path = template.replace("{code}", code);
        let documented: BTreeSet<String> = METHODS
            .iter()
            .filter(|m| item.get(**m).is_some())
            .map(|m| m.to_uppercase())
            .collect();
        assert!(!documented.is_empty(), "{template}");
        for method in METHODS {
            let verb = Method::from_bytes(method.to_uppercase().as_bytes()).unwrap();
            let response = match method {
                "post" => app
                    .client
                    .post(format!("{}{path}", app.address))
                    .json(&json!({"url": "https://example.com/other"}))
                    .send()
                    .await
                    .unwrap(),
                _ => app.request(verb.clone(), &path).await,
            };
            let status = response.status();
            match item.get(method) {
                Some(op) => {
                    let statuses = op["responses"].as_object().unwrap();
                    assert!(
                        statuses.contains_key(status.as_str()),
                        "{method} {template} answered {status}, documented: {:?}",
                        statuses.keys()
                    );
                }
                None => {
                    assert_eq!(
                        status,
                        StatusCode::METHOD_NOT_ALLOWED,
                        "{method} {template}"
                    );
                    let allow: BTreeSet<String> = response.headers()["allow"]
                        .to_str()
                        .unwrap()
                        .split(',')
                        .map(|m| m.trim().to_owned())
                        .collect();
                    assert_eq!(allow, documented, "Allow of {template}");
                }
            }
        }
    }
    // The delete above ran last for the link's resource; the redirect documents 410.
    assert_eq!(app.follow(code).await.status(), StatusCode::GONE);
}

#[tokio::test]
async fn the_spec_names_its_schemas_and_the_bearer_scheme() {
    let app = TestApp::embedded().await;
    let spec: Value = app
        .request(Method::GET, "/api/v1/openapi.json")
        .await
        .json()
        .await
        .unwrap();
    for schema in [
        "LinkView",
        "LinkPage",
        "CreateLink",
        "LinkChanges",
        "LinkStats",
        "Error",
    ] {
        assert!(
            spec["components"]["schemas"].get(schema).is_some(),
            "{schema} missing"
        );
    }
    assert_eq!(
        spec["components"]["securitySchemes"]["api_key"]["scheme"],
        "bearer"
    );
    let create = &spec["paths"]["/api/v1/links"]["post"];
    assert_eq!(
        create["responses"]["201"]["links"]["getLink"]["operationId"],
        "getLink"
    );
}
