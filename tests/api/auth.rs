//! Signing in: passwords, sessions, lockout, resets, invitations, MFA and
//! access tokens, each tried the way an attacker would.

use axum::http::Method;
use serde_json::{Value, json};

use crate::support::TestApp;

const PW: &str = "correct horse battery staple";

#[tokio::test]
async fn login_sets_a_hardened_cookie_and_returns_a_working_access_token() {
    let app = TestApp::new().await;
    app.user("default", "ann@example.com", PW, &["sales_rep"])
        .await;
    let res = app.login("ann@example.com", PW).await;
    res.assert_status(200);
    let set_cookie = res.headers.get("set-cookie").unwrap().to_str().unwrap();
    assert!(
        set_cookie.starts_with("trellis_session=trs_"),
        "{set_cookie}"
    );
    assert!(set_cookie.contains("HttpOnly"));
    assert!(set_cookie.contains("SameSite=Lax"));
    assert_eq!(res.body["user"]["email"], "ann@example.com");
    assert_eq!(res.body["token_type"], "Bearer");
    let jwt = res.body["access_token"].as_str().unwrap().to_owned();
    assert_eq!(jwt.split('.').count(), 3);

    // Both the token and the cookie authenticate.
    app.send(Method::GET, "/api/v1/contacts", Some(&jwt), None, &[])
        .await
        .assert_status(200);
    let cookie = TestApp::session_cookie(&res);
    app.with_cookie(Method::GET, "/api/v1/auth/me", &cookie, None)
        .await
        .assert_status(200);

    // The login is audited with the client's address and agent.
    let audit = app.get("/api/v1/audit?action=login").await;
    audit.assert_status(200);
    let entry = &audit.body["data"][0];
    assert_eq!(entry["ip"], "203.0.113.7");
    assert_eq!(entry["user_agent"], "trellis-tests");
}

#[tokio::test]
async fn unknown_email_and_wrong_password_fail_alike_and_are_audited() {
    let app = TestApp::new().await;
    app.user("default", "ann@example.com", PW, &["sales_rep"])
        .await;
    let wrong = app
        .login("ann@example.com", "not the password at all")
        .await;
    wrong.assert_problem(401, "invalid_credentials");
    let unknown = app.login("nobody@example.com", PW).await;
    unknown.assert_problem(401, "invalid_credentials");
    assert_eq!(wrong.body["detail"], unknown.body["detail"]);
    assert!(wrong.headers.get("set-cookie").is_none());
    let failed = app.get("/api/v1/audit?action=login_failed").await;
    assert_eq!(failed.body["data"].as_array().unwrap().len(), 2);
}

