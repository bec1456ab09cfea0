//! Deliveries in each forge's published shape (the files of
//! `fuzz/corpus/webhook/`, signed with [`fuzz_targets::SECRET`]), and the
//! ways a delivery is refused.

use std::fs;
use std::path::Path;

use super::fuzz_targets::{self, auth, hmac_hex, sign, AZURE_HEADER, AZURE_USER, SECRET};
use super::*;

type Owned = Vec<(String, String)>;

fn fixture(name: &str) -> (Forge, Owned, Vec<u8>) {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("fuzz/corpus/webhook")
        .join(name);
    let data = fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let (forge, headers, body) = fuzz_targets::split(&data).expect("a forge on line 1");
    (forge, headers, body.to_vec())
}

/// `headers` with every `name` header removed, then `name: value` added if given.
fn with(headers: &[(String, String)], name: &str, value: Option<&str>) -> Owned {
    let mut out: Owned = headers
        .iter()
        .filter(|(key, _)| !key.eq_ignore_ascii_case(name))
        .cloned()
        .collect();
    if let Some(value) = value {
        out.push((name.to_owned(), value.to_owned()));
    }
    out
}

fn received(name: &str) -> Delivery {
    let (forge, headers, body) = fixture(name);
    receive(forge, &auth(forge), &headers[..], &body)
        .unwrap_or_else(|refusal| panic!("{name}: {refusal:?}"))
}

fn pushed(name: &str) -> Repository {
    match received(name).event {
        Event::Push(repository) => repository,
        other => panic!("{name}: {other:?}"),
    }
}

fn strings(urls: &[&str]) -> Vec<String> {
    urls.iter().map(|url| url.to_string()).collect()
}

#[test]
fn forges_round_trip_through_their_path_segment() {
    for forge in Forge::ALL {
        assert_eq!(Forge::from_path(forge.name()), Some(forge));
    }
    assert_eq!(Forge::from_path("azure-devops"), Some(Forge::AzureDevOps));
    assert_eq!(Forge::from_path("GitHub"), None);
    assert_eq!(Forge::from_path("forgejo"), None);
    assert_eq!(Forge::from_path(""), None);
}

#[test]
fn headers_are_found_whatever_their_case() {
    let headers: &[(&str, &str)] = &[("x-github-event", "push"), ("X-GITHUB-EVENT", "ping")];
    assert_eq!(headers.header("X-GitHub-Event"), Some("push"));
    assert_eq!(headers.header("X-GitHub-Delivery"), None);
}

#[test]
fn github_push_gives_the_repository_urls_and_the_delivery_id() {
    let delivery = received("github-push");
    assert_eq!(
        delivery.id.as_deref(),
        Some("72d3162e-cc78-11e3-81ab-4c9367dc0958")
    );
    let Event::Push(repository) = delivery.event else {
        panic!("{:?}", delivery.event);
    };
    assert_eq!(repository.name, "acme/widgets");
    assert_eq!(
        repository.urls,
        strings(&[
            "https://github.com/acme/widgets.git",
            "https://github.com/acme/widgets",
            "git@github.com:acme/widgets.git",
        ])
    );
}

#[test]
fn github_branch_and_tag_creation_and_deletion_are_pushes() {
    for name in ["github-create-tag", "github-delete-branch"] {
        assert_eq!(pushed(name).name, "acme/widgets", "{name}");
    }
}

#[test]
fn github_ping_is_a_ping_and_other_events_are_named() {
    assert_eq!(received("github-ping").event, Event::Ping);
    assert_eq!(
        received("github-issue-comment").event,
        Event::Other("issue_comment".into())
    );
}

