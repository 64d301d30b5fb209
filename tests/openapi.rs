//! The OpenAPI document at `GET /openapi.json`: an OpenAPI 3.1 document that lists exactly the
//! mounted API and ops routes, with the statuses of the contract, bodies of the documented
//! schemas, and links whose expressions work on the service's real answers.

mod common;

use std::collections::{BTreeMap, BTreeSet};

use auth_service::user::Email;
use common::{form, json, TestApp, EMAIL, PASSWORD};
use regex::Regex;
use rocket::http::{ContentType, Status};
use serde_json::Value;

/// The document as the service serves it.
fn document(app: &TestApp) -> Value {
    let response = app.client.get("/openapi.json").dispatch();
    assert_eq!(response.status(), Status::Ok);
    assert_eq!(response.content_type(), Some(ContentType::JSON));
    json(response)
}

/// Every (method, path) the document describes.
fn documented_operations(document: &Value) -> BTreeSet<(String, String)> {
    let paths = document["paths"].as_object().expect("paths");
    paths
        .iter()
        .flat_map(|(path, item)| {
            let methods = item.as_object().expect("a path item");
            methods.keys().map(move |method| (method.to_uppercase(), path.clone()))
        })
        .collect()
}

/// The operation for `method` and `path`.
fn operation<'d>(document: &'d Value, method: &str, path: &str) -> &'d Value {
    let operation = &document["paths"][path][method.to_lowercase()];
    assert!(operation.is_object(), "{method} {path} is not documented");
    operation
}

/// Follows a local `$ref` (`#/components/...`) once; anything else is returned as is.
fn resolve<'d>(document: &'d Value, value: &'d Value) -> &'d Value {
    match value["$ref"].as_str() {
        Some(reference) => {
            let pointer = reference.strip_prefix('#').expect("a local reference");
            document.pointer(pointer).unwrap_or_else(|| panic!("{reference} resolves"))
        }
        None => value,
    }
}

/// The responses of an operation by status, references resolved.
fn responses<'d>(document: &'d Value, method: &str, path: &str) -> BTreeMap<u16, &'d Value> {
    let responses = operation(document, method, path)["responses"].as_object().expect("responses");
    responses
        .iter()
        .map(|(status, response)| (status.parse().expect("a numeric status"), resolve(document, response)))
        .collect()
}

/// The schema name a response's JSON body refers to.
fn json_body_schema(response: &Value) -> Option<&str> {
    response["content"]["application/json"]["schema"]["$ref"].as_str()?.strip_prefix("#/components/schemas/")
}

/// Rocket's `<name>` segments as OpenAPI's `{name}`.
fn openapi_path(rocket_path: &str) -> String {
    rocket_path
        .split('/')
        .map(|segment| match segment.strip_prefix('<').and_then(|s| s.strip_suffix('>')) {
            Some(name) => format!("{{{}}}", name.trim_end_matches("..")),
            None => segment.to_owned(),
        })
        .collect::<Vec<_>>()
        .join("/")
}

#[test]
fn get_openapi_json_is_an_openapi_3_1_document() {
    let app = TestApp::new();
    let document = document(&app);
    let version = document["openapi"].as_str().expect("an `openapi` version");
    assert!(version.starts_with("3.1."), "{version}");
    assert_eq!(document["info"]["title"], "auth-service");
    assert!(document["info"]["version"].is_string());
}

#[test]
fn get_openapi_json_lists_exactly_the_mounted_api_and_ops_routes() {
    let app = TestApp::new();
    let mounted: BTreeSet<(String, String)> = auth_service::api::routes()
        .into_iter()
        .chain(auth_service::ops::routes())
        .map(|route| (route.method.as_str().to_owned(), openapi_path(route.uri.path())))
        .collect();
    let documented = documented_operations(&document(&app));
    let undocumented: Vec<_> = mounted.difference(&documented).collect();
    let not_mounted: Vec<_> = documented.difference(&mounted).collect();
    assert!(undocumented.is_empty(), "mounted but not in the document: {undocumented:?}");
    assert!(not_mounted.is_empty(), "in the document but not mounted: {not_mounted:?}");
    // The routes the document lists are the ones the running service answers on.
    let served: BTreeSet<(String, String)> = app
        .client
        .rocket()
        .routes()
        .map(|route| (route.method.as_str().to_owned(), openapi_path(route.uri.path())))
        .collect();
    assert!(documented.is_subset(&served), "documented routes the service does not mount");
}

