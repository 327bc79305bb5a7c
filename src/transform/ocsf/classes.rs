//! The OCSF 1.5.0 class and activity of every DocSpace action: a table from `MessageAction`
//! code to class + `activity_id`, the classes' identities (uids and names) and the activity
//! vocabulary of each, as the OCSF 1.5.0 schema defines them.
//!
//! Invariants: every code of [`crate::actions::ACTIONS`] has an entry ([`of_code`]), and every
//! entry's activity is one its class defines (a unit test checks both over the whole
//! catalogue); a code this build does not know still gets a class, from its stream and the
//! family of its code, with activity Other (99), so nothing is ever left unclassed.

use crate::event::Stream;

/// The OCSF classes the agent writes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Class {
    /// Account Change (3001): a user account was created, enabled, changed or deleted.
    AccountChange,
    /// Authentication (3002): logons and logoffs.
    Authentication,
    /// Entity Management (3004): portal settings and the objects administrators manage
    /// (webhooks, API keys, OAuth clients, backups, storages, AI providers, …).
    EntityManagement,
    /// User Access Management (3005): privileges given to or taken from a user.
    UserAccess,
    /// Group Management (3006): groups created, changed, deleted or given access.
    GroupManagement,
    /// API Activity (6003): reports read and mails or tokens made through DocSpace's API.
    ApiActivity,
    /// File Hosting Activity (6006): files, folders, rooms and agents.
    FileHosting,
}

impl Class {
    /// Every class, for tests and documentation.
    pub const ALL: [Class; 7] = [
        Class::AccountChange,
        Class::Authentication,
        Class::EntityManagement,
        Class::UserAccess,
        Class::GroupManagement,
        Class::ApiActivity,
        Class::FileHosting,
    ];

    /// `class_uid`.
    pub fn uid(self) -> u32 {
        match self {
            Class::AccountChange => 3001,
            Class::Authentication => 3002,
            Class::EntityManagement => 3004,
            Class::UserAccess => 3005,
            Class::GroupManagement => 3006,
            Class::ApiActivity => 6003,
            Class::FileHosting => 6006,
        }
    }

    /// `class_name`, as the schema spells it.
    pub fn name(self) -> &'static str {
        match self {
            Class::AccountChange => "Account Change",
            Class::Authentication => "Authentication",
            Class::EntityManagement => "Entity Management",
            Class::UserAccess => "User Access Management",
            Class::GroupManagement => "Group Management",
            Class::ApiActivity => "API Activity",
            Class::FileHosting => "File Hosting Activity",
        }
    }

    /// `category_uid`: 3 Identity & Access Management, 6 Application Activity.
    pub fn category_uid(self) -> u32 {
        self.uid() / 1000
    }

    /// `category_name`, as the schema spells it.
    pub fn category_name(self) -> &'static str {
        if self.category_uid() == 3 {
            "Identity & Access Management"
        } else {
            "Application Activity"
        }
    }

    /// The name of `activity_id` in this class, or `None` for an id the class does not
    /// define. 0 Unknown and 99 Other are defined by every class.
    pub fn activity_name(self, id: u8) -> Option<&'static str> {
        let names: &[&str] = match self {
            Class::AccountChange => &[
                "Unknown",
                "Create",
                "Enable",
                "Password Change",
                "Password Reset",
                "Disable",
                "Delete",
                "Attach Policy",
                "Detach Policy",
                "Lock",
                "MFA Factor Enable",
                "MFA Factor Disable",
                "Unlock",
            ],
            Class::Authentication => &[
                "Unknown",
                "Logon",
                "Logoff",
                "Authentication Ticket",
                "Service Ticket Request",
                "Service Ticket Renew",
                "Preauth",
            ],
            Class::EntityManagement => &[
                "Unknown",
                "Create",
                "Read",
                "Update",
                "Delete",
                "Move",
                "Enroll",
                "Unenroll",
                "Enable",
                "Disable",
                "Activate",
                "Deactivate",
                "Suspend",
                "Resume",
            ],
            Class::UserAccess => &["Unknown", "Assign Privileges", "Revoke Privileges"],
            Class::GroupManagement => &[
                "Unknown",
                "Assign Privileges",
                "Revoke Privileges",
                "Add User",
                "Remove User",
                "Delete",
                "Create",
            ],
            Class::ApiActivity => &["Unknown", "Create", "Read", "Update", "Delete"],
            Class::FileHosting => &[
                "Unknown",
                "Upload",
                "Download",
                "Update",
                "Delete",
                "Rename",
                "Copy",
                "Move",
                "Restore",
                "Preview",
                "Lock",
                "Unlock",
                "Share",
                "Unshare",
                "Open",
                "Sync",
                "Unsync",
                "Access Check",
            ],
        };
        if id == OTHER {
            return Some("Other");
        }
        names.get(usize::from(id)).copied()
    }
}