#[test]
fn gitlab_push_and_tag_push_hooks() {
    let delivery = received("gitlab-push-hook");
    // Idempotency-Key, the same across GitLab's retries, is preferred.
    assert_eq!(
        delivery.id.as_deref(),
        Some("4e0a7c1f-2b6d-4c8e-9f3a-1d5b7e9c2a40")
    );
    let expected = strings(&[
        "https://gitlab.example.com/acme/widgets.git",
        "https://gitlab.example.com/acme/widgets",
        "git@gitlab.example.com:acme/widgets.git",
    ]);
    let Event::Push(repository) = delivery.event else {
        panic!("{:?}", delivery.event);
    };
    assert_eq!(repository.name, "acme/widgets");
    assert_eq!(repository.urls, expected);
    let tags = received("gitlab-tag-push-hook");
    assert_eq!(
        tags.id.as_deref(),
        Some("2a7c4e1b-8d3f-4b6a-9e0c-5f1d3b7a9c2e")
    );
    assert_eq!(
        tags.event,
        Event::Push(Repository {
            urls: expected,
            name: "acme/widgets".into()
        })
    );
}

#[test]
fn gitlab_system_hook_push_and_the_older_repository_fields() {
    let system = pushed("gitlab-system-hook-push");
    assert_eq!(system.name, "acme/tools/gadgets");
    assert_eq!(
        system.urls[0],
        "https://gitlab.example.com/acme/tools/gadgets.git"
    );
    let old = pushed("gitlab-old-repository-only");
    assert_eq!(
        old.urls,
        strings(&[
            "http://example.com/mike/diaspora.git",
            "http://example.com/mike/diaspora",
            "git@example.com:mike/diaspora.git",
        ])
    );
    assert_eq!(old.name, "Diaspora");
    assert_eq!(
        received("gitlab-merge-request-hook").event,
        Event::Other("Merge Request Hook".into())
    );
}

#[test]
fn gitlab_system_hook_of_another_event_is_named_by_its_body() {
    let body =
        br#"{"event_name":"project_create","name":"widgets","path_with_namespace":"acme/widgets"}"#;
    let headers = sign(
        Forge::GitLab,
        &[("X-Gitlab-Event".into(), "System Hook".into())],
        body,
    );
    let delivery = receive(Forge::GitLab, &auth(Forge::GitLab), &headers[..], body).unwrap();
    assert_eq!(delivery.event, Event::Other("project_create".into()));
    assert_eq!(delivery.id, None);
}

#[test]
fn azure_devops_git_push_gives_the_event_id_and_the_repository_urls() {
    let delivery = received("azure-devops-git-push");
    assert_eq!(
        delivery.id.as_deref(),
        Some("03c164c2-8912-4d5e-8009-3707d5f83734")
    );
    assert_eq!(
        delivery.event,
        Event::Push(Repository {
            urls: strings(&[
                "https://acme@dev.azure.com/acme/app/_git/widgets",
                "https://dev.azure.com/acme/app/_git/widgets",
                "git@ssh.dev.azure.com:v3/acme/app/widgets",
            ]),
            name: "app/widgets".into(),
        })
    );
    assert_eq!(
        received("azure-devops-pull-request-created").event,
        Event::Other("git.pullrequest.created".into())
    );
}