#[tokio::test]
async fn repeated_failures_lock_the_account_even_for_the_right_password() {
    let app = TestApp::new().await;
    app.user("default", "ann@example.com", PW, &["sales_rep"])
        .await;
    for _ in 0..5 {
        app.login("ann@example.com", "wrong password here")
            .await
            .assert_problem(401, "invalid_credentials");
    }
    let locked = app.login("ann@example.com", PW).await;
    locked.assert_problem(429, "too_many_attempts");
    let retry: u64 = locked.headers["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!(retry > 0 && retry <= 900, "{retry}");
    // Another account from another address is not affected.
    app.user("default", "bob@example.com", PW, &["sales_rep"])
        .await;
    app.login_from(
        "198.51.100.1",
        json!({"email": "bob@example.com", "password": PW}),
    )
    .await
    .assert_status(200);
}

#[tokio::test]
async fn one_address_trying_many_accounts_is_locked_out() {
    let app = TestApp::with_config(|c| c.login_max_failures_per_ip = 3).await;
    app.user("default", "ann@example.com", PW, &["sales_rep"])
        .await;
    for i in 0..3 {
        app.login_from(
            "192.0.2.9",
            json!({"email": format!("u{i}@example.com"), "password": "x"}),
        )
        .await
        .assert_problem(401, "invalid_credentials");
    }
    app.login_from(
        "192.0.2.9",
        json!({"email": "ann@example.com", "password": PW}),
    )
    .await
    .assert_problem(429, "too_many_attempts");
    app.login_from(
        "192.0.2.10",
        json!({"email": "ann@example.com", "password": PW}),
    )
    .await
    .assert_status(200);
}

#[tokio::test]
async fn logout_and_revocation_end_sessions_and_their_tokens() {
    let app = TestApp::new().await;
    let ann = app
        .user("default", "ann@example.com", PW, &["sales_rep"])
        .await;
    let first = app.login("ann@example.com", PW).await;
    let second = app.login("ann@example.com", PW).await;
    let cookie = TestApp::session_cookie(&first);
    let jwt = first.body["access_token"].as_str().unwrap().to_owned();

    let sessions = app
        .with_cookie(Method::GET, "/api/v1/auth/sessions", &cookie, None)
        .await;
    sessions.assert_status(200);
    assert_eq!(sessions.body.as_array().unwrap().len(), 2);

    let out = app
        .with_cookie(Method::POST, "/api/v1/auth/logout", &cookie, None)
        .await;
    out.assert_status(204);
    assert!(
        out.headers["set-cookie"]
            .to_str()
            .unwrap()
            .contains("Max-Age=0")
    );
    app.with_cookie(Method::GET, "/api/v1/contacts", &cookie, None)
        .await
        .assert_problem(401, "session_expired");
    // The access token was bound to the session: it dies with it.
    app.send(Method::GET, "/api/v1/contacts", Some(&jwt), None, &[])
        .await
        .assert_problem(401, "session_expired");

    // An admin ends every session of a user.
    let cookie2 = TestApp::session_cookie(&second);
    let res = app.delete(&format!("/api/v1/users/{ann}/sessions")).await;
    res.assert_status(200);
    assert_eq!(res.body["revoked"], 1);
    app.with_cookie(Method::GET, "/api/v1/contacts", &cookie2, None)
        .await
        .assert_problem(401, "session_expired");
}

#[tokio::test]
async fn sessions_end_after_the_tenants_idle_timeout_and_absolute_lifetime() {
    let app = TestApp::new().await;
    app.patch("/api/v1/tenant", json!({"session_idle_seconds": 600}))
        .await
        .assert_status(200);
    app.user("default", "ann@example.com", PW, &["sales_rep"])
        .await;
    let idle = TestApp::session_cookie(&app.login("ann@example.com", PW).await);
    let old = TestApp::session_cookie(&app.login("ann@example.com", PW).await);
    app.with_cookie(Method::GET, "/api/v1/contacts", &idle, None)
        .await
        .assert_status(200);
    // Eleven minutes without activity (moved back in the database).
    let idle_hash = trellis::auth::tokens::hash(idle.split_once('=').unwrap().1);
    let back = (chrono::Utc::now() - chrono::Duration::minutes(11)).to_rfc3339();
    app.sql(&format!(
        "UPDATE sessions SET last_seen_at = '{back}' WHERE token_hash = '{idle_hash}'"
    ))
    .await;
    app.with_cookie(Method::GET, "/api/v1/contacts", &idle, None)
        .await
        .assert_problem(401, "session_expired");
    // Active, but past its absolute lifetime.
    let old_hash = trellis::auth::tokens::hash(old.split_once('=').unwrap().1);
    let past = (chrono::Utc::now() - chrono::Duration::seconds(1)).to_rfc3339();
    app.sql(&format!(
        "UPDATE sessions SET expires_at = '{past}' WHERE token_hash = '{old_hash}'"
    ))
    .await;
    app.with_cookie(Method::GET, "/api/v1/contacts", &old, None)
        .await
        .assert_problem(401, "session_expired");
}

#[tokio::test]
async fn password_reset_tokens_work_once_and_end_other_sessions() {
    let app = TestApp::new().await;
    app.user("default", "ann@example.com", PW, &["sales_rep"])
        .await;
    let before = TestApp::session_cookie(&app.login("ann@example.com", PW).await);
    // Unknown emails get the same answer and no email.
    app.public_post(
        "/api/v1/auth/password-reset",
        json!({"email": "nobody@example.com"}),
    )
    .await
    .assert_status(202);
    app.public_post(
        "/api/v1/auth/password-reset",
        json!({"email": "ann@example.com"}),
    )
    .await
    .assert_status(202);
    let token = app.outbox_token("ann@example.com").await;
    let new_pw = "a much better passphrase";
    app.public_post(
        "/api/v1/auth/password-reset/confirm",
        json!({"token": token, "password": "short"}),
    )
    .await
    .assert_problem(422, "validation_failed");
    app.public_post(
        "/api/v1/auth/password-reset/confirm",
        json!({"token": token, "password": new_pw}),
    )
    .await
    .assert_status(204);
    // Reuse is refused.
    app.public_post(
        "/api/v1/auth/password-reset/confirm",
        json!({"token": token, "password": "yet another passphrase"}),
    )
    .await
    .assert_problem(400, "invalid_token");
    app.login("ann@example.com", PW)
        .await
        .assert_problem(401, "invalid_credentials");
    app.login("ann@example.com", new_pw)
        .await
        .assert_status(200);
    app.with_cookie(Method::GET, "/api/v1/contacts", &before, None)
        .await
        .assert_problem(401, "session_expired");

    // An expired token is refused too.
    app.public_post(
        "/api/v1/auth/password-reset",
        json!({"email": "ann@example.com"}),
    )
    .await
    .assert_status(202);
    let stale = app.outbox_token("ann@example.com").await;
    let hash = trellis::auth::tokens::hash(&stale);
    let past = (chrono::Utc::now() - chrono::Duration::seconds(5)).to_rfc3339();
    app.sql(&format!(
        "UPDATE one_time_tokens SET expires_at = '{past}' WHERE token_hash = '{hash}'"
    ))
    .await;
    app.public_post(
        "/api/v1/auth/password-reset/confirm",
        json!({"token": stale, "password": "yet another passphrase"}),
    )
    .await
    .assert_problem(400, "invalid_token");
}

#[tokio::test]
async fn invited_users_choose_a_password_and_can_sign_in() {
    let app = TestApp::new().await;
    let res = app
        .post(
            "/api/v1/users",
            json!({"email": "New@Example.com", "name": "New Person", "roles": ["sales_rep"]}),
        )
        .await;
    res.assert_status(201);
    assert_eq!(res.body["status"], "invited");
    app.post(
        "/api/v1/users",
        json!({"email": "x@example.com", "name": "X", "roles": ["no_such_role"]}),
    )
    .await
    .assert_problem(422, "validation_failed");
    // Invited users cannot sign in before accepting.
    app.login("new@example.com", PW)
        .await
        .assert_problem(401, "invalid_credentials");
    app.accept_invitation("new@example.com", PW).await;
    let me = app.login("new@example.com", PW).await;
    me.assert_status(200);
    assert_eq!(me.body["user"]["status"], "active");
}

#[tokio::test]
async fn mfa_enrolment_then_login_needs_a_code_and_recovery_codes_work_once() {
    let app = TestApp::new().await;
    app.user("default", "ann@example.com", PW, &["sales_rep"])
        .await;
    let cookie = TestApp::session_cookie(&app.login("ann@example.com", PW).await);
    let enrol = app
        .with_cookie(Method::POST, "/api/v1/auth/mfa/enroll", &cookie, None)
        .await;
    enrol.assert_status(200);
    let uri = enrol.body["provisioning_uri"].as_str().unwrap();
    assert!(uri.starts_with("otpauth://totp/"), "{uri}");
    let secret_b32 = enrol.body["secret"].as_str().unwrap();
    assert!(uri.contains(secret_b32));
    let secret = base32_decode(secret_b32);
    let now = chrono::Utc::now().timestamp() as u64;
    app.with_cookie(
        Method::POST,
        "/api/v1/auth/mfa/activate",
        &cookie,
        Some(json!({"code": "000000"})),
    )
    .await
    .assert_problem(422, "validation_failed");
    let code = trellis::auth::totp::code_at(&secret, now);
    let on = app
        .with_cookie(
            Method::POST,
            "/api/v1/auth/mfa/activate",
            &cookie,
            Some(json!({"code": code})),
        )
        .await;
    on.assert_status(200);
    let recovery: Vec<String> = serde_json::from_value(on.body["recovery_codes"].clone()).unwrap();
    assert_eq!(recovery.len(), 10);

    app.login("ann@example.com", PW)
        .await
        .assert_problem(401, "mfa_required");
    app.login_from(
        "203.0.113.7",
        json!({"email": "ann@example.com", "password": PW, "code": "123456"}),
    )
    .await
    .assert_problem(401, "mfa_required");
    // The activation used this step's code: a code is good once (RFC 6238
    // 5.2), so the next step's code (accepted for clock skew) signs in...
    let replay = trellis::auth::totp::code_at(&secret, now);
    app.login_from(
        "203.0.113.7",
        json!({"email": "ann@example.com", "password": PW, "code": replay}),
    )
    .await
    .assert_problem(401, "mfa_required");
    let code = trellis::auth::totp::code_at(&secret, now + 30);
    let with_code = json!({"email": "ann@example.com", "password": PW, "code": code});
    app.login_from("203.0.113.7", with_code.clone())
        .await
        .assert_status(200);
    // ...and only once.
    app.login_from("203.0.113.7", with_code)
        .await
        .assert_problem(401, "mfa_required");
    let rc = json!({"email": "ann@example.com", "password": PW, "recovery_code": recovery[0].to_uppercase()});
    app.login_from("203.0.113.7", rc.clone())
        .await
        .assert_status(200);
    app.login_from("203.0.113.7", rc)
        .await
        .assert_problem(401, "mfa_required");
    // The right password without a code counts as a failure, so that
    // answer is no unthrottled oracle for guessed passwords.
    let mut answers = Vec::new();
    for _ in 0..6 {
        answers.push(app.login("ann@example.com", PW).await.status.as_u16());
    }
    assert_eq!(answers[0], 401, "{answers:?}");
    assert_eq!(answers.last(), Some(&429), "{answers:?}");
}

#[tokio::test]
async fn tenant_wide_mfa_confines_unenrolled_sessions_to_enrolment() {
    let app = TestApp::new().await;
    app.patch("/api/v1/tenant", json!({"mfa_required": true}))
        .await
        .assert_status(200);
    app.user("default", "ann@example.com", PW, &["sales_rep"])
        .await;
    let res = app.login("ann@example.com", PW).await;
    res.assert_status(200);
    assert_eq!(res.body["mfa_enrolment_required"], true);
    assert!(res.body["access_token"].is_null());
    let cookie = TestApp::session_cookie(&res);
    app.with_cookie(Method::GET, "/api/v1/contacts", &cookie, None)
        .await
        .assert_problem(401, "mfa_required");
    let enrol = app
        .with_cookie(Method::POST, "/api/v1/auth/mfa/enroll", &cookie, None)
        .await;
    enrol.assert_status(200);
    let secret = base32_decode(enrol.body["secret"].as_str().unwrap());
    let code = trellis::auth::totp::code_at(&secret, chrono::Utc::now().timestamp() as u64);
    let on = app
        .with_cookie(
            Method::POST,
            "/api/v1/auth/mfa/activate",
            &cookie,
            Some(json!({"code": code})),
        )
        .await;
    on.assert_status(200);
    assert!(on.body["access_token"].is_string());
    app.with_cookie(Method::GET, "/api/v1/contacts", &cookie, None)
        .await
        .assert_status(200);
}

#[tokio::test]
async fn forged_expired_unsigned_and_confused_access_tokens_are_rejected() {
    use base64::Engine;
    use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
    let app = TestApp::new().await;
    app.user("default", "ann@example.com", PW, &["admin"]).await;
    let res = app.login("ann@example.com", PW).await;
    let good = res.body["access_token"].as_str().unwrap().to_owned();
    app.send(Method::GET, "/api/v1/contacts", Some(&good), None, &[])
        .await
        .assert_status(200);
    let parts: Vec<&str> = good.split('.').collect();
    let header: serde_json::Value = serde_json::from_slice(&B64.decode(parts[0]).unwrap()).unwrap();
    let claims: serde_json::Value = serde_json::from_slice(&B64.decode(parts[1]).unwrap()).unwrap();
    let kid = header["kid"].as_str().unwrap().to_owned();
    let enc = |v: &serde_json::Value| B64.encode(serde_json::to_vec(v).unwrap());

    let mut attacks: Vec<(&str, String)> = Vec::new();
    // A payload changed after signing (another tenant's id).
    let mut forged = claims.clone();
    forged["tid"] = json!(uuid::Uuid::now_v7());
    attacks.push((
        "tampered",
        format!("{}.{}.{}", parts[0], enc(&forged), parts[2]),
    ));
    // alg none, no signature.
    attacks.push((
        "alg none",
        format!(
            "{}.{}.",
            enc(&json!({"alg": "none", "typ": "JWT", "kid": kid})),
            parts[1]
        ),
    ));
    // HS256 keyed with the published public key (algorithm confusion).
    let jwks = app
        .send(Method::GET, "/.well-known/jwks.json", None, None, &[])
        .await;
    jwks.assert_status(200);
    let x = jwks.body["keys"][0]["x"].as_str().unwrap();
    let hs_header = enc(&json!({"alg": "HS256", "typ": "JWT", "kid": kid}));
    let signing_input = format!("{hs_header}.{}", parts[1]);
    let sig = {
        use hmac::Mac;
        let mut mac = hmac::Hmac::<sha2::Sha256>::new_from_slice(&B64.decode(x).unwrap()).unwrap();
        mac.update(signing_input.as_bytes());
        B64.encode(mac.finalize().into_bytes())
    };
    attacks.push(("hs/eddsa confusion", format!("{signing_input}.{sig}")));
    // Signed by another key under the real kid.
    let other = trellis::auth::jwt::KeyPair::generate().unwrap();
    let other = trellis::auth::jwt::KeyPair::from_parts(
        kid.clone(),
        other.private_pkcs8_der.clone(),
        other.public_key,
    );
    let c: trellis::auth::jwt::Claims = serde_json::from_value(claims.clone()).unwrap();
    attacks.push(("wrong key", trellis::auth::jwt::sign(&other, &c).unwrap()));
    attacks.push(("garbage", "not.a.token".to_owned()));

    for (name, token) in attacks {
        let res = app
            .send(Method::GET, "/api/v1/contacts", Some(&token), None, &[])
            .await;
        assert_eq!(
            res.status.as_u16(),
            401,
            "{name} was accepted: {}",
            res.body
        );
    }
}

#[tokio::test]
async fn access_tokens_past_their_expiry_are_rejected() {
    // A lifetime below the verifier's leeway of 30 s would still pass;
    // -60 s is clearly expired.
    let app = TestApp::with_config(|c| c.access_token_seconds = -60).await;
    app.user("default", "ann@example.com", PW, &["admin"]).await;
    let res = app.login("ann@example.com", PW).await;
    res.assert_status(200);
    let token = res.body["access_token"].as_str().unwrap().to_owned();
    app.send(Method::GET, "/api/v1/contacts", Some(&token), None, &[])
        .await
        .assert_problem(401, "unauthenticated");
}

#[tokio::test]
async fn api_keys_are_shown_once_scoped_and_revocable() {
    let app = TestApp::new().await;
    let res = app
        .post(
            "/api/v1/api-keys",
            json!({"name": "reader", "scopes": ["contact:read"]}),
        )
        .await;
    res.assert_status(201);
    let key = res.body["key"].as_str().unwrap().to_owned();
    let id = res.body["id"].as_str().unwrap().to_owned();
    let listed = app.get("/api/v1/api-keys").await;
    assert!(
        listed
            .body
            .as_array()
            .unwrap()
            .iter()
            .all(|k| k.get("key").is_none())
    );
    app.send(Method::GET, "/api/v1/contacts", Some(&key), None, &[])
        .await
        .assert_status(200);
    app.send(
        Method::POST,
        "/api/v1/contacts",
        Some(&key),
        Some(json!({"first_name": "X"})),
        &[],
    )
    .await
    .assert_problem(403, "forbidden");
    app.send(Method::GET, "/api/v1/deals", Some(&key), None, &[])
        .await
        .assert_problem(403, "forbidden");
    app.post(
        "/api/v1/api-keys",
        json!({"name": "bad", "scopes": ["contacts:read"]}),
    )
    .await
    .assert_problem(422, "validation_failed");
    // No escalation: a sales rep cannot mint an admin key.
    let rep = app.role_token("sales_rep").await;
    app.send(
        Method::POST,
        "/api/v1/api-keys",
        Some(&rep),
        Some(json!({"name": "x", "roles": ["admin"]})),
        &[],
    )
    .await
    .assert_problem(422, "validation_failed");
    app.delete(&format!("/api/v1/api-keys/{id}"))
        .await
        .assert_status(204);
    app.send(Method::GET, "/api/v1/contacts", Some(&key), None, &[])
        .await
        .assert_problem(401, "unauthenticated");
}

#[tokio::test]
async fn a_narrow_key_cannot_mint_a_wider_or_longer_lived_key() {
    let app = TestApp::new().await;
    let soon = (chrono::Utc::now() + chrono::Duration::hours(1)).to_rfc3339();
    let res = app
        .post(
            "/api/v1/api-keys",
            json!({"name": "narrow", "scopes": ["api_key:*", "contact:read"], "expires_at": soon}),
        )
        .await;
    res.assert_status(201);
    let narrow = res.body["key"].as_str().unwrap().to_owned();
    let mint = |body: Value| {
        app.send(
            Method::POST,
            "/api/v1/api-keys",
            Some(&narrow),
            Some(body),
            &[],
        )
    };
    // Wider scopes, or none at all, are refused...
    let res = mint(json!({"name": "wide", "scopes": ["contact:*"], "expires_at": soon})).await;
    res.assert_problem(422, "validation_failed");
    assert_eq!(res.error_fields(), ["scopes[0]"]);
    // ...as is outliving the creating key.
    let res = mint(json!({"name": "forever", "scopes": ["contact:read"]})).await;
    res.assert_problem(422, "validation_failed");
    assert_eq!(res.error_fields(), ["expires_at"]);
    let later = (chrono::Utc::now() + chrono::Duration::days(30)).to_rfc3339();
    mint(json!({"name": "later", "scopes": ["contact:read"], "expires_at": later}))
        .await
        .assert_problem(422, "validation_failed");
    // Omitted scopes inherit the creator's; the child can do no more.
    let res = mint(json!({"name": "child", "expires_at": soon})).await;
    res.assert_status(201);
    assert_eq!(res.body["scopes"], json!(["api_key:*", "contact:read"]));
    let child = res.body["key"].as_str().unwrap().to_owned();
    app.send(
        Method::POST,
        "/api/v1/contacts",
        Some(&child),
        Some(json!({"first_name": "X"})),
        &[],
    )
    .await
    .assert_problem(403, "forbidden");
}

#[tokio::test]
async fn a_key_loses_the_rights_its_owner_loses() {
    let app = TestApp::new().await;
    let slug = trellis::crm::tenants::DEFAULT_SLUG;
    let owner = app
        .user(
            slug,
            "owner@keys.test",
            "a long test passphrase",
            &["manager"],
        )
        .await;
    let key = app.key_for(slug, owner, &["manager"]).await;
    app.send(Method::GET, "/api/v1/contacts", Some(&key), None, &[])
        .await
        .assert_status(200);
    // Demoted to read-only: the key no longer acts as a manager.
    app.patch(
        &format!("/api/v1/users/{owner}"),
        json!({"roles": ["read_only"]}),
    )
    .await
    .assert_status(200);
    app.send(Method::GET, "/api/v1/contacts", Some(&key), None, &[])
        .await
        .assert_problem(403, "forbidden");
    app.send(
        Method::POST,
        "/api/v1/contacts",
        Some(&key),
        Some(json!({"first_name": "X"})),
        &[],
    )
    .await
    .assert_problem(403, "forbidden");
    // Given the role back, the key works again.
    app.patch(
        &format!("/api/v1/users/{owner}"),
        json!({"roles": ["manager", "read_only"]}),
    )
    .await
    .assert_status(200);
    app.send(Method::GET, "/api/v1/contacts", Some(&key), None, &[])
        .await
        .assert_status(200);
}

fn base32_decode(s: &str) -> Vec<u8> {
    const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";
    let mut bits = 0u64;
    let mut n = 0;
    let mut out = Vec::new();
    for c in s.trim_end_matches('=').bytes() {
        let v = ALPHABET
            .iter()
            .position(|a| *a == c.to_ascii_uppercase())
            .unwrap() as u64;
        bits = (bits << 5) | v;
        n += 5;
        if n >= 8 {
            n -= 8;
            out.push((bits >> n) as u8);
        }
    }
    out
}

#[tokio::test]
async fn cookie_sessions_refuse_cross_site_writes() {
    let app = TestApp::new().await;
    app.user("default", "ann@example.com", PW, &["admin"]).await;
    let cookie = TestApp::session_cookie(&app.login("ann@example.com", PW).await);
    let body = Some(json!({"first_name": "Forged"}));
    let evil = app
        .send(
            Method::POST,
            "/api/v1/contacts",
            None,
            body.clone(),
            &[
                ("cookie", &cookie),
                ("host", "crm.example.com"),
                ("origin", "https://evil.example"),
            ],
        )
        .await;
    evil.assert_problem(403, "forbidden");
    app.send(
        Method::POST,
        "/api/v1/contacts",
        None,
        body,
        &[
            ("cookie", &cookie),
            ("host", "crm.example.com"),
            ("origin", "https://crm.example.com"),
        ],
    )
    .await
    .assert_status(201);
}

#[tokio::test]
async fn rotated_signing_keys_keep_earlier_tokens_valid() {
    use base64::Engine;
    let app = TestApp::new().await;
    app.user("default", "ann@example.com", PW, &["admin"]).await;
    let first = app.login("ann@example.com", PW).await.body["access_token"]
        .as_str()
        .unwrap()
        .to_owned();
    let kid_of = |t: &str| {
        let h = base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(t.split('.').next().unwrap())
            .unwrap();
        serde_json::from_slice::<serde_json::Value>(&h).unwrap()["kid"].clone()
    };
    let new_kid = trellis::auth::access::rotate(&app.state.db, &app.state.keyring)
        .await
        .unwrap();
    app.state
        .access
        .reload(&app.state.db, &app.state.keyring)
        .await
        .unwrap();
    let second = app.login("ann@example.com", PW).await.body["access_token"]
        .as_str()
        .unwrap()
        .to_owned();
    assert_eq!(kid_of(&second), json!(new_kid));
    assert_ne!(kid_of(&first), kid_of(&second));
    for t in [&first, &second] {
        app.send(Method::GET, "/api/v1/contacts", Some(t), None, &[])
            .await
            .assert_status(200);
    }
    let jwks = app
        .send(Method::GET, "/.well-known/jwks.json", None, None, &[])
        .await;
    assert_eq!(jwks.body["keys"].as_array().unwrap().len(), 2);
}

#[tokio::test]
async fn a_role_can_require_mfa_for_its_holders_only() {
    let app = TestApp::new().await;
    app.put(
        "/api/v1/roles",
        json!({"key": "finance", "name": "Finance", "mfa_required": true,
               "permissions": {"deal": {"actions": ["read"]}}}),
    )
    .await
    .assert_status(200);
    app.user("default", "fin@example.com", PW, &["finance"])
        .await;
    app.user("default", "rep@example.com", PW, &["sales_rep"])
        .await;
    let fin = app.login("fin@example.com", PW).await;
    fin.assert_status(200);
    assert_eq!(fin.body["mfa_enrolment_required"], true);
    let cookie = TestApp::session_cookie(&fin);
    app.with_cookie(Method::GET, "/api/v1/deals", &cookie, None)
        .await
        .assert_problem(401, "mfa_required");
    let rep = app.login("rep@example.com", PW).await;
    assert_eq!(rep.body["mfa_enrolment_required"], false);
    let cookie = TestApp::session_cookie(&rep);
    app.with_cookie(Method::GET, "/api/v1/deals", &cookie, None)
        .await
        .assert_status(200);
}

#[tokio::test]
async fn a_chosen_development_token_works_like_an_api_key() {
    let app = TestApp::new().await;
    let (tenant, admin) = trellis::crm::tenants::ensure_default(&app.state.db)
        .await
        .unwrap();
    trellis::crm::tenants::ensure_token(
        &app.state.db,
        &tenant,
        &admin,
        "development",
        "dev-secret",
        &["admin"],
    )
    .await
    .unwrap();
    app.send(
        Method::GET,
        "/api/v1/contacts",
        Some("dev-secret"),
        None,
        &[],
    )
    .await
    .assert_status(200);
    app.send(
        Method::GET,
        "/api/v1/contacts",
        Some("not-the-secret"),
        None,
        &[],
    )
    .await
    .assert_problem(401, "unauthenticated");
}