/// `activity_id` 99: an activity the class has no name for (`activity_name` then carries the
/// DocSpace action's own name).
pub const OTHER: u8 = 99;

/// The class and activity of one event.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Mapping {
    /// The OCSF class.
    pub class: Class,
    /// Its `activity_id`.
    pub activity: u8,
}

impl Mapping {
    /// `type_uid` = `class_uid * 100 + activity_id`.
    pub fn type_uid(self) -> u32 {
        self.class.uid() * 100 + u32::from(self.activity)
    }
}

/// The class and activity of an event of `stream` with action `code`: the table's entry, else
/// (a code this build does not know) Other in the class of its stream or code family: a login
/// is an Authentication, 4xxx an Account Change, 5xxx a File Hosting Activity, 6xxx and 99xx
/// an Entity Management, anything else an API Activity.
pub fn mapping(stream: Stream, code: i64) -> Mapping {
    if stream == Stream::Login {
        // A login row is an authentication whatever its code says.
        return match of_code(code) {
            Some(m) if m.class == Class::Authentication => m,
            _ => Mapping {
                class: Class::Authentication,
                activity: OTHER,
            },
        };
    }
    of_code(code).unwrap_or(Mapping {
        class: match code {
            1000..=1999 => Class::Authentication,
            4000..=4999 => Class::AccountChange,
            5000..=5999 => Class::FileHosting,
            6000..=6999 | 9900..=9999 => Class::EntityManagement,
            _ => Class::ApiActivity,
        },
        activity: OTHER,
    })
}