#[test]
fn azure_devops_checks_every_configured_part_and_only_those() {
    let (forge, headers, body) = fixture("azure-devops-git-push");
    let basic = || Some((AZURE_USER.to_owned(), SECRET.to_owned()));
    let header = || Some((AZURE_HEADER.to_owned(), SECRET.to_owned()));
    let check = |auth: HookAuth, headers: &Owned| receive(forge, &auth, &headers[..], &body);
    let basic_only = HookAuth::Azure {
        basic: basic(),
        header: None,
    };
    let header_only = HookAuth::Azure {
        basic: None,
        header: header(),
    };
    let both = HookAuth::Azure {
        basic: basic(),
        header: header(),
    };
    assert!(check(basic_only.clone(), &headers).is_ok());
    assert!(check(header_only.clone(), &headers).is_ok());
    let no_header = with(&headers, AZURE_HEADER, None);
    assert!(check(basic_only.clone(), &no_header).is_ok());
    assert_eq!(check(both.clone(), &no_header), Err(Refusal::Unsigned));
    let no_basic = with(&headers, "Authorization", None);
    assert!(check(header_only.clone(), &no_basic).is_ok());
    assert_eq!(check(both.clone(), &no_basic), Err(Refusal::Unsigned));
    let wrong_header = with(&headers, AZURE_HEADER, Some("fuzz-secreT"));
    assert_eq!(
        check(both.clone(), &wrong_header),
        Err(Refusal::BadSignature)
    );
    // A wrong part wins over a missing one: the sender is not who it says.
    let wrong_and_missing = with(&no_basic, AZURE_HEADER, Some("nope"));
    assert_eq!(
        check(both.clone(), &wrong_and_missing),
        Err(Refusal::BadSignature)
    );
    use base64::Engine as _;
    let encode = |text: &str| base64::engine::general_purpose::STANDARD.encode(text);
    for bad in [
        format!("Basic {}", encode("relay:fuzz-secreT")),
        format!("Basic {}", encode("someone:fuzz-secret")),
        format!("Basic {}", encode("relay:fuzz-secret:")),
        format!("Bearer {}", encode("relay:fuzz-secret")),
        "Basic !!!".to_owned(),
        "Basic".to_owned(),
    ] {
        let headers = with(&headers, "Authorization", Some(&bad));
        assert_eq!(
            check(basic_only.clone(), &headers),
            Err(Refusal::BadSignature),
            "{bad}"
        );
    }
    // Scheme in any case, padding optional.
    let lenient = format!(
        "basic {}",
        encode("relay:fuzz-secret").trim_end_matches('=')
    );
    assert!(check(basic_only, &with(&headers, "Authorization", Some(&lenient))).is_ok());
    let nothing = HookAuth::Azure {
        basic: None,
        header: None,
    };
    assert_eq!(check(nothing, &headers), Err(Refusal::Unsigned));
    let empty_password = HookAuth::Azure {
        basic: Some((AZURE_USER.into(), String::new())),
        header: None,
    };
    let sent = format!("Basic {}", encode("relay:"));
    assert_eq!(
        check(
            empty_password,
            &with(&headers, "Authorization", Some(&sent))
        ),
        Err(Refusal::Unsigned)
    );
}

#[test]
fn bitbucket_cloud_push_and_server_refs_changed() {
    let cloud = received("bitbucket-cloud-repo-push");
    assert_eq!(
        cloud.id.as_deref(),
        Some("8a5e3d2c-1f4b-4a6e-9c7d-0b2e4f6a8c1e")
    );
    assert_eq!(
        cloud.event,
        Event::Push(Repository {
            urls: strings(&["https://bitbucket.org/acme/widgets"]),
            name: "acme/widgets".into(),
        })
    );
    let server = received("bitbucket-server-refs-changed");
    assert_eq!(
        server.id.as_deref(),
        Some("2a4c6e8b-0d1f-4b3a-8c5e-7f9a1b3d5e60")
    );
    assert_eq!(
        server.event,
        Event::Push(Repository {
            urls: strings(&[
                "ssh://git@bitbucket.example.com:7999/app/widgets.git",
                "https://bitbucket.example.com/scm/app/widgets.git",
                "https://bitbucket.example.com/projects/APP/repos/widgets/browse",
            ]),
            name: "APP/widgets".into(),
        })
    );
    assert_eq!(received("bitbucket-server-ping").event, Event::Ping);
}

#[test]
fn gitea_and_forgejo_pushes_under_each_signature_header() {
    let push = received("gitea-push");
    assert_eq!(
        push.id.as_deref(),
        Some("f6266f16-1bf3-46a5-9ea4-602e06ead473")
    );
    assert_eq!(
        push.event,
        Event::Push(Repository {
            urls: strings(&[
                "https://git.example.com/acme/widgets.git",
                "https://git.example.com/acme/widgets",
                "ssh://git@git.example.com:2222/acme/widgets.git",
            ]),
            name: "acme/widgets".into(),
        })
    );
    let forgejo = received("gitea-forgejo-delete");
    assert_eq!(
        forgejo.id.as_deref(),
        Some("1c3e5a7b-9d2f-4b6e-8a0c-2e4f6a8c0e2a")
    );
    assert_eq!(
        pushed("gitea-forgejo-delete").urls[0],
        "https://codeberg.org/acme/widgets.git"
    );
    assert_eq!(pushed("gitea-hub-signature-create").name, "acme/widgets");
    assert_eq!(
        received("gitea-issues").event,
        Event::Other("issues".into())
    );
}

