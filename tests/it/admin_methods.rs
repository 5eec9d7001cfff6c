//! The operator's invite-code and account methods over HTTP: codes are listed, disabled one by
//! one or by account, an account's invites can be stopped and restarted, and the operator can
//! change an account's address and read its status.

use serde_json::{Value, json};

use crate::common::pds::Pds;

async fn sign_up(pds: &Pds, name: &str, invite: &str) -> (u16, Value) {
    pds.post(
        "com.atproto.server.createAccount",
        None,
        json!({"handle": format!("{name}.test"), "password": "pw-123456",
            "email": format!("{name}@example.com"), "inviteCode": invite}),
    )
    .await
}

#[tokio::test]
async fn invite_codes_are_listed_disabled_and_stopped_per_account() {
    let pds = Pds::start(&[("PDS_INVITE_REQUIRED", "true")]).await;
    let (_, first) = pds
        .admin_post(
            "com.atproto.server.createInviteCode",
            json!({"useCount": 2}),
        )
        .await;
    let first = first["code"].as_str().unwrap().to_owned();
    let (status, body) = sign_up(&pds, "alice", &first).await;
    assert_eq!(status, 200, "{body}");
    let alice_did = body["did"].as_str().unwrap().to_owned();
    let alice_access = body["accessJwt"].as_str().unwrap().to_owned();
    let (_, made) = pds
        .admin_post(
            "com.atproto.server.createInviteCodes",
            json!({"codeCount": 2, "useCount": 1, "forAccounts": [alice_did]}),
        )
        .await;
    let alices: Vec<String> = made["codes"][0]["codes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c.as_str().unwrap().to_owned())
        .collect();

    // Listed most used first, one per page with a cursor.
    let (status, page) = pds
        .admin_get(
            "com.atproto.admin.getInviteCodes",
            &[("sort", "usage"), ("limit", "1")],
        )
        .await;
    assert_eq!(status, 200);
    assert_eq!(page["codes"][0]["code"], first.as_str());
    assert_eq!(page["codes"][0]["uses"][0]["usedBy"], alice_did.as_str());
    let (_, next) = pds
        .admin_get(
            "com.atproto.admin.getInviteCodes",
            &[
                ("sort", "usage"),
                ("limit", "5"),
                ("cursor", page["cursor"].as_str().unwrap()),
            ],
        )
        .await;
    assert_eq!(next["codes"].as_array().unwrap().len(), 2);
    // The account sees its own codes.
    let (_, own) = pds
        .get(
            "com.atproto.server.getAccountInviteCodes",
            Some(&alice_access),
            &[],
        )
        .await;
    let mut listed: Vec<&str> = own["codes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["code"].as_str().unwrap())
        .collect();
    listed.sort_unstable();
    let mut expected: Vec<&str> = alices.iter().map(String::as_str).collect();
    expected.sort_unstable();
    assert_eq!(listed, expected);

    // A disabled code admits no one; stopping the account's invites stops the rest.
    pds.admin_post(
        "com.atproto.admin.disableInviteCodes",
        json!({"codes": [first]}),
    )
    .await;
    assert_eq!(
        sign_up(&pds, "bob", &first).await.1["error"],
        "InvalidInviteCode"
    );
    pds.admin_post(
        "com.atproto.admin.disableAccountInvites",
        json!({"account": alice_did}),
    )
    .await;
    assert_eq!(
        sign_up(&pds, "carol", &alices[0]).await.1["error"],
        "InvalidInviteCode"
    );
    let (_, info) = pds
        .admin_get("com.atproto.admin.getAccountInfo", &[("did", &alice_did)])
        .await;
    assert_eq!(info["invitesDisabled"], true);
    pds.admin_post(
        "com.atproto.admin.enableAccountInvites",
        json!({"account": alice_did}),
    )
    .await;
    assert_eq!(sign_up(&pds, "carol", &alices[0]).await.0, 200);
    // Disabling by account disables every code made for it.
    pds.admin_post(
        "com.atproto.admin.disableInviteCodes",
        json!({"accounts": [alice_did]}),
    )
    .await;
    assert_eq!(
        sign_up(&pds, "dave", &alices[1]).await.1["error"],
        "InvalidInviteCode"
    );
    let (status, body) = pds
        .admin_post(
            "com.atproto.admin.disableInviteCodes",
            json!({"accounts": ["admin"]}),
        )
        .await;
    assert_eq!(status, 400, "{body}");
}

#[tokio::test]
async fn the_operator_changes_an_address_and_reads_an_accounts_status() {
    let pds = Pds::start(&[]).await;
    let alice = pds.create_account("alice").await;
    let (status, _) = pds
        .admin_post(
            "com.atproto.admin.updateAccountEmail",
            json!({"account": "alice.test", "email": "Alice@New.Example"}),
        )
        .await;
    assert_eq!(status, 200);
    let (_, session) = pds
        .get("com.atproto.server.getSession", Some(&alice.access), &[])
        .await;
    assert_eq!(session["email"], "alice@new.example");
    // The old address is free again.
    let (status, _) = pds
        .post(
            "com.atproto.server.createAccount",
            None,
            json!({"handle": "bob.test", "password": "pw-123456", "email": "alice@example.com"}),
        )
        .await;
    assert_eq!(status, 200);
    let takedown = json!({"subject": {"$type": "com.atproto.admin.defs#repoRef", "did": alice.did},
        "takedown": {"applied": true}});
    pds.admin_post("com.atproto.admin.updateSubjectStatus", takedown)
        .await;
    let (status, st) = pds
        .admin_get("com.atproto.admin.getSubjectStatus", &[("did", &alice.did)])
        .await;
    assert_eq!(status, 200);
    assert_eq!(st["takedown"]["applied"], true);
}

#[tokio::test]
async fn records_and_blobs_taken_down_are_not_served_until_restored() {
    let pds = Pds::start(&[]).await;
    let alice = pds.create_account("alice").await;
    let response = pds
        .client
        .post(pds.xrpc("com.atproto.repo.uploadBlob"))
        .bearer_auth(&alice.access)
        .header("content-type", "image/png")
        .body(b"\x89PNG a picture to take down".to_vec())
        .send()
        .await
        .unwrap();
    let blob = response.json::<Value>().await.unwrap()["blob"].clone();
    let cid = blob["ref"]["$link"].as_str().unwrap().to_owned();
    let (_, post) = pds
        .post(
            "com.atproto.repo.createRecord",
            Some(&alice.access),
            json!({"repo": alice.did, "collection": "app.bsky.feed.post",
                "record": {"$type": "app.bsky.feed.post", "text": "look",
                    "createdAt": "2026-01-01T00:00:00.000Z",
                    "embed": {"$type": "app.bsky.embed.images", "images": [{"alt": "", "image": blob}]}}}),
        )
        .await;
    pds.create_post(&alice, "an ordinary post").await;
    let uri = post["uri"].as_str().unwrap().to_owned();
    let rkey = uri.rsplit('/').next().unwrap().to_owned();
    let record_ref = json!({"$type": "com.atproto.repo.strongRef", "uri": uri, "cid": post["cid"]});
    let blob_ref =
        json!({"$type": "com.atproto.admin.defs#repoBlobRef", "did": alice.did, "cid": cid});
    let pds = &pds;
    let set = |subject: Value, applied: bool| async move {
        let body = json!({"subject": subject, "takedown": {"applied": applied, "ref": "R1"}});
        pds.admin_post("com.atproto.admin.updateSubjectStatus", body)
            .await
    };
    let (did, rkey_, cid_) = (alice.did.clone(), rkey.clone(), cid.clone());
    let get_record = || {
        let (did, rkey) = (did.clone(), rkey_.clone());
        async move {
            pds.get(
                "com.atproto.repo.getRecord",
                None,
                &[
                    ("repo", did.as_str()),
                    ("collection", "app.bsky.feed.post"),
                    ("rkey", rkey.as_str()),
                ],
            )
            .await
        }
    };
    let listed = || {
        let did = did.clone();
        async move {
            pds.get(
                "com.atproto.repo.listRecords",
                None,
                &[("repo", did.as_str()), ("collection", "app.bsky.feed.post")],
            )
            .await
            .1["records"]
                .as_array()
                .unwrap()
                .len()
        }
    };
    let get_blob = || {
        let (did, cid) = (did.clone(), cid_.clone());
        async move {
            pds.get(
                "com.atproto.sync.getBlob",
                None,
                &[("did", did.as_str()), ("cid", cid.as_str())],
            )
            .await
        }
    };

    let (status, body) = set(record_ref.clone(), true).await;
    assert_eq!(status, 200, "{body}");
    let (status, body) = get_record().await;
    assert_eq!(
        (status, body["error"].as_str()),
        (400, Some("RecordNotFound"))
    );
    assert_eq!(listed().await, 1, "left out of listRecords");
    let (_, st) = pds
        .admin_get(
            "com.atproto.admin.getSubjectStatus",
            &[("uri", uri.as_str())],
        )
        .await;
    assert_eq!(st["takedown"], json!({"applied": true, "ref": "R1"}));
    assert_eq!(st["subject"]["cid"], post["cid"]);

    let (status, body) = set(blob_ref.clone(), true).await;
    assert_eq!(status, 200, "{body}");
    let (status, body) = get_blob().await;
    assert_eq!(
        (status, body["error"].as_str()),
        (400, Some("BlobNotFound"))
    );
    let (_, st) = pds
        .admin_get(
            "com.atproto.admin.getSubjectStatus",
            &[("did", alice.did.as_str()), ("blob", cid.as_str())],
        )
        .await;
    assert_eq!(st["takedown"]["applied"], true);

    set(record_ref.clone(), false).await;
    set(blob_ref.clone(), false).await;
    assert_eq!(get_record().await.0, 200);
    assert_eq!(listed().await, 2);
    assert_eq!(get_blob().await.0, 200);
}