/// The table: the class and activity of each action code of the catalogue, `None` for a code
/// it does not list. Where no activity of the class says what happened, Other (99), whose
/// `activity_name` is then the action's own name.
pub fn of_code(code: i64) -> Option<Mapping> {
    use Class::{
        AccountChange as Ac, ApiActivity as Api, Authentication as Auth, EntityManagement as Em,
        FileHosting as Fh, GroupManagement as Gm, UserAccess as Ua,
    };
    // Activity ids by name, per class (the schema's numbers).
    const LOGON: u8 = 1;
    const LOGOFF: u8 = 2;
    const AC_CREATE: u8 = 1;
    const AC_ENABLE: u8 = 2;
    const AC_PASSWORD_CHANGE: u8 = 3;
    const AC_PASSWORD_RESET: u8 = 4;
    const AC_DELETE: u8 = 6;
    const AC_MFA_ENABLE: u8 = 10;
    const AC_MFA_DISABLE: u8 = 11;
    const EM_CREATE: u8 = 1;
    const EM_UPDATE: u8 = 3;
    const EM_DELETE: u8 = 4;
    const EM_ENABLE: u8 = 8;
    const EM_DISABLE: u8 = 9;
    const EM_DEACTIVATE: u8 = 11;
    const ASSIGN: u8 = 1;
    const REVOKE: u8 = 2;
    const GM_DELETE: u8 = 5;
    const GM_CREATE: u8 = 6;
    const API_CREATE: u8 = 1;
    const API_READ: u8 = 2;
    const UPLOAD: u8 = 1;
    const DOWNLOAD: u8 = 2;
    const UPDATE: u8 = 3;
    const DELETE: u8 = 4;
    const RENAME: u8 = 5;
    const COPY: u8 = 6;
    const MOVE: u8 = 7;
    const RESTORE: u8 = 8;
    const PREVIEW: u8 = 9;
    const LOCK: u8 = 10;
    const UNLOCK: u8 = 11;
    const SHARE: u8 = 12;
    const UNSHARE: u8 = 13;
    const OPEN: u8 = 14;

    let (class, activity) = match code {
        // Logins: LoginSuccess*, SessionStarted, AuthLinkActivated and every LoginFail* are
        // logon attempts (status_id says how they went); Logout and SessionCompleted log off.
        1006 | 1017 => (Auth, LOGOFF),
        1000..=1029 => (Auth, LOGON),

        // People.
        4000..=4003 | 4024 | 4025 | 7002 | 7003 => (Ac, AC_CREATE),
        4004 | 4005 => (Ac, AC_ENABLE),
        4017 => (Ac, AC_PASSWORD_CHANGE),
        4015 => (Ac, AC_PASSWORD_RESET),
        4018 | 4022 => (Ac, AC_DELETE),
        4032 => (Ac, AC_MFA_ENABLE),
        4033 => (Ac, AC_MFA_DISABLE),
        // UserUpdated (name, language, avatar, social accounts, mobile number, e-mail, AI
        // settings), instructions sent, data reassigned or removed, invitations, and
        // UsersUpdatedStatus (enabled or disabled: the row does not say which).
        4006..=4014 | 4016 | 4020 | 4021 | 4023 | 4029..=4031 | 4037 | 5047 | 6099 => (Ac, OTHER),
        // UserLogoutActiveConnection(s)(ForUser): sessions ended.
        4034..=4036 => (Auth, LOGOFF),
        4026 => (Gm, GM_CREATE),
        4027 => (Gm, OTHER),
        4028 => (Gm, GM_DELETE),
        6013 => (Gm, ASSIGN),
        // UsersUpdatedType: a user's type (role) changed, up or down.
        4019 => (Ua, OTHER),

        // Rights: administrators, product access, the owner, room links, OAuth consents.
        6009 | 6010 | 6012 | 6014 | 6016 | 6022 | 7001 => (Ua, ASSIGN),
        6011 | 6015 | 6017 | 9907 => (Ua, REVOKE),
        6021 => (Ua, OTHER),

        // Files, folders, rooms and agents.
        5001 | 5020 | 5071 | 5155 => (Fh, RENAME),
        5002..=5005
        | 5034
        | 5035
        | 5043
        | 5046
        | 5078..=5081
        | 5098
        | 5102..=5105
        | 5107..=5117
        | 5119..=5121
        | 5151..=5153
        | 5159
        | 5201..=5206
        | 6046
        | 9916..=9919 => (Fh, UPDATE),
        5006 => (Fh, LOCK),
        5007 => (Fh, UNLOCK),
        5009 | 5010 | 5057 | 5062 => (Fh, DOWNLOAD),
        5011 | 5012 | 5099 => (Fh, UPLOAD),
        5013 | 5014 | 5022 | 5023 | 5100 => (Fh, COPY),
        5015 | 5016 | 5024 | 5025 | 5072 => (Fh, MOVE),
        5017 | 5018 | 5026 | 5027 | 5061 | 5074 | 5156 => (Fh, DELETE),
        5044 | 5073 => (Fh, RESTORE),
        5054 | 5150 | 6047 => (Fh, OPEN),
        5064 => (Fh, PREVIEW),
        // Access given or changed, links made or changed, members added, invitations.
        5008 | 5021 | 5036 | 5060 | 5066 | 5068 | 5075 | 5082 | 5085 | 5086 | 5088 | 5089
        | 5091 | 5092 | 5094 | 5095 | 5118 | 5122 | 5123 => (Fh, SHARE),
        // Access taken, links deleted or revoked, members removed.
        5084 | 5087 | 5090 | 5093 | 5096 | 5097 | 5124 => (Fh, UNSHARE),
        // Created (no File Hosting activity creates), favourites, lists, marks, signing,
        // index exports.
        5000 | 5019 | 5045 | 5055 | 5056 | 5058 | 5059 | 5063 | 5065 | 5070 | 5106 | 5154 => {
            (Fh, OTHER)
        }

        // Portal settings and what administrators manage.
        5028 | 5041 | 5076 | 5127 | 5161 | 6055 | 6058 | 6073 | 6076 | 6085 | 6103 | 9901
        | 9910 | 9913 => (Em, EM_CREATE),
        5029
        | 5031..=5033
        | 5037..=5040
        | 5042
        | 5048..=5050
        | 5053
        | 5069
        | 5083
        | 5101
        | 5125
        | 5126
        | 5128
        | 5129
        | 5157
        | 5158
        | 5160
        | 5162
        | 5207
        | 5503
        | 6000..=6008
        | 6018..=6020
        | 6031..=6035
        | 6039..=6045
        | 6048..=6054
        | 6056
        | 6059
        | 6061
        | 6064..=6072
        | 6074
        | 6077
        | 6081..=6084
        | 6086
        | 6088..=6096
        | 6100
        | 6101
        | 6104
        | 6106..=6109
        | 9902
        | 9903
        | 9905
        | 9906
        | 9911
        | 9914 => (Em, EM_UPDATE),
        5030 | 5077 | 5130 | 5163 | 6026 | 6057 | 6060 | 6075 | 6080 | 6087 | 6105 | 9904
        | 9912 | 9915 => (Em, EM_DELETE),
        5051 | 5501 | 6029 | 6037 | 6038 | 6078 | 6097 => (Em, EM_ENABLE),
        5052 | 5502 | 6030 | 6036 | 6079 | 6098 => (Em, EM_DISABLE),
        6025 => (Em, EM_DEACTIVATE),
        // Backups and restores cancelled or started, deactivation and deletion instructions,
        // customer operations.
        5131..=5133 | 6023 | 6024 | 6062 => (Em, OTHER),

        // Reports downloaded, mails sent, tokens issued.
        6027 | 6028 | 6063 | 6102 => (Api, API_READ),
        9908 | 9909 => (Api, API_CREATE),
        7000 | 7004 => (Api, OTHER),
        // SuspiciousLoginDetected: DocSpace's own detection, of a logon it does not say the
        // outcome of.
        7005 => (Auth, OTHER),
        _ => return None,
    };
    Some(Mapping { class, activity })
}

