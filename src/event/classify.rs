//! What an action means: the outcome, ECS `event.category`/`event.type` and CEF severity of a
//! login or audit action code, from the code and DocSpace's own mapping in the row.

use super::{Outcome, Stream};

/// What an action means: outcome, ECS category/type and a CEF severity (0–10).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Semantics {
    /// Success or failure.
    pub outcome: Outcome,
    /// ECS `event.category` values.
    pub category: &'static [&'static str],
    /// ECS `event.type` values (each expected for every category above).
    pub kind: &'static [&'static str],
    /// CEF severity: 3 a successful login, logout or document action, 4 an action this build
    /// cannot place, 5 a failed login, a change of people or groups, or a failed audit
    /// action, 6 a setting, 7 a lockout or a suspicious login.
    pub severity: u8,
}

/// Login codes the server itself counts as successes (`GetLastSuccessEventAsync`).
const LOGIN_SUCCESS: &[i64] = &[
    1000, 1001, 1007, 1010, 1011, 1012, 1015, 1019, 1021, 1024, 1027, 1028, 1029,
];

/// Classifies an action (docs/docspace-api.md §5 and §7). Login events by their code; audit
/// events by what DocSpace's own mapper put in the row (`product`, `location`, `entries`,
/// `actionType`), corrected for the actions whose mapping would mislead an ECS reader, and by
/// their code when the row carries no mapping (actions the mapper does not list, and codes this
/// build does not know). Every `event.type` is one that ECS expects for every `event.category`
/// given (`expected_event_types` in ecs_flat.yml); a unit test checks each code of
/// [`crate::actions::ACTIONS`] in both streams, an integration test runs the official validator
/// over them.
pub fn classify(
    stream: Stream,
    action_id: i64,
    action_type: Option<i64>,
    product: Option<i64>,
    location: Option<i64>,
    entries: &[i64],
) -> Semantics {
    const AUTH: &[&str] = &["authentication"];
    const SESSION: &[&str] = &["authentication", "session"];
    if stream == Stream::Login {
        return match action_id {
            1006 => Semantics {
                outcome: Outcome::Success,
                category: AUTH,
                kind: &["end"],
                severity: 3,
            },
            1016 => Semantics {
                outcome: Outcome::Success,
                category: SESSION,
                kind: &["start"],
                severity: 3,
            },
            1017 => Semantics {
                outcome: Outcome::Success,
                category: SESSION,
                kind: &["end"],
                severity: 3,
            },
            1023 => Semantics {
                outcome: Outcome::Failure,
                category: AUTH,
                kind: &["start"],
                severity: 7,
            },
            code if LOGIN_SUCCESS.contains(&code) => Semantics {
                outcome: Outcome::Success,
                category: AUTH,
                kind: &["start"],
                severity: 3,
            },
            1002..=1026 => Semantics {
                outcome: Outcome::Failure,
                category: AUTH,
                kind: &["start"],
                severity: 5,
            },
            _ => Semantics {
                outcome: Outcome::Unknown,
                category: AUTH,
                kind: &["info"],
                severity: 5,
            },
        };
    }
    classify_audit(action_id, action_type, product, location, entries)
}

/// What an audit action acts on: the ECS `event.category` (and for IAM the first `event.type`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Object {
    /// `iam`, `user`: people (ProductType 8 Contacts), admin rights and product access.
    User,
    /// `iam`, `group`: groups (Contacts with EntryType 24 Group).
    Group,
    /// `file`: files, folders, rooms, tags and agents (ProductType 2 Documents).
    File,
    /// `configuration`: portal settings (ProductType 7) and Documents settings (LocationType 3).
    Config,
    /// `web`: an action this build cannot place.
    Web,
}

/// What happened to it: the ECS `event.type` verb.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Verb {
    Creation,
    Change,
    Deletion,
    Access,
    Info,
}