#[test]
fn every_operation_documents_the_statuses_it_can_answer() {
    let app = TestApp::new();
    let document = document(&app);
    // A form endpoint: its success, a bad field (400), an oversized body (413), the rate limit
    // (429) and the database (503); 415 and 422 never happen, since `ApiForm` reads any body
    // that is not a form as an empty one and names the missing field in a 400.
    let expected: &[(&str, &str, &[u16])] = &[
        ("GET", "/", &[200]),
        ("POST", "/users", &[200, 400, 413, 429, 503]),
        ("POST", "/sessions", &[200, 400, 401, 413, 429, 503]),
        ("DELETE", "/sessions", &[303, 403, 503]),
        ("GET", "/profile", &[200, 403, 503]),
        ("POST", "/reset_password", &[200, 400, 403, 413, 429, 503]),
        ("PUT", "/reset_password", &[200, 400, 403, 413, 429, 503]),
        ("GET", "/health", &[200]),
        ("GET", "/ready", &[200, 503]),
    ];
    assert_eq!(expected.len(), documented_operations(&document).len());
    for (method, path, statuses) in expected {
        let responses = responses(&document, method, path);
        let documented: Vec<u16> = responses.keys().copied().collect();
        assert_eq!(documented, *statuses, "{method} {path}");
        for (status, response) in responses {
            assert!(response["description"].is_string(), "{method} {path} {status} has a description");
            if status >= 400 {
                assert_eq!(json_body_schema(response), Some("MessageResponse"), "{method} {path} {status}");
            }
        }
    }
}

#[test]
fn the_contract_bodies_have_their_schemas() {
    let app = TestApp::new();
    let document = document(&app);
    let success = |method, path, status| json_body_schema(responses(&document, method, path)[&status]);
    assert_eq!(success("GET", "/", 200), Some("WelcomeResponse"));
    assert_eq!(success("POST", "/users", 200), Some("EmailMessageResponse"));
    assert_eq!(success("POST", "/sessions", 200), Some("EmailMessageResponse"));
    assert_eq!(success("GET", "/profile", 200), Some("ProfileResponse"));
    assert_eq!(success("POST", "/reset_password", 200), Some("ResetRequestResponse"));
    assert_eq!(success("PUT", "/reset_password", 200), Some("EmailMessageResponse"));
    assert_eq!(success("GET", "/ready", 200), Some("Status"));

    let schemas = &document["components"]["schemas"];
    assert_eq!(schemas["MessageResponse"]["required"], serde_json::json!(["message"]));
    assert_eq!(schemas["EmailMessageResponse"]["required"], serde_json::json!(["email", "message"]));
    let reset = schemas["ResetRequestResponse"]["oneOf"].as_array().expect("two shapes");
    let required: Vec<&Value> = reset.iter().map(|shape| &shape["required"]).collect();
    assert_eq!(
        required,
        [&serde_json::json!(["email", "reset_token"]), &serde_json::json!(["email", "message"])]
    );
}

#[test]
fn the_redirect_the_rate_limit_and_the_login_document_their_headers() {
    let app = TestApp::new();
    let document = document(&app);
    let headers = |method, path, status: u16| {
        let response = responses(&document, method, path)[&status];
        response["headers"].as_object().map(|headers| headers.keys().cloned().collect::<Vec<_>>())
    };
    assert_eq!(headers("DELETE", "/sessions", 303), Some(vec!["Location".into(), "Set-Cookie".into()]));
    assert_eq!(headers("POST", "/sessions", 200), Some(vec!["Set-Cookie".into()]));
    for (method, path) in
        [("POST", "/users"), ("POST", "/sessions"), ("POST", "/reset_password"), ("PUT", "/reset_password")]
    {
        assert_eq!(headers(method, path, 429), Some(vec!["Retry-After".into()]), "{method} {path}");
    }
}

#[test]
fn forms_are_urlencoded_or_multipart_and_the_session_is_a_cookie() {
    let app = TestApp::new();
    let document = document(&app);
    for (method, path, form) in [
        ("POST", "/users", "CredentialsForm"),
        ("POST", "/sessions", "CredentialsForm"),
        ("POST", "/reset_password", "ResetRequestForm"),
        ("PUT", "/reset_password", "PasswordUpdateForm"),
    ] {
        let body = &operation(&document, method, path)["requestBody"];
        assert_eq!(body["required"], true, "{method} {path}");
        let content = body["content"].as_object().expect("content");
        let types: Vec<&str> = content.keys().map(String::as_str).collect();
        assert_eq!(types, ["application/x-www-form-urlencoded", "multipart/form-data"], "{method} {path}");
        let reference = format!("#/components/schemas/{form}");
        assert_eq!(content["application/x-www-form-urlencoded"]["schema"]["$ref"], reference.as_str());
        let multipart = &content["multipart/form-data"]["schema"]["allOf"];
        assert_eq!(multipart[0]["$ref"], reference.as_str(), "{method} {path}");
        assert!(multipart[1]["propertyNames"]["pattern"].is_string(), "{method} {path}");
    }
    for (method, path) in [("GET", "/profile"), ("DELETE", "/sessions")] {
        let parameters = operation(&document, method, path)["parameters"].as_array().expect("parameters");
        assert_eq!(parameters.len(), 1);
        assert_eq!(parameters[0]["in"], "cookie");
        assert_eq!(parameters[0]["name"], auth_service::guard::SESSION_COOKIE);
        assert_eq!(parameters[0]["required"], true, "{method} {path}");
    }
}

