//! Accounts and access, on both backend sets: anonymous callers get nothing, first-run
//! set-up happens once, members manage their own photos, cookies only work from the
//! gallery's own page, guessing passwords is braked, and tokens, invites, share links and
//! profiles work and refuse what they must.

use std::time::Duration;

use reqwest::header::{COOKIE, ORIGIN, RETRY_AFTER};
use reqwest::StatusCode;
use serde_json::{json, Value};

use crate::helpers::{
    jpeg_fixture, session_cookie, spawn_app, spawn_unset, spawn_web_tuned, Api, BackendSet,
    ADMIN_EMAIL, ADMIN_PASSWORD,
};

/// Asserts `response` is a refusal with `status` and `code`; answers its body.
async fn assert_refused(response: reqwest::Response, status: u16, code: &str) -> Value {
    assert_eq!(response.status(), status, "expected {status} {code}");
    let body: Value = response.json().await.expect("json error body");
    assert_eq!(body["code"], code, "{body}");
    assert!(
        body["error"].as_str().is_some_and(|e| !e.is_empty()),
        "{body}"
    );
    body
}

async fn post_json(api: &Api, path: &str, body: Value) -> reqwest::Response {
    api.client
        .post(api.url(path))
        .json(&body)
        .send()
        .await
        .expect("request")
}

async fn anonymous_callers_get_nothing_but_the_login_page(set: BackendSet) {
    let app = spawn_app(set).await;
    let id = app
        .upload_ok("private.jpg", jpeg_fixture(400, 300), None)
        .await;
    let photo = app.wait_done(&id).await;
    let variant = photo["variants"]["thumb"]["url"]
        .as_str()
        .expect("thumb url");
    let anonymous = app.anonymous();
    for path in [
        "/api/photos".to_owned(),
        format!("/api/photos/{id}"),
        format!("/api/photos/{id}/original"),
        variant.to_owned(),
        "/api/events".to_owned(),
        "/api/session".to_owned(),
        "/api/me".to_owned(),
        "/api/tokens".to_owned(),
        "/api/users".to_owned(),
    ] {
        let response = anonymous
            .client
            .get(anonymous.url(&path))
            .send()
            .await
            .expect("get");
        assert_refused(response, 401, "unauthorized").await;
    }
    let response = anonymous
        .client
        .delete(anonymous.url(&format!("/api/photos/{id}")))
        .send()
        .await
        .expect("delete");
    assert_refused(response, 401, "unauthorized").await;
    assert_refused(
        anonymous
            .upload(&[("x.jpg", jpeg_fixture(8, 8))], None)
            .await,
        401,
        "unauthorized",
    )
    .await;
    // Nothing changed: the photo is there, and no second one.
    assert_eq!(app.photo(&id).await["status"], "done");
    assert_eq!(
        app.list("").await["photos"].as_array().map(Vec::len),
        Some(1)
    );

    let config: Value = anonymous
        .client
        .get(anonymous.url("/api/config"))
        .send()
        .await
        .expect("config")
        .json()
        .await
        .expect("json");
    assert_eq!(config["setup_required"], false);
    let page = anonymous
        .client
        .get(anonymous.url("/"))
        .send()
        .await
        .expect("page");
    assert_eq!(page.status(), 200);
}

async fn the_first_account_is_set_up_once(set: BackendSet) {
    let app = spawn_unset(set).await;
    let anonymous = app.anonymous();
    let config: Value = anonymous
        .client
        .get(anonymous.url("/api/config"))
        .send()
        .await
        .expect("config")
        .json()
        .await
        .expect("json");
    assert_eq!(config["setup_required"], true);
    let weak = post_json(
        &anonymous,
        "/api/setup",
        json!({"email": "a@b.org", "name": "A", "password": "short"}),
    )
    .await;
    assert_refused(weak, 400, "weak_password").await;
    let bad = post_json(
        &anonymous,
        "/api/setup",
        json!({"email": "nope", "name": "A", "password": "long enough 1"}),
    )
    .await;
    assert_refused(bad, 400, "bad_field").await;

    let first = post_json(
        &anonymous,
        "/api/setup",
        json!({"email": "Ana@Example.org", "name": "Ana", "password": "ana's password"}),
    )
    .await;
    assert_eq!(first.status(), 201);
    let cookie = session_cookie(&first).expect("set-up logs in");
    let body: Value = first.json().await.expect("json");
    assert_eq!(body["user"]["role"], "admin");
    assert_eq!(body["user"]["email"], "ana@example.org");
    assert!(body["user"].get("password_hash").is_none());

    let again = post_json(
        &anonymous,
        "/api/setup",
        json!({"email": "eve@example.org", "name": "Eve", "password": "eve's password"}),
    )
    .await;
    assert_refused(again, 409, "already_set_up").await;
    assert!(anonymous
        .log_in("eve@example.org", "eve's password")
        .await
        .is_err());
    let me: Value = anonymous
        .client
        .get(anonymous.url("/api/session"))
        .header(COOKIE, &cookie)
        .send()
        .await
        .expect("session")
        .json()
        .await
        .expect("json");
    assert_eq!(me["user"]["name"], "Ana");
}