/// The header each HMAC forge signs with in the fixtures, and its prefix.
fn hmac_header(forge: Forge) -> (&'static str, &'static str) {
    match forge {
        Forge::GitHub => ("X-Hub-Signature-256", "sha256="),
        Forge::Bitbucket => ("X-Hub-Signature", "sha256="),
        _ => ("X-Gitea-Signature", ""),
    }
}

#[test]
fn hmac_signatures_that_do_not_match_are_refused() {
    for name in ["github-push", "bitbucket-cloud-repo-push", "gitea-issues"] {
        let (forge, headers, body) = fixture(name);
        let (header, prefix) = hmac_header(forge);
        let check = |headers: &Owned| receive(forge, &auth(forge), &headers[..], &body);
        let right = hmac_hex(SECRET, &body);
        assert!(check(&headers).is_ok(), "{name}");

        let other_secret = format!("{prefix}{}", hmac_hex("another secret", &body));
        let other_body = format!("{prefix}{}", hmac_hex(SECRET, b"{}"));
        let uppercase = format!("{prefix}{}", right.to_uppercase());
        let short = format!("{prefix}{}", &right[..62]);
        let not_hex = format!("{prefix}{}zz", &right[..62]);
        let sha1 = format!("sha1={}", &right[..40]);
        let sha1_full = format!("sha1={right}");
        assert!(check(&with(&headers, header, Some(&uppercase))).is_ok());
        for bad in [
            &other_secret,
            &other_body,
            &short,
            &not_hex,
            &sha1,
            &sha1_full,
            "",
        ] {
            let refused = check(&with(&headers, header, Some(bad)));
            assert_eq!(refused, Err(Refusal::BadSignature), "{name}: {bad:?}");
            assert_eq!(refused.unwrap_err().label(), "bad_signature");
        }
        let unsigned = check(&with(&headers, header, None));
        assert_eq!(unsigned, Err(Refusal::Unsigned), "{name}");
        assert_eq!(unsigned.unwrap_err().label(), "unsigned");
        // The body is what is signed: one byte more and the proof fails.
        let mut longer = body.clone();
        longer.push(b' ');
        assert_eq!(
            receive(forge, &auth(forge), &headers[..], &longer),
            Err(Refusal::BadSignature),
            "{name}"
        );
    }
}

#[test]
fn github_sha1_signature_alone_is_unsigned_and_sha256_is_required() {
    let (forge, headers, body) = fixture("github-push-refused-sha1-only");
    assert_eq!(
        receive(forge, &auth(forge), &headers[..], &body),
        Err(Refusal::Unsigned)
    );
    let (forge, headers, body) = fixture("github-push-refused-other-body");
    assert_eq!(
        receive(forge, &auth(forge), &headers[..], &body),
        Err(Refusal::BadSignature)
    );
}

#[test]
fn gitea_prefers_its_own_signature_header_to_the_hub_one() {
    let (forge, headers, body) = fixture("gitea-push");
    let wrong = hmac_hex("another secret", &body);
    // A wrong Gitea signature is not rescued by a right X-Hub-Signature-256.
    let headers = with(&headers, "X-Gitea-Signature", Some(&wrong));
    assert_eq!(
        receive(forge, &auth(forge), &headers[..], &body),
        Err(Refusal::BadSignature)
    );
    let forgejo = with(&headers, "X-Forgejo-Signature", Some("sha256=00"));
    assert_eq!(
        receive(forge, &auth(forge), &forgejo[..], &body),
        Err(Refusal::BadSignature)
    );
}

