//! Account state under concurrent requests, over HTTP: status changes, account records and
//! invite uses are compare-and-swap writes, so a request that decided on an old state can never
//! undo a newer one. The races are made deterministic by pausing one request inside storage
//! ([`Faulty`]) while the other runs.

use std::sync::Arc;

use arroba::storage::{BlobStore, DiskBlobStore, DiskStorage, KeySealer, RepoStatus, Storage};
use arroba::syntax::Did;
use serde_json::{Value, json};

use crate::common::faulty::{Faulty, Point};
use crate::common::pds::Pds;

/// A PDS on the embedded store wrapped in [`Faulty`].
async fn pds_with_faults(extra: &[(&str, &str)]) -> (Pds, Arc<Faulty>) {
    let dir = tempfile::tempdir().unwrap();
    let disk: Arc<dyn Storage> = Arc::new(
        DiskStorage::open(&dir.path().join("store"), Some(KeySealer::ephemeral())).unwrap(),
    );
    let faulty = Faulty::new(disk);
    let blobs: Arc<dyn BlobStore> = Arc::new(DiskBlobStore::new(dir.path().join("blobs")));
    let pds = Pds::start_with(dir, faulty.clone(), blobs, extra).await;
    (pds, faulty)
}

async fn status(pds: &Pds, did: &str) -> RepoStatus {
    let did = Did::parse(did).unwrap();
    pds.state
        .storage()
        .load_repo(&did)
        .await
        .unwrap()
        .unwrap()
        .status
}

fn takedown(did: &str, applied: bool) -> Value {
    json!({"subject": {"$type": "com.atproto.admin.defs#repoRef", "did": did},
        "takedown": {"applied": applied, "ref": "T1"}})
}

#[tokio::test]
async fn a_takedown_made_while_an_activation_is_in_flight_stays_in_force() {
    let (pds, faulty) = pds_with_faults(&[]).await;
    let alice = pds.create_account("alice").await;
    let (status_code, _) = pds
        .post(
            "com.atproto.server.deactivateAccount",
            Some(&alice.access),
            json!({}),
        )
        .await;
    assert_eq!(status_code, 200);
    // The activation reads "deactivated", then waits just before it writes.
    let gate = faulty.pause("set_status", Point::Before);
    let activation = {
        let (client, url, token) = (
            pds.client.clone(),
            pds.xrpc("com.atproto.server.activateAccount"),
            alice.access.clone(),
        );
        tokio::spawn(async move {
            let response = client.post(url).bearer_auth(token).send().await.unwrap();
            let status = response.status().as_u16();
            (
                status,
                response.json::<Value>().await.unwrap_or(Value::Null),
            )
        })
    };
    gate.reached().await;
    let (code, body) = pds
        .admin_post(
            "com.atproto.admin.updateSubjectStatus",
            takedown(&alice.did, true),
        )
        .await;
    assert_eq!(code, 200, "{body}");
    gate.open();
    let (code, body) = activation.await.unwrap();
    assert_eq!(
        (code, body["error"].as_str()),
        (403, Some("AccountTakedown")),
        "the activation is refused once it sees the takedown: {body}"
    );
    assert_eq!(status(&pds, &alice.did).await, RepoStatus::Takendown);
}

#[tokio::test]
async fn reversing_a_takedown_never_revives_a_deleted_account() {
    let pds = Pds::start(&[]).await;
    let alice = pds.create_account("alice").await;
    let (code, body) = pds
        .admin_post("com.atproto.admin.deleteAccount", json!({"did": alice.did}))
        .await;
    assert_eq!(code, 200, "{body}");
    let (code, _) = pds
        .admin_post(
            "com.atproto.admin.updateSubjectStatus",
            takedown(&alice.did, false),
        )
        .await;
    assert_eq!(code, 200);
    assert_eq!(status(&pds, &alice.did).await, RepoStatus::Deleted);
    let (code, body) = pds
        .get(
            "com.atproto.sync.getLatestCommit",
            None,
            &[("did", alice.did.as_str())],
        )
        .await;
    assert_eq!(code, 400, "{body}");
}