/// GALLERY_ADMIN_EMAIL / _PASSWORD create the admin at the first start, and never again.
#[tokio::test]
async fn the_headless_admin_is_created_once() {
    let admin = gallery::routes::FirstAdmin {
        email: gallery::domain::Email::parse("ops@example.org").expect("email"),
        password: gallery::accounts::Password::parse("first password").expect("password"),
    };
    let first = spawn_web_tuned(BackendSet::Services, |web| web.admin = Some(admin.clone())).await;
    let anonymous = first.anonymous();
    assert!(anonymous
        .log_in("ops@example.org", "first password")
        .await
        .is_ok());
    // A second start on the same backends, with another password: nothing is created.
    let mut web = first.web_settings();
    web.admin = Some(gallery::routes::FirstAdmin {
        password: gallery::accounts::Password::parse("second password").expect("password"),
        ..admin
    });
    let second = first.start_another_web(web).await;
    assert!(second
        .log_in("ops@example.org", "second password")
        .await
        .is_err());
    assert!(second
        .log_in("ops@example.org", "first password")
        .await
        .is_ok());
    let users: Value = second
        .token_for(
            &second
                .log_in("ops@example.org", "first password")
                .await
                .expect("login"),
        )
        .await
        .client
        .get(second.url("/api/users"))
        .send()
        .await
        .expect("users")
        .json()
        .await
        .expect("json");
    assert_eq!(users["users"].as_array().map(Vec::len), Some(1));
}

async fn members_delete_only_their_own_photos(set: BackendSet) {
    let app = spawn_app(set).await;
    let (ana, ana_id) = app.add_person("ana@example.org", "member").await;
    let (bia, _) = app.add_person("bia@example.org", "member").await;
    let anas = ana.upload_ok("ana.jpg", jpeg_fixture(64, 48), None).await;
    let admins = app.upload_ok("admin.jpg", jpeg_fixture(64, 48), None).await;
    // Everyone sees everything, with its owner.
    let seen = bia.photo(&anas).await;
    assert_eq!(seen["owner"], json!({"id": ana_id, "name": "ana"}));
    assert_eq!(bia.photo(&admins).await["owner"]["name"], "Admin");

    let delete = |api: &Api, id: &str| {
        let request = api.client.delete(api.url(&format!("/api/photos/{id}")));
        async move { request.send().await.expect("delete") }
    };
    assert_refused(delete(&bia, &anas).await, 403, "forbidden").await;
    assert_refused(delete(&ana, &admins).await, 403, "forbidden").await;
    assert_eq!(app.photo(&anas).await["id"], anas.as_str());
    assert_eq!(delete(&ana, &anas).await.status(), 204);
    let bias = bia.upload_ok("bia.jpg", jpeg_fixture(64, 48), None).await;
    assert_eq!(delete(&app, &bias).await.status(), 204);
    assert_eq!(delete(&app, &admins).await.status(), 204);
    assert_eq!(
        app.list("").await["photos"].as_array().map(Vec::len),
        Some(0)
    );
}

