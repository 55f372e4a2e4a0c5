//! Clocks (issue 18, item 5): replicas whose clocks disagree by a few seconds, and a clock that
//! jumps back, log nobody out, and keep the grace and reuse rules (README, "Which clock decides").
//!
//! Two in-process replicas on one database, each with its own test clock; `ahead` runs
//! `SKEW` seconds ahead of `behind` (less than the default `JWT_LEEWAY` of 5 s).

use reqwest::StatusCode;
use tenure::clock::TestClock;

use crate::both_backends;
use crate::helpers::*;

const SKEW: i64 = 3;
const GRACE: i64 = 10;

async fn skewed_pair(backend: Backend) -> (TestApp, TestApp) {
    let db = TestDb::new(backend).await;
    let config = TestConfig::new().var("REFRESH_REUSE_GRACE", &format!("{GRACE}s"));
    let behind = TestApp::start(db.clone(), config.clone(), TestClock::new()).await;
    let clock = TestClock::new();
    clock.advance(SKEW);
    let ahead = TestApp::start(db, config, clock).await;
    (behind, ahead)
}

/// Both clocks move on together by `seconds`.
fn advance_both(a: &TestApp, b: &TestApp, seconds: i64) {
    a.clock.advance(seconds);
    b.clock.advance(seconds);
}

async fn refresh_ok(app: &TestApp, token: &str) -> String {
    app.refresh_token(token).await
}

async fn get_status(app: &TestApp, token: &str) -> StatusCode {
    app.get_session(token).await.status()
}

both_backends! {
    async fn replicas_seconds_apart_log_nobody_out_and_keep_grace_and_reuse(backend) {
        let (behind, ahead) = skewed_pair(backend).await;
        behind.create_user("skew@example.com", false).await;

        // A token issued ahead is accepted behind (its iat is in the future there), and back.
        let mut token = ahead.login_token("skew@example.com", true).await;
        for round in 0..6 {
            let (issuer, other) = if round % 2 == 0 { (&behind, &ahead) } else { (&ahead, &behind) };
            assert_eq!(get_status(other, &token).await, StatusCode::OK, "round {round}");
            // Racing refreshes of one token on both replicas get the identical successor.
            let (x, y) = tokio::join!(refresh_ok(issuer, &token), refresh_ok(other, &token));
            assert_eq!(x, y, "round {round}: racing replicas agree");
            token = x;
            assert_eq!(get_status(issuer, &token).await, StatusCode::OK);
            assert_eq!(get_status(other, &token).await, StatusCode::OK);
            advance_both(&behind, &ahead, 1);
        }

        // The grace is judged on the refreshing replica's clock against the rotating replica's
        // `rotated_at`: rotated ahead, a lost answer retried behind just inside the grace.
        let old = token.clone();
        let new = refresh_ok(&ahead, &old).await;
        advance_both(&behind, &ahead, GRACE);
        assert_eq!(refresh_ok(&behind, &old).await, new, "retry behind, inside the grace");
        // Rotated behind, retried ahead: the grace is shorter by the skew, still there.
        let newer = refresh_ok(&behind, &new).await;
        advance_both(&behind, &ahead, GRACE - SKEW - 1);
        assert_eq!(refresh_ok(&ahead, &new).await, newer, "retry ahead, inside the grace");

        // Past the grace on both clocks, the replaced token is reuse: the session ends.
        advance_both(&behind, &ahead, SKEW + 2);
        let (_, reason) = assert_error(behind.refresh(&new).await, StatusCode::UNAUTHORIZED).await;
        assert_eq!(reason, "token_reuse");
        assert_eq!(get_status(&ahead, &newer).await, StatusCode::FORBIDDEN);
        assert_eq!(get_status(&behind, &newer).await, StatusCode::FORBIDDEN);
    }

    async fn a_clock_that_jumps_back_neither_revokes_nor_resurrects(backend) {
        let db = TestDb::new(backend).await;
        let config = TestConfig::new().var("REFRESH_REUSE_GRACE", &format!("{GRACE}s"));
        let app = TestApp::start(db, config, TestClock::new()).await;
        app.create_user("jump@example.com", false).await;
        let first = app.login_token("jump@example.com", true).await;
        let alive = refresh_ok(&app, &first).await;
        let alive = refresh_ok(&app, &alive).await;
        let gone = app.login_token("jump@example.com", true).await;
        assert_eq!(app.logout(&gone).await.status(), StatusCode::OK);
        app.clock.advance(GRACE + 1);

        // The clock steps back a minute (an NTP correction, a restored VM).
        app.clock.advance(-60);
        // The logged-out session stays dead for checks and refreshes.
        assert_ne!(get_status(&app, &gone).await, StatusCode::OK);
        assert_error(app.refresh(&gone).await, StatusCode::UNAUTHORIZED).await;
        // The live session refreshes (its token's iat is now in the future) and is not revoked.
        let alive = refresh_ok(&app, &alive).await;
        assert_eq!(get_status(&app, &alive).await, StatusCode::OK);

        // The clock comes back: the session still lives, the logged-out one stays dead, and a
        // token two generations behind is still reuse.
        app.clock.advance(60);
        assert_eq!(get_status(&app, &alive).await, StatusCode::OK);
        assert_ne!(get_status(&app, &gone).await, StatusCode::OK);
        let (_, reason) = assert_error(app.refresh(&first).await, StatusCode::UNAUTHORIZED).await;
        assert_eq!(reason, "token_reuse");
        assert_eq!(get_status(&app, &alive).await, StatusCode::FORBIDDEN);
    }
}