#[test]
fn gitlab_token_must_match_exactly() {
    let (forge, headers, body) = fixture("gitlab-push-hook");
    let check = |headers: &Owned| receive(forge, &auth(forge), &headers[..], &body);
    for bad in [
        "fuzz-secreT",
        "fuzz-secret ",
        "fuzz-secre",
        "fuzz-secret2",
        "",
    ] {
        assert_eq!(
            check(&with(&headers, "X-Gitlab-Token", Some(bad))),
            Err(Refusal::BadSignature),
            "{bad:?}"
        );
    }
    assert_eq!(
        check(&with(&headers, "X-Gitlab-Token", None)),
        Err(Refusal::Unsigned)
    );
    let (forge, headers, body) = fixture("gitlab-push-hook-refused-wrong-token");
    assert_eq!(
        receive(forge, &auth(forge), &headers[..], &body),
        Err(Refusal::BadSignature)
    );
}

#[test]
fn malformed_json_after_a_valid_proof_is_malformed() {
    for forge in Forge::ALL {
        for body in [
            &b"{\"ref\": \"refs/heads/main\""[..],
            b"",
            b"[1, 2]",
            b"\"push\"",
            b"\xff\xfe{}",
        ] {
            let headers = sign(
                forge,
                &[
                    ("X-GitHub-Event".into(), "push".into()),
                    ("X-Gitlab-Event".into(), "Push Hook".into()),
                    ("X-Event-Key".into(), "repo:push".into()),
                    ("X-Gitea-Event".into(), "push".into()),
                ],
                body,
            );
            let refused = receive(forge, &auth(forge), &headers[..], body);
            assert!(
                matches!(refused, Err(Refusal::Malformed(_))),
                "{forge} {body:?}: {refused:?}"
            );
            assert_eq!(refused.unwrap_err().label(), "malformed");
        }
    }
}

#[test]
fn a_push_without_repository_urls_is_malformed() {
    let events: [(Forge, &str, &str); 5] = [
        (Forge::GitHub, "X-GitHub-Event", "push"),
        (Forge::GitLab, "X-Gitlab-Event", "Push Hook"),
        (Forge::AzureDevOps, "X-Unused", "-"),
        (Forge::Bitbucket, "X-Event-Key", "repo:refs_changed"),
        (Forge::Gitea, "X-Gitea-Event", "push"),
    ];
    for (forge, header, value) in events {
        let body =
            br#"{"eventType":"git.push","repository":{"full_name":"acme/widgets","clone_url":"","links":{"clone":[{"href":7}]}},"resource":{"repository":{"name":"widgets"}}}"#;
        let headers = sign(forge, &[(header.into(), value.into())], body);
        let refused = receive(forge, &auth(forge), &headers[..], body);
        assert!(
            matches!(refused, Err(Refusal::Malformed(_))),
            "{forge}: {refused:?}"
        );
    }
}

#[test]
fn an_event_header_is_needed_where_the_body_does_not_say() {
    for forge in [Forge::GitHub, Forge::Gitea, Forge::Bitbucket] {
        let body = br#"{"repository":{"clone_url":"https://example.com/a.git"}}"#;
        let headers = sign(forge, &[], body);
        let refused = receive(forge, &auth(forge), &headers[..], body);
        assert!(
            matches!(refused, Err(Refusal::Malformed(_))),
            "{forge}: {refused:?}"
        );
    }
}

#[test]
fn payload_text_is_made_printable_and_short() {
    let body = format!(
        r#"{{"repository":{{"full_name":"acme/\u001b[31mred\n{}","clone_url":"https://example.com/a.git"}}}}"#,
        "x".repeat(500)
    );
    let headers = sign(
        Forge::GitHub,
        &[("X-GitHub-Event".into(), "push".into())],
        body.as_bytes(),
    );
    let Event::Push(repository) = receive(
        Forge::GitHub,
        &auth(Forge::GitHub),
        &headers[..],
        body.as_bytes(),
    )
    .unwrap()
    .event
    else {
        panic!("not a push");
    };
    assert!(repository.name.starts_with("acme/?[31mred?xxx"));
    assert!(repository.name.chars().count() <= 103);
    assert!(!repository.name.chars().any(char::is_control));
}