async fn cookies_work_only_from_the_gallerys_own_pages(set: BackendSet) {
    let app = spawn_app(set).await;
    let anonymous = app.anonymous();
    let cookie = anonymous
        .log_in(ADMIN_EMAIL, ADMIN_PASSWORD)
        .await
        .expect("login");
    let own = app.address.clone();
    let form = || {
        reqwest::multipart::Form::new().part(
            "file",
            reqwest::multipart::Part::bytes(jpeg_fixture(16, 16)).file_name("x.jpg"),
        )
    };
    let upload = |headers: Vec<(&'static str, String)>| {
        let mut request = anonymous
            .client
            .post(anonymous.url("/api/photos"))
            .header(COOKIE, &cookie)
            .multipart(form());
        for (name, value) in headers {
            request = request.header(name, value);
        }
        async move { request.send().await.expect("upload") }
    };
    let evil = upload(vec![("origin", "https://evil.example".into())]).await;
    assert_refused(evil, 403, "cross_origin").await;
    let evil_port = upload(vec![("origin", own.replace(&app.port.to_string(), "1"))]).await;
    assert_refused(evil_port, 403, "cross_origin").await;
    let no_origin = upload(vec![("sec-fetch-site", "cross-site".into())]).await;
    assert_refused(no_origin, 403, "cross_origin").await;
    assert_eq!(
        app.list("").await["photos"].as_array().map(Vec::len),
        Some(0)
    );

    assert_eq!(upload(vec![("origin", own.clone())]).await.status(), 202);
    assert_eq!(
        upload(vec![("sec-fetch-site", "same-origin".into())])
            .await
            .status(),
        202
    );
    // A bearer token is never sent by a browser on its own: any origin may carry one.
    let scripted = app
        .client
        .post(app.url("/api/photos"))
        .header(ORIGIN, "https://evil.example")
        .multipart(form())
        .send()
        .await
        .expect("upload");
    assert_eq!(scripted.status(), 202);
    assert!(scripted
        .headers()
        .get("access-control-allow-origin")
        .is_none());
    assert_eq!(
        app.list("").await["photos"].as_array().map(Vec::len),
        Some(3)
    );
    // Reads by cookie need no origin check (they change nothing).
    let listed = anonymous
        .client
        .get(anonymous.url("/api/photos"))
        .header(COOKIE, &cookie)
        .header(ORIGIN, "https://evil.example")
        .send()
        .await
        .expect("list");
    assert_eq!(listed.status(), 200);
}

async fn credentials_that_are_wrong_stale_or_revoked_are_refused(set: BackendSet) {
    let app = spawn_app(set).await;
    let anonymous = app.anonymous();
    let wrong = anonymous
        .log_in(ADMIN_EMAIL, "not the password")
        .await
        .expect_err("wrong password");
    let wrong = assert_refused(wrong, 401, "bad_credentials").await;
    let unknown = anonymous
        .log_in("nobody@example.org", "not the password")
        .await
        .expect_err("unknown");
    let unknown = assert_refused(unknown, 401, "bad_credentials").await;
    assert_eq!(wrong, unknown, "the same answer for both");

    let with_cookie = |cookie: String| {
        let request = anonymous
            .client
            .get(anonymous.url("/api/photos"))
            .header(COOKIE, cookie);
        async move { request.send().await.expect("list") }
    };
    let cookie = anonymous
        .log_in(ADMIN_EMAIL, ADMIN_PASSWORD)
        .await
        .expect("login");
    assert_eq!(with_cookie(cookie.clone()).await.status(), 200);
    let mut tampered = cookie.clone();
    let last = tampered.pop().expect("a cookie value");
    tampered.push(if last == '0' { '1' } else { '0' });
    assert_refused(with_cookie(tampered).await, 401, "unauthorized").await;
    assert_refused(
        with_cookie("gallery_session=".into()).await,
        401,
        "unauthorized",
    )
    .await;
    // Logged out: the cookie is dead, even replayed.
    let logout = anonymous
        .client
        .delete(anonymous.url("/api/session"))
        .header(COOKIE, &cookie)
        .send()
        .await
        .expect("logout");
    assert_eq!(logout.status(), 204);
    assert_eq!(
        logout.headers()["clear-site-data"],
        "\"cache\"",
        "photos the browser kept"
    );
    assert_refused(with_cookie(cookie).await, 401, "unauthorized").await;

    // A revoked token.
    let cookie = anonymous
        .log_in(ADMIN_EMAIL, ADMIN_PASSWORD)
        .await
        .expect("login");
    let script = anonymous.token_for(&cookie).await;
    let tokens: Value = script
        .client
        .get(script.url("/api/tokens"))
        .send()
        .await
        .expect("tokens")
        .json()
        .await
        .expect("json");
    let listed = tokens["tokens"].as_array().expect("tokens");
    assert_eq!(listed.len(), 2, "the test's own and this one: {tokens}");
    assert!(
        listed.iter().all(|token| token.get("token").is_none()),
        "never shown again"
    );
    let newest = listed.last().expect("a token")["id"]
        .as_str()
        .expect("id")
        .to_owned();
    assert!(listed.last().expect("a token")["last_used_at"].is_string());
    let revoke = script
        .client
        .delete(script.url(&format!("/api/tokens/{newest}")))
        .send()
        .await
        .expect("revoke");
    assert_eq!(revoke.status(), 204);
    let after = script
        .client
        .get(script.url("/api/photos"))
        .send()
        .await
        .expect("list");
    assert_refused(after, 401, "unauthorized").await;
    let garbage = Api::with_token(&app.address, "gallery_0000")
        .client
        .get(app.url("/api/photos"))
        .send()
        .await
        .expect("list");
    assert_refused(garbage, 401, "unauthorized").await;
}