/// What an Entity Management event manages (`entity.type`), from the action's name.
pub fn entity_type(name: &str) -> &'static str {
    const BY_WORD: &[(&str, &str)] = &[
        ("Webhook", "Webhook"),
        ("ApiKey", "API key"),
        ("Client", "OAuth client"),
        ("Backup", "Backup"),
        ("Restore", "Backup"),
        ("ThirdParty", "Third-party storage"),
        ("AIProvider", "AI provider"),
        ("AiProfile", "AI profile"),
        ("Server", "MCP server"),
        ("Webplugin", "Plugin"),
        ("Metadata", "Metadata template"),
        ("Tag", "Tag"),
        ("Ldap", "LDAP"),
        ("SSO", "SSO"),
        ("Quota", "Quota"),
        ("PrivacyRoom", "Privacy room"),
        ("Portal", "Portal"),
        ("LicenseKey", "License"),
        ("Customer", "Billing"),
        ("Subscription", "Billing"),
        ("Storage", "Storage"),
    ];
    BY_WORD
        .iter()
        .find(|(word, _)| name.contains(word))
        .map_or("Setting", |(_, t)| t)
}

/// The privilege a User Access Management or Group Management event gives or takes
/// (`privileges`, which the class requires).
pub fn privilege(code: i64) -> &'static str {
    match code {
        6009..=6011 => "portal administrator",
        6016 | 6017 => "product administrator",
        6012..=6015 => "product access",
        6021 | 6022 => "portal owner",
        4019 => "user type",
        7001 => "room access",
        9907 => "OAuth client consent",
        _ => "access",
    }
}