/// DocSpace's `ActionType` as an ECS verb: 1 Create, 9 Import, 13 Upload and 14 Copy make
/// something new; 2 Update, 4–7 Link/Unlink/Attach/Detach, 11 UpdateAccess, 15 Move,
/// 16 Reassigns and 17/18 Follow/Unfollow change it; 3 Delete deletes; 10 Export and
/// 12 Download read it; 0 None, 8 Send and anything newer change nothing ECS can name.
fn verb_of(action_type: i64) -> Verb {
    match action_type {
        1 | 9 | 13 | 14 => Verb::Creation,
        2 | 4..=7 | 11 | 15..=18 => Verb::Change,
        3 => Verb::Deletion,
        10 | 12 => Verb::Access,
        _ => Verb::Info,
    }
}

/// Audit actions whose DocSpace mapping would mislead an ECS reader: what they act on
/// (`None`: as the row says) and what happened instead of what `actionType` says.
fn reclassified(code: i64) -> Option<(Option<Object>, Verb)> {
    Some(match code {
        // UserDeletedAvatar, UserDisconnectedTfaApp: mapped as Delete, but the user stays.
        4009 | 4033 => (None, Verb::Change),
        // UsersSentActivationInstructions, OwnerSentPortalDeactivationInstructions: mapped as
        // Update, but only a mail was sent.
        4021 | 6023 => (None, Verb::Info),
        // AdministratorAdded, AdministratorOpenedFullAccess, AdministratorDeleted,
        // UsersOpenedProductAccess, ProductAddedAdministrator, ProductDeletedAdministrator,
        // OwnerUpdated: mapped as portal settings (Create/Delete of nothing ECS names), but a
        // person's rights changed.
        6009..=6012 | 6016 | 6017 | 6022 => (Some(Object::User), Verb::Change),
        // GroupsOpenedProductAccess: a group's rights changed.
        6013 => (Some(Object::Group), Verb::Change),
        // FileMovedToTrash, FolderMovedToTrash: mapped as Move; deleted, for the owner.
        5017 | 5026 => (None, Verb::Deletion),
        // File/FolderExternalLinkCreated/Deleted: mapped as Create/Delete of the file; a link
        // to it was made or removed.
        5091 | 5093 | 5122 | 5124 => (None, Verb::Change),
        // FileOpenedForChange, FileReaded, FormOpenedForFilling: mapped as Update; opened.
        5054 | 5064 | 6047 => (None, Verb::Access),
        // FileChangeOwner, DocumentSignComplete: mapped as Send; the file changed hands or
        // was signed.
        5043 | 5046 => (None, Verb::Change),
        _ => return None,
    })
}

/// Actions that DocSpace's audit mapper (master ed2994e74f) does not list, so that their rows
/// may come without `actionType` and `product`: what they act on and what happened.
fn unmapped(code: i64) -> Option<(Object, Verb)> {
    use Object::{Config, File, User};
    Some(match code {
        // DocumentsKeepNewFileNameSettingsUpdated, DocumentsDisplayFileExtensionUpdated,
        // DocumentsShowQuickActionsUpdated.
        5083 | 5101 | 5207 => (Config, Verb::Change),
        // RoomExternalLinkRenamed, RoomColorChanged, RoomCoverChanged, RoomIndexingChanged,
        // RoomDenyDownloadChanged.
        5098 | 5102..=5105 => (File, Verb::Change),
        // PrivacyRoomKeyCreated, Updated, Deleted.
        5161 => (Config, Verb::Creation),
        5162 => (Config, Verb::Change),
        5163 => (Config, Verb::Deletion),
        // FileSavedButTenantQuotaExceeded, FileNotSavedDueToTenantQuota.
        5205 | 5206 => (File, Verb::Change),
        // SubscriptionBalanceMovedToWallet, DocsCloudConfigUpdated.
        6100 | 6101 => (Config, Verb::Change),
        // DocsCloudQuotaReportDownloaded.
        6102 => (Config, Verb::Access),
        // AiProfileCreated, Updated, Deleted, Assigned, Unassigned, AiAgentProfileAssigned,
        // UpdatedServerOfAgent.
        6103 => (Config, Verb::Creation),
        6104 | 6106..=6109 => (Config, Verb::Change),
        6105 => (Config, Verb::Deletion),
        // RoomInviteLinkUsed: someone joined a room by its link.
        7001 => (User, Verb::Change),
        // UserCreatedAndAddedToRoom, GuestCreatedAndAddedToRoom.
        7002 | 7003 => (User, Verb::Creation),
        // ContactSalesMailSent.
        7004 => (Config, Verb::Info),
        // MetadataTemplate/FieldCreated, Updated, Deleted.
        9910 | 9913 => (Config, Verb::Creation),
        9911 | 9914 => (Config, Verb::Change),
        9912 | 9915 => (Config, Verb::Deletion),
        // MetadataTemplateAssigned, Unassigned, MetadataValuesUpdated, MetadataCascadeStarted:
        // metadata of files.
        9916..=9919 => (File, Verb::Change),
        _ => return None,
    })
}