async fn password_guessing_is_braked(set: BackendSet) {
    let app = spawn_app(set).await;
    let anonymous = app.anonymous();
    for _ in 0..5 {
        let refused = anonymous
            .log_in(ADMIN_EMAIL, "guess guess guess")
            .await
            .expect_err("wrong");
        assert_refused(refused, 401, "bad_credentials").await;
    }
    let braked = anonymous
        .log_in(ADMIN_EMAIL, "guess guess guess")
        .await
        .expect_err("braked");
    let retry_after: u64 = braked.headers()[RETRY_AFTER]
        .to_str()
        .expect("text")
        .parse()
        .expect("seconds");
    assert!(
        (1..=15 * 60).contains(&retry_after),
        "Retry-After: {retry_after}"
    );
    assert_refused(braked, 429, "too_many_attempts").await;
    // Even the right password waits now: the brake does not tell whether a guess was right.
    let right = anonymous
        .log_in(ADMIN_EMAIL, ADMIN_PASSWORD)
        .await
        .expect_err("still braked");
    assert_refused(right, 429, "too_many_attempts").await;
    // Other accounts from this client go on, up to the client's own limit of 20 failures.
    for n in 0..15 {
        let refused = anonymous
            .log_in(&format!("user{n}@example.org"), "guess guess")
            .await
            .expect_err("wrong");
        assert_refused(refused, 401, "bad_credentials").await;
    }
    let braked = anonymous
        .log_in("someone@example.org", "guess guess")
        .await
        .expect_err("client braked");
    assert_refused(braked, 429, "too_many_attempts").await;
}

/// With Redis, a restarted web role still remembers the failures.
#[tokio::test]
async fn the_brake_survives_a_restart_on_redis() {
    let app = spawn_app(BackendSet::Services).await;
    for _ in 0..5 {
        let _ = app
            .anonymous()
            .log_in(ADMIN_EMAIL, "guess guess guess")
            .await;
    }
    let restarted = app.start_another_web(app.web_settings()).await;
    let braked = restarted
        .log_in(ADMIN_EMAIL, ADMIN_PASSWORD)
        .await
        .expect_err("braked");
    assert_refused(braked, 429, "too_many_attempts").await;
}