#[tokio::test]
async fn a_revoked_app_password_stays_revoked_when_a_creation_races_the_revocation() {
    let (pds, faulty) = pds_with_faults(&[]).await;
    let alice = pds.create_account("alice").await;
    let app = |name: &str| json!({"name": name});
    let (code, made) = pds
        .post(
            "com.atproto.server.createAppPassword",
            Some(&alice.access),
            app("old"),
        )
        .await;
    assert_eq!(code, 200, "{made}");
    // A creation reads the account (with "old"), then waits just before it writes it back.
    let gate = faulty.pause("kv_put", Point::Before);
    let creation = {
        let (client, url, token) = (
            pds.client.clone(),
            pds.xrpc("com.atproto.server.createAppPassword"),
            alice.access.clone(),
        );
        tokio::spawn(async move {
            client
                .post(url)
                .bearer_auth(token)
                .json(&json!({"name": "new"}))
                .send()
                .await
                .unwrap()
                .status()
                .as_u16()
        })
    };
    gate.reached().await;
    let (code, _) = pds
        .post(
            "com.atproto.server.revokeAppPassword",
            Some(&alice.access),
            app("old"),
        )
        .await;
    assert_eq!(code, 200);
    gate.open();
    assert_eq!(creation.await.unwrap(), 200);
    let (_, listed) = pds
        .get(
            "com.atproto.server.listAppPasswords",
            Some(&alice.access),
            &[],
        )
        .await;
    let names: Vec<&str> = listed["passwords"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["new"], "both changes kept, the revocation included");
    let (code, _) = pds
        .post(
            "com.atproto.server.createSession",
            None,
            json!({"identifier": alice.handle, "password": made["password"]}),
        )
        .await;
    assert_eq!(code, 401, "the revoked app password no longer logs in");
}

#[tokio::test]
async fn a_single_use_invite_admits_exactly_one_of_many_concurrent_sign_ups() {
    let pds = Pds::start(&[("PDS_INVITE_REQUIRED", "true")]).await;
    let (code, invite) = pds
        .admin_post(
            "com.atproto.server.createInviteCode",
            json!({"useCount": 1}),
        )
        .await;
    assert_eq!(code, 200, "{invite}");
    let invite = invite["code"].as_str().unwrap().to_owned();
    let sign_ups = (0..8).map(|i| {
        let (client, url, invite) = (
            pds.client.clone(),
            pds.xrpc("com.atproto.server.createAccount"),
            invite.clone(),
        );
        tokio::spawn(async move {
            let response = client
                .post(url)
                .json(
                    &json!({"handle": format!("racer{i}.test"), "password": "pw-123456",
                    "email": format!("racer{i}@example.com"), "inviteCode": invite}),
                )
                .send()
                .await
                .unwrap();
            let status = response.status().as_u16();
            (i, status, response.json::<Value>().await.unwrap())
        })
    });
    let mut admitted = Vec::new();
    for sign_up in sign_ups {
        let (i, code, body) = sign_up.await.unwrap();
        match code {
            200 => admitted.push(i),
            _ => assert_eq!(body["error"], "InvalidInviteCode", "{body}"),
        }
    }
    assert_eq!(admitted.len(), 1, "{admitted:?}");
    // The refused sign-ups released their e-mail addresses.
    let loser = (0..8).find(|i| *i != admitted[0]).unwrap();
    let (_, second) = pds
        .admin_post(
            "com.atproto.server.createInviteCode",
            json!({"useCount": 1}),
        )
        .await;
    let (code, body) = pds
        .post(
            "com.atproto.server.createAccount",
            None,
            json!({"handle": format!("racer{loser}.test"), "password": "pw-123456",
                "email": format!("racer{loser}@example.com"), "inviteCode": second["code"]}),
        )
        .await;
    assert_eq!(code, 200, "{body}");
}