#[test]
fn the_wrong_kind_of_proof_or_an_empty_secret_refuses_everything() {
    let (forge, headers, body) = fixture("github-push");
    let token = HookAuth::Token(SECRET.into());
    assert_eq!(
        receive(forge, &token, &headers[..], &body),
        Err(Refusal::Unsigned)
    );
    let empty = HookAuth::Hmac(String::new());
    let signed_with_empty = with(
        &headers,
        "X-Hub-Signature-256",
        Some(&format!("sha256={}", hmac_hex("", &body))),
    );
    assert_eq!(
        receive(forge, &empty, &signed_with_empty[..], &body),
        Err(Refusal::Unsigned)
    );
    let (forge, headers, body) = fixture("gitlab-push-hook");
    let empty_headers = with(&headers, "X-Gitlab-Token", Some(""));
    assert_eq!(
        receive(
            forge,
            &HookAuth::Token(String::new()),
            &empty_headers[..],
            &body
        ),
        Err(Refusal::Unsigned)
    );
    assert_eq!(
        receive(forge, &HookAuth::Hmac(SECRET.into()), &headers[..], &body),
        Err(Refusal::Unsigned)
    );
}

#[test]
fn replays_are_refused_and_memory_is_bounded() {
    let mut replays = Replays::new(3);
    assert!(replays.first_time(Forge::GitHub, "a"));
    assert!(!replays.first_time(Forge::GitHub, "a"));
    // Ids are per forge.
    assert!(replays.first_time(Forge::Gitea, "a"));
    assert!(replays.first_time(Forge::GitHub, "b"));
    assert!(replays.first_time(Forge::GitHub, "c"));
    assert_eq!(replays.len(), 3);
    // "a" from GitHub, the oldest, was forgotten to make room for "c".
    assert!(replays.first_time(Forge::GitHub, "a"));
    assert!(!replays.first_time(Forge::GitHub, "c"));
    assert_eq!(replays.len(), 3);
    for n in 0..10_000 {
        replays.first_time(Forge::Bitbucket, &n.to_string());
    }
    assert_eq!(replays.len(), 3);
    assert!(!replays.first_time(Forge::Bitbucket, "9999"));

    let mut none = Replays::new(0);
    assert!(none.first_time(Forge::GitHub, "a"));
    assert!(none.first_time(Forge::GitHub, "a"));
    assert_eq!(none.len(), 0);
}

#[test]
fn a_replayed_fixture_is_refused_the_second_time() {
    let mut replays = Replays::new(10_000);
    let delivery = received("github-push");
    let id = delivery.id.as_deref().unwrap();
    assert!(replays.first_time(Forge::GitHub, id));
    let again = received("github-push");
    assert!(!replays.first_time(Forge::GitHub, again.id.as_deref().unwrap()));
}

#[test]
fn debug_of_hook_auth_shows_no_secret() {
    let secret = "s3cr3t-value";
    for auth in [
        HookAuth::Hmac(secret.into()),
        HookAuth::Token(secret.into()),
        HookAuth::Azure {
            basic: Some(("relay".into(), secret.into())),
            header: Some(("X-Relay-Key".into(), secret.into())),
        },
    ] {
        let shown = format!("{auth:?} {auth:#?}");
        assert!(!shown.contains(secret), "{shown}");
        assert!(shown.contains("<secret>"), "{shown}");
    }
    let azure = format!(
        "{:?}",
        HookAuth::Azure {
            basic: Some(("relay".into(), secret.into())),
            header: Some(("X-Relay-Key".into(), secret.into())),
        }
    );
    assert!(
        azure.contains("relay") && azure.contains("X-Relay-Key"),
        "{azure}"
    );
}

#[test]
fn refusal_labels() {
    assert_eq!(Refusal::Unsigned.label(), "unsigned");
    assert_eq!(Refusal::BadSignature.label(), "bad_signature");
    assert_eq!(Refusal::Malformed("x".into()).label(), "malformed");
}
