//! Smaller holes, each closed over HTTP: getBlocks gives only the asked repo's blocks, and a
//! handle change follows the sign-up rules and is refused to a taken-down account.

use serde_json::json;

use crate::common::pds::Pds;

#[tokio::test]
async fn get_blocks_gives_only_the_blocks_of_the_repo_asked_for() {
    let pds = Pds::start(&[]).await;
    let alice = pds.create_account("alice").await;
    let bob = pds.create_account("bob").await;
    let mine = pds.create_post(&alice, "alice's own").await;
    let theirs = pds.create_post(&bob, "bob's, not alice's").await;
    let get = |did: &str, cid: &str| {
        let query = [("did", did.to_owned()), ("cids", cid.to_owned())];
        let request = pds
            .client
            .get(pds.xrpc("com.atproto.sync.getBlocks"))
            .query(&query);
        async move {
            let response = request.send().await.unwrap();
            let status = response.status().as_u16();
            (status, response.bytes().await.unwrap())
        }
    };
    let (status, car) = get(&alice.did, mine["cid"].as_str().unwrap()).await;
    assert_eq!(status, 200);
    let car = arroba::car::read_car(&car).unwrap();
    assert_eq!(car.blocks.len(), 1);
    let (status, body) = get(&alice.did, theirs["cid"].as_str().unwrap()).await;
    assert_eq!(status, 400);
    let body: serde_json::Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(body["error"], "BlockNotFound", "{body}");
    // Bob's record is still there for Bob.
    assert_eq!(get(&bob.did, theirs["cid"].as_str().unwrap()).await.0, 200);
}

#[tokio::test]
async fn handle_changes_follow_the_sign_up_rules_and_stop_at_a_takedown() {
    let pds = Pds::start(&[]).await;
    let alice = pds.create_account("alice").await;
    let rename = |handle: &str| {
        pds.post(
            "com.atproto.identity.updateHandle",
            Some(&alice.access),
            json!({"handle": handle}),
        )
    };
    for (handle, why) in [
        ("ab.test", "Handle too short"),
        ("much-too-long-a-handle.test", "Handle too long"),
        ("two.labels.test", "single name"),
    ] {
        let (status, body) = rename(handle).await;
        assert_eq!(
            (status, body["error"].as_str()),
            (400, Some("InvalidHandle")),
            "{handle}: {body}"
        );
        assert!(body["message"].as_str().unwrap().contains(why), "{body}");
    }
    assert_eq!(rename("alice2.test").await.0, 200);
    let takedown = json!({"subject": {"$type": "com.atproto.admin.defs#repoRef", "did": alice.did},
        "takedown": {"applied": true}});
    assert_eq!(
        pds.admin_post("com.atproto.admin.updateSubjectStatus", takedown)
            .await
            .0,
        200
    );
    // The access token is still within its two hours, but the account may not rename itself.
    let (status, body) = rename("alice3.test").await;
    assert_eq!(
        (status, body["error"].as_str()),
        (401, Some("AccountTakedown")),
        "{body}"
    );
    let (_, resolved) = pds
        .get(
            "com.atproto.identity.resolveHandle",
            None,
            &[("handle", "alice2.test")],
        )
        .await;
    assert_eq!(resolved["did"], alice.did.as_str(), "the handle stayed");
}