async fn admins_manage_people_and_invites_work_once(set: BackendSet) {
    let app = spawn_app(set).await;
    let (ana, ana_id) = app.add_person("ana@example.org", "member").await;
    assert_refused(
        ana.client
            .get(ana.url("/api/users"))
            .send()
            .await
            .expect("users"),
        403,
        "forbidden",
    )
    .await;
    let sneaky = post_json(
        &ana,
        "/api/users",
        json!({"email": "x@example.org", "name": "X"}),
    )
    .await;
    assert_refused(sneaky, 403, "forbidden").await;

    let taken = post_json(
        &app,
        "/api/users",
        json!({"email": "ANA@example.org", "name": "Ana 2"}),
    )
    .await;
    assert_refused(taken, 409, "email_taken").await;
    let invited: Value = post_json(
        &app,
        "/api/users",
        json!({"email": "caio@example.org", "name": "Caio", "role": "member"}),
    )
    .await
    .json()
    .await
    .expect("json");
    assert_eq!(invited["user"]["pending"], true);
    let token = invited["invite_url"]
        .as_str()
        .expect("url")
        .trim_start_matches("/invite/")
        .to_owned();
    let anonymous = app.anonymous();
    let page = anonymous
        .client
        .get(anonymous.url(&format!("/invite/{token}")))
        .send()
        .await
        .expect("page");
    assert_eq!(page.status(), 200);
    assert!(page.text().await.expect("html").contains("<html"));
    let about: Value = anonymous
        .client
        .get(anonymous.url(&format!("/api/invites/{token}")))
        .send()
        .await
        .expect("invite")
        .json()
        .await
        .expect("json");
    assert_eq!(about["email"], "caio@example.org");
    let weak = post_json(
        &anonymous,
        &format!("/api/invites/{token}"),
        json!({"password": "short"}),
    )
    .await;
    assert_refused(weak, 400, "weak_password").await;
    let accepted = post_json(
        &anonymous,
        &format!("/api/invites/{token}"),
        json!({"password": "caio password"}),
    )
    .await;
    assert_eq!(accepted.status(), 200);
    let reused = post_json(
        &anonymous,
        &format!("/api/invites/{token}"),
        json!({"password": "eve's password"}),
    )
    .await;
    assert_refused(reused, 404, "invite_not_found").await;
    assert!(anonymous
        .log_in("caio@example.org", "eve's password")
        .await
        .is_err());
    assert!(anonymous
        .log_in("caio@example.org", "caio password")
        .await
        .is_ok());
    let unknown = post_json(
        &anonymous,
        &format!("/api/invites/{}", "0".repeat(64)),
        json!({"password": "long enough 1"}),
    )
    .await;
    assert_refused(unknown, 404, "invite_not_found").await;

    // Roles: the last admin stays.
    let users: Value = app
        .client
        .get(app.url("/api/users"))
        .send()
        .await
        .expect("users")
        .json()
        .await
        .expect("json");
    let admin_id = users["users"][0]["id"].as_str().expect("id").to_owned();
    assert_eq!(users["users"].as_array().map(Vec::len), Some(3));
    let demote = app
        .client
        .patch(app.url(&format!("/api/users/{admin_id}")))
        .json(&json!({"role": "member"}))
        .send()
        .await
        .expect("patch");
    assert_refused(demote, 409, "last_admin").await;
    let remove = app
        .client
        .delete(app.url(&format!("/api/users/{admin_id}")))
        .send()
        .await
        .expect("delete");
    assert_refused(remove, 409, "last_admin").await;
    let promote = app
        .client
        .patch(app.url(&format!("/api/users/{ana_id}")))
        .json(&json!({"role": "admin", "name": "Ana Maria"}))
        .send()
        .await
        .expect("patch");
    assert_eq!(promote.status(), 200);
    // With another admin, the first may go, but not by their own hand.
    let remove = app
        .client
        .delete(app.url(&format!("/api/users/{admin_id}")))
        .send()
        .await
        .expect("delete");
    assert_refused(remove, 403, "forbidden").await;

    // Removing a person: their photos stay, the remover's now; their token dies.
    let anas = ana.upload_ok("ana.jpg", jpeg_fixture(32, 32), None).await;
    assert_eq!(app.photo(&anas).await["owner"]["name"], "Ana Maria");
    let (caio, caio_id) = (
        anonymous
            .token_for(
                &anonymous
                    .log_in("caio@example.org", "caio password")
                    .await
                    .expect("login"),
            )
            .await,
        invited["user"]["id"].as_str().expect("id").to_owned(),
    );
    let caios = caio.upload_ok("caio.jpg", jpeg_fixture(32, 32), None).await;
    let remove = ana
        .client
        .delete(ana.url(&format!("/api/users/{caio_id}")))
        .send()
        .await
        .expect("delete");
    assert_eq!(remove.status(), 204);
    assert_eq!(
        app.photo(&caios).await["owner"],
        json!({"id": ana_id, "name": "Ana Maria"})
    );
    assert_refused(
        caio.client
            .get(caio.url("/api/photos"))
            .send()
            .await
            .expect("list"),
        401,
        "unauthorized",
    )
    .await;
    assert!(anonymous
        .log_in("caio@example.org", "caio password")
        .await
        .is_err());
}