/// The email schema's length and pattern accept what `Email::parse` accepts (within 250
/// characters, the byte limit aside, which JSON Schema cannot state).
#[test]
fn the_email_schema_agrees_with_email_parse() {
    let app = TestApp::new();
    let document = document(&app);
    let schema = &document["components"]["schemas"]["Email"];
    let pattern = Regex::new(schema["pattern"].as_str().expect("a pattern")).expect("a valid regex");
    let (min, max) =
        (schema["minLength"].as_u64().expect("minLength"), schema["maxLength"].as_u64().expect("maxLength"));
    let samples = [
        "bob@example.com",
        "a@b",
        "zoë@exämple.de",
        "o'neil&co@example.com",
        "",
        "bob",
        "@example.com",
        "bob@",
        "a@b@c",
        "bob @x.io",
        "bob@x.io\n",
        "a\0@x",
        "tab\t@x.io",
        "nbsp\u{a0}@x.io",
        "nel\u{85}@x.io",
        "ideographic\u{3000}@x.io",
        "del\u{7f}@x.io",
        "zero-width\u{200b}@x.io",
        "bom\u{feff}@x.io",
    ];
    let long = format!("{}@x.io", "a".repeat(245));
    let too_long = format!("{}@x.io", "a".repeat(246));
    for sample in samples.iter().copied().chain([long.as_str(), too_long.as_str()]) {
        let chars = sample.chars().count() as u64;
        let documented = pattern.is_match(sample) && (min..=max).contains(&chars);
        assert_eq!(documented, Email::parse(sample).is_ok(), "{sample:?}");
    }
}

/// The links carry what the stateful run needs: each names a documented operation, and the
/// session link's expression takes the session id out of a real `Set-Cookie`.
#[test]
fn the_links_name_documented_operations_and_find_the_session_cookie() {
    let app = TestApp::new();
    let document = document(&app);
    let operation_ids: BTreeSet<&str> = document["paths"]
        .as_object()
        .expect("paths")
        .values()
        .flat_map(|item| item.as_object().expect("a path item").values())
        .map(|operation| operation["operationId"].as_str().expect("an operationId"))
        .collect();
    let link_targets = |method, path| {
        let links = responses(&document, method, path)[&200]["links"].as_object().expect("links").clone();
        links.into_iter().collect::<BTreeMap<_, _>>()
    };
    let mut followed = BTreeSet::new();
    for (method, path) in [("POST", "/users"), ("POST", "/sessions"), ("POST", "/reset_password")] {
        for (name, link) in link_targets(method, path) {
            let target = link["operationId"].as_str().unwrap_or_else(|| panic!("{name} has an operationId"));
            assert!(operation_ids.contains(target), "{name} -> {target}");
            assert!(
                link.get("operation_id").is_none() && link.get("request_body").is_none(),
                "{name}: {link}"
            );
            followed.insert(target.to_owned());
        }
    }
    let expected = ["create_reset_token", "create_session", "destroy_session", "profile", "update_password"];
    assert_eq!(followed, expected.into_iter().map(str::to_owned).collect());

    let login = &link_targets("POST", "/sessions")["profile"];
    let expression = login["parameters"]["cookie.session_id"].as_str().expect("the cookie parameter");
    let (header, pattern) = expression.split_once("#regex:").expect("a regex extractor");
    assert_eq!(header, "$response.header.Set-Cookie");
    app.register(EMAIL, PASSWORD);
    let response = app.post_form("/sessions", &form(&[("email", EMAIL), ("password", PASSWORD)]));
    let set_cookie = response.headers().get_one("Set-Cookie").expect("a Set-Cookie").to_owned();
    let session_id = response.cookies().get("session_id").expect("the session cookie").value().to_owned();
    let extracted = Regex::new(pattern).expect("a valid regex").captures(&set_cookie).expect("a match");
    assert_eq!(&extracted[1], session_id);
}