/// What a File Hosting event acts on (`file.type_id`, `file.type`): from the row's
/// `entries` (EntryType 1 File, 2 Folder, 25 Room, 27 Agent), else from the action's name.
pub fn file_type(entries: &[i64], name: &str) -> (u8, &'static str) {
    const FILE: (u8, &str) = (1, "Regular File");
    const FOLDER: (u8, &str) = (2, "Folder");
    const ROOM: (u8, &str) = (99, "Room");
    const AGENT: (u8, &str) = (99, "Agent");
    for e in entries {
        match e {
            1 => return FILE,
            2 => return FOLDER,
            25 => return ROOM,
            27 => return AGENT,
            _ => {}
        }
    }
    if name.starts_with("Folder") {
        FOLDER
    } else if name.starts_with("Room") {
        ROOM
    } else if name.starts_with("Agent") || name.contains("ServerToAgent") {
        AGENT
    } else if name.contains("File") || name.starts_with("Form") || name.starts_with("Document") {
        FILE
    } else {
        (0, "Unknown")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::actions::ACTIONS;

    /// Every action of the catalogue has a class, and its activity is one its class defines.
    #[test]
    fn every_catalogue_code_maps_to_a_valid_class_and_activity() {
        for a in ACTIONS {
            let code = i64::from(a.code);
            let m = of_code(code).unwrap_or_else(|| panic!("{} ({code}) has no class", a.name));
            assert!(
                m.class.activity_name(m.activity).is_some(),
                "{} ({code}): activity {} is not one of {}",
                a.name,
                m.activity,
                m.class.name()
            );
            assert_eq!(
                m.type_uid(),
                m.class.uid() * 100 + u32::from(m.activity),
                "{}",
                a.name
            );
            // Logins are authentications in their own stream, and so in `mapping`.
            let stream = Stream::for_action(code);
            assert_eq!(mapping(stream, code), m, "{}", a.name);
            if stream == Stream::Login {
                assert_eq!(m.class, Class::Authentication, "{}", a.name);
            }
        }
    }

    /// The families land where the table says, by a few well-known codes.
    #[test]
    fn families() {
        let at = |code| of_code(code).map(|m| (m.class.uid(), m.activity));
        assert_eq!(at(1000), Some((3002, 1)));
        assert_eq!(at(1023), Some((3002, 1)));
        assert_eq!(at(1006), Some((3002, 2)));
        assert_eq!(at(4000), Some((3001, 1)));
        assert_eq!(at(4017), Some((3001, 3)));
        assert_eq!(at(4026), Some((3006, 6)));
        assert_eq!(at(6009), Some((3005, 1)));
        assert_eq!(at(5011), Some((6006, 1)));
        assert_eq!(at(5070), Some((6006, 99)));
        assert_eq!(at(6035), Some((3004, 3)));
        assert_eq!(at(6027), Some((6003, 2)));
        assert_eq!(at(4035), Some((3002, 2)));
    }

    #[test]
    fn unknown_codes_get_their_family_and_other() {
        let m = |s, c| mapping(s, c);
        assert_eq!(m(Stream::Login, 1999).class, Class::Authentication);
        assert_eq!(m(Stream::Login, 5011).class, Class::Authentication);
        assert_eq!(m(Stream::Login, 5011).activity, OTHER);
        assert_eq!(m(Stream::Audit, 4999).class, Class::AccountChange);
        assert_eq!(m(Stream::Audit, 5999).class, Class::FileHosting);
        assert_eq!(m(Stream::Audit, 6999).class, Class::EntityManagement);
        assert_eq!(m(Stream::Audit, 9920).class, Class::EntityManagement);
        assert_eq!(m(Stream::Audit, i64::MIN).class, Class::ApiActivity);
        assert_eq!(m(Stream::Audit, i64::MAX).activity, OTHER);
    }

    #[test]
    fn identities() {
        for c in Class::ALL {
            assert!(matches!(c.category_uid(), 3 | 6), "{c:?}");
            assert_eq!(c.activity_name(0), Some("Unknown"));
            assert_eq!(c.activity_name(OTHER), Some("Other"));
            assert_eq!(c.activity_name(98), None);
        }
        assert_eq!(Class::FileHosting.activity_name(17), Some("Access Check"));
        assert_eq!(Class::FileHosting.activity_name(18), None);
        assert_eq!(Class::UserAccess.activity_name(3), None);
    }

    #[test]
    fn entity_and_file_types() {
        assert_eq!(entity_type("WebhookCreated"), "Webhook");
        assert_eq!(entity_type("LanguageSettingsUpdated"), "Setting");
        assert_eq!(entity_type("CreateClient"), "OAuth client");
        assert_eq!(file_type(&[1], "RoomCreated"), (1, "Regular File"));
        assert_eq!(file_type(&[], "RoomCreated"), (99, "Room"));
        assert_eq!(file_type(&[], "FolderMoved"), (2, "Folder"));
        assert_eq!(file_type(&[], "TrashEmptied"), (0, "Unknown"));
    }
}