async fn profiles_hold_contacts_language_and_password(set: BackendSet) {
    let app = spawn_app(set).await;
    let anonymous = app.anonymous();
    let cookie = anonymous
        .log_in(ADMIN_EMAIL, ADMIN_PASSWORD)
        .await
        .expect("login");
    let patch = |body: Value, cookie: &str| {
        let request = anonymous
            .client
            .patch(anonymous.url("/api/me"))
            .header(COOKIE, cookie)
            .header(ORIGIN, &app.address)
            .json(&body);
        async move { request.send().await.expect("patch") }
    };
    let changed = patch(json!({"name": "Dona", "notify_email": "dona@example.org", "notify_telegram": "-1001", "lang": "pt-BR"}), &cookie).await;
    assert_eq!(changed.status(), 200);
    let me: Value = changed.json().await.expect("json");
    assert_eq!(
        (
            me["name"].as_str(),
            me["notify_email"].as_str(),
            me["notify_telegram"].as_str(),
            me["lang"].as_str()
        ),
        (
            Some("Dona"),
            Some("dona@example.org"),
            Some("-1001"),
            Some("pt-BR")
        )
    );
    for (bad, field) in [
        (json!({"notify_email": "not mail"}), "notify_email"),
        (json!({"notify_telegram": "chat"}), "notify_telegram"),
        (json!({"lang": "fr"}), "lang"),
        (json!({"name": ""}), "name"),
    ] {
        let body = assert_refused(patch(bad, &cookie).await, 400, "bad_field").await;
        assert!(
            body["error"].as_str().expect("text").starts_with(field),
            "{body}"
        );
    }
    let unknown = patch(json!({"role": "admin"}), &cookie).await;
    assert_refused(unknown, 400, "bad_json").await;
    let cleared: Value = patch(json!({"notify_telegram": ""}), &cookie)
        .await
        .json()
        .await
        .expect("json");
    assert_eq!(cleared["notify_telegram"], Value::Null);
    assert_eq!(cleared["notify_email"], "dona@example.org");

    // A new password needs the current one, and ends every other session.
    let other = anonymous
        .log_in(ADMIN_EMAIL, ADMIN_PASSWORD)
        .await
        .expect("second login");
    let wrong = patch(
        json!({"password": "new password 1", "current_password": "nope"}),
        &cookie,
    )
    .await;
    assert_refused(wrong, 401, "bad_credentials").await;
    let changed = patch(
        json!({"password": "new password 1", "current_password": ADMIN_PASSWORD}),
        &cookie,
    )
    .await;
    assert_eq!(changed.status(), 200);
    let renewed = session_cookie(&changed).expect("a new cookie for this session");
    let list = |cookie: String| {
        let request = anonymous
            .client
            .get(anonymous.url("/api/photos"))
            .header(COOKIE, cookie);
        async move { request.send().await.expect("list").status() }
    };
    assert_eq!(list(other).await, StatusCode::UNAUTHORIZED);
    assert_eq!(list(cookie).await, StatusCode::UNAUTHORIZED);
    assert_eq!(list(renewed).await, StatusCode::OK);
    assert!(anonymous
        .log_in(ADMIN_EMAIL, "new password 1")
        .await
        .is_ok());

    // The upload's own notify fields are gone: contacts come from the profile.
    let old_style = app
        .upload_with(
            &[("notify_email", "x@example.org")],
            &[("a.jpg", jpeg_fixture(8, 8))],
        )
        .await;
    assert_refused(old_style, 400, "unknown_field").await;
    assert_eq!(
        app.list("").await["photos"].as_array().map(Vec::len),
        Some(0)
    );
}

