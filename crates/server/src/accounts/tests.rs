use std::time::Duration;

use squawk_protocol::{ChannelName, Priority};

use super::{
    ChannelEntry, Directory, Identity, Rights, Role, Subject,
    pg_cluster::Cluster,
    store::{Store, StoreError},
    token::{TokenError, TokenKey, new_refresh, refresh_hash},
};

fn ch(s: &str) -> ChannelName {
    ChannelName::new(s).unwrap()
}

/// SQLite in memory, and a throwaway PostgreSQL cluster when PostgreSQL
/// is installed (CI installs it and sets `SQUAWK_REQUIRE_POSTGRES`): the
/// same checks run on each. The cluster lives as long as the returned guard.
async fn stores() -> (Vec<(&'static str, Store)>, Option<Cluster>) {
    let mut out = vec![("sqlite", Store::open("sqlite::memory:").await.unwrap())];
    let cluster = tokio::task::spawn_blocking(Cluster::start).await.unwrap();
    if let Some(c) = &cluster {
        out.push(("postgres", Store::open(&c.url).await.unwrap()));
    }
    (out, cluster)
}

/// A name no other test run uses (the PostgreSQL database is shared).
fn unique(prefix: &str) -> String {
    format!("{prefix}{}", rand::random::<u32>())
}

#[tokio::test]
async fn users_channels_and_grants_round_trip_through_the_database() {
    let (stores, _cluster) = stores().await;
    for (db, store) in stores {
        let ann = unique("ann");
        let u = store
            .add_user(&ann, "Ann", "$argon2id$x", Role::Dispatcher)
            .await
            .unwrap();
        assert!(store.has_users().await.unwrap(), "{db}");
        assert!(matches!(
            store.add_user(&ann, "Ann", "h", Role::User).await,
            Err(StoreError::UserExists(_))
        ));
        assert!(matches!(
            store.add_user("has space", "x", "h", Role::User).await,
            Err(StoreError::Invalid(_))
        ));
        let (got, hash) = store.user_with_hash(&ann).await.unwrap().unwrap();
        assert_eq!(
            (got.clone(), hash.as_str()),
            (u.clone(), "$argon2id$x"),
            "{db}"
        );
        assert_eq!(store.user_by_id(u.id).await.unwrap(), Some(u.clone()));
        store.set_role(&ann, Role::User).await.unwrap();
        store.set_disabled(&ann, true).await.unwrap();
        let got = store.user(&ann).await.unwrap().unwrap();
        assert_eq!((got.role, got.disabled), (Role::User, true), "{db}");
        assert!(matches!(
            store.set_role("nobody-at-all", Role::User).await,
            Err(StoreError::NoUser(_))
        ));

        let ops = ch(&unique("ops"));
        let grant = Rights {
            listen: true,
            talk: false,
            max_priority: Priority(7),
            dispatch: false,
        };
        assert!(matches!(
            store
                .put_grant(&ops, Subject::Role(Role::User), grant)
                .await,
            Err(StoreError::NoChannel(_))
        ));
        let entry = ChannelEntry {
            description: "operations".into(),
            guests: true,
            preemption: None,
            max_talk_secs: None,
        };
        store.put_channel(&ops, &entry).await.unwrap();
        // Its own floor policy, then back to the server's (NULL) again.
        let quiet = ChannelEntry {
            preemption: Some(false),
            max_talk_secs: Some(3600),
            ..entry.clone()
        };
        store.put_channel(&ops, &quiet).await.unwrap();
        assert_eq!(
            store.directory().await.unwrap().channels[&ops],
            quiet,
            "{db}"
        );
        let too_long = ChannelEntry {
            max_talk_secs: Some(3601),
            ..entry.clone()
        };
        assert!(matches!(
            store.put_channel(&ops, &too_long).await,
            Err(StoreError::Invalid(_))
        ));
        store.put_channel(&ops, &entry).await.unwrap();
        store
            .put_grant(&ops, Subject::Role(Role::User), grant)
            .await
            .unwrap();
        store
            .put_grant(&ops, Subject::User(u.id), Rights::GUEST)
            .await
            .unwrap();
        let dir = store.directory().await.unwrap();
        assert_eq!(dir.channels[&ops], entry, "{db}");
        assert_eq!(dir.grants[&(ops.clone(), Subject::Role(Role::User))], grant);
        assert_eq!(
            dir.grants[&(ops.clone(), Subject::User(u.id))],
            Rights::GUEST
        );
        assert!(dir.users[&u.id].disabled);
        assert!(store.delete_grant(&ops, Subject::User(u.id)).await.unwrap());
        store.delete_user(&ann).await.unwrap();
        store.delete_channel(&ops).await.unwrap();
        let dir = store.directory().await.unwrap();
        assert!(!dir.users.contains_key(&u.id) && !dir.channels.contains_key(&ops));
        assert!(!dir.grants.keys().any(|(c, _)| *c == ops), "{db}");
    }
}

#[tokio::test]
async fn a_refresh_token_is_used_once_and_dies_with_a_disable() {
    let (stores, _cluster) = stores().await;
    for (db, store) in stores {
        let name = unique("bo");
        let u = store.add_user(&name, "Bo", "h", Role::User).await.unwrap();
        let (token, hash) = new_refresh();
        assert_eq!(refresh_hash(&token), hash);
        assert_ne!(token, hash, "only the hash is stored");
        store.add_refresh(&hash, u.id, 2_000).await.unwrap();
        assert_eq!(
            store.take_refresh(&hash, 1_000).await.unwrap(),
            Some(u.id),
            "{db}"
        );
        assert_eq!(
            store.take_refresh(&hash, 1_000).await.unwrap(),
            None,
            "used once"
        );
        store.add_refresh(&hash, u.id, 2_000).await.unwrap();
        assert_eq!(
            store.take_refresh(&hash, 2_000).await.unwrap(),
            None,
            "expired"
        );
        let (_, h2) = new_refresh();
        store.add_refresh(&h2, u.id, i64::MAX).await.unwrap();
        store.set_disabled(&name, true).await.unwrap();
        assert_eq!(
            store.take_refresh(&h2, 0).await.unwrap(),
            None,
            "{db}: revoked"
        );
        store.delete_user(&name).await.unwrap();
    }
}

#[test]
fn rights_go_user_grant_then_role_grant_then_role_defaults() {
    let ops = ch("ops");
    let lobby = ch("lobby");
    let mut dir = Directory::default();
    let anyone = Identity::User { id: 1 };
    assert_eq!(dir.rights(&anyone, &ops), Rights::ALL, "no accounts: open");
    assert_eq!(dir.rights(&Identity::Guest, &ops), Rights::ALL);
    for (id, role) in [(1, Role::User), (2, Role::Dispatcher), (3, Role::Admin)] {
        dir.users.insert(
            id,
            super::UserEntry {
                username: format!("u{id}"),
                display_name: format!("U{id}"),
                role,
                disabled: false,
            },
        );
    }
    let (user, disp, admin) = (
        Identity::User { id: 1 },
        Identity::User { id: 2 },
        Identity::User { id: 3 },
    );
    assert_eq!(dir.rights(&user, &lobby), Role::User.defaults());
    assert_eq!(dir.rights(&disp, &lobby).max_priority, Priority::HIGH);
    assert!(dir.rights(&disp, &lobby).dispatch && !dir.rights(&user, &lobby).dispatch);
    // Users are kept out of ops, except user 1 who may listen.
    dir.channels.insert(ops.clone(), ChannelEntry::default());
    dir.grants
        .insert((ops.clone(), Subject::Role(Role::User)), Rights::NONE);
    dir.users.insert(
        4,
        super::UserEntry {
            username: "u4".into(),
            display_name: "U4".into(),
            role: Role::User,
            disabled: false,
        },
    );
    assert_eq!(dir.rights(&Identity::User { id: 4 }, &ops), Rights::NONE);
    let listen_only = Rights {
        talk: false,
        ..Rights::GUEST
    };
    dir.grants
        .insert((ops.clone(), Subject::User(1)), listen_only);
    assert_eq!(dir.rights(&user, &ops), listen_only);
    assert_eq!(
        dir.rights(&disp, &ops),
        Role::Dispatcher.defaults(),
        "no role grant"
    );
    // Admins have everything, even under a grant that says otherwise.
    dir.grants
        .insert((ops.clone(), Subject::Role(Role::Admin)), Rights::NONE);
    assert_eq!(dir.rights(&admin, &ops), Rights::ALL);
    // Guests only where the channel allows them; unknown and disabled users nowhere.
    assert_eq!(dir.rights(&Identity::Guest, &ops), Rights::NONE);
    dir.channels.get_mut(&ops).unwrap().guests = true;
    assert_eq!(dir.rights(&Identity::Guest, &ops), Rights::GUEST);
    assert_eq!(
        dir.rights(&Identity::Guest, &lobby),
        Rights::NONE,
        "no record"
    );
    assert_eq!(dir.rights(&Identity::User { id: 99 }, &lobby), Rights::NONE);
    dir.users.get_mut(&1).unwrap().disabled = true;
    assert_eq!(dir.rights(&user, &lobby), Rights::NONE);
    assert!(!dir.may_connect(&user) && dir.may_connect(&disp));
    assert!(!dir.may_connect(&Identity::User { id: 99 }));
}

#[test]
fn subjects_and_roles_parse_their_own_form_and_refuse_others() {
    for s in [Subject::Role(Role::Dispatcher), Subject::User(42)] {
        assert_eq!(Subject::parse(&s.to_key()), Ok(s));
    }
    assert!(Subject::parse("role:boss").is_err());
    assert!(Subject::parse("user:x").is_err());
    assert!(Subject::parse("42").is_err());
}

#[test]
fn access_tokens_expire_and_die_with_their_key() {
    let key = TokenKey::from_bytes(&[7; 32]);
    let t = key.issue(5, "ann", Role::Dispatcher, 1_000, Duration::from_secs(3600));
    let claims = key.verify(&t, 1_000).unwrap();
    assert_eq!((claims.uid, claims.sub.as_str()), (5, "ann"));
    assert_eq!(claims.role, Role::Dispatcher);
    assert_eq!(claims.exp, 1_000 + 15 * 60, "capped at 15 minutes");
    assert_eq!(key.verify(&t, 1_000 + 15 * 60), Err(TokenError::Expired));
    let other = TokenKey::from_bytes(&[8; 32]);
    assert_eq!(other.verify(&t, 1_000), Err(TokenError::Invalid));
    assert_eq!(key.verify("not.a.token", 1_000), Err(TokenError::Invalid));
    let mut tampered = t.clone();
    tampered.insert(t.len() / 2, 'x');
    assert_eq!(key.verify(&tampered, 1_000), Err(TokenError::Invalid));
}

#[test]
fn the_key_file_is_made_once_private_and_rotation_refuses_old_tokens() {
    let dir = std::env::temp_dir().join(format!("squawk-key-{}", rand::random::<u32>()));
    let a = TokenKey::load_or_create(&dir).unwrap();
    let t = a.issue(1, "u", Role::User, 10, Duration::from_secs(60));
    let again = TokenKey::load_or_create(&dir).unwrap();
    assert!(
        again.verify(&t, 10).is_ok(),
        "the same key on the next start"
    );
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(dir.join(super::token::KEY_FILE))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
    }
    let rotated = TokenKey::rotate(&dir).unwrap();
    assert_eq!(rotated.verify(&t, 10), Err(TokenError::Invalid));
    assert_eq!(
        TokenKey::load_or_create(&dir).unwrap().verify(&t, 10),
        Err(TokenError::Invalid)
    );
    std::fs::remove_dir_all(&dir).unwrap();
}

#[tokio::test]
async fn a_database_from_a_newer_server_is_refused_with_its_versions() {
    let dir = std::env::temp_dir().join(format!("squawk-newer-db-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let url = format!("sqlite://{}?mode=rwc", dir.join("squawk.db").display());
    let store = Store::open(&url).await.unwrap();
    // A newer server's migration, as sqlx records it.
    store
        .execute_raw(
            "INSERT INTO _sqlx_migrations (version, description, success, checksum, execution_time) \
             VALUES (99, 'from the future', TRUE, x'00', 0)",
        )
        .await
        .unwrap();
    drop(store);
    let e = Store::open(&url).await.unwrap_err();
    assert!(matches!(e, StoreError::Newer(99, 2)), "{e:?}");
    assert!(e.to_string().contains("newer squawk-server"), "{e}");
    let _ = std::fs::remove_dir_all(&dir);
}