/// What an audit action acts on when neither its row nor this build says: by the family of
/// its code (4xxx people, 5xxx documents, 6xxx and 99xx settings).
fn family(code: i64) -> Object {
    match code {
        4000..=4999 => Object::User,
        5000..=5999 => Object::File,
        6000..=6999 | 9900..=9999 => Object::Config,
        _ => Object::Web,
    }
}

/// Audit actions that report a failure: BackupFailed, ScheduledBackupFailed and the files not
/// saved for a quota (user, room, tenant).
const AUDIT_FAILURES: &[i64] = &[5126, 5129, 5202, 5204, 5206];

fn classify_audit(
    action_id: i64,
    action_type: Option<i64>,
    product: Option<i64>,
    location: Option<i64>,
    entries: &[i64],
) -> Semantics {
    // SuspiciousLoginDetected: DocSpace's own detection, of a login whose outcome it does not
    // say.
    if action_id == 7005 {
        return Semantics {
            outcome: Outcome::Unknown,
            category: &["authentication", "intrusion_detection"],
            kind: &["info"],
            severity: 7,
        };
    }
    // ActionType 19 Logout (UserLogoutActiveConnections and its kin): sessions ended.
    if action_type == Some(19) {
        return Semantics {
            outcome: Outcome::Success,
            category: &["session"],
            kind: &["end"],
            severity: 5,
        };
    }
    let from_row = match product {
        Some(8) if entries.contains(&24) => Some(Object::Group),
        Some(8) => Some(Object::User),
        Some(7) => Some(Object::Config),
        Some(2) if location == Some(3) => Some(Object::Config),
        Some(2) => Some(Object::File),
        _ => None,
    };
    let (mut object, mut verb) = match (from_row, unmapped(action_id)) {
        (Some(o), _) => (o, action_type.map_or(Verb::Info, verb_of)),
        (None, Some(known)) => known,
        (None, None) => (family(action_id), action_type.map_or(Verb::Info, verb_of)),
    };
    if let Some((o, v)) = reclassified(action_id) {
        object = o.unwrap_or(object);
        verb = v;
    }
    let (category, kind, severity): (&'static [&'static str], &'static [&'static str], u8) =
        match object {
            Object::User => (
                &["iam"],
                match verb {
                    Verb::Creation => &["user", "creation"],
                    Verb::Change => &["user", "change"],
                    Verb::Deletion => &["user", "deletion"],
                    // IAM has no `access`.
                    Verb::Access | Verb::Info => &["user", "info"],
                },
                5,
            ),
            Object::Group => (
                &["iam"],
                match verb {
                    Verb::Creation => &["group", "creation"],
                    Verb::Change => &["group", "change"],
                    Verb::Deletion => &["group", "deletion"],
                    Verb::Access | Verb::Info => &["group", "info"],
                },
                5,
            ),
            Object::File => (&["file"], verb_kind(verb), 3),
            Object::Config => (&["configuration"], verb_kind(verb), 6),
            // `web` expects access, error and info only.
            Object::Web => (
                &["web"],
                if verb == Verb::Access {
                    &["access"]
                } else {
                    &["info"]
                },
                4,
            ),
        };
    let failed = AUDIT_FAILURES.contains(&action_id);
    Semantics {
        outcome: if failed {
            Outcome::Failure
        } else {
            Outcome::Success
        },
        category,
        kind,
        severity: if failed { severity.max(5) } else { severity },
    }
}