async fn share_links_show_one_photo_until_revoked(set: BackendSet) {
    let app = spawn_app(set).await;
    let (ana, _) = app.add_person("ana@example.org", "member").await;
    let id = app
        .upload_ok("shared.jpg", jpeg_fixture(900, 600), None)
        .await;
    app.wait_done(&id).await;
    let refused = post_json(
        &ana,
        &format!("/api/photos/{id}/links"),
        json!({"expires_in_s": 3600}),
    )
    .await;
    assert_refused(refused, 403, "forbidden").await;
    let short = post_json(
        &app,
        &format!("/api/photos/{id}/links"),
        json!({"expires_in_s": 0}),
    )
    .await;
    assert_refused(short, 400, "bad_field").await;
    let created = post_json(
        &app,
        &format!("/api/photos/{id}/links"),
        json!({"expires_in_s": 3600}),
    )
    .await;
    assert_eq!(created.status(), 201);
    let link: Value = created.json().await.expect("json");
    let url = link["url"].as_str().expect("url").to_owned();
    assert!(url.starts_with("/s/") && url.len() >= 3 + 32, "{url}");

    let anonymous = app.anonymous();
    let get = |path: String| {
        let request = anonymous.client.get(anonymous.url(&path));
        async move { request.send().await.expect("get") }
    };
    let page = get(url.clone()).await;
    assert_eq!(page.status(), 200);
    assert!(page.text().await.expect("html").contains("share.js"));
    let shown: Value = get(format!("{url}/photo"))
        .await
        .json()
        .await
        .expect("json");
    assert_eq!(shown["filename"], "shared.jpg");
    let preview = get(shown["preview_url"].as_str().expect("preview").to_owned()).await;
    assert_eq!(preview.status(), 200);
    assert_eq!(preview.headers()["cache-control"], "private, no-cache");
    let preview = preview.bytes().await.expect("bytes");
    assert_eq!(crate::helpers::decode(&preview).width(), 900);
    let original = get(format!("{url}/original")).await;
    assert!(original.headers()["content-disposition"]
        .to_str()
        .expect("text")
        .contains("attachment"));
    assert_eq!(
        original.bytes().await.expect("bytes").len(),
        jpeg_fixture(900, 600).len()
    );
    // The link opens that photo only: not the gallery.
    assert_refused(get("/api/photos".into()).await, 401, "unauthorized").await;

    let links: Value = app
        .client
        .get(app.url(&format!("/api/photos/{id}/links")))
        .send()
        .await
        .expect("links")
        .json()
        .await
        .expect("json");
    assert_eq!(links["links"].as_array().map(Vec::len), Some(1));
    let revoke = app
        .client
        .delete(app.url(&format!(
            "/api/photos/{id}/links/{}",
            link["id"].as_str().expect("id")
        )))
        .send()
        .await
        .expect("revoke");
    assert_eq!(revoke.status(), 204);
    assert_refused(get(format!("{url}/photo")).await, 404, "link_not_found").await;
    assert_refused(get(format!("{url}/original")).await, 404, "link_not_found").await;
    assert_refused(
        get("/s/not-a-token/photo".into()).await,
        404,
        "link_not_found",
    )
    .await;

    // An expired link, and a link whose photo is deleted.
    let brief: Value = post_json(
        &app,
        &format!("/api/photos/{id}/links"),
        json!({"expires_in_s": 1}),
    )
    .await
    .json()
    .await
    .expect("json");
    let lasting: Value = post_json(
        &app,
        &format!("/api/photos/{id}/links"),
        json!({"expires_in_s": 3600}),
    )
    .await
    .json()
    .await
    .expect("json");
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert_refused(
        get(format!("{}/photo", brief["url"].as_str().expect("url"))).await,
        404,
        "link_not_found",
    )
    .await;
    let lasting = lasting["url"].as_str().expect("url").to_owned();
    assert_eq!(get(format!("{lasting}/photo")).await.status(), 200);
    assert_eq!(
        app.client
            .delete(app.url(&format!("/api/photos/{id}")))
            .send()
            .await
            .expect("delete")
            .status(),
        204
    );
    assert_refused(
        get(format!("{lasting}/preview")).await,
        404,
        "link_not_found",
    )
    .await;
}

on_both_backends!(
    anonymous_callers_get_nothing_but_the_login_page,
    the_first_account_is_set_up_once,
    members_delete_only_their_own_photos,
    cookies_work_only_from_the_gallerys_own_pages,
    credentials_that_are_wrong_stale_or_revoked_are_refused,
    password_guessing_is_braked,
    admins_manage_people_and_invites_work_once,
    profiles_hold_contacts_language_and_password,
    share_links_show_one_photo_until_revoked,
);