/// `event.type` of a verb for `file` and `configuration`, which expect all five.
fn verb_kind(verb: Verb) -> &'static [&'static str] {
    match verb {
        Verb::Creation => &["creation"],
        Verb::Change => &["change"],
        Verb::Deletion => &["deletion"],
        Verb::Access => &["access"],
        Verb::Info => &["info"],
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::Value;

    /// ECS 9.4.0 `expected_event_types` of the categories the agent writes (ecs_flat.yml;
    /// the integration test `output::every_action_code_validates_as_ecs` runs the real file).
    const EXPECTED_TYPES: &[(&str, &[&str])] = &[
        ("authentication", &["start", "end", "info"]),
        (
            "configuration",
            &["access", "change", "creation", "deletion", "info"],
        ),
        (
            "file",
            &["access", "change", "creation", "deletion", "info"],
        ),
        (
            "iam",
            &[
                "admin", "change", "creation", "deletion", "group", "info", "user",
            ],
        ),
        ("intrusion_detection", &["allowed", "denied", "info"]),
        ("session", &["start", "end", "info"]),
        ("web", &["access", "error", "info"]),
    ];

    /// Every type is expected for every category given (stricter than the validator, which
    /// takes the union), none is repeated, and IAM names what changed (user or group) and how.
    fn ecs_combination_problem(sem: &Semantics) -> Option<String> {
        if sem.category.is_empty() || sem.kind.is_empty() {
            return Some("empty category or type".into());
        }
        for c in sem.category {
            let Some((_, types)) = EXPECTED_TYPES.iter().find(|(name, _)| name == c) else {
                return Some(format!("category {c} is not one the agent should write"));
            };
            if let Some(t) = sem.kind.iter().find(|t| !types.contains(t)) {
                return Some(format!("type {t} is not expected for category {c}"));
            }
        }
        let mut kinds = sem.kind.to_vec();
        kinds.sort_unstable();
        kinds.dedup();
        if kinds.len() != sem.kind.len() {
            return Some("a type twice".into());
        }
        if sem.category.contains(&"iam")
            && (sem.kind.len() != 2 || !matches!(sem.kind[0], "user" | "group"))
        {
            return Some("iam without `user`/`group` and a verb".into());
        }
        None
    }

    /// DocSpace's own mapping of each audit action (tests/fixtures/audit-actions.json, read
    /// from the server's Mappers/*.cs): `actionType`, `product`, `location`, `entries`.
    fn audit_mapping() -> std::collections::BTreeMap<i64, (i64, i64, i64, Vec<i64>)> {
        let v: Value =
            serde_json::from_str(include_str!("../../tests/fixtures/audit-actions.json")).unwrap();
        v["actions"]
            .as_object()
            .unwrap()
            .iter()
            .map(|(code, m)| {
                let n = |k: &str| m[k].as_i64().unwrap();
                let entries = m["entries"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|e| e.as_i64().unwrap())
                    .collect();
                (
                    code.parse().unwrap(),
                    (n("actionType"), n("product"), n("location"), entries),
                )
            })
            .collect()
    }

    /// See: issue 17 ("Review the action → ECS event.category/event.type table ... Test every
    /// code in the table, not samples"). Every code of the action table, in both streams, as
    /// DocSpace maps it and without a mapping; then every code with every `actionType`,
    /// `product`, `location` and `entries` a row may hold: always a combination ECS expects.
    #[test]
    fn every_action_code_gets_a_combination_ecs_expects() {
        let mapping = audit_mapping();
        let mut checked = 0;
        for a in crate::actions::ACTIONS {
            let code = i64::from(a.code);
            for stream in Stream::ALL {
                let mapped = mapping.get(&code);
                let sem = match mapped {
                    Some((t, p, l, e)) => classify(stream, code, Some(*t), Some(*p), Some(*l), e),
                    None => classify(stream, code, None, None, None, &[]),
                };
                if let Some(problem) = ecs_combination_problem(&sem) {
                    panic!("{code} {} in {stream}: {sem:?}: {problem}", a.name);
                }
                checked += 1;
            }
        }
        assert_eq!(checked, 2 * crate::actions::ACTIONS.len());
        let codes = crate::actions::ACTIONS
            .iter()
            .map(|a| i64::from(a.code))
            .chain([
                0, -1, 999, 1030, 1999, 2000, 4999, 5999, 6999, 8000, 9920, 99_999,
            ]);
        for code in codes {
            for stream in Stream::ALL {
                for t in [None].into_iter().chain((-1..=25).map(Some)) {
                    for p in [None, Some(0), Some(2), Some(3), Some(7), Some(8), Some(99)] {
                        for l in [None, Some(3), Some(27)] {
                            for e in [&[][..], &[24], &[1, 2], &[23]] {
                                let sem = classify(stream, code, t, p, l, e);
                                if let Some(problem) = ecs_combination_problem(&sem) {
                                    panic!("{code} {t:?} {p:?} {l:?} {e:?}: {sem:?}: {problem}");
                                }
                            }
                        }
                    }
                }
            }
        }
    }

    /// The review's decisions, by code, as DocSpace maps each action.
    #[test]
    fn actions_are_classified_by_what_they_act_on() {
        let mapping = audit_mapping();
        let sem = |code: i64| match mapping.get(&code) {
            Some((t, p, l, e)) => classify(Stream::Audit, code, Some(*t), Some(*p), Some(*l), e),
            None => classify(Stream::for_action(code), code, None, None, None, &[]),
        };
        let check = |code: i64, category: &[&str], kind: &[&str], outcome: Outcome| {
            let s = sem(code);
            assert_eq!(
                (s.category, s.kind, s.outcome),
                (category, kind, outcome),
                "{code}"
            );
        };
        use Outcome::{Failure, Success, Unknown};
        // Groups are groups (GroupCreated was `user, creation`).
        check(4026, &["iam"], &["group", "creation"], Success);
        check(4027, &["iam"], &["group", "change"], Success);
        check(4028, &["iam"], &["group", "deletion"], Success);
        check(4000, &["iam"], &["user", "creation"], Success);
        check(4024, &["iam"], &["user", "creation"], Success);
        check(4018, &["iam"], &["user", "deletion"], Success);
        // The user stays when their avatar or 2FA app goes.
        check(4009, &["iam"], &["user", "change"], Success);
        check(4033, &["iam"], &["user", "change"], Success);
        check(4015, &["iam"], &["user", "info"], Success);
        check(4034, &["session"], &["end"], Success);
        // Admin rights are people's, not portal settings.
        check(6009, &["iam"], &["user", "change"], Success);
        check(6013, &["iam"], &["group", "change"], Success);
        check(6014, &["configuration"], &["change"], Success);
        check(6027, &["configuration"], &["access"], Success);
        check(6035, &["configuration"], &["change"], Success);
        check(5031, &["configuration"], &["change"], Success);
        check(5126, &["configuration"], &["change"], Failure);
        check(5011, &["file"], &["creation"], Success);
        check(5009, &["file"], &["access"], Success);
        check(5017, &["file"], &["deletion"], Success);
        check(5064, &["file"], &["access"], Success);
        check(5091, &["file"], &["change"], Success);
        check(5070, &["file"], &["creation"], Success);
        check(5202, &["file"], &["change"], Failure);
        // Not in DocSpace's mapper: by code.
        check(9919, &["file"], &["change"], Success);
        check(7002, &["iam"], &["user", "creation"], Success);
        check(
            7005,
            &["authentication", "intrusion_detection"],
            &["info"],
            Unknown,
        );
        // Logins.
        check(1023, &["authentication"], &["start"], Failure);
        check(1029, &["authentication"], &["start"], Success);
        check(1006, &["authentication"], &["end"], Success);
        check(1016, &["authentication", "session"], &["start"], Success);
        check(1017, &["authentication", "session"], &["end"], Success);
    }
}