/// Runs `gallery ARGS` with only `env` of the `GALLERY_*` variables, `stdin` piped in;
/// answers whether it succeeded, and its stdout and stderr.
fn gallery_cli(args: &[&str], env: &[(&str, String)], stdin: &str) -> (bool, String, String) {
    use std::io::Write;
    use std::process::{Command, Stdio};
    let mut command = Command::new(env!("CARGO_BIN_EXE_gallery"));
    for (name, _) in std::env::vars() {
        if name.starts_with("GALLERY_") {
            command.env_remove(name);
        }
    }
    let mut child = command
        .args(args)
        .envs(env.iter().map(|(k, v)| (k, v)))
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start gallery");
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(stdin.as_bytes())
        .expect("write stdin");
    let output = child.wait_with_output().expect("gallery ran");
    (
        output.status.success(),
        String::from_utf8_lossy(&output.stdout).into_owned(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

/// `gallery user …` on an embedded data dir: add (password on stdin), list, reset-password,
/// remove; and a plain refusal, not a wait, while `gallery serve` holds the data dir.
#[tokio::test]
async fn operators_manage_people_from_the_command_line() {
    let data_dir = crate::helpers::temp_data_dir();
    let dir = format!("--data-dir={}", data_dir.display());
    let user = |args: &[&str], stdin: &str| {
        let mut all = vec!["user", dir.as_str()];
        all.extend_from_slice(args);
        gallery_cli(&all, &[], stdin)
    };
    let (ok, _, err) = user(
        &["add", "bia@example.org", "--name", "Bia"],
        "bia password 1\n",
    );
    assert!(!ok && err.contains("--admin"), "{err}");
    let (ok, out, err) = user(
        &["add", "Ana@Example.org", "--name", "Ana", "--admin"],
        "ana password 1\n",
    );
    assert!(ok, "{err}");
    assert_eq!(out.trim(), "added ana@example.org (admin)");
    let (ok, _, err) = user(&["add", "bia@example.org", "--name", "Bia"], "short\n");
    assert!(!ok && err.contains("at least 10"), "{err}");
    let (ok, _, err) = user(
        &["add", "bia@example.org", "--name", "Bia"],
        "bia password 1\n",
    );
    assert!(ok, "{err}");
    let (ok, out, _) = user(&["list"], "");
    assert!(ok);
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines.len(), 2, "{out}");
    assert!(lines[0].starts_with("ana@example.org\tAna\tadmin"), "{out}");
    assert!(
        lines[1].starts_with("bia@example.org\tBia\tmember"),
        "{out}"
    );

    // A running gallery on the same data dir: the CLI's accounts work there, and the CLI
    // refuses to touch the data dir meanwhile.
    let port = crate::serve::free_port();
    let listen = format!("--listen=127.0.0.1:{port}");
    let running = crate::helpers::Logged::start("info", &["serve", &listen, &dir], &[]);
    assert!(
        running.wait_for("gallery listening").await,
        "{}",
        running.text()
    );
    let api = Api::new(&format!("http://127.0.0.1:{port}"));
    assert!(api
        .log_in("bia@example.org", "bia password 1")
        .await
        .is_ok());
    let (ok, _, err) = user(&["list"], "");
    assert!(!ok, "the CLI ran beside serve");
    assert!(err.contains("in use by another gallery process"), "{err}");
    drop(running);

    let (ok, _, err) = user(&["reset-password", "bia@example.org"], "new bia password\n");
    assert!(ok, "{err}");
    let (ok, _, err) = user(&["remove", "ana@example.org"], "");
    assert!(!ok && err.contains("only admin"), "{err}");
    let (ok, _, err) = user(&["remove", "bia@example.org"], "");
    assert!(ok, "{err}");
    let (_, out, _) = user(&["list"], "");
    assert_eq!(out.lines().count(), 1, "{out}");
    let (ok, _, err) = user(&["remove", "nobody@example.org"], "");
    assert!(!ok && err.contains("nobody has the e-mail"), "{err}");
    let _ = std::fs::remove_dir_all(&data_dir);
}

/// The same CLI on Redis: the person it adds can log in to a running web role at once.
#[tokio::test]
async fn the_command_line_works_on_redis_too() {
    let app = spawn_unset(BackendSet::Services).await;
    let (ok, _, err) = gallery_cli(
        &["user", "add", "ops@example.org", "--name", "Ops", "--admin"],
        &app.env(),
        "ops password 1\n",
    );
    assert!(ok, "{err}");
    let anonymous = app.anonymous();
    assert!(anonymous
        .log_in("ops@example.org", "ops password 1")
        .await
        .is_ok());
    let setup = post_json(
        &anonymous,
        "/api/setup",
        json!({"email": "eve@example.org", "name": "Eve", "password": "eve's password"}),
    )
    .await;
    assert_refused(setup, 409, "already_set_up").await;
}

/// The session cookie: HttpOnly, SameSite=Lax, Path=/, and Secure when the request came over
/// https — here as the gateway says it with `X-Forwarded-Proto`.
#[tokio::test]
async fn session_cookies_are_http_only_lax_and_secure_over_https() {
    let app = spawn_app(BackendSet::Services).await;
    let anonymous = app.anonymous();
    let login = |proto: Option<&'static str>| {
        let mut request = anonymous
            .client
            .post(anonymous.url("/api/session"))
            .json(&json!({"email": ADMIN_EMAIL, "password": ADMIN_PASSWORD}));
        if let Some(proto) = proto {
            request = request.header("x-forwarded-proto", proto);
        }
        async move { request.send().await.expect("login") }
    };
    let set_cookie = |response: &reqwest::Response| {
        response.headers()["set-cookie"]
            .to_str()
            .expect("text")
            .to_owned()
    };
    let plain = set_cookie(&login(None).await);
    assert!(plain.starts_with("gallery_session="), "{plain}");
    for flag in ["HttpOnly", "SameSite=Lax", "Path=/"] {
        assert!(plain.contains(flag), "{flag} missing: {plain}");
    }
    assert!(!plain.contains("Secure"), "Secure over plain http: {plain}");
    let secure = set_cookie(&login(Some("https")).await);
    assert!(secure.contains("Secure"), "not Secure over https: {secure}");
}
